"""Train a few epochs on real CLUS HMC data (skipped without HMLC_DATA_DIR)."""

import os

import numpy as np
import pytest

from hmlc_core.cli import main
from hmlc_core.runs import evaluate_run, load_run


@pytest.fixture(scope="module")
def data_dir():
    path = os.environ.get("HMLC_DATA_DIR")
    if not path or not os.path.isdir(os.path.join(path, "datasets_FUN", "cellcycle_FUN")):
        pytest.skip("HMLC_DATA_DIR is unset or lacks datasets_FUN/cellcycle_FUN: real-data integration skipped")
    return path


def test_cellcycle_fun_few_epochs(data_dir, tmp_path):
    out = tmp_path / "fun"
    assert main(["train", "--dataset", "cellcycle_FUN", "--data-dir", data_dir, "--epochs", "3", "--heads", "2",
                 "--batch-size", "16", "--lr", "3e-4", "--weighting", "class-wise", "--focal", "mean",
                 "--out", str(out), "--quiet"]) == 0
    run = load_run(out)
    result = evaluate_run(run)
    assert result["n_eval_nodes"] == 499
    assert result["n_test"] == 1281
    assert result["coherence_violations"] == 0
    # Three epochs are far from converged, but well above the positive rate of a random scorer.
    preds = run.predictions()
    base_rate = preds["y_true"][:, run.hierarchy.eval_mask].mean()
    assert result["auprc_micro"] > 2 * base_rate
    assert np.isfinite(run.node_metrics["uncertainty"]).all()
