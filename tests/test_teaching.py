"""The "How it works" page and its views (hmlc_core/views/teaching.py), and the Overview's story of a run.

Expected values are computed here by hand (the weight and focal formulas written out, a brute-force max over
descendants, numpy quantiles and pandas group-bys over ``node_metrics.csv``), or by the torch training code
(``node_weights``, ``focal_weight``, ``MCM``) that the torch-free paths must agree with.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

from helpers import open_app, random_dag
from hmlc_core import weighting
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import focal_weight, node_weights
from hmlc_core.model import MCM
from hmlc_core.runs import load_run
from hmlc_core.views import teaching

PAGE = "app_pages/how_it_works.py"


def _small_tree() -> Hierarchy:
    # root -> a, b; a -> a1. Column order (depth, id): root, a, b, a1.
    return Hierarchy([("root", "a"), ("root", "b"), ("a", "a1")])


# ------------------------------------------------------------------------------------------------ node weights
@pytest.mark.parametrize("omega", [0.0, 0.25, 1.5])
def test_node_weight_table_follows_the_formula_written_out(omega: float) -> None:
    h = _small_tree()
    counts = np.array([10, 4, 6, 1])  # propagated: root in every example, N = 10
    n = 10
    table = teaching.node_weight_table(h, counts, n, omega, counting="propagated")
    assert list(table.index) == ["a", "b", "a1"]  # the root is not evaluated
    # class-wise, K = C = 4: root f = N -> 1; a 10/16; b 10/24; a1 10/4; min = 10/24, max = 2.5
    raw = {"a": 10 / 16, "b": 10 / 24, "a1": 10 / 4}
    lo, hi = 10 / 24, 2.5
    for node, w in raw.items():
        assert table.at[node, "class-wise"] == pytest.approx(omega + hi * (w - lo) / (hi - lo))
    # binary, K = 2: root 1; a 10/8; b 10/12; a1 10/2; min = 10/12, max = 5
    raw = {"a": 10 / 8, "b": 10 / 12, "a1": 5.0}
    lo, hi = 10 / 12, 5.0
    for node, w in raw.items():
        assert table.at[node, "binary"] == pytest.approx(omega + hi * (w - lo) / (hi - lo))


def test_descendant_sum_counting_adds_the_descendants_counts() -> None:
    h = _small_tree()
    table = teaching.node_weight_table(h, np.array([10, 4, 6, 1]), 10, 0.25, counting="descendant-sum")
    assert table["counted_frequency"].to_dict() == {"a": 5.0, "b": 6.0, "a1": 1.0}  # a = 4 + 1


@pytest.mark.parametrize("counting", ["descendant-sum", "propagated"])
@pytest.mark.parametrize("mode", ["class-wise", "binary"])
def test_node_weight_table_equals_the_training_weights(counting: str, mode: str) -> None:
    h = random_dag(30, seed=3)
    rng = np.random.default_rng(0)
    labels = h.propagate((rng.random((50, h.n_nodes)) < 0.08).astype(np.uint8))
    expected = node_weights(labels, h, mode, 0.4, counting).positive
    table = teaching.node_weight_table(h, labels.sum(axis=0), 50, 0.4, counting)
    np.testing.assert_allclose(table[mode].to_numpy(), expected[h.eval_mask], rtol=1e-12)


def test_node_weight_figure_plots_the_table() -> None:
    h = _small_tree()
    table = teaching.node_weight_table(h, np.array([10, 4, 0, 1]), 10, 0.3)
    fig = teaching.node_weight_figure(table, 0.3)
    assert [t.name for t in fig.data] == list(teaching.WEIGHT_MODES)
    for trace in fig.data:
        np.testing.assert_allclose(trace.y, table[trace.name].round(4))
        assert list(trace.x) == [4.0, 0.5, 1.0]  # a frequency of 0 sits at 0.5 on the log axis
    sentence = teaching.node_weight_sentence(table, 10, h.n_nodes, 0.3)
    assert "N = 10" in sentence and "1 evaluated node without any training positive" in sentence


# ------------------------------------------------------------------------------------------------ focal factor
@pytest.mark.parametrize(("k", "floor"), [(2.0, 0.25), (0.5, 0.0), (3.5, 1.0)])
def test_focal_curve_is_floor_plus_u_to_the_k(k: float, floor: float) -> None:
    fig = teaching.focal_figure(k, floor, n_points=5)
    assert list(fig.data[0].x) == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(fig.data[0].y, [floor + u ** k for u in (0.0, 0.25, 0.5, 0.75, 1.0)], atol=1e-5)


def test_focal_factor_numpy_equals_the_training_focal_weight() -> None:
    u = np.random.default_rng(1).random((4, 7))
    np.testing.assert_allclose(weighting.focal_factor(u, 1.7, 0.2),
                               focal_weight(torch.from_numpy(u), 1.7, 0.2).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="focal k"):
        weighting.focal_factor(u, 0.0, 0.2)


def test_focal_figure_places_the_run_nodes_on_the_curve() -> None:
    fig = teaching.focal_figure(2.0, 0.25, np.array([0.1, 0.5, np.nan, 3.0]), "bBMA")
    assert list(fig.data[1].x) == [0.1, 0.5]  # NaN and values above 1 are left out
    np.testing.assert_allclose(fig.data[1].y, [0.25 + 0.01, 0.25 + 0.25])
    text = teaching.focal_sentence(np.array([0.1, 0.5]), 2.0, 0.25, "bBMA")
    assert "between 0.1 and 0.5" in text and "between 0.26 and 0.5" in text


# ------------------------------------------------------------------------------------------------------- MCM
def _brute_force_mcm(h: Hierarchy, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    for j, node in enumerate(h.nodes):
        cols = [j] + [h.nodes.index(d) for d in nx.descendants(h.graph, node)]
        out[..., j] = x[..., cols].max(axis=-1)
    return out


def test_max_constraint_equals_a_brute_force_max_and_the_torch_mcm() -> None:
    h = random_dag(40, seed=5)
    x = np.random.default_rng(2).normal(size=(3, 6, h.n_nodes))
    expected = _brute_force_mcm(h, x)
    np.testing.assert_array_equal(h.max_constraint(x), expected)
    np.testing.assert_array_equal(MCM(h).values(torch.from_numpy(x)).numpy(), expected)
    with pytest.raises(ValueError, match="shape"):
        h.max_constraint(np.zeros(3))


def test_mcm_table_and_figure_show_a_parent_lifted_to_its_best_descendant() -> None:
    h = teaching.toy_hierarchy()
    raw = {"Animal": 0.3, "Dog": 0.8, "Cat": 0.9, "Vehicle": 0.6, "Car": 0.2, "Bike": 0.4}
    table = teaching.mcm_table(h, raw)
    x = np.array([raw[n] for n in h.nodes])
    np.testing.assert_array_equal(table["coherent"].to_numpy(), _brute_force_mcm(h, x))
    assert table.at["Animal", "coherent"] == 0.9 and table.at["Animal", "from"] == "Cat"
    assert table.at["Vehicle", "from"] == "Vehicle"
    nodes = next(t for t in teaching.mcm_figure(h, table).data if t.name == "nodes")
    assert [row[2] for row in nodes.customdata] == [0.9 if n == "Animal" else raw[n] for n in h.nodes]
    assert teaching.mcm_sentence(table).startswith("Animal rises from 0.30 to 0.90")
    coherent = {**raw, "Animal": 0.95}
    assert teaching.mcm_sentence(teaching.mcm_table(h, coherent)).startswith("Already coherent")


def test_mcm_sentence_escapes_markdown_in_node_ids() -> None:
    h = Hierarchy([("*a*", "[b](x)")])
    text = teaching.mcm_sentence(teaching.mcm_table(h, {"*a*": 0.1, "[b](x)": 0.7}))
    assert text.startswith(r"\*a\* rises") and r"\[b\]\(x\)" in text


# ----------------------------------------------------------------------------------------- evaluated and rare
def test_node_sets_follow_the_bottom_quartile_of_evaluated_frequencies() -> None:
    edges = [("root", f"n{i}") for i in range(8)]
    h = Hierarchy(edges)
    freq = pd.Series({"root": 100, "n0": 0, "n1": 1, "n2": 1, "n3": 3, "n4": 5, "n5": 8, "n6": 13, "n7": 21})
    info = teaching.node_sets(h, freq[h.nodes].to_numpy())
    # 8 evaluated values 0 1 1 3 5 8 13 21: the 25% quantile sits at position 1.75, between 1 and 1
    assert info["cut"] == 1.0 and info["n_rare"] == 3 and info["rare_max"] == 1
    assert info["n_evaluated"] == 8 and info["skipped"] == ["root"]
    assert [n for n, r in zip(h.nodes, info["rare"], strict=True) if r] == ["n0", "n1", "n2"]
    text = teaching.node_sets_text(info)
    assert "8 of 9" in text and "the 3 nodes with at most 1 training example are rare" in text
    fig = teaching.rare_node_figure(h, freq[h.nodes].to_numpy())
    rare = next(t for t in fig.data if t.name == "rare")
    assert sorted(row[0] for row in rare.customdata) == ["n0", "n1", "n2"]


# ----------------------------------------------------------------------------------------------- uncertainty
def test_member_spread_is_the_members_standard_deviation() -> None:
    probs = np.zeros((2, 2, 3))
    probs[0] = [[0.1, 0.5, 0.9], [0.2, 0.2, 0.2]]
    probs[1] = [[0.3, 0.5, 0.9], [0.2, 0.6, 0.2]]
    out = teaching.member_spread(probs, np.array([False, True, True]))
    # evaluated columns 1 and 2: |differences| 0, 0, 0.4, 0 -> std (ddof 1) = |d| / sqrt(2)
    assert out["members"] == 2
    assert out["mean"] == pytest.approx(0.4 / np.sqrt(2) / 4) and out["median"] == 0.0
    assert teaching.member_spread(probs[:1], np.ones(3, dtype=bool))["mean"] == 0.0


def test_uncertainty_scales_and_epistemic_explanation_use_the_run_values(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    nm = run.node_metrics
    ev = nm[nm["evaluated"].astype(bool)]
    scales = teaching.uncertainty_scale_table(nm)
    js = scales.loc["epistemic (JS)"]
    assert js["max"] == pytest.approx(ev["uncertainty_epistemic"].max())
    assert js["median"] == pytest.approx(ev["uncertainty_epistemic"].median())
    fig = teaching.uncertainty_scale_figure(nm)
    assert len(fig.data) == 6
    spread = {"members": 2, "mean": 0.012, "median": 0.001, "p90": 0.03}
    text = teaching.epistemic_explanation(scales, spread)
    assert f"{js['max']:.2g} bits" in text and "0.012 on average" in text and "square of the spread" in text
    assert "single network" in teaching.epistemic_explanation(scales, {**spread, "members": 1})


# ------------------------------------------------------------------------------------------------ run story
def test_run_story_tells_recall_by_depth_and_the_rare_nodes(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    nm = run.node_metrics
    ev = nm[nm["evaluated"].astype(bool)]
    by_depth = ev.groupby("depth")["recall"].mean()
    cut = np.quantile(ev["train_frequency"], 0.25)
    rare = ev[ev["train_frequency"] <= cut]
    with_pos = rare[rare["support"] > 0]
    missed = with_pos[with_pos["tp"] == 0]
    story = teaching.run_story(run)
    first, last = by_depth.index.min(), by_depth.index.max()
    verb = "falls" if by_depth[last] < by_depth[first] else "rises"
    assert story.startswith(f"Macro recall {verb} from {by_depth[first]:.2f} at depth {first} to "
                            f"{by_depth[last]:.2f} at depth {last}")
    assert f"the {len(rare)} rare nodes" in story
    if len(missed) == len(with_pos):
        assert f"{len(with_pos)} have test positives, and not one of them is found at threshold 0.5" in story
    else:
        assert f"{len(with_pos)} have test positives; {len(missed)} of those" in story


def test_run_story_for_other_shapes_of_run(synthetic_run: Path) -> None:
    run = load_run(synthetic_run)
    nm = run.node_metrics.copy()
    ev = nm["evaluated"].astype(bool)
    nm["recall"] = nm["depth"] / 10  # rises with depth
    nm["tp"] = 1
    nm["support"] = 1
    story = teaching.run_story(dataclasses.replace(run, node_metrics=nm))
    assert story.startswith("Macro recall rises from 0.10 at depth 1")
    assert "0 of those are never found" in story
    nm["train_frequency"] = -1  # unknown frequencies: no rare-node sentence
    story = teaching.run_story(dataclasses.replace(run, node_metrics=nm))
    assert "rare" not in story and ev.any()


def test_method_section_reads_one_section(tmp_path: Path) -> None:
    doc = tmp_path / "m.md"
    doc.write_text("# T\n\n## Node weights\n\nw = N/(Kf)\n\n### Detail\n\nmore\n\n## Focal weighting\n\nF\n")
    assert teaching.method_section("Node weights", doc) == "w = N/(Kf)\n\n### Detail\n\nmore"
    assert teaching.method_section("*Detail*", doc) == "more"
    assert teaching.method_section("Focal weighting", doc) == "F"
    assert teaching.method_section("Missing", doc) is None
    assert teaching.method_section("Node weights", tmp_path / "none.md") is None


# ------------------------------------------------------------------------------------------------- the page
def _chart(at: AppTest, key: str) -> dict:
    charts = [c for c in at.get("plotly_chart") if c.proto.id.endswith(key) or key in c.proto.id]
    assert charts, f"no chart {key}"
    return json.loads(charts[0].proto.spec)


def test_how_it_works_page_renders_and_its_sliders_change_the_plots(app_env: Path) -> None:
    at = open_app(PAGE, run=app_env.name)
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "How it works"
    assert len(at.get("plotly_chart")) == 5
    run = load_run(app_env)
    assert any(teaching.run_story(run) == i.value for i in at.info)
    expanders = [e.label for e in at.expander]
    assert "More in docs/method.md, *Node weights*" in expanders

    before = _chart(at, "hiw_weights")["data"]
    at.slider(key="hiw_omega").set_value(1.0).run()
    after = _chart(at, "hiw_weights")["data"]
    for old, new in zip(before, after, strict=True):  # every weight moves up by exactly the change of omega
        np.testing.assert_allclose(np.array(new["y"]) - np.array(old["y"]), 1.0 - run.config.omega, atol=2e-4)

    at.slider(key="hiw_focal_k").set_value(4.0).run()
    at.slider(key="hiw_focal_min").set_value(0.5).run()
    curve = _chart(at, "hiw_focal")["data"][0]
    i = curve["x"].index(0.5)
    assert curve["y"][i] == pytest.approx(0.5 + 0.5 ** 4, abs=1e-5)

    def animal() -> float:
        nodes = next(t for t in _chart(at, "hiw_mcm")["data"] if t["name"] == "nodes")
        return next(row[2] for row in nodes["customdata"] if row[0] == "Animal")

    assert animal() == 0.8  # Dog's default raw score
    at.slider(key="hiw_raw_Cat").set_value(0.95).run()
    assert animal() == 0.95
    at.slider(key="hiw_raw_Cat").set_value(0.1).run()
    at.slider(key="hiw_raw_Dog").set_value(0.2).run()
    assert animal() == 0.3  # no descendant above Animal's own raw score
    assert not at.exception


def test_overview_tells_the_run_story_and_links_to_how_it_works(app_env: Path) -> None:
    at = open_app(run=app_env.name)
    assert not at.exception
    assert at.info[0].value == teaching.run_story(load_run(app_env))
    assert any("How it works" in str(link.label) for link in at.get("page_link"))
