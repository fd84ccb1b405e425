"""Exports of a run's predictions (hmlc_core/exports.py), the ``export`` command and the Overview's downloads.

References: the run's own files (predictions.npz read with numpy), :meth:`DecisionRule.predict`, the CAFA
evaluator ``cafaeval`` reading the CAFA file with an OBO ontology and a ground-truth TSV (its Fmax against
:func:`hmlc_core.tail_metrics.fmax`), and the CAFA 3 format checker's line patterns.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import open_app
from hmlc_core import exports
from hmlc_core.cli import main
from hmlc_core.decision import fit_decision_rule
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.runs import load_run
from hmlc_core.tail_metrics import fmax

DEMO_RUN = Path(__file__).resolve().parent.parent / "assets" / "demo_run"
GRID = np.arange(0.01, 1, 0.01)  # cafaeval's threshold grid
# the CAFA 3 checker's patterns (cafa_go_format_checker.py): target ids, GO ids, two-decimal confidences
TARGET, GO_ID, SCORE = re.compile(r"T\d{5,20}"), re.compile(r"GO:\d{5,7}"), re.compile(r"[01]\.\d\d")


@pytest.fixture(scope="module")
def demo():
    run = load_run(DEMO_RUN)
    npz = np.load(DEMO_RUN / "predictions.npz")
    return run, npz["mean_probs"].astype(np.float64), npz["y_true"]


def _read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype={"node": str}, keep_default_na=False)


# ------------------------------------------------------------------------------------------------ predictions CSV
@pytest.mark.parametrize("rule_name", ["fixed", "per-node"])
def test_predictions_csv_holds_probabilities_and_decisions_of_the_rule(demo, rule_name):
    run, probs, _ = demo
    rule = run.decision_rule(rule_name)
    table = _read_csv(exports.predictions_csv(run, rule))
    assert list(table.columns) == ["sample", "node", "probability", "decision"]
    h = run.hierarchy
    cols = np.array([h.index[n] for n in table["node"]])
    rows = table["sample"].to_numpy()
    np.testing.assert_allclose(table["probability"], probs[rows, cols], atol=5e-7)
    decided = h.propagate(probs > rule.thresholds)  # the rule's decisions, recomputed here
    np.testing.assert_array_equal(table["decision"], decided[rows, cols])
    # every evaluated pair at or above the floor, and every decided pair, is there once; no root
    expected = (probs >= exports.DEFAULT_MIN_PROBABILITY) | (decided == 1)
    expected[:, ~h.eval_mask] = False
    assert len(table) == int(expected.sum()) and not table.duplicated(["sample", "node"]).any()
    assert expected[rows, cols].all() and "root" not in set(table["node"])


def test_predictions_csv_without_floor_has_every_evaluated_pair(demo):
    run, probs, _ = demo
    table = _read_csv(exports.predictions_csv(run, run.decision_rule("fixed", 0.5), min_probability=0))
    assert len(table) == probs.shape[0] * int(run.hierarchy.eval_mask.sum())
    with pytest.raises(ValueError, match="min_probability"):
        exports.predictions_csv(run, run.decision_rule("fixed"), min_probability=1.5)


def test_predictions_csv_neutralises_node_ids_that_read_as_formulas(demo):
    run, probs, _ = demo
    data = run.hierarchy.to_dict()
    hostile = '=HYPERLINK("http://x","y")'
    rename = {"3": hostile}  # still the last depth-1 node in (depth, id) order
    renamed = Hierarchy.from_dict({
        "nodes": [rename.get(n, n) for n in data["nodes"]],
        "edges": [[rename.get(p, p), rename.get(c, c)] for p, c in data["edges"]],
        "skip_eval": data["skip_eval"]})
    hostile_run = dataclasses.replace(run, hierarchy=renamed)
    text = exports.predictions_csv(hostile_run, fit_decision_rule("fixed", renamed, threshold=0.5)).decode()
    nodes = set(_read_csv(text.encode())["node"])
    assert "'" + hostile in nodes and hostile not in nodes
    with pytest.raises(ValueError, match="another hierarchy"):
        exports.predictions_csv(hostile_run, run.decision_rule("fixed"))


# ------------------------------------------------------------------------------------------------ CAFA format
def _prediction_lines(text: str) -> list[list[str]]:
    lines = text.splitlines()
    assert lines[:3] == ["AUTHOR hmlc-lab", "MODEL 1", "KEYWORDS machine learning."] and lines[-1] == "END"
    assert text.endswith("END\n")
    return [line.split("\t") for line in lines[3:-1]]


def test_cafa_submission_of_the_demo_run(demo):
    run, probs, _ = demo
    fields = _prediction_lines(exports.cafa_submission(run))
    assert all(len(f) == 3 and TARGET.fullmatch(f[0]) and SCORE.fullmatch(f[2]) for f in fields)
    h = run.hierarchy
    got = {(int(t[1:]), node): float(score) for t, node, score in fields}
    expected = {(i, n): round(float(probs[i, h.index[n]]), 2) for i in range(probs.shape[0])
                for n in np.array(h.nodes)[h.eval_mask] if round(float(probs[i, h.index[n]]), 2) > 0}
    assert got.keys() == expected.keys() and len(got) == len(fields)
    assert all(got[k] == pytest.approx(v, abs=1e-9) for k, v in expected.items())
    assert all(0 < v <= 1 for v in got.values()) and not any(k[1] == "root" for k in got)


def test_cafa_terms_targets_and_bad_arguments():
    assert exports.cafa_term("GO0005575") == "GO:0005575"
    assert exports.cafa_term("GO:0005575") == "GO:0005575" and exports.cafa_term("01/02") == "01/02"
    assert exports.cafa_term("GO00055751") == "GO00055751"  # not a 7-digit GO id: kept
    assert exports.cafa_target(0, 10) == "T00000" and exports.cafa_target(123456, 200000) == "T123456"
    h = Hierarchy([("root", "a b")])
    with pytest.raises(ValueError, match="whitespace"):
        exports.format_cafa(h, np.full((1, 2), 0.5))
    ok = Hierarchy([("root", "a")])
    for kwargs, message in [({"author": "two words"}, "author"), ({"model": 4}, "model"),
                            ({"keywords": ("deep magic",)}, "keywords"), ({"keywords": ()}, "keywords")]:
        with pytest.raises(ValueError, match=message):
            exports.format_cafa(ok, np.full((1, 2), 0.5), **kwargs)
    with pytest.raises(ValueError, match="probabilities"):
        exports.format_cafa(ok, np.array([[0.5, 1.5]]))


def _go_hierarchy() -> Hierarchy:
    """CLUS-style GO ids below ``root`` and the biological-process root, both skipped in evaluation."""
    bp = "GO0008150"
    edges = [("root", bp), (bp, "GO0000001"), (bp, "GO0000002"), ("GO0000001", "GO0000003"),
             ("GO0000002", "GO0000003"), ("GO0000001", "GO0000004"), ("GO0000003", "GO0000005"),
             ("GO0000002", "GO0000006"), ("GO0000006", "GO0000007")]
    return Hierarchy(edges, skip_eval={"root", bp})


def _run_cafaeval(tmp_path: Path, h: Hierarchy, y: np.ndarray, submission: str, omit: frozenset = frozenset()) -> float:
    """cafaeval's Fmax of ``submission`` against ``y``, with an OBO of ``h`` less ``omit``: its orphans are the
    skipped roots, which ``no_orphans`` leaves out as ``eval_mask`` does."""
    cafaeval = pytest.importorskip("cafaeval.evaluation", reason="cafaeval (CAFA-evaluator) is in requirements.txt")
    term = exports.cafa_term
    obo = ["format-version: 1.2", ""]
    for node in h.nodes:
        if node in omit:
            continue
        obo += ["[Term]", f"id: {term(node)}", f"name: term {node}", "namespace: test_ontology"]
        obo += [f"is_a: {term(p)}" for p in h.parents(node) if p not in omit]
        obo.append("")
    (tmp_path / "ontology.obo").write_text("\n".join(obo))
    # evaluated nodes only: a sample whose only true terms are skipped roots is no CAFA benchmark target
    gt = [f"{exports.cafa_target(i, len(y))}\t{term(n)}" for i in range(len(y)) for n in h.nodes
          if h.eval_mask[h.index[n]] and y[i, h.index[n]]]
    (tmp_path / "gt.tsv").write_text("\n".join(gt) + "\n")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "model.txt").write_text(submission)
    _, best = cafaeval.cafa_eval(str(tmp_path / "ontology.obo"), str(tmp_path / "pred"), str(tmp_path / "gt.tsv"),
                                 no_orphans=True, norm="cafa", prop="max", th_step=0.01, n_cpu=1)
    return float(best["f"]["f"].iloc[0])


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # cafaeval 1.3.0 under pandas 3
def test_cafaeval_reads_a_go_submission_with_the_projects_fmax(tmp_path):
    h = _go_hierarchy()
    rng = np.random.default_rng(3)
    y = h.propagate(rng.random((40, h.n_nodes)) < 0.25)
    y[:, h.index["root"]] = y[:, h.index["GO0008150"]] = 1
    probs = h.max_constraint(np.clip(rng.random(y.shape) * 0.7 + 0.3 * y, 0, 1))
    submission = exports.format_cafa(h, probs)
    fields = _prediction_lines(submission)
    assert all(GO_ID.fullmatch(f[1]) for f in fields) and "GO:0008150" not in {f[1] for f in fields}
    expected, _ = fmax(y, np.round(probs, 2), h, GRID)
    assert 0 < expected < 1
    assert _run_cafaeval(tmp_path, h, y, submission, frozenset({"root"})) == pytest.approx(expected, abs=1e-12)


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_cafaeval_reads_the_demo_runs_submission_with_the_projects_fmax(demo, tmp_path):
    run, probs, y = demo
    expected, _ = fmax(y, np.round(probs, 2), run.hierarchy, GRID)
    assert _run_cafaeval(tmp_path, run.hierarchy, y, exports.cafa_submission(run)) == pytest.approx(expected,
                                                                                                     abs=1e-12)


# ------------------------------------------------------------------------------------------------ command line
def test_export_command_writes_csv_and_cafa(demo, tmp_path, capsysbinary):
    run, _, _ = demo
    out = tmp_path / "pred.csv"
    assert main(["export", str(DEMO_RUN), "--format", "csv", "--decision", "per-node", "--out", str(out)]) == 0
    assert out.read_bytes() == exports.predictions_csv(run, run.decision_rule("per-node"))
    capsysbinary.readouterr()
    assert main(["export", str(DEMO_RUN), "--format", "cafa"]) == 0
    assert capsysbinary.readouterr().out.decode() == exports.cafa_submission(run)
    assert main(["export", str(DEMO_RUN), "--out", str(tmp_path / "missing" / "x.csv")]) == 2
    assert "cannot write" in capsysbinary.readouterr().err.decode()


# ------------------------------------------------------------------------------------------------ Overview page
def test_overview_offers_the_downloads_and_svg_charts(app_env, tmp_path):
    at = open_app(run=app_env.name)
    assert not at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Predictions (CSV)", "Per-node metrics (CSV)"]
    configs = [json.loads(c.proto.config) for c in at.get("plotly_chart")]
    assert configs and all(c["toImageButtonOptions"]["format"] == "svg" for c in configs)
    at.radio(key="figure_format").set_value("png").run()
    assert all(json.loads(c.proto.config)["toImageButtonOptions"]["format"] == "png"
               for c in at.get("plotly_chart"))


def _svg_charts(at) -> bool:
    configs = [json.loads(c.proto.config) for c in at.get("plotly_chart")]
    return bool(configs) and all(c["toImageButtonOptions"]["format"] == "svg" and not c["displaylogo"] for c in configs)


@pytest.mark.parametrize("page", ["app_pages/explorer.py", "app_pages/missed.py", "app_pages/how_it_works.py"])
def test_every_page_saves_its_charts_as_svg(app_env, page):
    at = open_app(page, run=app_env.name)
    assert not at.exception and _svg_charts(at)


def test_compare_saves_its_charts_as_svg():
    at = open_app("app_pages/compare.py")  # the bundled demo pair
    assert not at.exception and _svg_charts(at)


def test_overview_download_data_comes_from_the_exports(app_env):
    from app_pages import common as app_common
    from hmlc_core.views import diagnose, explore
    from hmlc_core.views.decision import run_under_rule

    run = load_run(app_env)
    stamp = app_common.run_stamp(app_env)
    decision = ("fixed", 0.3, None)
    rule = run.decision_rule("fixed", 0.3)
    assert app_common.predictions_csv(str(app_env), stamp, decision) == exports.predictions_csv(run, rule)
    preds = run.predictions()
    decided = run_under_rule(run, rule, preds["y_true"], preds["mean_probs"])
    table = pd.read_csv(io.BytesIO(app_common.node_table_csv(str(app_env), stamp, decision)), index_col="node",
                        dtype={"node": str})
    assert len(table) == run.hierarchy.n_nodes
    np.testing.assert_allclose(table["recall"], decided.node_metrics["recall"], equal_nan=True)
    assert app_common.node_table_csv(str(app_env), stamp, decision) == diagnose.table_csv(
        explore.node_table(decided, evaluated_only=False))
