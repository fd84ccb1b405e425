"""Tests of hmlc_core.views.explore, the dashboard's pure view functions.

Expected values come from the run's own files (node_metrics, summary, hierarchy)
or from the synthetic tree's id scheme ("1.2.3" is a child of "1.2"), never from
the functions under test.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from hmlc_core.views import explore
from hmlc_core.data import HMCDataset, Split
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.runs import Run, load_run, save_run
from hmlc_core.train import TrainConfig, train
from hmlc_core.uncertainty import UNCERTAINTY_LABELS


@pytest.fixture(scope="module")
def run(synthetic_run: Path) -> Run:
    return load_run(synthetic_run)


# A small DAG: X has two parents (A2 at depth 2 and B at depth 1); first parent = B (shallower).
DAG_EDGES = [("root", "A"), ("root", "B"), ("A", "A1"), ("A", "A2"), ("B", "B1"), ("A2", "X"), ("B", "X"),
             ("X", "X1")]


@pytest.fixture(scope="module")
def dag_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 1-epoch run on random data over DAG_EDGES."""
    h = Hierarchy(DAG_EDGES)
    rng = np.random.default_rng(0)
    leaves = ["A1", "X1", "B1", "X", "A2"]

    def split(n: int) -> Split:
        terms = [[leaves[i] for i in rng.choice(len(leaves), size=rng.integers(1, 3), replace=False)]
                 for _ in range(n)]
        return Split(X=rng.normal(size=(n, 5)).astype(np.float32), Y=h.label_matrix(terms))

    ds = HMCDataset(name="dag_tiny", hierarchy=h, feature_names=[f"f{i}" for i in range(5)],
                    train=split(60), valid=split(20), test=split(40), source={"train": "synthetic"})
    res = train(TrainConfig(dataset="dag_tiny", epochs=1, heads=2, hidden=16, lr=1e-3, batch_size=16), ds)
    return load_run(save_run(tmp_path_factory.mktemp("dag") / "dag_run", res, ds))


def _synthetic_parent(node: str) -> str:
    """Parent of a synthetic node from its id alone: '1.2.3' -> '1.2', '1' -> 'root', 'root' -> ''."""
    if node == "root":
        return ""
    return node.rsplit(".", 1)[0] if "." in node else "root"


# ---------------------------------------------------------------- sunburst
def test_sunburst_ids_and_parents_form_a_tree_over_all_nodes(run: Run) -> None:
    trace = explore.sunburst_figure(run, "recall").data[0]
    ids, parents = list(trace.ids), list(trace.parents)
    assert sorted(ids) == sorted(run.hierarchy.nodes)
    assert len(set(ids)) == len(ids)
    id_set = set(ids)
    assert all(p == "" or p in id_set for p in parents)
    assert parents == [_synthetic_parent(n) for n in ids]
    # Walking up from any node ends at a root ("") without revisiting a node.
    parent_of = dict(zip(ids, parents, strict=True))
    for node in ids:
        seen = set()
        while node:
            assert node not in seen
            seen.add(node)
            node = parent_of[node]


def test_sunburst_settings(run: Run) -> None:
    fig = explore.sunburst_figure(run, "recall", maxdepth=3)
    trace = fig.data[0]
    assert trace.type == "sunburst"
    assert trace.maxdepth == 3
    assert trace.textinfo == "label"
    assert trace.branchvalues == "remainder"
    assert trace.values is None  # sizes come from counting nodes, not frequencies


@pytest.mark.parametrize("quantity", ["recall", "precision", "F1", "average precision"])
def test_sunburst_colours_are_the_test_metric_with_grey_for_nodes_without_positives(run: Run, quantity: str) -> None:
    nm = run.node_metrics
    column = {"recall": "recall", "precision": "precision", "F1": "f1", "average precision": "average_precision"}
    colors = np.array(explore.sunburst_figure(run, quantity).data[0].marker.colors, dtype=float)
    has_data = nm["evaluated"].to_numpy() & (nm["support"].to_numpy() > 0)
    assert has_data.any() and (~has_data).any()  # the fixture has both kinds
    np.testing.assert_allclose(colors[has_data], nm[column[quantity]].to_numpy()[has_data], atol=1e-4)
    assert np.all(colors[~has_data] == explore.NO_DATA)
    assert np.all(colors[~has_data] < 0)  # below the metric's [0, 1] range


def test_sunburst_grey_band_lies_below_the_metric_range(run: Run) -> None:
    marker = explore.sunburst_figure(run, "recall").data[0].marker
    assert marker.autocolorscale is False  # else plotly swaps in its default diverging scale
    assert marker.cmin == pytest.approx(explore.NO_DATA)
    assert marker.cmax == pytest.approx(1.0)
    scale = [(float(pos), col) for pos, col in marker.colorscale]
    band_end = (0 - explore.NO_DATA) / (1 - explore.NO_DATA)
    assert [c for pos, c in scale if pos <= band_end - 1e-9] == [explore.GREY] * len(
        [pos for pos, _ in scale if pos <= band_end - 1e-9])
    assert scale[-1][0] == pytest.approx(1.0) and scale[-1][1] != explore.GREY


@pytest.mark.parametrize("quantity", list(explore.COLOR_QUANTITIES))
def test_sunburst_colorscale_is_valid_for_plotly_js(run: Run, quantity: str) -> None:
    # plotly.js silently replaces a scale unless it starts at exactly 0, ends at exactly 1 and never decreases
    scale = explore.sunburst_figure(run, quantity).data[0].marker.colorscale
    positions = [float(pos) for pos, _ in scale]
    assert positions[0] == 0.0 and positions[-1] == 1.0
    assert all(b >= a for a, b in zip(positions, positions[1:]))


def test_sunburst_frequency_colours_are_log_counts(run: Run) -> None:
    colors = np.array(explore.sunburst_figure(run, "training frequency").data[0].marker.colors, dtype=float)
    freq = run.node_metrics["train_frequency"].to_numpy(dtype=float)
    np.testing.assert_allclose(10 ** colors - 1, freq, rtol=1e-3, atol=1e-2)


def test_sunburst_uncertainty_colours_and_label(run: Run) -> None:
    fig = explore.sunburst_figure(run, "ensemble uncertainty")
    colors = np.array(fig.data[0].marker.colors, dtype=float)
    np.testing.assert_allclose(colors, run.node_metrics["uncertainty"].to_numpy(), atol=1e-4)
    mode_label = UNCERTAINTY_LABELS[run.summary["uncertainty_mode"]]
    assert mode_label in fig.data[0].marker.colorbar.title.text
    assert mode_label in fig.data[0].hovertemplate


def test_colour_quantities_differ_and_unknown_is_rejected(run: Run) -> None:
    a = explore.color_values(run, "recall")
    b = explore.color_values(run, "training frequency")
    assert not np.allclose(a, b)
    assert set(explore.COLOR_QUANTITIES.values()) <= set(run.node_metrics.columns)
    with pytest.raises(ValueError, match="colour quantity"):
        explore.sunburst_figure(run, "nonsense")


def test_sunburst_hover_carries_the_node_metrics(run: Run) -> None:
    trace = explore.sunburst_figure(run, "recall").data[0]
    nm = run.node_metrics
    custom = np.array(trace.customdata, dtype=float)
    # customdata columns: depth, train_frequency, support, precision, recall, f1, uncertainty
    np.testing.assert_array_equal(custom[:, 0], nm["depth"].to_numpy())
    np.testing.assert_array_equal(custom[:, 1], nm["train_frequency"].to_numpy())
    np.testing.assert_array_equal(custom[:, 2], nm["support"].to_numpy())
    np.testing.assert_allclose(custom[:, 4], nm["recall"].to_numpy(), atol=1e-3)
    np.testing.assert_allclose(custom[:, 6], nm["uncertainty"].to_numpy(), atol=1e-3)
    for word in ("%{label}", "depth", "training frequency", "support", "precision", "recall", "F1", "uncertainty"):
        assert word in trace.hovertemplate


def test_sunburst_root_level_and_unknown_root(run: Run) -> None:
    assert explore.sunburst_figure(run, "recall", root="1.2").data[0].level == "1.2"
    with pytest.raises(KeyError):
        explore.sunburst_figure(run, "recall", root="no-such-node")


def test_sunburst_json_is_small(run: Run) -> None:
    size = len(pio.to_json(explore.sunburst_figure(run, "recall"), validate=False))
    # 121 nodes: well under 100 bytes of JSON per node plus the layout template.
    assert size < 121 * 100 + 20_000


def test_sunburst_of_a_dag_uses_first_parents(dag_run: Run) -> None:
    trace = explore.sunburst_figure(dag_run, "recall").data[0]
    parent_of = dict(zip(trace.ids, trace.parents, strict=True))
    assert sorted(parent_of) == sorted(dag_run.hierarchy.nodes)  # X appears once
    assert parent_of["X"] == "B"  # B (depth 1) comes before A2 (depth 2)
    assert parent_of["X1"] == "X" and parent_of["A2"] == "A" and parent_of["root"] == ""
    assert "parents" in trace.hovertemplate


def test_make_color_spec_grey_band_ticks_and_errors() -> None:
    spec = explore.make_color_spec(np.array([0.0, 5.0, np.nan, 10.0]), np.array([True, True, True, False]),
                                   "Viridis", 0.0, 10.0, "t")
    assert list(spec.valid) == [True, True, False, False]  # NaN counts as missing
    assert spec.values[2] == spec.values[3] == pytest.approx(-1.0) == spec.cmin  # 10 % of the range below lo
    assert spec.tickvals == [-0.5, 0.0, 2.5, 5.0, 7.5, 10.0] and spec.ticktext[0] == "n/a"
    assert spec.colorscale[0] == [0.0, explore.GREY] and spec.colorscale[-1][0] == 1.0
    full = explore.make_color_spec(np.array([1.0, 2.0]), np.array([True, True]), "Viridis", 0.0, 4.0, "t")
    assert full.cmin == 0.0 and explore.GREY not in [c for _, c in full.colorscale]
    with pytest.raises(ValueError, match="hi > lo"):
        explore.make_color_spec(np.zeros(2), np.ones(2, bool), "Viridis", 1.0, 1.0, "t")
    with pytest.raises(ValueError, match="shapes"):
        explore.make_color_spec(np.zeros(3), np.ones(2, bool), "Viridis", 0.0, 1.0, "t")


def test_diverging_color_spec_is_symmetric_around_zero() -> None:
    spec = explore.diverging_color_spec(np.array([-0.2, 0.5, 0.1, 3.0]), np.array([True, True, True, False]), "d")
    assert (spec.lo, spec.hi) == (-0.5, 0.5)  # the largest |value| of the valid nodes
    assert spec.ticktext == ["n/a", "-0.5", "-0.25", "0", "+0.25", "+0.5"]
    assert spec.scale == explore.DIVERGING_SCALE
    assert explore.diverging_color_spec(np.zeros(3), np.ones(3, bool), "d").hi == 1.0
    assert explore.diverging_color_spec(np.zeros(3), np.ones(3, bool), "d", limit=0.25).lo == -0.25
    with pytest.raises(ValueError):
        explore.diverging_color_spec(np.zeros(3), np.ones(3, bool), "d", limit=0)


def test_hierarchy_sunburst_takes_any_colour_spec(run: Run) -> None:
    h = run.hierarchy
    values = np.linspace(-1, 1, h.n_nodes)
    fig = explore.hierarchy_sunburst(h, explore.diverging_color_spec(values, np.ones(h.n_nodes, bool), "x"))
    np.testing.assert_allclose(np.asarray(fig.data[0].marker.colors, dtype=float), values, atol=1e-4)
    assert list(fig.data[0].ids) == h.nodes
    with pytest.raises(ValueError, match="121 nodes"):
        explore.hierarchy_sunburst(h, explore.diverging_color_spec(values[:5], np.ones(5, bool), "x"))
    with pytest.raises(ValueError, match="customdata"):
        explore.hierarchy_sunburst(h, explore.diverging_color_spec(values, np.ones(h.n_nodes, bool), "x"),
                                   customdata=np.zeros((3, 2)))


# ----------------------------------------------------------- neighbourhood
@pytest.fixture(scope="module")
def wide() -> Hierarchy:
    """root -> c0..c49; c0 -> g0..g9; g0 -> h0."""
    edges = [("root", f"c{i}") for i in range(50)] + [("c0", f"g{i}") for i in range(10)] + [("g0", "h0")]
    return Hierarchy(edges)


def test_neighbourhood_contains_ancestors_node_children_and_siblings(wide: Hierarchy) -> None:
    got = explore.neighbourhood(wide, "g0")
    assert {"root", "c0", "g0", "h0"} <= set(got)
    assert {f"g{i}" for i in range(1, 10)} <= set(got)  # siblings
    assert "c1" not in got  # an uncle is not part of it
    assert len(got) == len(set(got)) == 1 + 2 + 1 + 9


def test_neighbourhood_respects_max_nodes_keeping_ancestors_and_children(wide: Hierarchy) -> None:
    got = explore.neighbourhood(wide, "c0", max_nodes=15)
    assert len(got) == 15
    assert {"root", "c0", *(f"g{i}" for i in range(10))} <= set(got)  # 12 kept first
    assert len(set(got) & {f"c{i}" for i in range(1, 50)}) == 3  # then 3 siblings
    assert explore.neighbourhood(wide, "root", max_nodes=1) == ["root"]


def test_neighbourhood_errors(wide: Hierarchy) -> None:
    with pytest.raises(KeyError):
        explore.neighbourhood(wide, "nope")
    with pytest.raises(ValueError):
        explore.neighbourhood(wide, "c0", max_nodes=0)


def test_lineage_follows_first_parents(dag_run: Run) -> None:
    assert explore.lineage(dag_run.hierarchy, "X1") == ["root", "B", "X", "X1"]
    assert explore.lineage(dag_run.hierarchy, "root") == ["root"]


# ------------------------------------------------------------------ pyvis
def _vis_data(html: str) -> tuple[list[dict], list[dict], dict]:
    nodes = json.loads(re.search(r"nodes = new vis\.DataSet\((\[.*?\])\);", html, re.S).group(1))
    edges = json.loads(re.search(r"edges = new vis\.DataSet\((\[.*?\])\);", html, re.S).group(1))
    options = json.loads(re.search(r"var options = (\{.*?\});\s*\n", html, re.S).group(1))
    return nodes, edges, options


def test_pyvis_html_draws_the_neighbourhood_offline_without_physics(run: Run) -> None:
    node = "1.2"
    html = explore.pyvis_html(run, node, "recall")
    nodes, edges, options = _vis_data(html)
    expected = {"root", "1", "1.2", "1.2.1", "1.2.2", "1.2.3", "1.1", "1.3"}  # ancestors, node, children, siblings
    assert {n["id"] for n in nodes} == expected
    for n in expected:
        assert f'"{n}"' in html
    assert {(e["from"], e["to"]) for e in edges} == {(_synthetic_parent(n), n) for n in expected if n != "root"}
    assert options["physics"]["enabled"] is False
    assert options["layout"]["hierarchical"]["enabled"] is True
    assert options["layout"]["hierarchical"]["direction"] == "UD"
    # vis-network is inlined: no remote script or stylesheet at all
    assert not re.search(r"<script[^>]*\bsrc=\"http", html)
    assert not re.search(r"<link[^>]*\bhref=\"http", html)
    assert "vis.Network" in html and len(html) > 200_000


def test_pyvis_hover_cards_and_highlight(run: Run) -> None:
    nodes, _, _ = _vis_data(explore.pyvis_html(run, "1.2", "recall"))
    by_id = {n["id"]: n for n in nodes}
    nm = run.node_metrics
    for node_id, n in by_id.items():
        assert node_id in n["title"]
        assert "recall" in n["title"] and "precision" in n["title"] and "F1" in n["title"]
        assert f"training frequency {int(nm.loc[node_id, 'train_frequency'])}" in n["title"]
    selected = by_id["1.2"]
    assert selected.get("borderWidth", 1) > max(n.get("borderWidth", 1) for i, n in by_id.items() if i != "1.2")
    # size grows with training frequency (the selected node is enlarged on top)
    others = sorted((n for i, n in by_id.items() if i != "1.2"), key=lambda n: nm.loc[n["id"], "train_frequency"])
    assert others[0]["size"] <= others[-1]["size"]
    assert nm.loc[others[0]["id"], "train_frequency"] < nm.loc[others[-1]["id"], "train_frequency"]


def test_pyvis_respects_max_nodes_and_rejects_unknown_nodes(run: Run) -> None:
    nodes, _, _ = _vis_data(explore.pyvis_html(run, "1", "recall", max_nodes=4))
    assert len(nodes) == 4 and "1" in {n["id"] for n in nodes}
    with pytest.raises(KeyError):
        explore.pyvis_html(run, "no-such-node")


def test_pyvis_dag_draws_all_parent_edges(dag_run: Run) -> None:
    nodes, edges, _ = _vis_data(explore.pyvis_html(dag_run, "X", "recall"))
    assert {"A", "A2", "B", "root", "X", "X1"} <= {n["id"] for n in nodes}
    assert {("A2", "X"), ("B", "X"), ("X", "X1")} <= {(e["from"], e["to"]) for e in edges}


def test_node_hover_text_lists_the_metrics(run: Run) -> None:
    text = explore.node_hover_text(run, "1.1")
    row = run.node_metrics.loc["1.1"]
    assert text.splitlines()[0] == "1.1"
    assert f"recall {row['recall']:.3f}" in text
    assert f"test support {int(row['support'])}" in text


# ------------------------------------------------------- charts and tables
def test_recall_by_depth_figure_matches_the_summary(run: Run) -> None:
    trace = explore.recall_by_depth_figure(run).data[0]
    summary = {int(k): v for k, v in run.summary["recall_by_depth"].items()}
    assert list(trace.x) == sorted(summary)
    np.testing.assert_allclose(list(trace.y), [summary[d] for d in sorted(summary)])
    # hover counts: the synthetic tree has 3**d nodes at depth d
    assert [c[0] for c in trace.customdata] == [3 ** d for d in sorted(summary)]
    # and the summary agrees with the per-node recalls it averages
    nm = run.node_metrics[run.node_metrics["evaluated"]]
    for d, r in summary.items():
        assert r == pytest.approx(nm.loc[nm["depth"] == d, "recall"].mean())


def test_node_table_filters_depth_and_evaluated(run: Run) -> None:
    full = explore.node_table(run)
    assert "root" not in full.index and len(full) == run.hierarchy.n_nodes - 1
    assert {"recall", "precision", "f1", "train_frequency", "support", "uncertainty", "depth"} <= set(full.columns)
    deep = explore.node_table(run, depths=[3, 4])
    assert set(deep["depth"]) == {3, 4} and len(deep) == 27 + 81
    assert "root" in explore.node_table(run, evaluated_only=False).index
    assert len(explore.node_table(run, depths=[])) == len(full)
    np.testing.assert_allclose(deep["recall"], run.node_metrics.loc[deep.index, "recall"])


def test_relatives_table(run: Run, dag_run: Run) -> None:
    rel = explore.relatives_table(run, "1.2")
    assert list(rel.index) == ["1", "1.2.1", "1.2.2", "1.2.3"]
    assert list(rel["relation"]) == ["parent", "child", "child", "child"]
    dag = explore.relatives_table(dag_run, "X")
    assert list(dag.index) == ["B", "A2", "X1"]
    assert list(dag["relation"]) == ["parent (first)", "parent", "child"]


def test_headline_metrics_format_the_summary(run: Run) -> None:
    m = explore.headline_metrics(run)
    s = run.summary
    assert float(m["micro AUPRC"]) == pytest.approx(s["auprc_micro"], abs=5e-4)
    assert float(m["macro recall"]) == pytest.approx(s["macro_recall"], abs=5e-4)
    assert m["evaluated nodes"] == str(s["n_eval_nodes"]) == str(int(run.node_metrics["evaluated"].sum()))
    assert m["with test positives"] == str(int((run.node_metrics["evaluated"] & (run.node_metrics["support"] > 0)).sum()))
    assert m["dataset"] == "synthetic" and m["heads"] == "2"
    assert m["epochs"] == "3/3"
    assert m["status"] == s["status"]


def test_node_facts(run: Run) -> None:
    facts = explore.node_facts(run, "1.2")
    row = run.node_metrics.loc["1.2"]
    assert facts["depth"] == "2"
    assert facts["recall"] == f"{row['recall']:.3f}"
    assert facts["test support"] == str(int(row["support"]))
    assert facts["AP"] == f"{row['average_precision']:.3f}"
    no_positives = run.node_metrics.index[run.node_metrics["support"] == 0][0]
    assert explore.node_facts(run, no_positives)["AP"] == "n/a"


# --------------------------------------------------------------- node card
@pytest.fixture(scope="module")
def npz(run: Run) -> dict[str, np.ndarray]:
    """predictions.npz read directly with numpy."""
    with np.load(run.path / "predictions.npz") as data:
        return {k: data[k] for k in data.files}


def test_positive_member_probs_match_a_naive_loop(run: Run, npz: dict[str, np.ndarray]) -> None:
    j = run.hierarchy.nodes.index("1.2")
    samples, probs = explore.positive_member_probs(npz, run.hierarchy, "1.2")
    expected_samples = [i for i in range(npz["y_true"].shape[0]) if npz["y_true"][i, j] == 1]
    assert list(samples) == expected_samples and len(expected_samples) == run.node_metrics.loc["1.2", "support"]
    assert probs.shape == (2, len(expected_samples))
    for h in range(2):
        assert list(probs[h]) == [float(npz["member_probs"][h, i, j]) for i in expected_samples]
    with pytest.raises(KeyError):
        explore.positive_member_probs(npz, run.hierarchy, "no-such-node")
    with pytest.raises(ValueError, match="do not match"):
        explore.positive_member_probs({"y_true": npz["y_true"][:, :5], "member_probs": npz["member_probs"]},
                                      run.hierarchy, "1.2")


def test_member_probs_figure_has_a_box_per_member_and_the_mean(run: Run, npz: dict[str, np.ndarray]) -> None:
    node = "2.1"
    j = run.hierarchy.nodes.index(node)
    pos = npz["y_true"][:, j] == 1
    fig = explore.member_probs_figure(npz, run.hierarchy, node)
    assert [t.type for t in fig.data] == ["box"] * 3
    assert [t.name for t in fig.data] == ["member 1", "member 2", "ensemble mean"]
    for h in range(2):
        np.testing.assert_allclose(fig.data[h].y, npz["member_probs"][h, pos, j].astype(float), rtol=1e-6)
        assert fig.data[h].boxpoints == "all"
    # the saved ensemble mean is the members' mean (up to the float16 storage of the members)
    np.testing.assert_allclose(fig.data[2].y, npz["mean_probs"][pos, j], atol=2e-3)
    assert list(fig.data[0].customdata) == list(np.flatnonzero(pos))
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 1 and lines[0].y0 == lines[0].y1 == explore.THRESHOLD == 0.5
    assert f"{int(pos.sum())} positive" in fig.layout.title.text
    few = explore.member_probs_figure(npz, run.hierarchy, node, max_points=int(pos.sum()) - 1)
    assert {t.boxpoints for t in few.data} == {"outliers"}
    np.testing.assert_allclose(few.data[0].y, fig.data[0].y)  # the same data, fewer drawn points


def test_member_probs_figure_without_positives(run: Run, npz: dict[str, np.ndarray]) -> None:
    node = run.node_metrics.index[run.node_metrics["support"] == 0][0]
    fig = explore.member_probs_figure(npz, run.hierarchy, node)
    assert len(fig.data) == 0
    assert "no positive test sample" in fig.layout.annotations[0].text


def test_uncertainty_by_mode_reads_every_mode_with_its_rank(run: Run) -> None:
    from scipy.stats import percentileofscore

    nm = pd.read_csv(run.path / "node_metrics.csv", index_col="node", dtype={"node": str})
    table = explore.uncertainty_by_mode(run, "1.2")
    modes = [c.removeprefix("uncertainty_") for c in nm.columns if c.startswith("uncertainty_")]
    assert list(table["mode"]) == modes and len(modes) == 6
    assert list(table.index) == [UNCERTAINTY_LABELS[m] for m in modes]
    evaluated = nm[nm["evaluated"]]
    for mode, row in zip(modes, table.itertuples(), strict=True):
        column = f"uncertainty_{mode}"
        assert row.uncertainty == pytest.approx(nm.loc["1.2", column])
        assert row.percentile == pytest.approx(percentileofscore(evaluated[column], nm.loc["1.2", column],
                                                                 kind="weak"))
        assert row.display == (mode == run.summary["uncertainty_mode"])
    assert table["display"].sum() == 1


def test_explore_imports_neither_torch_nor_runs() -> None:
    import subprocess
    import sys

    code = "import sys, hmlc_core.views.explore; print('torch' in sys.modules, 'hmlc_core.runs' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------- selection
def test_node_from_selection(run: Run) -> None:
    h = run.hierarchy
    event = {"selection": {"points": [{"id": "1.2.3", "label": "3", "parent": "1.2"}], "point_indices": [7]}}
    assert explore.node_from_selection(event, h) == "1.2.3"
    assert explore.node_from_selection(event["selection"], h) == "1.2.3"
    as_attrs = SimpleNamespace(selection=SimpleNamespace(points=[{"id": "2.1"}]))
    assert explore.node_from_selection(as_attrs, h) == "2.1"
    assert explore.node_from_selection({"selection": {"points": [{"label": "3.3"}]}}, h) == "3.3"
    assert explore.node_from_selection({"selection": {"points": []}}, h) is None
    assert explore.node_from_selection({"selection": {"points": [{"id": "GO:0000"}]}}, h) is None
    assert explore.node_from_selection(None, h) is None


def test_node_from_row_selection() -> None:
    nodes = ["a", "b", "c"]
    assert explore.node_from_row_selection({"selection": {"rows": [1], "columns": []}}, nodes) == "b"
    assert explore.node_from_row_selection({"selection": {"rows": []}}, nodes) is None
    assert explore.node_from_row_selection({"selection": {"rows": [5]}}, nodes) is None
    assert explore.node_from_row_selection(None, nodes) is None


# -------------------------------------------------------------------- runs
def test_discover_runs_and_resolve(synthetic_run: Path, tmp_path: Path) -> None:
    missing_demo = tmp_path / "no_demo"
    runs = explore.discover_runs(missing_demo, [synthetic_run.parent, tmp_path / "absent"])
    assert runs == {"synthetic_run": synthetic_run.resolve()}
    with_demo = explore.discover_runs(synthetic_run, [synthetic_run.parent])
    assert with_demo == {"demo": synthetic_run.resolve()}  # listed once, as the demo
    assert explore.resolve_run_key("synthetic_run", runs) == "synthetic_run"
    assert explore.resolve_run_key(str(synthetic_run), runs) == "synthetic_run"
    assert explore.resolve_run_key("elsewhere", runs) is None
    assert explore.resolve_run_key(str(tmp_path), runs) is None
    assert explore.resolve_run_key(None, runs) is None


def test_discover_runs_lists_the_demo_pair_first(synthetic_run: Path, tmp_path: Path) -> None:
    import shutil

    weighted = tmp_path / "assets" / "weighted"
    shutil.copytree(synthetic_run, weighted)
    demos = {explore.DEMO_KEY: synthetic_run, explore.DEMO_WEIGHTED_KEY: weighted}
    runs = explore.discover_runs(demos, [synthetic_run.parent, weighted.parent])
    assert runs == {"demo": synthetic_run.resolve(), "demo-weighted": weighted.resolve()}  # each listed once
    assert list(runs) == ["demo", "demo-weighted"]
    only_plain = explore.discover_runs({**demos, explore.DEMO_WEIGHTED_KEY: tmp_path / "missing"}, [weighted.parent])
    assert only_plain == {"demo": synthetic_run.resolve(), "weighted": weighted.resolve()}


def test_discover_runs_disambiguates_equal_names(synthetic_run: Path, tmp_path: Path) -> None:
    import shutil

    for parent in ("a", "b"):
        shutil.copytree(synthetic_run, tmp_path / parent / "same")
    runs = explore.discover_runs(None, [tmp_path / "a", tmp_path / "b"])
    assert sorted(runs) == ["b/same", "same"]
    assert runs["same"] == (tmp_path / "a" / "same").resolve()
    assert not math.isnan(load_run(runs["b/same"]).summary["auprc_micro"])


# ------------------------------------------------------------ GO-sized (real data)
@pytest.fixture(scope="module")
def go_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """A 1-epoch run on cellcycle_GO (4126 nodes, a DAG); skipped without the CLUS data."""
    import os

    from hmlc_core.data import DatasetNotFoundError, load_dataset

    if not os.environ.get("HMLC_DATA_DIR"):
        pytest.skip("HMLC_DATA_DIR is unset: GO-sized view checks skipped")
    try:
        ds = load_dataset("cellcycle_GO")
    except DatasetNotFoundError:
        pytest.skip("cellcycle_GO is not in HMLC_DATA_DIR")
    res = train(TrainConfig(dataset="cellcycle_GO", epochs=1, heads=2, batch_size=64), ds)
    return load_run(save_run(tmp_path_factory.mktemp("go") / "go_run", res, ds))


def test_go_views_stay_small(go_run: Run) -> None:
    h = go_run.hierarchy
    assert not h.is_tree
    for quantity in explore.COLOR_QUANTITIES:
        fig = explore.sunburst_figure(go_run, quantity)
        trace = fig.data[0]
        # above the sector budget: the drawn rings only, each GO term once, in its first-parent tree
        assert list(trace.ids) == [h.nodes[i] for i in explore.sunburst_sectors(h, None, trace.maxdepth)]
        assert len(set(trace.ids)) == len(trace.ids) < h.n_nodes
        assert all(p == "" or p in set(trace.ids) for p in trace.parents)
        assert len(pio.to_json(fig, validate=False)) < 300 * 1024  # the DASHBOARD.md budget is ~150-250 KiB
    widest = max(h.nodes, key=lambda n: len(h.siblings(n)))
    everything = {*h.ancestors(widest), widest, *h.children(widest), *h.siblings(widest)}
    nodes, _, _ = _vis_data(explore.pyvis_html(go_run, widest))
    if len(everything) <= 300:
        assert {n["id"] for n in nodes} == everything
    else:
        assert len(nodes) == 300
    capped, _, _ = _vis_data(explore.pyvis_html(go_run, widest, max_nodes=len(everything) - 10))
    assert len(capped) == len(everything) - 10
    assert {*h.ancestors(widest), widest, *h.children(widest)} <= {n["id"] for n in capped}


# ------------------------------------------------- sunburst labels, rings and centre (issue 11)
def test_sunburst_labels_are_the_full_escaped_node_ids(run: Run) -> None:
    trace = explore.sunburst_figure(run, "recall").data[0]
    # every sector names its node: the full id, so "1.2.3" does not read as a bare "3"
    assert list(trace.labels) == list(trace.ids)
    assert len(set(trace.labels)) == run.hierarchy.n_nodes
    h = Hierarchy([("root", "<b>A</b>"), ("<b>A</b>", "x%{y}")])
    spec = explore.make_color_spec(np.zeros(3), np.ones(3, dtype=bool), "Viridis", 0.0, 1.0, "t")
    trace = explore.hierarchy_sunburst(h, spec).data[0]
    # plotly renders labels and hover text as HTML: user ids are escaped there and stay raw as ids
    assert list(trace.ids) == ["root", "<b>A</b>", "x%{y}"]
    assert list(trace.labels) == ["root", "&lt;b&gt;A&lt;/b&gt;", "x%{y}"]
    assert "%{id}" not in trace.hovertemplate


def test_sunburst_text_is_horizontal_and_hidden_when_too_small(run: Run) -> None:
    fig = explore.sunburst_figure(run, "recall")
    # radial text turns labels on the left half sideways or upside down; horizontal text never does
    assert fig.data[0].insidetextorientation == "horizontal"
    assert fig.layout.uniformtext.mode == "hide" and fig.layout.uniformtext.minsize >= 8


def _tree(branching: int, depth: int) -> Hierarchy:
    edges, level = [], ["root"]
    for _ in range(depth):
        nxt = []
        for parent in level:
            for i in range(branching):
                nxt.append(f"{parent}/{i}")
                edges.append((parent, nxt[-1]))
        level = nxt
    return Hierarchy(edges)


def test_sunburst_draws_every_depth_of_a_small_hierarchy(run: Run) -> None:
    h = run.hierarchy
    trace = explore.sunburst_figure(run, "recall").data[0]
    rings = int(h.depth.max()) + 1  # root ring + one per depth: the synthetic tree's depth-4 nodes are drawn
    assert trace.maxdepth == -1 or trace.maxdepth >= rings
    assert explore.sunburst_rings(h) == -1


def test_sunburst_rings_of_a_big_hierarchy_stay_under_the_sector_budget() -> None:
    h = _tree(3, 7)  # 3,280 nodes: 1, 3, 9, ..., 2,187 per depth
    assert h.n_nodes == sum(3 ** d for d in range(8))
    cumulative = np.cumsum([3 ** d for d in range(8)])
    expected = int((cumulative <= explore.SUNBURST_MAX_SECTORS).sum())
    assert explore.sunburst_rings(h) == max(expected, 3)
    assert explore.sunburst_rings(h, max_sectors=50) == 4  # 1 + 3 + 9 + 27 = 40 <= 50
    assert explore.sunburst_rings(h, max_sectors=5) == 3  # never fewer than 3 rings
    assert explore.sunburst_rings(h, max_sectors=h.n_nodes) == -1


def test_sunburst_centre_is_the_node_or_the_parent_of_a_leaf(run: Run) -> None:
    h = run.hierarchy
    inner = next(n for n in h.nodes if h.children(n) and h.depth[h.index[n]] == 2)
    leaf = next(n for n in h.nodes if not h.children(n))
    assert explore.sunburst_centre(h, inner) == inner
    assert explore.sunburst_centre(h, leaf) == _synthetic_parent(leaf)
    assert explore.sunburst_centre(h, "root") == "root"
    fig = explore.sunburst_figure(run, "recall", root=explore.sunburst_centre(h, leaf))
    assert fig.data[0].level == _synthetic_parent(leaf)
    with pytest.raises(KeyError):
        explore.sunburst_centre(h, "no-such-node")


def test_sunburst_keeps_its_zoom_across_colours_and_nodes_of_one_run(run: Run, dag_run: Run) -> None:
    revisions = {explore.sunburst_figure(run, quantity, root=root).layout.uirevision
                 for quantity in ("recall", "training frequency") for root in (None, "1", "1.2")}
    assert len(revisions) == 1 and revisions != {""}
    assert explore.sunburst_figure(dag_run, "recall").layout.uirevision not in revisions


def test_na_text_writes_missing_values_as_n_a_and_keeps_the_sort_order() -> None:
    table = pd.DataFrame({"average_precision": [0.5, np.nan, 0.25, 1.0], "depth": [1, 2, 3, 4]},
                         index=["a", "b", "c", "d"])
    out = explore.na_text(table, ["average_precision"])
    assert list(out["average_precision"]) == ["0.500", "n/a", "0.250", "1.000"]
    assert list(out["depth"]) == [1, 2, 3, 4] and table["average_precision"].isna().sum() == 1  # a copy
    # the text sorts like the numbers, n/a last
    assert sorted(out["average_precision"]) == ["0.250", "0.500", "1.000", "n/a"]


def test_node_facts_start_with_precision_recall_f1(run: Run) -> None:
    # the node card's first row: the metrics a user looks for, before the counts
    assert list(explore.node_facts(run, "1.2"))[:4] == ["precision", "recall", "F1", "AP"]


def test_a_click_on_the_centre_goes_up_like_plotly_zoom(run: Run) -> None:
    h = run.hierarchy
    click = {"selection": {"points": [{"id": "2.1", "label": "2.1"}]}}
    # plotly zooms out to the parent when the centre sector is clicked: the selection follows it
    assert explore.node_from_selection(click, h, centre="2.1") == "2"
    assert explore.node_from_selection(click, h, centre="2") == "2.1"  # a ring sector: that node
    assert explore.node_from_selection(click, h) == "2.1"
    top = {"selection": {"points": [{"id": "root"}]}}
    assert explore.node_from_selection(top, h, centre="root") == "root"  # nowhere further up
    escaped = Hierarchy([("root", "a<b")])
    assert explore.node_from_selection({"selection": {"points": [{"label": "a&lt;b"}]}}, escaped) == "a<b"


# ------------------------------------------- large hierarchies: pruned sunburst, node search (issue 17)
@pytest.fixture(scope="module")
def mid_tree() -> Hierarchy:
    """The synthetic generator's tree at depth 5, branching 5: 3,906 nodes, above the sunburst's sector budget."""
    from hmlc_core.synthetic import make_synthetic

    h = make_synthetic(n_train=5, n_valid=5, n_test=5, depth=5, branching=5).hierarchy
    assert h.n_nodes == sum(5 ** d for d in range(6)) > explore.SUNBURST_MAX_SECTORS
    return h


def _first_parent_graph(h: Hierarchy):
    """The first-parent spanning tree with networkx: each node's parent of smallest column index."""
    import networkx as nx

    tree = nx.DiGraph()
    tree.add_nodes_from(h.nodes)
    for node in h.nodes:
        parents = list(h.graph.predecessors(node))
        if parents:
            tree.add_edge(min(parents, key=h.index.__getitem__), node)
    return tree


def _expected_sectors(tree, centre: str | None, rings: int) -> set[str]:
    import networkx as nx

    if centre is None:
        roots = [n for n in tree if tree.in_degree(n) == 0]
        return {n for r in roots for n, d in nx.single_source_shortest_path_length(tree, r, cutoff=rings - 1).items()}
    return set(nx.single_source_shortest_path_length(tree, centre, cutoff=rings - 1))


@pytest.mark.parametrize("kind", ["tree", "dag"])
def test_sunburst_sectors_are_the_centre_and_its_rings(mid_tree: Hierarchy, kind: str) -> None:
    from helpers import random_dag

    h = mid_tree if kind == "tree" else random_dag(1500, seed=3)
    tree = _first_parent_graph(h)
    rng = np.random.default_rng(0)
    inner = [n for n in h.nodes if tree.out_degree(n) > 0]
    centres = [None, h.nodes[0], *rng.choice(inner, size=6, replace=False).tolist(), h.nodes[-1]]
    for centre in centres:
        for rings in (1, 2, 3, 4):
            got = explore.sunburst_sectors(h, centre, rings)
            assert np.all(np.diff(got) > 0)  # column order, no repeats
            assert {h.nodes[i] for i in got} == _expected_sectors(tree, centre, rings), (centre, rings)
    assert len(explore.sunburst_sectors(h, None, -1)) == h.n_nodes
    with pytest.raises(KeyError):
        explore.sunburst_sectors(h, "no-such-node", 3)
    with pytest.raises(ValueError):
        explore.sunburst_sectors(h, None, 0)


def test_first_parent_tree_counts_the_leaves_below_each_node(mid_tree: Hierarchy) -> None:
    import networkx as nx

    from helpers import random_dag

    for h in (mid_tree, random_dag(400, seed=5)):
        tree = _first_parent_graph(h)
        fpt = explore.first_parent_tree(h)
        assert explore.first_parent_tree(h) is fpt  # built once per hierarchy
        for node in h.nodes:
            i = h.index[node]
            parents = list(tree.predecessors(node))
            assert fpt.parent[i] == (h.index[parents[0]] if parents else -1)
            assert [h.nodes[j] for j in fpt.children(i)] == sorted(tree.successors(node), key=h.index.__getitem__)
            below = nx.descendants(tree, node) | {node}
            assert fpt.leaves[i] == sum(1 for n in below if tree.out_degree(n) == 0)


def test_a_large_hierarchy_sunburst_sends_only_the_drawn_sectors(mid_tree: Hierarchy) -> None:
    import networkx as nx

    h = mid_tree
    tree = _first_parent_graph(h)
    c = h.n_nodes
    spec = explore.make_color_spec(np.linspace(0, 1, c), np.ones(c, dtype=bool), "Viridis", 0.0, 1.0, "t")
    custom = np.arange(c, dtype=object)[:, None]
    centre = next(n for n in h.nodes if h.depth[h.index[n]] == 2)
    trace = explore.hierarchy_sunburst(h, spec, custom, root=centre, prune=True).data[0]
    rings = explore.sunburst_rings(h)
    assert trace.maxdepth == rings and trace.level == centre
    assert set(trace.ids) == _expected_sectors(tree, centre, rings)
    assert len(trace.ids) == sum(5 ** k for k in range(min(rings, 4))) < h.n_nodes  # depth 2 to 5 at most
    columns = [h.index[n] for n in trace.ids]
    assert [row[0] for row in trace.customdata] == columns  # each sector keeps its own hover row
    np.testing.assert_allclose(trace.marker.colors, np.round(spec.values[columns], 4))
    # the centre is the figure's top sector: a click on it goes up through the page, not plotly's zoom
    assert list(trace.parents) == ["" if n == centre else h.first_parent(n) for n in trace.ids]
    # sizes are the leaves of the whole tree below each sector, so plotly's "total" sums hold exactly
    assert trace.branchvalues == "total"
    value = dict(zip(trace.ids, trace.values, strict=True))
    for node in trace.ids:
        everything = nx.descendants(tree, node) | {node}
        assert value[node] == sum(1 for n in everything if tree.out_degree(n) == 0)
        below = [n for n in trace.ids if h.first_parent(n) == node]
        assert sum(value[n] for n in below) <= value[node]
    # unpruned: every node, plotly counting the leaves itself (the small-hierarchy figure)
    full = explore.hierarchy_sunburst(h, spec, custom, root=centre).data[0]
    assert len(full.ids) == c and full.branchvalues == "remainder" and full.values is None


def test_a_small_hierarchy_sunburst_is_not_pruned(run: Run) -> None:
    h = run.hierarchy
    assert h.n_nodes <= explore.SUNBURST_MAX_SECTORS
    for maxdepth in (None, 2):
        trace = explore.sunburst_figure(run, "recall", maxdepth=maxdepth, root="1").data[0]
        assert sorted(trace.ids) == sorted(h.nodes) and trace.values is None


def test_search_nodes_lists_the_exact_match_then_prefixes_then_the_rest(mid_tree: Hierarchy) -> None:
    h = mid_tree
    for query in ("1.2", " 3.4.1 ", "5", "1.1.1.1.1", "zzz", ""):
        needle = query.strip().lower()
        every = [n for n in h.nodes if needle and needle in n.lower()]
        expected = ([n for n in every if n.lower() == needle] + [n for n in every if n.lower().startswith(needle)
                                                                 and n.lower() != needle]
                    + [n for n in every if not n.lower().startswith(needle)])
        matches, total = explore.search_nodes(h, query, limit=40)
        assert total == len(every) and matches == expected[:40]
    mixed = Hierarchy([("root", "GO:0001"), ("root", "go:0001x"), ("GO:0001", "aGO:0001")])
    assert explore.search_nodes(mixed, "go:0001") == (["GO:0001", "go:0001x", "aGO:0001"], 3)
    with pytest.raises(ValueError):
        explore.search_nodes(h, "1", limit=0)


def test_explorer_of_a_large_hierarchy_searches_nodes_and_reads_the_url(app_env: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import open_app

    monkeypatch.setattr(explore, "NODE_SEARCH_MIN_NODES", 10)  # the synthetic run counts as large
    at = open_app("app_pages/explorer.py", run=app_env.name, node="2.3.1")
    assert not at.exception and not at.warning
    assert not [s for s in at.selectbox if s.key == "node"]  # no selectbox of every node
    assert at.text_input(key="node").value == "2.3.1"
    assert any(s.value.endswith("2\\.3\\.1") for s in at.subheader)  # the node card shows the URL's node
    assert '"2.3.1"' in at.get("iframe")[0].proto.srcdoc
    assert "The table is built when this tab is opened." in [c.value for c in at.caption]  # not sent unasked
    at.text_input(key="node_search").input("3.1.").run()
    pick = at.selectbox(key="node_pick")
    assert pick.options and all("3.1." in o for o in pick.options)
    pick.set_value(pick.options[0]).run()
    assert not at.exception
    assert at.text_input(key="node").value == pick.options[0]
    assert any(s.value.endswith(pick.options[0].replace(".", "\\.")) for s in at.subheader)


def test_a_pruned_sunburst_is_a_new_chart_per_centre(run: Run, mid_tree: Hierarchy) -> None:
    # small: one chart kept across reruns (plotly keeps its zoom); pruned: a new chart per serial
    assert explore.sunburst_chart_key(run.hierarchy, 1) == explore.sunburst_chart_key(run.hierarchy, 2) == "sunburst"
    assert explore.sunburst_chart_key(mid_tree, 1) != explore.sunburst_chart_key(mid_tree, 2)
