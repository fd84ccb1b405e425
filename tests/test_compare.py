"""Tests of hmlc_core.views.compare, the Compare page's pure functions.

Expected values come from the runs' own files (node_metrics.csv, summary.json,
config.json, hierarchy.json) read here with pandas/json, from naive loops over
nodes, and from scipy (wilcoxon, percentile bins), never from the functions
under test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from plotly.colors import sample_colorscale
from scipy.stats import wilcoxon

from hmlc_core.views import compare, explore
from hmlc_core.runs import Run, load_run, save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train


@pytest.fixture(scope="module")
def base(synthetic_run: Path) -> Run:
    return load_run(synthetic_run)


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second synthetic run with other options (no node weights, no focal factor, 3 heads, seed 1)."""
    dataset = make_synthetic(seed=0)
    config = TrainConfig(dataset="synthetic", epochs=4, heads=3, seed=1, weighting="none", focal="none")
    return save_run(tmp_path_factory.mktemp("other") / "other_run", train(config, dataset), dataset)


@pytest.fixture(scope="module")
def other(other_dir: Path) -> Run:
    return load_run(other_dir)


def _csv(run: Run) -> pd.DataFrame:
    return pd.read_csv(run.path / "node_metrics.csv", index_col="node", dtype={"node": str})


def _valid_pairs(a: pd.DataFrame, b: pd.DataFrame, column: str) -> list[str]:
    """Naive: nodes evaluated, with test positives in both runs and finite values."""
    keep = []
    for node in a.index:
        va, vb = a.loc[node, column], b.loc[node, column]
        if (bool(a.loc[node, "evaluated"]) and a.loc[node, "support"] > 0 and b.loc[node, "support"] > 0
                and np.isfinite(va) and np.isfinite(vb)):
            keep.append(node)
    return keep


# ------------------------------------------------------------------- checks
def test_same_hierarchy_is_accepted(base: Run, other: Run) -> None:
    h = compare.check_same_hierarchy({"a": base, "b": other})
    assert h.nodes == json.loads((base.path / "hierarchy.json").read_text())["nodes"]


def test_different_hierarchies_are_rejected_naming_the_runs(base: Run, tmp_path: Path) -> None:
    from hmlc_core.data import HMCDataset, Split
    from hmlc_core.hierarchy import Hierarchy

    h = Hierarchy([("root", "A"), ("root", "B"), ("A", "A1")])
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(X=rng.normal(size=(n, 3)).astype(np.float32),
                     Y=h.label_matrix([["A1"] if i % 2 else ["B"] for i in range(n)]))

    ds = HMCDataset(name="tiny", hierarchy=h, feature_names=["f0", "f1", "f2"], train=split(20), valid=split(10),
                    test=split(10), source={"train": "synthetic"})
    tiny = load_run(save_run(tmp_path / "tiny", train(TrainConfig(dataset="tiny", epochs=1, heads=1, hidden=8), ds),
                             ds))
    with pytest.raises(ValueError, match=r"'first'.*'second'.*different hierarchies.*121 vs 4 nodes"):
        compare.check_same_hierarchy({"first": base, "second": tiny})
    with pytest.raises(ValueError, match="no run"):
        compare.check_same_hierarchy({})


def test_same_nodes_with_other_edges_are_rejected(base: Run, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(base.path, moved)
    doc = json.loads((moved / "hierarchy.json").read_text())
    # move leaf 1.1.1 from 1.1 to 1.2: same depth, so the same nodes in the same column order
    doc["edges"] = [["1.2", "1.1.1"] if e == ["1.1", "1.1.1"] else e for e in doc["edges"]]
    (moved / "hierarchy.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"'a'.*'b'.*2 edges differ, e\.g\. 1\.1 -> 1\.1\.1"):
        compare.check_same_hierarchy({"a": base, "b": load_run(moved)})


# ------------------------------------------------------------- side by side
def test_headline_table_matches_the_summaries_and_node_files(base: Run, other: Run) -> None:
    table = compare.headline_table({"A": base, "B": other})
    assert list(table.columns) == ["A", "B"]
    for name, run in (("A", base), ("B", other)):
        summary = json.loads((run.path / "summary.json").read_text())
        nm = _csv(run)
        ev = nm[nm["evaluated"]]
        col = table[name]
        assert col["micro AUPRC"] == pytest.approx(summary["auprc_micro"])
        assert col["macro recall"] == pytest.approx(summary["macro_recall"])
        assert col["macro F1"] == pytest.approx(summary["macro_f1"])
        assert col["macro precision"] == pytest.approx(summary["macro_precision"])
        cut = np.quantile(ev["train_frequency"], 0.25)
        assert col["rare-node recall"] == pytest.approx(ev.loc[ev["train_frequency"] <= cut, "recall"].mean())
        assert col["nodes found (recall > 0)"] == (ev["recall"] > 0).sum()
        assert col["nodes with test positives"] == summary["n_eval_nodes_with_positives"]
        assert col["heads"] == summary["heads"] and col["epochs"] == summary["epochs_completed"]
    text = compare.headline_text(table)
    assert text.loc["micro AUPRC", "A"] == f"{base.summary['auprc_micro']:.3f}" and "decision rule" not in text.index
    labelled = compare.headline_text(table, {"A": "per-node (m = 5)"})
    assert list(labelled.index) == ["decision rule", *text.index]
    assert list(labelled.loc["decision rule"]) == ["per-node (m = 5)"] + ["n/a"] * (len(table.columns) - 1)
    assert text.loc["heads", "B"] == "3"
    seconds = base.summary["seconds_per_epoch"]
    assert float(text.loc["seconds per epoch", "A"]) == pytest.approx(seconds, rel=0.01)


def test_config_differences_lists_exactly_the_changed_options(base: Run, other: Run) -> None:
    a = json.loads((base.path / "config.json").read_text())["train"]
    b = json.loads((other.path / "config.json").read_text())["train"]
    expected = sorted(k for k in a if a[k] != b[k])
    table = compare.config_differences({"A": base, "B": other})
    assert list(table.index) == expected
    assert {"weighting", "focal", "heads", "seed", "epochs"} <= set(expected)
    assert table.loc["weighting", "B"] == "none" and table.loc["heads", "A"] == "2"
    assert compare.config_differences({"A": base, "A again": base}).empty


def test_recall_by_depth_lines_follow_the_summaries(base: Run, other: Run) -> None:
    fig = compare.recall_by_depth_figure({"A": base, "B": other})
    assert [t.name for t in fig.data] == ["A", "B"]
    for trace, run in zip(fig.data, (base, other), strict=True):
        rbd = {int(k): v for k, v in json.loads((run.path / "summary.json").read_text())["recall_by_depth"].items()}
        assert list(trace.x) == sorted(rbd)
        np.testing.assert_allclose(trace.y, [rbd[d] for d in sorted(rbd)])


def test_recall_vs_frequency_points_and_bin_means(base: Run, other: Run) -> None:
    fig = compare.recall_vs_frequency_figure({"A": base, "B": other}, n_bins=6)
    assert fig.layout.xaxis.type == "log"
    points = [t for t in fig.data if t.type == "scattergl"]
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(points) == len(lines) == 2
    for pts, line, run in zip(points, lines, (base, other), strict=True):
        nm = _csv(run)
        keep = nm[nm["evaluated"] & (nm["support"] > 0)]
        assert sorted(pts.text) == sorted(keep.index)
        by_node = dict(zip(pts.text, zip(pts.x, pts.y, strict=True), strict=True))
        for node, row in keep.iterrows():
            assert by_node[node] == pytest.approx((1 + row["train_frequency"], row["recall"]))
        # the bins partition the points: counts add up and the count-weighted bin means give the overall mean
        counts = np.asarray(line.customdata, dtype=float)
        assert counts.sum() == len(keep) and len(line.x) <= 6
        assert np.average(line.y, weights=counts) == pytest.approx(keep["recall"].mean())
        assert np.all(np.diff(line.x) > 0)
    with pytest.raises(ValueError):
        compare.recall_vs_frequency_figure({"A": base}, n_bins=0)


# ---------------------------------------------------------- node by node
@pytest.mark.parametrize("metric", list(compare.METRICS))
def test_node_difference_is_other_minus_base_on_comparable_nodes(base: Run, other: Run, metric: str) -> None:
    column = compare.METRICS[metric]
    diff = compare.node_difference(base, other, metric)
    a, b = _csv(base), _csv(other)
    valid = _valid_pairs(a, b, column)
    assert list(diff.index[diff["valid"]]) == valid
    np.testing.assert_allclose(diff.loc[valid, "difference"], b.loc[valid, column] - a.loc[valid, column])
    assert diff.loc[~diff["valid"], "difference"].isna().all()
    with pytest.raises(ValueError, match="unknown metric"):
        compare.node_difference(base, other, "accuracy")


def test_difference_sunburst_is_centred_at_zero(base: Run, other: Run) -> None:
    fig = compare.difference_sunburst(base, other, "recall", names=("A", "B"))
    trace = fig.data[0]
    a, b = _csv(base), _csv(other)
    valid = _valid_pairs(a, b, "recall")
    colors = pd.Series(np.asarray(trace.marker.colors, dtype=float), index=list(trace.ids))
    np.testing.assert_allclose(colors[valid], (b.loc[valid, "recall"] - a.loc[valid, "recall"]), atol=1e-4)
    limit = float(np.abs(b.loc[valid, "recall"] - a.loc[valid, "recall"]).max())
    assert trace.marker.cmax == pytest.approx(limit)
    missing = [n for n in trace.ids if n not in set(valid)]
    assert missing and (colors[missing] < -limit).all()  # grey band below the range
    # the colour of a zero difference is the middle of the diverging scale (white-ish)
    scale = [(float(p), c) for p, c in trace.marker.colorscale]
    zero_pos = (0 - trace.marker.cmin) / (trace.marker.cmax - trace.marker.cmin)
    nearest = min(scale, key=lambda pc: abs(pc[0] - zero_pos))
    assert abs(nearest[0] - zero_pos) < 1e-9
    assert nearest[1] == sample_colorscale(explore.DIVERGING_SCALE, [0.5])[0]
    assert "B" not in trace.marker.colorbar.title.text and "recall" in trace.marker.colorbar.title.text
    assert sorted(trace.ids) == sorted(a.index)


def test_gained_and_lost_follow_the_definition(base: Run, other: Run) -> None:
    a, b = _csv(base), _csv(other)
    valid = _valid_pairs(a, b, "recall")
    for threshold in (0.0, 0.5):
        gained, lost = compare.gained_and_lost(base, other, "recall", threshold)
        exp_gained = {n for n in valid if a.loc[n, "recall"] <= threshold < b.loc[n, "recall"]}
        exp_lost = {n for n in valid if b.loc[n, "recall"] <= threshold < a.loc[n, "recall"]}
        assert set(gained.index) == exp_gained and set(lost.index) == exp_lost
        assert list(gained["difference"]) == sorted(gained["difference"], reverse=True)
        assert list(lost["difference"]) == sorted(lost["difference"])
    assert exp_gained or exp_lost  # the fixture runs differ at 0.5 at least
    none_gained, none_lost = compare.gained_and_lost(base, base)
    assert none_gained.empty and none_lost.empty
    with pytest.raises(ValueError):
        compare.gained_and_lost(base, other, threshold=1.0)


# ------------------------------------------------------------- paired test
def test_paired_tests_match_scipy_on_the_comparable_nodes(base: Run, other: Run) -> None:
    result = compare.paired_tests(base, other)
    assert list(result.index) == list(compare.TESTED_METRICS)
    a, b = _csv(base), _csv(other)
    for metric in compare.TESTED_METRICS:
        column = compare.METRICS[metric]
        nodes = _valid_pairs(a, b, column)
        x, y = a.loc[nodes, column].to_numpy(), b.loc[nodes, column].to_numpy()
        row = result.loc[metric]
        assert row["n_pairs"] == len(nodes)
        assert row["n_nonzero"] == int(np.sum(y != x))
        assert row["mean_base"] == pytest.approx(x.mean()) and row["mean_other"] == pytest.approx(y.mean())
        assert row["median_difference"] == pytest.approx(np.median(y - x))
        reference = wilcoxon(y, x)
        assert row["statistic"] == pytest.approx(reference.statistic)
        assert row["p_value"] == pytest.approx(reference.pvalue)


def test_paired_tests_without_differences(base: Run) -> None:
    result = compare.paired_tests(base, base)
    assert (result["n_nonzero"] == 0).all()
    assert result["statistic"].isna().all()
    assert (result["p_value"] == 1.0).all()
    assert "not" in compare.PAIRED_TEST_NOTE and "independent" in compare.PAIRED_TEST_NOTE
    text = compare.paired_tests_text(result)
    assert (text["statistic"] == "n/a").all() and (text["p_value"] == "1").all()


def test_paired_tests_text_writes_missing_values_as_na() -> None:
    table = pd.DataFrame({"n_pairs": [0, 12], "n_nonzero": [0, 7], "mean_base": [np.nan, 0.25],
                          "mean_other": [np.nan, 0.5], "median_difference": [np.nan, -0.125],
                          "statistic": [np.nan, 3.0], "p_value": [np.nan, 0.000123456]}, index=["recall", "F1"])
    text = compare.paired_tests_text(table)
    assert text.loc["recall"].tolist() == ["0", "0", "n/a", "n/a", "n/a", "n/a", "n/a"]
    assert text.loc["F1"].tolist() == ["12", "7", "0.2500", "0.5000", "-0.1250", "3.0", "0.000123"]


# ------------------------------------------------------ layout and wording (issue 11)
LONG = "synthetic-class-wise-mean-focal-weighted-experiment-with-a-very-long-name-seed0"


def test_difference_sunburst_layout_does_not_depend_on_the_run_names(base: Run, other: Run) -> None:
    short = compare.difference_sunburst(base, other, "recall", names=("A", "B"))
    long = compare.difference_sunburst(base, other, "recall", names=(LONG, LONG + "-2"))
    # the colour bar's title takes width from the plot: it must not grow with the names
    title = long.data[0].marker.colorbar.title.text
    assert title == short.data[0].marker.colorbar.title.text and len(title) <= 20
    assert LONG not in title and not (long.layout.title and long.layout.title.text)
    assert long.layout.margin == short.layout.margin and long.layout.height == short.layout.height


def test_difference_sunburst_hover_names_the_runs_escaped(base: Run, other: Run) -> None:
    names = ("<b>plain</b>", "weighted %{id} & co")
    trace = compare.difference_sunburst(base, other, "recall", names=names).data[0]
    # plotly reads hover templates as HTML with %{...} fields: the names reach the hover only as escaped meta
    assert list(trace.meta) == ["&lt;b&gt;plain&lt;/b&gt;", "weighted %{id} &amp; co"]
    assert "plain" not in trace.hovertemplate and "weighted" not in trace.hovertemplate
    assert "%{meta[0]}" in trace.hovertemplate and "%{meta[1]}" in trace.hovertemplate


@pytest.mark.parametrize("seconds", [0.0176, 0.18, 1.5, 12.34, 250.0])
def test_seconds_per_epoch_keeps_three_significant_digits(seconds: float) -> None:
    table = pd.DataFrame({"A": [seconds]}, index=pd.Index(["seconds per epoch"], name="metric"))
    text = compare.headline_text(table).loc["seconds per epoch", "A"]
    assert float(text) == pytest.approx(seconds, rel=0.005)


def _copy_with_data(run: Run, dest: Path, data_dir: str | None, source: dict[str, str], dataset: str) -> Run:
    """A copy of ``run`` whose config.json records another dataset name, data_dir and data files."""
    shutil.copytree(run.path, dest)
    doc = json.loads((dest / "config.json").read_text())
    doc["train"]["data_dir"] = data_dir
    doc["dataset"]["source"] = source
    doc["dataset"]["name"] = dataset
    (dest / "config.json").write_text(json.dumps(doc))
    return load_run(dest)


def test_config_differences_compare_the_data_read_not_the_data_dir_option(base: Run, tmp_path: Path) -> None:
    files = {split: f"/data/hmc/datasets_FUN/cellcycle_FUN/cellcycle_FUN.{split}.arff"
             for split in ("train", "valid", "test")}
    from_env = _copy_with_data(base, tmp_path / "env", None, files, "cellcycle_FUN")  # $HMLC_DATA_DIR at training
    given = _copy_with_data(base, tmp_path / "given", "/data/hmc", files, "cellcycle_FUN")  # --data-dir
    assert from_env.config.data_dir != given.config.data_dir
    assert compare.config_differences({"env": from_env, "given": given}).empty  # the same files were read
    moved = {split: path.replace("/data/hmc", "/elsewhere") for split, path in files.items()}
    other_copy = _copy_with_data(base, tmp_path / "other", "/elsewhere", moved, "cellcycle_FUN")
    table = compare.config_differences({"env": from_env, "other": other_copy})
    assert list(table.index) == ["data read"]
    assert table.loc["data read", "env"] == "/data/hmc/datasets_FUN/cellcycle_FUN"
    assert table.loc["data read", "other"] == "/elsewhere/datasets_FUN/cellcycle_FUN"
    # synthetic data ignores data_dir altogether
    synth = _copy_with_data(base, tmp_path / "synth", "/some/dir", dict(base.dataset_info["source"]), "synthetic")
    assert compare.config_differences({"A": base, "B": synth}).empty


# ---------------------------------------------------------------- default pair
def test_default_pair_opens_the_demo_pair_plain_first() -> None:
    datasets = {"demo": "synthetic", "demo-weighted": "synthetic", "mine": "synthetic", "fun": "cellcycle_FUN"}
    assert compare.DEMO_PAIR == ("demo", "demo-weighted")
    assert compare.default_pair("demo", datasets) == ["demo", "demo-weighted"]
    assert compare.default_pair("demo-weighted", datasets) == ["demo", "demo-weighted"]  # the plain one is the baseline
    assert compare.default_pair(None, datasets) == ["demo", "demo-weighted"]  # no sidebar choice yet: the first key
    # Without its partner a demo run is an ordinary run.
    assert compare.default_pair("demo", {"demo": "synthetic", "mine": "synthetic"}) == ["demo", "mine"]


def test_default_pair_takes_another_run_of_the_same_dataset() -> None:
    datasets = {"demo": "synthetic", "demo-weighted": "synthetic", "fun_a": "cellcycle_FUN", "go": "cellcycle_GO",
                "fun_b": "cellcycle_FUN", "broken": None}
    assert compare.default_pair("fun_a", datasets) == ["fun_a", "fun_b"]  # not the next key, "go"
    assert compare.default_pair("fun_b", datasets) == ["fun_b", "fun_a"]
    assert compare.default_pair("go", datasets) == ["go"]  # nothing to compare it with
    assert compare.default_pair("broken", datasets) == ["broken"]  # unknown dataset: no guess
    assert compare.default_pair("gone", datasets) == ["demo", "demo-weighted"]  # unknown key: the first key
    mine = {"a": "synthetic", "b": "cellcycle_FUN", "c": "synthetic"}
    assert compare.default_pair("c", mine) == ["c", "a"]
    assert compare.default_pair(None, {}) == []


def test_curves_shorten_long_names_in_the_legend_and_escape_them(base: Run, other: Run) -> None:
    odd = "<i>x</i> %{y}"
    runs = {LONG: base, odd: other}
    for fig in (compare.recall_by_depth_figure(runs), compare.recall_vs_frequency_figure(runs)):
        named = [t for t in fig.data if t.showlegend is not False]
        assert [t.meta[0] for t in named] == [LONG, "&lt;i&gt;x&lt;/i&gt; %{y}"]  # full names, for the hover
        long_legend = named[0].name
        assert len(long_legend) <= 40 and long_legend.startswith(LONG[:15]) and long_legend.endswith(LONG[-10:])
        assert named[1].name == "&lt;i&gt;x&lt;/i&gt; %{y}"  # legends are HTML too
        for trace in fig.data:
            assert "%{meta[0]}" in trace.hovertemplate and LONG not in trace.hovertemplate
            assert "<i>" not in trace.hovertemplate


def test_difference_sunburst_can_be_centred_on_a_node(base: Run, other: Run) -> None:
    trace = compare.difference_sunburst(base, other, "recall", root="2.1").data[0]
    assert trace.level == "2.1"
    assert compare.difference_sunburst(base, other, "F1").data[0].level is None


def test_difference_sunburst_of_a_large_hierarchy_sends_only_the_drawn_sectors(
        base: Run, other: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    h = base.hierarchy
    full = compare.difference_sunburst(base, other, "recall", root="2").data[0]
    assert sorted(full.ids) == sorted(h.nodes)  # at most SUNBURST_MAX_SECTORS nodes: every node
    monkeypatch.setattr(explore, "SUNBURST_MAX_SECTORS", 10)  # the synthetic run counts as large
    rings = 2
    for centre in (None, "2", "2.1"):
        trace = compare.difference_sunburst(base, other, "recall", root=centre, maxdepth=rings).data[0]
        expected = [h.nodes[i] for i in explore.sunburst_sectors(h, centre, rings)]
        assert list(trace.ids) == expected and len(expected) < h.n_nodes
        diff = compare.node_difference(base, other, "recall")
        shown = [row[5] for row in trace.customdata]  # each sector keeps its own hover row
        assert shown == [round(v, 3) if np.isfinite(v) else None for v in diff.loc[expected, "difference"]]
