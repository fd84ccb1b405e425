"""Tests of hmlc_core.views.decision: a run's metrics under a decision rule, a node's PR curve, the trade-off plot.

References are independent of the code under test: scikit-learn's ``precision_recall_fscore_support`` and
``precision_recall_curve``, plain numpy counts, and hand-written tables.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import closure_reference, train_prevalence_reference
from sklearn.metrics import precision_recall_curve, precision_recall_fscore_support

from hmlc_core.decision import fit_decision_rule
from hmlc_core.runs import Run, load_run
from hmlc_core.views import decision as decision_views

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_run"


@pytest.fixture(scope="module")
def demo() -> Run:
    return load_run(DEMO)


@pytest.fixture(scope="module")
def preds(demo: Run) -> dict[str, np.ndarray]:
    return demo.predictions()


@pytest.mark.parametrize("rule", ["fixed 0.3", "global", "per-node"])
def test_run_under_rule_matches_sklearn_per_node(demo: Run, preds: dict[str, np.ndarray], rule: str) -> None:
    y, p = preds["y_true"], preds["mean_probs"]
    held = demo.held_out()
    assert held is not None  # the bundled demo keeps the valid split aside
    if rule == "fixed 0.3":
        fitted = fit_decision_rule("fixed", demo.hierarchy, threshold=0.3)
    else:
        fitted = fit_decision_rule(rule, demo.hierarchy, *held, shrinkage=2.0,
                                   prevalence=train_prevalence_reference(demo.path))
    shown = decision_views.run_under_rule(demo, fitted, y, p)
    pred = closure_reference(demo.hierarchy, p > fitted.thresholds[None, :]).astype(int)
    ref_p, ref_r, ref_f, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    nm = shown.node_metrics
    np.testing.assert_allclose(nm["precision"], ref_p)
    np.testing.assert_allclose(nm["recall"], ref_r)
    np.testing.assert_allclose(nm["f1"], ref_f)
    np.testing.assert_array_equal(nm["tp"], ((pred == 1) & (y == 1)).sum(axis=0))
    np.testing.assert_array_equal(nm["fp"], ((pred == 1) & (y == 0)).sum(axis=0))
    np.testing.assert_array_equal(nm["threshold"], fitted.thresholds)
    mask = demo.hierarchy.eval_mask
    assert shown.summary["macro_recall"] == pytest.approx(ref_r[mask].mean())
    assert shown.summary["macro_f1"] == pytest.approx(ref_f[mask].mean())
    assert shown.summary["decision"] == fitted.label()
    assert shown.summary["coherence_violations"] == 0
    depth = demo.hierarchy.depth
    for d, value in shown.summary["recall_by_depth"].items():
        assert value == pytest.approx(ref_r[mask & (depth == int(d))].mean())
    # threshold-free columns and the original run are untouched
    np.testing.assert_array_equal(nm["average_precision"].fillna(-1), demo.node_metrics["average_precision"].fillna(-1))
    assert "threshold" not in demo.node_metrics and demo.summary["decision"] == "fixed 0.5"
    assert shown.path == demo.path and shown.hierarchy is demo.hierarchy


def test_run_under_fixed_half_reproduces_the_saved_metrics(demo: Run, preds: dict[str, np.ndarray]) -> None:
    shown = decision_views.run_under_rule(demo, fit_decision_rule("fixed", demo.hierarchy), preds["y_true"],
                                          preds["mean_probs"])
    for column in ("precision", "recall", "f1", "tp", "fp", "fn"):
        np.testing.assert_allclose(shown.node_metrics[column], demo.node_metrics[column], err_msg=column)


def test_run_under_rule_rejects_wrong_shapes(demo: Run, preds: dict[str, np.ndarray]) -> None:
    with pytest.raises(ValueError, match="must both be"):
        decision_views.run_under_rule(demo, fit_decision_rule("fixed", demo.hierarchy), preds["y_true"][:, :5],
                                      preds["mean_probs"][:, :5])


def test_pr_curve_matches_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)
    scores = np.round(rng.random(60), 1)  # ties
    precision, recall, thresholds = decision_views.pr_curve(y, scores)
    ref_p, ref_r, ref_t = precision_recall_curve(y, scores)
    ref = {round(float(t), 9): (p, r) for p, r, t in zip(ref_p[:-1], ref_r[:-1], ref_t, strict=True)}
    ours = {round(float(t), 9): (p, r) for p, r, t in zip(precision, recall, thresholds, strict=True)}
    # sklearn stops at the first threshold reaching full recall; ours goes on to the lowest score
    assert set(ref) <= set(ours)
    for t, (p, r) in ref.items():
        assert ours[t] == pytest.approx((p, r))
    assert np.all(np.diff(thresholds) < 0)


def test_operating_point_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.4, 0.3, 0.1])
    assert decision_views.operating_point(y, s > 0.5) == pytest.approx((0.5, 1 / 3))  # 0.9, 0.8 predicted
    assert decision_views.operating_point(y, s > 0.35) == pytest.approx((2 / 3, 2 / 3))
    assert decision_views.operating_point(y, s > 0.95) == (1.0, 0.0)  # nothing predicted: the anchor
    p, r = decision_views.operating_point(np.zeros(5), s > 0.5)
    assert p == 0.0 and math.isnan(r)


def test_pr_curve_figure_marks_each_rule_on_the_curve(demo: Run, preds: dict[str, np.ndarray]) -> None:
    node = demo.node_metrics.query("evaluated and support >= 5").index[0]
    j = demo.hierarchy.index[node]
    held = demo.held_out()
    rules = {r.label(): r for r in (fit_decision_rule("fixed", demo.hierarchy),
                                    fit_decision_rule("global", demo.hierarchy, *held),
                                    fit_decision_rule("per-node", demo.hierarchy, *held, shrinkage=0.0))}
    y, s = preds["y_true"][:, j], preds["mean_probs"][:, j]
    fig = decision_views.pr_curve_figure(y, s, node, rules, current="fixed 0.5", node_index=j,
                                         probs=preds["mean_probs"])
    curve, *points = fig.data
    ref_p, ref_r, _ = precision_recall_curve(y, s)
    assert set(zip(np.round(ref_r, 4), np.round(ref_p, 4))) <= set(zip(curve.x, curve.y))
    assert [t.name for t in points] == list(rules)
    for trace, rule in zip(points, rules.values(), strict=True):
        pred = closure_reference(demo.hierarchy, preds["mean_probs"] > rule.thresholds)[:, j]
        ref = precision_recall_fscore_support(y, pred.astype(int), average="binary", zero_division=1)
        assert (trace.y[0], trace.x[0]) == pytest.approx((ref[0], ref[1]))
    assert points[0].marker.size > points[1].marker.size  # the current rule stands out
    empty = decision_views.pr_curve_figure(np.zeros(4), np.ones(4) / 2, "a<b>", rules, node_index=j,
                                           probs=preds["mean_probs"][:4])
    with pytest.raises(ValueError, match="probs"):
        decision_views.pr_curve_figure(y, s, node, rules, node_index=j)
    assert not empty.data and "no positive" in empty.layout.annotations[0].text
    assert "&lt;b&gt;" in empty.layout.title.text  # the node id is text


def test_tradeoff_figure_from_a_hand_table() -> None:
    table = pd.DataFrame([
        {"rule": "fixed", "m": np.nan, "label": "fixed 0.5", "micro_f1": 0.5, "macro_f1": 0.1},
        {"rule": "global", "m": np.nan, "label": "global 0.30", "micro_f1": 0.6, "macro_f1": 0.12},
        {"rule": "per-node", "m": 2.0, "label": "per-node (m = 2)", "micro_f1": 0.55, "macro_f1": 0.2},
        {"rule": "per-node", "m": 0.0, "label": "per-node (m = 0)", "micro_f1": 0.4, "macro_f1": 0.3},
    ])
    fig = decision_views.tradeoff_figure(table)
    traces = {t.name: t for t in fig.data}
    assert list(traces) == ["micro F1, per-node", "micro F1, global 0.30", "micro F1, fixed 0.5",
                            "macro F1, per-node", "macro F1, global 0.30", "macro F1, fixed 0.5"]
    micro, macro = traces["micro F1, per-node"], traces["macro F1, per-node"]
    assert list(micro.y) == [0.4, 0.55] and list(macro.y) == [0.3, 0.2]  # sorted by m
    assert list(micro.x) == [0.5, 2.0]  # m = 0 drawn at a quarter of the smallest positive m
    assert list(fig.layout.xaxis.ticktext) == ["0", "2"]
    assert list(traces["micro F1, global 0.30"].y) == [0.6, 0.6] and list(traces["macro F1, fixed 0.5"].y) == [0.1, 0.1]
    assert list(traces["macro F1, fixed 0.5"].x) == [0.5, 2.0]
    with pytest.raises(ValueError, match="per-node"):
        decision_views.tradeoff_figure(table[table["rule"] != "per-node"])


def test_rule_phrase() -> None:
    assert decision_views.rule_phrase("fixed 0.5") == "threshold 0.5"
    assert decision_views.rule_phrase("per-node (m = 5)") == "the per-node (m = 5) rule"
