"""Caches shared by the dashboard's sessions (app_pages/common.py): one copy per run, dropped when the run changes.

Figures and test predictions are cached as shared resources keyed by (run path, run stamp), so N sessions
on a page hold one object rather than N unpickled copies (bench/load_sessions.py measures the effect). These
tests check the sharing (the same object for the same run), that the shared arrays cannot be written, that
rewriting a run (a new ``summary.json`` mtime) gives new values, read back from the files, and that the
caches are bounded. Expected values come from ``numpy.load`` of the run's files and ``plotly``'s JSON, not
from the functions under test.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from app_pages import common as app_common

# the pages pass the sidebar's rule; a fixed threshold other than the run's saved rule (0.5) makes them score the
# saved predictions (under the saved rule they reuse node_metrics.csv: test_the_saved_rule_reuses_the_saved_metrics)
FIXED = ("fixed", 0.4, None)
FIGURES = {
    "deepest_level": lambda path, stamp: app_common.deepest_level(path, stamp, FIXED),
    "recall_by_depth": lambda path, stamp: app_common.recall_by_depth(path, stamp, FIXED),
    "training_curve": lambda path, stamp: app_common.training_curve(path, stamp),
    "missed_figures": lambda path, stamp: app_common.missed_figures(path, stamp, 0.5, False, (0, 99), (0, 10 ** 9),
                                                                    (1, 10 ** 9), FIXED)[0],
    "tradeoff_chart": lambda path, stamp: app_common.tradeoff_chart(path, stamp),
}


@pytest.fixture
def run_copy(tmp_path: Path) -> Path:
    """A private copy of the bundled demo run, which has held-out predictions (the tests rewrite it)."""
    return Path(shutil.copytree(app_common.DEMO_RUN_DIR, tmp_path / "run"))


def _rewrite(run_dir: Path) -> None:
    """Reverse the test examples of ``predictions.npz`` and give ``summary.json`` a later mtime (a new stamp)."""
    with np.load(run_dir / "predictions.npz") as data:
        arrays = {k: data[k] for k in data.files}
    for key in ("y_true", "mean_probs", "uncertainty"):
        arrays[key] = arrays[key][::-1].copy()
    arrays["member_probs"] = arrays["member_probs"][:, ::-1].copy()  # (members, examples, nodes)
    arrays["mean_probs"] = np.clip(arrays["mean_probs"] * 0.5, 0, 1).astype(arrays["mean_probs"].dtype)
    np.savez(run_dir / "predictions.npz", **arrays)
    summary = run_dir / "summary.json"
    mtime = summary.stat().st_mtime_ns
    os.utime(summary, ns=(mtime + 10 ** 9, mtime + 10 ** 9))


def test_predictions_are_shared_read_only_and_reloaded_when_the_run_changes(run_copy: Path) -> None:
    path = str(run_copy)
    stamp = app_common.run_stamp(path)
    first = app_common._predictions(path, stamp)
    assert app_common._predictions(path, app_common.run_stamp(path)) is first  # one copy for every session
    with np.load(run_copy / "predictions.npz") as data:
        np.testing.assert_array_equal(first["mean_probs"], data["mean_probs"])
        assert set(first) == set(data.files)
    with pytest.raises(ValueError, match="read-only"):
        first["mean_probs"][0, 0] = 1.0  # a shared array must not be written by one session

    _rewrite(run_copy)
    assert app_common.run_stamp(path) != stamp
    second = app_common._predictions(path, app_common.run_stamp(path))
    assert second is not first
    with np.load(run_copy / "predictions.npz") as data:
        np.testing.assert_array_equal(second["mean_probs"], data["mean_probs"])
        np.testing.assert_array_equal(second["y_true"], data["y_true"])
    assert not np.array_equal(second["mean_probs"], first["mean_probs"])


@pytest.mark.parametrize("name", list(FIGURES))
def test_figures_are_shared_and_redrawn_when_the_run_changes(run_copy: Path, name: str) -> None:
    path = str(run_copy)
    draw = FIGURES[name]
    first = draw(path, app_common.run_stamp(path))
    assert draw(path, app_common.run_stamp(path)) is first  # the same object, not a copy per session
    before = first.to_json()
    history = run_copy / "history.csv"
    if name == "training_curve":  # the only figure drawn from history.csv, not from the predictions
        lines = history.read_text().splitlines()
        history.write_text("\n".join(lines[:-1]) + "\n")
    _rewrite(run_copy)
    second = draw(path, app_common.run_stamp(path))
    assert second is not first
    assert json.loads(second.to_json()) != json.loads(before)
    assert first.to_json() == before  # the old object was not changed under the sessions holding it


def test_the_saved_rule_reuses_the_saved_metrics(run_copy: Path) -> None:
    path = str(run_copy)
    saved = app_common.decided_run(path, app_common.DEFAULT_DECISION)
    scored = app_common.decided_run(path, ("fixed", 0.5 + 1e-12, None))  # the same cut, scored from the predictions
    for column in ("precision", "recall", "f1", "train_frequency"):
        np.testing.assert_allclose(saved.node_metrics[column].to_numpy(float), scored.node_metrics[column].to_numpy(float),
                                   err_msg=column)
    evaluated = saved.node_metrics["evaluated"].to_numpy(bool)
    assert (saved.node_metrics["threshold"][evaluated] == 0.5).all()  # the root, never evaluated, is -inf
    _rewrite(run_copy)  # new predictions, node_metrics.csv unchanged: the saved rule keeps the saved figures
    again = app_common.decided_run(path, app_common.DEFAULT_DECISION)
    assert again is not saved and again.node_metrics["recall"].equals(saved.node_metrics["recall"])


def test_shared_caches_are_bounded() -> None:
    for function in (app_common._predictions, app_common.deepest_level, app_common.missed_figures,
                     app_common.recall_by_depth, app_common.training_curve, app_common.sunburst,
                     app_common.tradeoff_chart):
        max_entries = function._info.max_entries  # the decorator's bound (Streamlit's CachedFunc)
        assert max_entries is not None and 0 < max_entries <= 64, function
