"""AppTest tests of the sidebar's decision-rule selector (app_pages/common.py ``choose_decision``) on every page.

The selector's widgets are bound to the ``decision``, ``threshold`` and ``shrinkage`` query parameters; the
tests set them as a shared URL would, and move the threshold slider. Expected numbers are recomputed here
from the runs' saved test predictions with scikit-learn (``probs > threshold`` and the ancestors of
predicted nodes, by networkx), the thresholds of the tuned
rules from :func:`hmlc_core.decision.fit_decision_rule` (tested in tests/test_decision.py). The bundled demo
pair keeps its valid split aside (tuned rules work); the shared synthetic run is trained on train+valid
(tuned rules fall back to fixed, with a message).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support
from streamlit.testing.v1 import AppTest

from helpers import closure_reference, only_runs_in, open_app, train_prevalence_reference
from app_pages import common as app_common
from hmlc_core.decision import fit_decision_rule
from hmlc_core.runs import load_run

DEMO = Path(__file__).resolve().parents[1] / "assets" / "demo_run"
DEMO_WEIGHTED = Path(__file__).resolve().parents[1] / "assets" / "demo_weighted_run"


def _reference(run_dir: Path, rule: str = "fixed", threshold: float = 0.5,
               shrinkage: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-node precision, recall, F1 (sklearn) under a rule, and the evaluated-node mask."""
    run = load_run(run_dir)
    with np.load(run_dir / "predictions.npz") as data:
        y, p = data["y_true"], data["mean_probs"]
        held = (data["valid_y_true"], data["valid_mean_probs"]) if "valid_y_true" in data.files else (None, None)
    t = fit_decision_rule(rule, run.hierarchy, *held, threshold=threshold, shrinkage=shrinkage,
                          prevalence=train_prevalence_reference(run_dir)).thresholds
    pred = closure_reference(run.hierarchy, p > t)
    prec, rec, f1, _ = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    return prec, rec, f1, run.hierarchy.eval_mask


def _metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _figures(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"].get("title", {}).get("text", ""): s for s in specs}


def test_overview_follows_the_url_and_the_threshold_slider() -> None:
    at = open_app(decision="fixed", threshold="0.3")
    assert not at.exception and not at.warning
    assert at.radio(key="decision").value == "fixed" and at.slider(key="threshold").value == pytest.approx(0.3)
    assert not at.slider(key="threshold").disabled and at.select_slider(key="shrinkage").disabled
    _, rec, f1, mask = _reference(DEMO, threshold=0.3)
    m = _metrics(at)
    assert m["macro recall"] == f"{rec[mask].mean():.3f}" and m["macro F1"] == f"{f1[mask].mean():.3f}"
    assert any(f"Decision: {app_common.md_text('threshold 0.3')} on" in c.value for c in at.caption)
    at.slider(key="threshold").set_value(0.15).run()
    assert not at.exception
    _, rec2, _, _ = _reference(DEMO, threshold=0.15)
    assert rec2[mask].mean() != pytest.approx(rec[mask].mean())
    assert _metrics(at)["macro recall"] == f"{rec2[mask].mean():.3f}"


@pytest.mark.parametrize("rule, shrinkage", [("global", None), ("per-node", 2.0)])
def test_overview_under_a_tuned_rule(rule: str, shrinkage: float | None) -> None:
    query = {"decision": rule} | ({"shrinkage": f"{shrinkage:g}"} if shrinkage is not None else {})
    at = open_app(**query)
    assert not at.exception and not at.warning
    assert at.slider(key="threshold").disabled
    assert at.select_slider(key="shrinkage").disabled == (rule != "per-node")
    prec, rec, f1, mask = _reference(DEMO, rule, shrinkage=shrinkage)
    m = _metrics(at)
    assert m["macro precision"] == f"{prec[mask].mean():.3f}"
    assert m["macro recall"] == f"{rec[mask].mean():.3f}" and m["macro F1"] == f"{f1[mask].mean():.3f}"
    _, rec_fixed, _, _ = _reference(DEMO)
    assert f"{rec[mask].mean():.3f}" != f"{rec_fixed[mask].mean():.3f}"  # the rule changes the numbers


def test_a_tuned_rule_falls_back_to_fixed_on_a_train_valid_run(app_env: Path) -> None:
    at = open_app(run=app_env.name, decision="per-node")
    assert not at.exception
    warnings = [w.value for w in at.sidebar.warning]
    assert len(warnings) == 1 and "trained on train+valid" in warnings[0] and "fixed rule instead" in warnings[0]
    assert at.radio(key="decision").value == "per-node"  # the URL keeps the choice
    _, rec, _, mask = _reference(app_env)
    assert _metrics(at)["macro recall"] == f"{rec[mask].mean():.3f}"
    assert _metrics(at)["macro recall"] == f"{load_run(app_env).summary['macro_recall']:.3f}"
    assert not at.slider(key="threshold").disabled  # the fixed rule is in force: its threshold can move
    at.slider(key="threshold").set_value(0.2).run()
    _, rec2, _, _ = _reference(app_env, threshold=0.2)
    assert _metrics(at)["macro recall"] == f"{rec2[mask].mean():.3f}" != f"{rec[mask].mean():.3f}"
    fixed = open_app(run=app_env.name)
    assert not fixed.sidebar.warning


def test_explorer_node_card_and_pr_curve_follow_the_rule() -> None:
    demo = load_run(DEMO)
    node = demo.node_metrics.query("evaluated and support >= 5 and recall < 0.6").index[0]
    j = demo.hierarchy.index[node]
    at = open_app("app_pages/explorer.py", decision="fixed", threshold="0.2", node=node)
    assert not at.exception and not at.warning
    prec, rec, f1, mask = _reference(DEMO, threshold=0.2)
    m = _metrics(at)
    assert m["macro recall"] == f"{rec[mask].mean():.3f}"
    card = "\n".join(md.value for md in at.markdown)
    assert f"**{rec[j]:.3f}**" in card and f"**{prec[j]:.3f}**" in card
    figs = _figures(at)
    pr = figs[f"Precision-recall of {node} on the test set"]
    points = {t["name"]: t for t in pr["data"][1:]}
    held = demo.held_out()
    assert set(points) == {"fixed 0.2", fit_decision_rule("global", demo.hierarchy, *held).label(),
                           fit_decision_rule("per-node", demo.hierarchy, *held).label()}
    assert points["fixed 0.2"]["x"] == [pytest.approx(rec[j])]
    assert points["fixed 0.2"]["marker"]["size"] > min(t["marker"]["size"] for t in points.values())
    member = figs[next(t for t in figs if t.startswith("Probability of"))]
    assert [s["y0"] for s in member["layout"]["shapes"]] == [pytest.approx(0.2)]


def test_missed_page_lists_and_diagnoses_misses_under_the_rule() -> None:
    at = open_app("app_pages/missed.py", decision="fixed", threshold="0.3")
    assert not at.exception and not at.warning
    _, rec, _, mask = _reference(DEMO, threshold=0.3)
    nm = load_run(DEMO).node_metrics
    support = nm["support"].to_numpy()
    want = set(nm.index[mask & (support >= 1) & (rec < 0.5)])
    assert set(at.dataframe[0].value.index) == want
    zero = set(nm.index[mask & (support >= 1) & (rec == 0)])
    m = _metrics(at)
    assert sum(int(m[k]) for k in ("threshold failures", "ranking failures", "no training data")) == len(zero)
    kinds = next(d.value for d in at.dataframe if "kind" in d.value.columns)
    assert set(kinds.index) == zero
    unseen = set(nm.index[nm["train_frequency"] == 0]) & zero
    assert set(kinds.index[kinds["kind"] == "no training data"]) == unseen
    assert "Micro and macro F1 over the shrinkage m (test set)" in _figures(at)


def test_compare_applies_the_rule_to_both_runs() -> None:
    at = open_app("app_pages/compare.py", decision="global")
    assert not at.exception and not at.warning
    headline = next(d.value for d in at.dataframe if "macro recall" in d.value.index)
    for column, run_dir in (("demo", DEMO), ("demo-weighted", DEMO_WEIGHTED)):
        _, rec, _, mask = _reference(run_dir, "global")
        assert headline.loc["macro recall", column] == f"{rec[mask].mean():.3f}"
        held = load_run(run_dir).held_out()
        assert headline.loc["decision rule", column] == fit_decision_rule("global", load_run(run_dir).hierarchy,
                                                                         *held).label()


def test_compare_falls_back_when_a_run_has_no_held_out_predictions(synthetic_run: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "pair"
    shutil.copytree(synthetic_run, root / "run_a")
    shutil.copytree(synthetic_run, root / "run_b")
    only_runs_in(root, tmp_path, monkeypatch)
    at = open_app("app_pages/compare.py", decision="per-node", runs=["run_a", "run_b"])
    assert not at.exception
    assert any("compared at the fixed threshold 0.5" in w.value for w in at.warning)
    headline = next(d.value for d in at.dataframe if "macro recall" in d.value.index)
    _, rec, _, mask = _reference(synthetic_run)
    assert headline.loc["macro recall", "run_a"] == f"{rec[mask].mean():.3f}"
    assert list(headline.loc["decision rule"]) == ["fixed 0.5", "fixed 0.5"]  # the fallback, per run


def test_how_it_works_shows_the_tradeoff_or_says_why_not(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app("app_pages/how_it_works.py", run=app_env.name)
    assert not at.exception
    assert any("no held-out" in i.value for i in at.info)
    monkeypatch.delenv("HMLC_RUNS_DIR")
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", DEMO)
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", DEMO_WEIGHTED)
    demo = open_app("app_pages/how_it_works.py")
    assert not demo.exception
    fig = _figures(demo)["Micro and macro F1 over the shrinkage m (test set)"]
    assert [t["name"] for t in fig["data"]][::3] == ["micro F1, per-node", "macro F1, per-node"]
    assert "6 · Why one threshold cannot serve rare and frequent nodes" in [h.value for h in demo.header]
