"""AppTest tests of the Compare page (app_pages/compare.py).

The page is reached with ``switch_page`` after the app's first run (see the
note in tests/test_app.py); its widgets are bound to query parameters,
which the tests also set directly, as a shared URL would. Expected numbers come
from the runs' files (summary.json, node_metrics.csv) and scipy, not from
hmlc_core.views.compare.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon
from streamlit.testing.v1 import AppTest

from helpers import only_runs_in, open_app
from app_pages import common as app_common
from hmlc_core.data import HMCDataset, Split
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.runs import save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train

PAGE = "app_pages/compare.py"
ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture(scope="module")
def runs_root(synthetic_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder: run_a (the shared synthetic run), run_b (other options, same tree) and tiny (another hierarchy)."""
    root = tmp_path_factory.mktemp("compare_runs")
    shutil.copytree(synthetic_run, root / "run_a")
    dataset = make_synthetic(seed=0)
    config = TrainConfig(dataset="synthetic", epochs=4, heads=3, seed=1, weighting="none", focal="none")
    save_run(root / "run_b", train(config, dataset), dataset)
    h = Hierarchy([("root", "A"), ("root", "B"), ("A", "A1")])
    rng = np.random.default_rng(0)

    def split(n: int) -> Split:
        return Split(X=rng.normal(size=(n, 3)).astype(np.float32),
                     Y=h.label_matrix([["A1"] if i % 2 else ["B"] for i in range(n)]))

    tiny = HMCDataset(name="tiny", hierarchy=h, feature_names=["f0", "f1", "f2"], train=split(20),
                      valid=split(10), test=split(10), source={"train": "synthetic"})
    save_run(root / "tiny", train(TrainConfig(dataset="tiny", epochs=1, heads=1, hidden=8), tiny), tiny)
    return root


@pytest.fixture
def app_env(runs_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The three runs of ``runs_root`` are the only runs (no demo, empty local runs/ folder)."""
    return only_runs_in(runs_root, tmp_path, monkeypatch)


def _page(**query: str | list[str]) -> AppTest:
    return open_app(PAGE, **query)


def _csv(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "node_metrics.csv", index_col="node", dtype={"node": str})


def _difference_colours(at: AppTest) -> pd.Series:
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["data"][0]["type"] == "sunburst")
    trace = spec["data"][0]
    return pd.Series(np.asarray(trace["marker"]["colors"], dtype=float), index=trace["ids"])


def _comparable(a: pd.DataFrame, b: pd.DataFrame, column: str) -> list[str]:
    keep = a["evaluated"] & (a["support"] > 0) & (b["support"] > 0) & a[column].notna() & b[column].notna()
    return list(a.index[keep])


_TABLES = {  # how to recognise each table of the page (AppTest dataframes without a selection carry no key)
    "headline": lambda t: t.index.name == "metric",
    "configs": lambda t: t.index.name == "option",
    "gained": lambda t: "difference" in t.columns,
    "lost": lambda t: "difference" in t.columns,
    "paired_tests": lambda t: "p_value" in t.columns,
}


def _table(at: AppTest, name: str) -> pd.DataFrame:
    """The page's table ``name``; "gained" is the first table of node differences, "lost" the second."""
    found = [d.value for d in at.dataframe if _TABLES[name](d.value)]
    return found[1] if name == "lost" else found[0]


def test_default_compares_the_sidebar_run_with_another(app_env: Path) -> None:
    at = _page(run="run_a")
    assert not at.exception and not at.main.error
    assert at.title[0].value == "Compare runs"
    assert at.multiselect(key="runs").value == ["run_a", "run_b"]
    assert at.multiselect(key="runs").options == ["run_a", "run_b", "tiny"]
    assert at.selectbox(key="baseline").value == "run_a" and at.selectbox(key="other").value == "run_b"
    headline = _table(at, "headline")
    for name in ("run_a", "run_b"):
        summary = json.loads((app_env / name / "summary.json").read_text())
        assert headline.loc["micro AUPRC", name] == f"{summary['auprc_micro']:.3f}"
        assert headline.loc["macro recall", name] == f"{summary['macro_recall']:.3f}"
        assert headline.loc["heads", name] == str(summary["heads"])
    configs = _table(at, "configs")
    assert {"weighting", "focal", "seed", "heads"} <= set(configs.index)
    a, b = _csv(app_env / "run_a"), _csv(app_env / "run_b")
    nodes = _comparable(a, b, "recall")
    colours = _difference_colours(at)
    np.testing.assert_allclose(colours[nodes], b.loc[nodes, "recall"] - a.loc[nodes, "recall"], atol=1e-4)
    titles = [json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "") for c in at.get("plotly_chart")]
    assert any("by depth" in t for t in titles) and any("training frequency" in t for t in titles)


def test_default_is_another_run_of_the_same_dataset(app_env: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # A second "tiny" run in a folder listed after runs_root's: the chooser lists run_a, run_b, tiny, tiny_copy,
    # so the first other run (run_a, synthetic) is not the one to compare tiny with.
    shutil.copytree(app_env / "tiny", tmp_path / "more" / "tiny_copy")
    monkeypatch.setenv("HMLC_RUNS_DIR", os.pathsep.join([str(app_env), str(tmp_path / "more")]))
    at = _page(run="tiny")
    assert not at.exception and not at.main.error
    assert at.multiselect(key="runs").value == ["tiny", "tiny_copy"]
    assert at.selectbox(key="baseline").value == "tiny" and at.selectbox(key="other").value == "tiny_copy"
    monkeypatch.setenv("HMLC_RUNS_DIR", str(app_env))
    at = _page(run="tiny")  # no other run of its dataset: the page asks for one instead of failing on run_a
    assert not at.exception and not at.main.error
    assert at.multiselect(key="runs").value == ["tiny"]
    assert any("No other run of the sidebar run's dataset" in i.value for i in at.info)


@pytest.mark.parametrize("sidebar_run", ["demo", "demo-weighted"])
def test_default_on_a_demo_run_is_the_bundled_pair(sidebar_run: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _page(run=sidebar_run)
    assert not at.exception and not at.main.error
    assert at.multiselect(key="runs").value == ["demo", "demo-weighted"]
    assert at.selectbox(key="baseline").value == "demo" and at.selectbox(key="other").value == "demo-weighted"
    assert set(_table(at, "configs").index) == {"weighting", "focal"}  # a matched pair
    headline = _table(at, "headline")
    plain, weighted = (json.loads((ASSETS / folder / "summary.json").read_text())
                       for folder in ("demo_run", "demo_weighted_run"))
    assert headline.loc["macro recall", "demo"] == f"{plain['macro_recall']:.3f}"
    assert headline.loc["macro recall", "demo-weighted"] == f"{weighted['macro_recall']:.3f}"


def test_baseline_and_metric_change_the_difference(app_env: Path) -> None:
    at = _page(run="run_a")
    before = _difference_colours(at)
    at.selectbox(key="baseline").set_value("run_b").run()
    assert not at.exception
    assert at.selectbox(key="other").value == "run_a"
    named = f"Compared run **{app_common.md_text('run_a')}**, baseline **{app_common.md_text('run_b')}**"
    assert any(named in c.value for c in at.caption)
    a, b = _csv(app_env / "run_a"), _csv(app_env / "run_b")
    nodes = _comparable(a, b, "recall")
    np.testing.assert_allclose(_difference_colours(at)[nodes], -before[nodes], atol=2e-4)
    at.radio(key="metric").set_value("F1").run()
    assert not at.exception
    nodes = _comparable(a, b, "f1")
    np.testing.assert_allclose(_difference_colours(at)[nodes], a.loc[nodes, "f1"] - b.loc[nodes, "f1"], atol=1e-4)


def test_gained_lost_and_paired_tests(app_env: Path) -> None:
    at = _page(run="run_a", runs=["run_a", "run_b"])
    a, b = _csv(app_env / "run_a"), _csv(app_env / "run_b")
    nodes = _comparable(a, b, "recall")
    gained, lost = _table(at, "gained"), _table(at, "lost")
    assert set(gained.index) == {n for n in nodes if a.loc[n, "recall"] == 0 < b.loc[n, "recall"]}
    assert set(lost.index) == {n for n in nodes if b.loc[n, "recall"] == 0 < a.loc[n, "recall"]}
    at.select_slider(key="gain_threshold").set_value(0.5).run()
    assert not at.exception
    assert set(_table(at, "gained").index) == {n for n in nodes if a.loc[n, "recall"] <= 0.5 < b.loc[n, "recall"]}
    tests = _table(at, "paired_tests")
    for metric, column in (("recall", "recall"), ("F1", "f1"), ("average precision", "average_precision")):
        pairs = _comparable(a, b, column)
        reference = wilcoxon(b.loc[pairs, column], a.loc[pairs, column])
        assert int(tests.loc[metric, "n_pairs"]) == len(pairs)
        assert float(tests.loc[metric, "p_value"]) == pytest.approx(reference.pvalue, rel=5e-3)
    assert any("not independent" in c.value or "independent" in c.value for c in at.caption)


def test_runs_from_the_url_and_unknown_ones(app_env: Path) -> None:
    at = _page(run="run_a", runs=["run_b", "run_a", "gone"])
    assert not at.exception
    assert any("gone" in w.value for w in at.warning)
    assert at.multiselect(key="runs").value == ["run_b", "run_a"]
    assert at.selectbox(key="baseline").value == "run_b"


def test_different_hierarchies_are_refused_with_the_run_names(app_env: Path) -> None:
    at = _page(run="run_a", runs=["run_a", "tiny"])
    assert not at.exception
    assert len(at.main.error) == 1
    message = at.main.error[0].value
    # the error names the runs as text (markdown-escaped: run\_a)
    assert app_common.md_text("run_a") in message and "tiny" in message and "different hierarchies" in message
    assert not at.get("plotly_chart")


def test_fewer_than_two_runs(app_env: Path, synthetic_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMLC_RUNS_DIR", str(synthetic_run.parent))
    at = _page()
    assert not at.exception
    assert any("at least two runs" in i.value for i in at.info)
    assert not at.multiselect
    monkeypatch.setenv("HMLC_RUNS_DIR", str(app_env))
    at = _page(run="run_a", runs=["run_a"])
    assert at.multiselect(key="runs").value == ["run_a"]
    assert any("at least two" in i.value for i in at.info)
    assert not at.get("plotly_chart")


def test_gained_and_lost_tables_lead_with_the_values_under_short_headers(app_env: Path) -> None:
    at = _page(runs=["run_a", "run_b"])
    assert not at.exception
    tables = [d for d in at.dataframe if "difference" in d.value.columns]
    assert len(tables) == 2
    for table in tables:
        # the values first, under headers without the run names, so they fit the page's narrow column
        assert list(table.proto.column_order)[:3] == ["base", "other", "difference"]
        labels = [c.get("label", "") for c in json.loads(table.proto.columns).values()]
        assert labels and not any("run_a" in label or "run_b" in label for label in labels)


def test_runs_are_shown_by_name_and_kept_in_the_url_by_key(runs_root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc_core.registry import Registry

    root = tmp_path / "named_runs"
    for folder in ("run_a", "run_b"):
        shutil.copytree(runs_root / folder, root / folder)
    only_runs_in(root, tmp_path, monkeypatch)
    registry = Registry(root)
    run_b = next(r for r in registry.sync() if r.folder == "run_b")
    registry.rename(run_b.id, "plain *3 heads*")
    at = open_app(PAGE, runs=["run_a", "run_b"])
    assert not at.exception
    assert at.multiselect(key="runs").value == ["run_a", "run_b"]  # the bound widget, the URL: keys
    shown = at.multiselect(key="runs" + app_common.SHOWN_SUFFIX)
    assert shown.value == ["run_a", "run_b"]
    assert shown.options == ["run_a · synthetic", "plain *3 heads* · synthetic · run_b"]
    assert at.selectbox(key="other" + app_common.SHOWN_SUFFIX).options == ["plain *3 heads* · synthetic · run_b"]
    assert any(r"Differences: **plain \*3 heads\* − run\_a**" in c.value for c in at.caption)
    assert list(_table(at, "headline").columns) == ["run_a", "plain *3 heads*"]  # tables name the runs


def test_a_large_hierarchy_difference_sends_the_drawn_sectors_as_a_new_chart_per_centre(
        app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc_core.views import explore

    rings = explore.sunburst_rings
    app_common.compare_difference_sunburst.clear()  # figures cached by earlier tests were drawn unpruned
    monkeypatch.setattr(explore, "SUNBURST_MAX_SECTORS", 10)  # the synthetic run counts as large
    monkeypatch.setattr(explore, "sunburst_rings", lambda h, max_sectors=10: rings(h, max_sectors))
    at = _page(run="run_a")
    assert not at.exception
    hierarchy = Hierarchy.from_dict(json.loads((app_env / "run_a" / "hierarchy.json").read_text()))

    def chart() -> tuple[str, list[str]]:
        element = next(c for c in at.get("plotly_chart") if json.loads(c.proto.spec)["data"][0]["type"] == "sunburst")
        return element.proto.id, json.loads(element.proto.spec)["data"][0]["ids"]

    first_id, ids = chart()
    assert ids == [hierarchy.nodes[i] for i in explore.sunburst_sectors(hierarchy, None, rings(hierarchy, 10))]
    assert len(ids) < hierarchy.n_nodes
    at.session_state["_hmlc_difference_centre"] = "2"  # what a click on sector 2 stores
    at.run()
    assert not at.exception
    second_id, ids = chart()
    centre = explore.sunburst_centre(hierarchy, "2")
    assert ids == [hierarchy.nodes[i] for i in explore.sunburst_sectors(hierarchy, centre, rings(hierarchy, 10))]
    # a new chart per centre (its key, the end of the element id): the browser keeps no zoom of the old one
    assert first_id.endswith("-difference:1") and second_id.endswith("-difference:2")
    app_common.compare_difference_sunburst.clear()  # nor leave pruned figures to the tests after this one
