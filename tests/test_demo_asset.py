"""The bundled demo run loads, and `python -m hmlc_core demo` regenerates it."""

from pathlib import Path

import numpy as np
import pytest

from hmlc_core.cli import DEMO_RUN_DIR, main
from hmlc_core.runs import load_run


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


def test_demo_command_regenerates_the_asset(tmp_path):
    out = Path(tmp_path) / "demo"
    assert main(["demo", "--out", str(out), "--quiet"]) == 0
    fresh, bundled = load_run(out), load_run(DEMO_RUN_DIR)
    assert fresh.config == bundled.config
    assert fresh.hierarchy.nodes == bundled.hierarchy.nodes
    np.testing.assert_array_equal(fresh.predictions()["y_true"], bundled.predictions()["y_true"])
    # Same code, seed and data: the metrics agree (a small tolerance for floating-point differences).
    assert fresh.summary["auprc_micro"] == pytest.approx(bundled.summary["auprc_micro"], abs=0.02)
