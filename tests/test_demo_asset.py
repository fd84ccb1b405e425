"""The bundled demo pair loads, shows the method at work, and `python -m hmlc_core demo` regenerates it.

The pair is plain C-HMCNN (``assets/demo_run``, run chooser key ``demo``) and the paper's weighted loss
(``assets/demo_weighted_run``, ``demo-weighted``). Recall is recomputed here from the saved test
predictions with numpy, not taken from the runs' summaries.
"""

from pathlib import Path

import numpy as np
import pytest

from hmlc_core.cli import DEMO_RUN_DIR, DEMO_RUNS, DEMO_WEIGHTED_RUN_DIR, main
from hmlc_core.config import TrainConfig
from hmlc_core.runs import Run, load_run
from app_pages import common as app_common

WEIGHTING_OPTIONS = {"weighting", "focal"}
"""The options in which the two demo runs may differ."""


def _recall(run: Run) -> tuple[float, dict[int, float]]:
    """Macro recall over the evaluated nodes (no test positive counts as 0) and per depth, at threshold 0.5."""
    preds = run.predictions()
    y, hit = preds["y_true"].astype(bool), preds["mean_probs"] >= 0.5
    positives = y.sum(axis=0)
    recall = np.where(positives > 0, (y & hit).sum(axis=0) / np.maximum(positives, 1), 0.0)
    evaluated = run.hierarchy.eval_mask
    depth = run.hierarchy.depth
    by_depth = {int(d): float(recall[evaluated & (depth == d)].mean()) for d in np.unique(depth[evaluated])}
    return float(recall[evaluated].mean()), by_depth


def test_bundled_demo_loads_and_shows_missed_deep_nodes():
    run = load_run(DEMO_RUN_DIR)
    assert run.summary["dataset"] == "synthetic" and run.summary["status"] == "finished"
    assert int(run.hierarchy.depth.max()) >= 4
    by_depth = {int(k): v for k, v in run.summary["recall_by_depth"].items()}
    # The point of the demo: shallow nodes are found, the rare deep ones are missed.
    assert by_depth[1] > by_depth[max(by_depth)]
    deep = run.node_metrics[run.node_metrics["depth"] == 4]
    shallow = run.node_metrics[run.node_metrics["depth"] == 1]
    assert deep["train_frequency"].mean() < shallow["train_frequency"].mean() / 10


def test_demo_pair_is_matched_plain_against_the_papers_weighted_loss():
    plain, weighted = load_run(DEMO_RUN_DIR), load_run(DEMO_WEIGHTED_RUN_DIR)
    a, b = plain.config.to_dict(), weighted.config.to_dict()
    assert {k for k in a if a[k] != b[k]} == WEIGHTING_OPTIONS
    assert (a["weighting"], a["focal"]) == ("none", "none")  # plain C-HMCNN
    defaults = TrainConfig(dataset="synthetic")  # the project's defaults are the paper's method (README)
    assert (b["weighting"], b["focal"]) == (defaults.weighting, defaults.focal) == ("class-wise", "mean")
    assert plain.summary["status"] == weighted.summary["status"] == "finished"
    assert plain.summary["epochs_completed"] == weighted.summary["epochs_completed"] == a["epochs"]
    assert plain.hierarchy.nodes == weighted.hierarchy.nodes
    np.testing.assert_array_equal(plain.predictions()["y_true"], weighted.predictions()["y_true"])
    # The dashboard lists the bundled folders that the command writes.
    assert (app_common.DEMO_RUN_DIR, app_common.DEMO_WEIGHTED_RUN_DIR) == (DEMO_RUN_DIR, DEMO_WEIGHTED_RUN_DIR)
    assert app_common.demo_runs() == {key: folder for key, (folder, _) in DEMO_RUNS.items()}


def test_demo_pair_shows_the_method_at_work():
    plain_macro, plain_depth = _recall(load_run(DEMO_RUN_DIR))
    weighted_macro, weighted_depth = _recall(load_run(DEMO_WEIGHTED_RUN_DIR))
    assert weighted_macro > 1.3 * plain_macro
    # Recall is at least as high at every depth, and clearly higher at the deepest level it reaches.
    assert all(weighted_depth[d] >= plain_depth[d] for d in plain_depth)
    deepest_but_one = max(plain_depth) - 1
    assert weighted_depth[deepest_but_one] > 2 * plain_depth[deepest_but_one] > 0


def test_demo_command_regenerates_the_pair(tmp_path):
    out = Path(tmp_path) / "assets"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    for folder, config in DEMO_RUNS.values():
        fresh, bundled = load_run(out / folder.name), load_run(folder)
        # The bundled runs were made by the current code: the command writes the same resolved options.
        assert fresh.config == bundled.config == config.resolved().for_dataset(images=False)
        assert fresh.hierarchy.nodes == bundled.hierarchy.nodes
        np.testing.assert_array_equal(fresh.predictions()["y_true"], bundled.predictions()["y_true"])
        # Same code, seed and data: the metrics agree (a small tolerance for floating-point differences).
        for key in ("auprc_micro", "macro_recall"):
            assert fresh.summary[key] == pytest.approx(bundled.summary[key], abs=0.02), (folder.name, key)
