"""AppTest tests of the Missed nodes page (app_pages/missed.py).

Expected tables come from a plain pandas filter of the run's node_metrics.csv
and the comparison numbers from summary.json, not from hmlc_core.views.diagnose.
The page is reached with ``switch_page`` after the app's first run (see the
note in tests/test_app.py); its filters are bound to query parameters,
which the tests also set directly, as a shared URL would.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from helpers import open_app
from app_pages import common as app_common
from hmlc_core.runs import load_run

PAGE = "app_pages/missed.py"


def _page(**query: str | list[str]) -> AppTest:
    return open_app(PAGE, **query)


def _expected(run_dir: Path, below: float = 0.5, zero: bool = False, depth: tuple[int, int] = (0, 99),
              support: tuple[int, int] = (1, 10 ** 9)) -> set[str]:
    nm = pd.read_csv(run_dir / "node_metrics.csv", index_col="node", dtype={"node": str})
    keep = nm["evaluated"] & ((nm["recall"] == 0) if zero else (nm["recall"] < below))
    keep &= nm["depth"].between(*depth) & nm["support"].between(*support)
    return set(nm.index[keep])


def _table(at: AppTest) -> pd.DataFrame:
    return at.dataframe[0].value


def _figures(at: AppTest) -> dict[str, dict]:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {s["layout"]["title"]["text"]: s for s in specs}


def _outlined(fig: dict) -> set[str]:
    return set(next(t for t in fig["data"] if t.get("name") == "nodes in the table").get("text", []))


def test_missed_page_renders_the_default_view(app_env: Path) -> None:
    at = _page(run=app_env.name)
    assert not at.exception and not at.warning
    assert at.title[0].value == f"Missed nodes · {app_common.md_text(app_env.name)}"
    want = _expected(app_env)
    table = _table(at)
    assert set(table.index) == want and want
    assert (table["recall"] < 0.5).all() and (table["support"] >= 1).all()
    assert at.subheader[0].value == f"{len(want)} missed nodes"
    assert [b.proto.label for b in at.get("download_button")] == ["Download table (CSV)"]
    figs = _figures(at)
    assert set(figs) == {"Recall vs training frequency", "Recall vs depth",
                         "Deepest correct level vs true depth (test examples)"}
    assert figs["Recall vs training frequency"]["layout"]["xaxis"]["type"] == "log"
    assert _outlined(figs["Recall vs training frequency"]) == want
    assert _outlined(figs["Recall vs depth"]) == want
    summary = load_run(app_env).summary
    scores = at.dataframe[1].value
    assert scores.loc["recall", "flat macro"] == pytest.approx(summary["macro_recall"])
    assert scores.loc["F1", "flat macro"] == pytest.approx(summary["macro_f1"])
    assert scores.loc["recall", "hierarchical (hP, hR, hF)"] == pytest.approx(scores.loc["recall", "flat micro"])


def test_recall_slider_changes_the_table_and_the_charts(app_env: Path) -> None:
    at = _page(run=app_env.name)
    before = set(_table(at).index)
    assert before  # a 3-epoch run misses many nodes
    at.slider(key="recall_below").set_value(0.0).run()  # recall < 0: nothing
    assert not at.exception
    assert _table(at).empty and at.subheader[0].value == "0 missed nodes"
    assert _outlined(_figures(at)["Recall vs depth"]) == set()
    at.slider(key="recall_below").set_value(0.95).run()
    after = set(_table(at).index)
    assert after == _expected(app_env, below=0.95) and after >= before
    figs = _figures(at)
    assert _outlined(figs["Recall vs depth"]) == after
    assert [s["y0"] for s in figs["Recall vs depth"]["layout"]["shapes"]] == [0.95]


def test_zero_recall_toggle_and_depth_filter(app_env: Path) -> None:
    at = _page(run=app_env.name)
    at.toggle(key="zero_recall").set_value(True).run()
    assert not at.exception
    assert set(_table(at).index) == _expected(app_env, zero=True)
    assert (_table(at)["recall"] == 0).all()
    assert at.slider(key="recall_below").disabled
    at.slider(key="depth_range").set_value((3, 3)).run()
    assert set(_table(at).index) == _expected(app_env, zero=True, depth=(3, 3))
    assert set(_table(at)["depth"]) <= {3}


def test_query_params_reproduce_a_view(app_env: Path) -> None:
    at = _page(run=app_env.name, recall_below="0.3", depth_range=["2", "3"], support_range=["5", "40"])
    assert not at.exception
    assert at.slider(key="recall_below").value == pytest.approx(0.3)
    assert at.slider(key="depth_range").value == (2, 3)
    assert at.slider(key="support_range").value == (5, 40)
    assert set(_table(at).index) == _expected(app_env, below=0.3, depth=(2, 3), support=(5, 40))


def _explorer_links(at: AppTest) -> list[dict[str, list[str]]]:
    """Query parameters of the page's links to the Hierarchy explorer (``<a href="hierarchy?...">``)."""
    hrefs = re.findall(r'href="([^"]*)"', "".join(h.proto.body for h in at.get("html")))
    parts = [urlsplit(html.unescape(href)) for href in hrefs]
    return [parse_qs(part.query) for part in parts if part.path == "hierarchy"]


@pytest.mark.parametrize("filters", [{}, {"depth_range": ["2", "3"], "recall_below": "0.3"}])
def test_selected_node_opens_in_the_explorer(app_env: Path, filters: dict) -> None:
    depth = tuple(int(d) for d in filters.get("depth_range", ["0", "99"]))
    node = sorted(_expected(app_env, below=float(filters.get("recall_below", 0.5)), depth=depth))[0]
    at = _page(run=app_env.name, node=node, **filters)
    assert not at.exception
    assert any(f"Selected **{node.replace('.', chr(92) + '.')}**" in m.value for m in at.markdown)
    links = _explorer_links(at)
    assert links == [{"run": [app_env.name], "node": [node]}]
    # Following the link loads the explorer from the URL alone, as a fresh page view does.
    explorer = open_app("app_pages/explorer.py", **{k: v[0] for k, v in links[0].items()})
    assert not explorer.exception
    assert explorer.title[0].value.startswith("Hierarchy explorer")
    assert explorer.selectbox(key="node").value == node


def test_missed_page_renders_the_bundled_demo_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _page()
    assert not at.exception and not at.warning
    assert set(_table(at).index) == _expected(app_common.DEMO_RUN_DIR)
    # the three charts, and the micro/macro F1 trade-off: the demo keeps held-out predictions
    assert [c.key for c in at.get("plotly_chart")] == ["recall_vs_frequency", "recall_vs_depth", "deepest_level",
                                                       "tradeoff"]


def test_missed_table_leads_with_recall_precision_f1(app_env: Path) -> None:
    nm = pd.read_csv(app_env / "node_metrics.csv", index_col="node", dtype={"node": str})
    at = _page(run=app_env.name, support_range=["0", str(int(nm.loc[nm["evaluated"], "support"].max()))])
    assert not at.exception
    table = at.dataframe[0]
    assert list(table.proto.column_order)[:3] == ["recall", "precision", "f1"]
    assert list(table.proto.column_order)[-1] == "path"  # the widest column last
    assert sorted(table.proto.column_order) == sorted(table.value.columns)  # each column once
    shown = table.value
    without = [n for n in shown.index if nm.loc[n, "support"] == 0]
    assert without and all(shown.loc[n, "average_precision"] == "n/a" for n in without)
