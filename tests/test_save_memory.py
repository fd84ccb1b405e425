"""save_run in chunks of test rows (issue 17): the same files as the whole test split at once, in less memory.

The reference below is what ``save_run`` computed before it worked in chunks, written out from the public
pieces: the member probabilities of the whole test split, their mean, the six uncertainty maps, the
decision rule's predictions and the metrics, all at once. Every array of ``predictions.npz`` and
``decision.json`` must be identical to it, and so must ``node_metrics.csv`` and the metrics of
``summary.json``, but for the ``uncertainty_<mode>`` columns: their means over the test rows are now summed in
float64 chunk by chunk (torch's float32 mean of the whole split before), equal to float tolerance.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from hmlc_core import runs
from hmlc_core.data import HMCDataset, Split
from hmlc_core.decision import fit_decision_rule
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import node_metrics_table, summarize
from hmlc_core.model import MCM
from hmlc_core.runs import display_uncertainty_mode, save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.tail_metrics import information_content
from hmlc_core.train import TrainConfig, TrainResult, predict_members, train
from hmlc_core.uncertainty import UNCERTAINTY_MODES, uncertainty

ROOT = Path(__file__).resolve().parent.parent


def _reference(result: TrainResult, dataset: HMCDataset) -> tuple[dict[str, np.ndarray], pd.DataFrame,
                                                                   dict[str, Any], dict[str, Any]]:
    """The arrays of predictions.npz, the node metrics, the summary's metrics and the decision rule, at once."""
    config, hierarchy = result.config, dataset.hierarchy
    mcm = MCM(hierarchy)
    members = predict_members(result.model, mcm, dataset.test.X, config.eval_batch_size)
    mean_probs = members.mean(dim=0).numpy()
    mode = display_uncertainty_mode(config)
    u_by_mode = {m: uncertainty(members, m) for m in UNCERTAINTY_MODES}
    held_out = {}
    if config.fit_on == "train":
        valid = predict_members(result.model, mcm, dataset.valid.X, config.eval_batch_size).mean(dim=0)
        held_out = {"valid_y_true": dataset.valid.Y.astype(np.uint8),
                    "valid_mean_probs": valid.numpy().astype(np.float32)}
    rule = fit_decision_rule(config.decision, hierarchy, held_out.get("valid_y_true"),
                             held_out.get("valid_mean_probs"), threshold=config.decision_threshold,
                             shrinkage=config.decision_shrinkage,
                             prevalence=np.asarray(result.train_frequency, dtype=np.float64) / dataset.train.n_samples)
    pred = rule.predict(mean_probs)
    table = node_metrics_table(hierarchy, dataset.test.Y, mean_probs, result.train_frequency,
                               u_by_mode[mode].numpy(), threshold=rule.thresholds, predictions=pred)
    for m, u in u_by_mode.items():
        table[f"uncertainty_{m}"] = u.mean(dim=0).numpy().astype(np.float64)
    table["information_content"] = information_content(dataset.train.Y, hierarchy)
    summary = summarize(hierarchy, dataset.test.Y, mean_probs, threshold=rule.thresholds, predictions=pred)
    arrays = {"y_true": dataset.test.Y.astype(np.uint8), "mean_probs": mean_probs.astype(np.float32),
              "member_probs": members.numpy().astype(np.float16),
              "uncertainty": u_by_mode[mode].numpy().astype(np.float16), **held_out}
    return arrays, table, summary, rule.to_dict()


def _dag_dataset(seed: int = 0) -> HMCDataset:
    """A GO-like DAG of 4 levels (a third of the nodes below the first level have two parents), 90/60/150 rows."""
    rng = np.random.default_rng(seed)
    levels = [["root"]] + [[f"L{d}_{i}" for i in range(w)] for d, w in enumerate((4, 12, 30, 60), start=1)]
    edges = []
    for above, level in zip(levels[:-1], levels[1:]):
        for node in level:
            parents = rng.choice(len(above), size=1 + int(len(above) > 1 and rng.random() < 1 / 3), replace=False)
            edges += [(above[p], node) for p in parents]
    hierarchy = Hierarchy(edges)
    n_features = 12
    prototypes = rng.normal(size=(hierarchy.n_nodes, n_features))

    def split(n: int) -> Split:
        y = np.zeros((n, hierarchy.n_nodes), dtype=np.uint8)
        y[np.arange(n), rng.integers(1, hierarchy.n_nodes, size=n)] = 1
        y[np.arange(n), rng.integers(1, hierarchy.n_nodes, size=n)] = 1
        y = hierarchy.propagate(y)
        x = (y @ prototypes) / y.sum(axis=1, keepdims=True) + rng.normal(scale=0.5, size=(n, n_features))
        return Split(X=x.astype(np.float32), Y=y)

    return HMCDataset(name="dag", hierarchy=hierarchy, feature_names=[f"f{i}" for i in range(n_features)],
                      train=split(90), valid=split(60), test=split(150), source={"train": "synthetic"})


CASES = {
    # 400 test rows in chunks of 50 (uncertainty's own chunks of 64 start elsewhere), the per-node rule fitted
    # on 200 held-out rows
    "synthetic, per-node rule": (lambda: make_synthetic(seed=0),
                                 dict(heads=2, hidden=16, eval_batch_size=50, fit_on="train", decision="per-node",
                                      focal="pcs")),
    # a DAG: the rule's upward closure reaches nodes of two parents; one chunk larger than the split
    "DAG, global rule": (_dag_dataset, dict(heads=3, hidden=16, fit_on="train", decision="global", focal="none")),
    # mc-dropout members are stochastic passes: the chunks must draw them in the same order (test, then valid)
    "DAG, mc-dropout, fixed rule": (_dag_dataset, dict(heads=3, hidden=16, ensemble="mc-dropout", eval_batch_size=32,
                                                       focal="epistemic_kl")),
}


def _json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, allow_nan=True)


@pytest.mark.parametrize("case", list(CASES))
def test_saved_files_equal_the_whole_split_at_once(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make, fields = CASES[case]
    monkeypatch.setattr(runs, "_DECISION_CELLS", 1000)  # the decision rule too in chunks (of 8-9 rows here)
    dataset = make()
    result = train(TrainConfig(dataset="synthetic", epochs=1, batch_size=32, seed=1, **fields), dataset)
    torch.manual_seed(7)
    arrays, table, summary, rule = _reference(result, dataset)
    torch.manual_seed(7)
    path = save_run(tmp_path / "run", result, dataset)

    with zipfile.ZipFile(path / "predictions.npz") as zf:
        assert [n.removesuffix(".npy") for n in zf.namelist()] == list(arrays)
    with np.load(path / "predictions.npz") as saved:
        for key, expected in arrays.items():
            assert saved[key].dtype == expected.dtype, key
            np.testing.assert_array_equal(saved[key], expected, err_msg=key)
    assert _json(json.loads((path / "decision.json").read_text())) == _json(rule)
    saved_summary = json.loads((path / "summary.json").read_text())
    assert _json({k: saved_summary[k] for k in summary}) == _json(json.loads(_json(summary)))

    saved_table = pd.read_csv(path / "node_metrics.csv", index_col="node", keep_default_na=False)
    expected_table = pd.read_csv(io.StringIO(table.to_csv()), index_col="node", keep_default_na=False)
    assert saved_table.columns.tolist() == expected_table.columns.tolist()
    means = [c for c in expected_table.columns if c.startswith("uncertainty")]
    pd.testing.assert_frame_equal(saved_table.drop(columns=means), expected_table.drop(columns=means),
                                  check_exact=True)
    np.testing.assert_allclose(saved_table[means].to_numpy(np.float64), expected_table[means].to_numpy(np.float64),
                               rtol=1e-5, atol=1e-9)


_MEASURE_SAVE = """
import json, sys
from hmlc_core.runs import save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train

def status(key):
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

dataset = make_synthetic(n_train=200, n_valid=100, n_test=2000, n_features=16, depth=4, branching=8)
config = TrainConfig(dataset="synthetic", heads=2, hidden=32, profile="quick", epochs=1, eval_batch_size=128)
result = train(config, dataset)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
    f.write("5")  # the peak from here on
save_run(sys.argv[1], result, dataset)
print(json.dumps({"peak": status("VmHWM") - base, "cells": dataset.test.Y.size}))
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs")
def test_save_takes_about_what_it_saves_per_test_cell(tmp_path: Path) -> None:
    """2,000 test rows x 4,681 nodes, 2 members, in a child: save_run's peak above the RSS before it.

    Measured 13.7-14.7 bytes a test cell: the 2 H + 7 it saves and decides, one chunk of 128 rows' predictions
    (2 a cell here) and the allocator's share; 53-54 while the whole split was evaluated at once.
    """
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _MEASURE_SAVE, str(tmp_path / "run")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["peak"] / found["cells"] < 2 * 2 + 16
