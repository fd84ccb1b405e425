"""Tests of hmlc_core.views.diagnose, the Overview and Missed-nodes views.

References are independent of the code under test: plain-Python filters and
sorts over ``node_metrics``, the synthetic tree's id scheme ("1.2.3" has depth 3
and the path root > 1 > 1.2 > 1.2.3), scikit-learn's micro precision/recall/F1,
the run's own summary, and hand-computed small cases.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_recall_fscore_support

from hmlc_core.views import diagnose
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import node_metrics_table
from hmlc_core.model import MCM
from hmlc_core.runs import Run, load_run
from hmlc_core.train import TrainConfig


@pytest.fixture(scope="module")
def run(synthetic_run: Path) -> Run:
    return load_run(synthetic_run)


@pytest.fixture(scope="module")
def predictions(run: Run) -> dict[str, np.ndarray]:
    return run.predictions()


@pytest.fixture(scope="module")
def dag_run(run: Run) -> Run:
    """A run object (no training) over a small DAG: X has parents B (depth 1, its first parent) and A2 (depth 2)."""
    import torch

    h = Hierarchy([("root", "A"), ("root", "B"), ("A", "A1"), ("A", "A2"), ("B", "B1"), ("A2", "X"), ("B", "X"),
                   ("X", "X1")])
    rng = np.random.default_rng(3)
    y = h.propagate(rng.random((50, h.n_nodes)) < 0.2)
    probs = MCM(h)(torch.tensor(rng.random((1, 50, h.n_nodes)) * 0.6 + 0.35 * y, dtype=torch.float64)).numpy()[0]
    table = node_metrics_table(h, y, probs, train_frequency=rng.integers(0, 30, h.n_nodes),
                               uncertainty=rng.random((50, h.n_nodes)))
    return dataclasses.replace(run, hierarchy=h, node_metrics=table)


def _synthetic_depth(node: str) -> int:
    return 0 if node == "root" else node.count(".") + 1


def _synthetic_path(node: str) -> str:
    parts = node.split(".")
    return " > ".join(["root"] + [".".join(parts[:k]) for k in range(1, len(parts) + 1)])


def _naive_missed(run: Run, threshold: float, zero_only: bool, depth, freq, support) -> list[str]:
    """Plain-Python filter and sort of node_metrics rows."""
    order = {n: i for i, n in enumerate(run.hierarchy.nodes)}
    rows = []
    for node, row in run.node_metrics.iterrows():
        if not row["evaluated"]:
            continue
        r = float(row["recall"])
        if (r != 0) if zero_only else (r >= threshold):
            continue
        ok = True
        for value, bounds in ((row["depth"], depth), (row["train_frequency"], freq), (row["support"], support)):
            if bounds is None:
                continue
            lo, hi = bounds
            ok &= (lo is None or value >= lo) and (hi is None or value <= hi)
        if ok:
            rows.append((r, -int(row["support"]), order[node], node))
    return [node for *_, node in sorted(rows)]


# -------------------------------------------------------------------- table
def test_filter_bounds(run: Run) -> None:
    b = diagnose.filter_bounds(run)
    ev = [(n, r) for n, r in run.node_metrics.iterrows() if r["evaluated"]]
    assert b["depth"] == (1, 4)  # the synthetic tree: depths 1..4 below the root
    assert b["support"] == (min(int(r["support"]) for _, r in ev), max(int(r["support"]) for _, r in ev))
    assert b["train_frequency"] == (min(int(r["train_frequency"]) for _, r in ev),
                                    max(int(r["train_frequency"]) for _, r in ev))


@pytest.mark.parametrize("kwargs", [
    {},
    {"threshold": 0.8},
    {"threshold": 0.3, "depth": (2, 3)},
    {"zero_only": True, "support": (5, None)},
    {"threshold": 1.0, "train_frequency": (10, 200), "support": None},
    {"threshold": 0.5, "support": (0, 3)},
    {"threshold": 0.0},
])
def test_missed_nodes_match_a_naive_filter(run: Run, kwargs: dict) -> None:
    full = {"threshold": 0.5, "zero_only": False, "depth": None, "train_frequency": None, "support": (1, None),
            **kwargs}
    table = diagnose.missed_nodes(run, **kwargs)
    want = _naive_missed(run, full["threshold"], full["zero_only"], full["depth"], full["train_frequency"],
                         full["support"])
    assert list(table.index) == want
    assert list(table.columns) == diagnose.MISSED_COLUMNS
    assert table.index.name == "node"
    nm = run.node_metrics.loc[want]
    for column in ("depth", "train_frequency", "support", "tp", "fn", "recall", "uncertainty"):
        np.testing.assert_allclose(table[column].to_numpy(dtype=float), nm[column].to_numpy(dtype=float))


def test_missed_nodes_default_skips_nodes_without_test_positives(run: Run) -> None:
    nm = run.node_metrics
    no_positives = set(nm.index[nm["evaluated"] & (nm["support"] == 0)])
    assert no_positives  # the fixture has such nodes (recall 0 by convention)
    assert not no_positives & set(diagnose.missed_nodes(run).index)
    assert no_positives <= set(diagnose.missed_nodes(run, support=None).index)
    assert "root" not in diagnose.missed_nodes(run, threshold=1.0, support=None).index  # not evaluated


def test_missed_nodes_paths_and_depths(run: Run) -> None:
    table = diagnose.missed_nodes(run, threshold=1.0, support=None)
    nm = run.node_metrics
    assert len(table) == int((nm["evaluated"] & (nm["recall"] < 1)).sum()) > 100
    for node, row in table.iterrows():
        assert row["path"] == _synthetic_path(node)
        assert row["depth"] == _synthetic_depth(node)


def test_missed_nodes_dag_path_uses_first_parents(dag_run: Run) -> None:
    table = diagnose.missed_nodes(dag_run, threshold=1.0, support=None)
    assert table.loc["X1", "path"] == "root > B > X > X1"  # B (depth 1) is X's first parent, not A2 (depth 2)
    assert table.loc["X", "n_parents"] == 2


def test_missed_nodes_reject_bad_filters(run: Run) -> None:
    with pytest.raises(ValueError, match="threshold"):
        diagnose.missed_nodes(run, threshold=1.5)
    with pytest.raises(ValueError, match="depth range"):
        diagnose.missed_nodes(run, depth=(3, 2))
    with pytest.raises(ValueError, match="test support range"):
        diagnose.missed_nodes(run, support=(9, 1))


def test_table_csv_round_trips(run: Run) -> None:
    table = diagnose.missed_nodes(run, threshold=0.9)
    data = diagnose.table_csv(table)
    assert isinstance(data, bytes) and data.startswith(b"node,path,depth")
    back = pd.read_csv(io.BytesIO(data), index_col="node", dtype={"node": str})
    assert list(back.index) == list(table.index)
    assert list(back["path"]) == list(table["path"])
    np.testing.assert_allclose(back["recall"], table["recall"])
    np.testing.assert_allclose(back["uncertainty"], table["uncertainty"], rtol=1e-12)


# ------------------------------------------------------------------ figures
def _plotted(run: Run) -> pd.DataFrame:
    nm = run.node_metrics
    return nm[nm["evaluated"] & (nm["support"] > 0)]


def test_recall_frequency_figure(run: Run) -> None:
    table = diagnose.missed_nodes(run, threshold=0.4)
    fig = diagnose.recall_frequency_figure(run, table.index, threshold=0.4)
    other, shown = fig.data
    assert (other.name, shown.name) == ("other nodes", "nodes in the table")
    plotted = _plotted(run)
    assert sorted([*other.text, *shown.text]) == sorted(plotted.index)
    assert set(shown.text) == set(table.index) & set(plotted.index)
    for trace in (other, shown):
        rows = plotted.loc[list(trace.text)]
        np.testing.assert_allclose(trace.x, 1 + rows["train_frequency"].to_numpy(dtype=float))
        np.testing.assert_allclose(trace.y, rows["recall"], atol=1e-4)
        np.testing.assert_allclose(np.array(trace.marker.color, dtype=float), rows["uncertainty"], atol=1e-4)
        assert trace.marker.cmin == other.marker.cmin and trace.marker.cmax == other.marker.cmax
    assert fig.layout.xaxis.type == "log"
    assert [s.y0 for s in fig.layout.shapes] == [0.4]
    assert not diagnose.recall_frequency_figure(run).layout.shapes
    assert len(diagnose.recall_frequency_figure(run).data[1].text) == 0


def test_recall_depth_figure_jitters_around_the_depth(run: Run) -> None:
    table = diagnose.missed_nodes(run)
    fig = diagnose.recall_depth_figure(run, table.index, threshold=0.5)
    box, other, shown = fig.data
    assert box.type == "box" and box.boxpoints is False
    plotted = _plotted(run)
    assert sorted(box.x) == sorted(_synthetic_depth(n) for n in plotted.index)
    positions = {}
    for trace in (other, shown):
        for node, x, y in zip(trace.text, trace.x, trace.y, strict=True):
            assert abs(x - _synthetic_depth(node)) <= 0.28 + 1e-9
            assert y == pytest.approx(plotted.loc[node, "recall"], abs=1e-4)
            positions[node] = x
    assert set(shown.text) == set(table.index)
    # the jitter of a node does not depend on the highlight
    again = diagnose.recall_depth_figure(run, [], threshold=None)
    assert {n: x for n, x in zip(again.data[1].text, again.data[1].x, strict=True)} == positions
    assert len({round(x, 6) for x in positions.values()}) > len(positions) // 2  # points are spread


# ------------------------------------------------------- prediction scores
def test_score_predictions_against_sklearn_and_the_summary(run: Run, predictions: dict) -> None:
    y, probs = predictions["y_true"], predictions["mean_probs"]
    scores = diagnose.score_predictions(run.hierarchy, y, probs)
    mask = run.hierarchy.eval_mask
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        micro = precision_recall_fscore_support(y[:, mask], (probs > 0.5)[:, mask], average="micro",
                                                zero_division=0)[:3]
    assert scores.flat_micro == pytest.approx(micro)
    assert scores.hierarchical == pytest.approx(micro)  # propagated labels, coherent predictions
    s = run.summary
    assert scores.flat_macro == pytest.approx((s["macro_precision"], s["macro_recall"], s["macro_f1"]))
    table = diagnose.comparison_table(scores)
    assert list(table.index) == ["precision", "recall", "F1"]
    assert table.loc["recall", "flat macro"] == pytest.approx(s["macro_recall"])
    assert table.loc["F1", "hierarchical (hP, hR, hF)"] == pytest.approx(micro[2])


def test_deepest_levels_match_the_synthetic_ids(run: Run, predictions: dict) -> None:
    y, probs = predictions["y_true"], predictions["mean_probs"]
    scores = diagnose.score_predictions(run.hierarchy, y, probs)
    nodes = run.hierarchy.nodes
    for i in range(len(y)):
        true = [nodes[j] for j in np.flatnonzero(y[i]) if nodes[j] != "root"]
        both = [n for n in true if probs[i, nodes.index(n)] > 0.5]
        assert scores.true_depth[i] == max((_synthetic_depth(n) for n in true), default=0)
        assert scores.correct_depth[i] == max((_synthetic_depth(n) for n in both), default=0)
    counts = diagnose.deepest_level_counts(scores)
    pairs = Counter(zip(scores.correct_depth.tolist(), scores.true_depth.tolist(), strict=True))
    assert int(counts.to_numpy().sum()) == len(y)
    for (c, t), n in pairs.items():
        assert counts.loc[c, t] == n
    assert all(counts.loc[c, t] == 0 for c in counts.index for t in counts.columns if c > t)
    assert counts.index.name == "deepest correct level" and counts.columns.name == "true depth"


def _scores(correct: list[int], true: list[int]) -> diagnose.PredictionScores:
    return diagnose.PredictionScores(hierarchical=(0.0, 0.0, 0.0), flat_micro=(0.0, 0.0, 0.0),
                                     flat_macro=(0.0, 0.0, 0.0), correct_depth=np.array(correct),
                                     true_depth=np.array(true), threshold=0.5)


def test_deepest_level_stats_hand_case() -> None:
    stats = diagnose.deepest_level_stats(_scores([0, 1, 2, 0, 3], [0, 2, 2, 3, 3]))
    # examples with a true label: (1,2), (2,2), (0,3), (3,3) -> full depth 2/4, gaps 1,0,3,0, none 1/4
    assert stats == {"n_examples": 4, "share_full_depth": 0.5, "mean_gap": 1.0, "share_none": 0.25}
    empty = diagnose.deepest_level_stats(_scores([0, 0], [0, 0]))
    assert empty["n_examples"] == 0 and math.isnan(empty["share_full_depth"])


def test_deepest_level_figure_blanks_impossible_cells() -> None:
    counts = diagnose.deepest_level_counts(_scores([0, 1, 2, 0, 3, 1], [0, 2, 2, 3, 3, 2]))
    assert counts.shape == (4, 4)
    trace = diagnose.deepest_level_figure(counts).data[0]
    assert trace.type == "heatmap"
    assert list(trace.x) == [0, 1, 2, 3] and list(trace.y) == [0, 1, 2, 3]
    z = trace.z
    assert z[1][2] == 2 and z[2][2] == 1 and z[0][3] == 1 and z[3][3] == 1 and z[0][0] == 1
    assert z[3][2] is None and z[1][0] is None  # correct level deeper than the true depth
    assert trace.customdata[1][2] == pytest.approx(2 / 3, abs=1e-4)  # 2 of the 3 examples of true depth 2


# ------------------------------------------------------------------ overview
def test_run_facts(run: Run, dag_run: Run) -> None:
    facts = diagnose.run_facts(run)
    s = run.summary
    assert facts["nodes"] == "121" and facts["edges"] == "120" and facts["leaves"] == "81"  # 1+3+9+27+81
    assert facts["max depth"] == "4" and facts["structure"] == "tree"
    assert facts["evaluated nodes"] == "120"
    assert facts["test examples"] == f"{s['n_test']:,}" and facts["train examples"] == f"{s['n_train']:,}"
    assert facts["dataset"] == "synthetic"
    assert diagnose.run_facts(dag_run)["structure"] == "DAG (1 multi-parent)"


def test_score_metrics(run: Run, predictions: dict) -> None:
    nm = run.node_metrics[run.node_metrics["evaluated"]]
    cut = pd.Series(nm["train_frequency"].to_numpy(dtype=float)).quantile(0.25)
    want = nm.loc[nm["train_frequency"] <= cut, "recall"].mean()
    m = diagnose.score_metrics(run)
    assert float(m["rare-node recall"]) == pytest.approx(want, abs=5e-4)
    assert m["hierarchical F1"] == "n/a"
    scores = diagnose.score_predictions(run.hierarchy, predictions["y_true"], predictions["mean_probs"])
    m = diagnose.score_metrics(run, scores)
    assert m["hierarchical recall"] == f"{scores.hierarchical[1]:.3f}"
    assert list(m) == ["rare-node recall", "hierarchical precision", "hierarchical recall", "hierarchical F1"]


def test_config_table_lists_every_field_once(run: Run) -> None:
    table = diagnose.config_table(run)
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert sorted(table.index) == sorted(fields)
    assert list(table.index[:3]) == ["loss", "weighting", "omega"]
    assert table.loc["heads", "value"] == str(run.config.heads)
    assert table.loc["lpros", "value"] == "—"  # None


def test_config_headline_names_the_recipe(run: Run) -> None:
    cfg = dataclasses.replace(run.config, weighting="class-wise", omega=0.3, focal="mean", lpros=0.1, heads=4)
    line = diagnose.config_headline(dataclasses.replace(run, config=cfg))
    assert "class-wise node weights (ω 0.3)" in line
    assert "bBMA" in line and "k 2" in line
    assert "LPROS S 0.1" in line and "4-member heads ensemble" in line
    plain = diagnose.config_headline(dataclasses.replace(run, config=dataclasses.replace(cfg, weighting="none",
                                                                                        focal="none", lpros=None)))
    assert "no node weights" in plain and "no focal term" in plain and "LPROS" not in plain


def test_training_curve_figure() -> None:
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [0.5, 0.3, 0.2], "seconds": [1, 1, 1]})
    fig = diagnose.training_curve_figure(history)
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == [1, 2, 3] and list(fig.data[0].y) == [0.5, 0.3, 0.2]
    fig = diagnose.training_curve_figure(history.assign(valid_auprc=[0.4, 0.5, 0.55]))
    assert [t.name for t in fig.data] == ["training loss", "valid micro AUPRC"]
    assert fig.data[1].yaxis == "y2" and list(fig.data[1].y) == [0.4, 0.5, 0.55]
    empty = diagnose.training_curve_figure(history.iloc[:0])
    assert not empty.data and "no epoch" in empty.layout.annotations[0].text
    with pytest.raises(ValueError, match="loss"):
        diagnose.training_curve_figure(history.drop(columns="loss"))


# ------------------------------------------------------------------ miss kinds
def _kinds_table() -> pd.DataFrame:
    """Hand cases, 100 test examples: base rate = support / 100."""
    rows = {
        # node: evaluated, support, recall, AP, train frequency
        "root": (False, 100, 1.0, 1.0, 500),
        "found": (True, 10, 0.5, 0.9, 40),           # recall > 0: not missed
        "no_pos": (True, 0, 0.0, float("nan"), 3),   # nothing to miss
        "thresh": (True, 10, 0.0, 0.65, 30),         # AP 0.65 >= 2 x 0.10 and >= 0.2: threshold failure
        "thresh_rare": (True, 2, 0.0, 0.2, 4),       # AP 0.2 = floor, 10 x base 0.02: threshold failure
        "low_lift": (True, 40, 0.0, 0.7, 60),        # AP 0.7 < 2 x 0.40: ranking failure
        "low_ap": (True, 1, 0.0, 0.15, 2),           # 15 x base, but AP < 0.2: ranking failure
        "unseen": (True, 3, 0.0, 0.9, 0),            # no training positive, whatever the AP
    }
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["evaluated", "support", "recall", "average_precision", "train_frequency"])
    table["depth"] = [0, 1, 1, 2, 3, 1, 4, 2]
    return table


def test_miss_kinds_hand_cases() -> None:
    nm = _kinds_table()
    recall_other = {"per-node (m = 0)": np.array([1, 1, 0, 0.2, 0.5, 0, 0, 0], dtype=float),
                    "global 0.30": np.array([1, 1, 0, 0.1, 0, 0.3, 0, 0], dtype=float)}
    kinds = diagnose.miss_kinds(nm, 100, recall_other)
    assert list(kinds.index) == ["thresh", "thresh_rare", "low_lift", "low_ap", "unseen"]
    assert dict(kinds["kind"]) == {"thresh": "threshold failure", "thresh_rare": "threshold failure",
                                   "low_lift": "ranking failure", "low_ap": "ranking failure",
                                   "unseen": "no training data"}
    assert kinds.loc["thresh", "base_rate"] == pytest.approx(0.10)
    assert kinds.loc["thresh", "lift"] == pytest.approx(6.5)
    assert dict(kinds["recovered_by"]) == {"thresh": "per-node (m = 0), global 0.30", "thresh_rare": "per-node (m = 0)",
                                           "low_lift": "global 0.30", "low_ap": "", "unseen": ""}
    counts = diagnose.miss_kind_counts(kinds)
    assert counts == {"threshold failure": {"nodes": 2, "per-node (m = 0)": 2, "global 0.30": 1},
                      "ranking failure": {"nodes": 2, "per-node (m = 0)": 0, "global 0.30": 1},
                      "no training data": {"nodes": 1, "per-node (m = 0)": 0, "global 0.30": 0}}


def test_miss_kinds_thresholds_are_parameters_and_inputs_are_checked() -> None:
    nm = _kinds_table()
    strict = diagnose.miss_kinds(nm, 100, lift=10.0, min_ap=0.5)  # thresh_rare (AP 0.2) and thresh (6.5x) fail both
    assert dict(strict["kind"])["thresh"] == "ranking failure"
    assert dict(strict["kind"])["thresh_rare"] == "ranking failure"
    assert (strict["recovered_by"] == "").all()
    with pytest.raises(ValueError, match="n_test"):
        diagnose.miss_kinds(nm, 0)
    with pytest.raises(ValueError, match="shape"):
        diagnose.miss_kinds(nm, 100, {"global 0.30": np.zeros(3)})
