"""Hostile node ids, run and dataset names stay text: never HTML, markdown or a spreadsheet formula (issue 13).

A small run is trained on the synthetic dataset with some node ids replaced by payloads (an ``<img onerror>``,
``<script>``, a title holding ``href``, markdown image links, ``=HYPERLINK(...)``), and registered under a
hostile run name. The tests check the pyvis neighbourhood page (no HTML tooltip, no raw payload), the text
and plotly elements of the explorer, Missed nodes and Compare pages (AppTest), and the Missed nodes CSV.
:func:`build_hostile_runs` is also used by tests/test_e2e_hostile.py.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hmlc_core.data import HMCDataset
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.registry import Registry
from hmlc_core.runs import load_run, save_run
from hmlc_core.safe_text import FORMULA_STARTS, csv_cell, csv_safe_frame, restore_csv_cell
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train
from hmlc_core.views import diagnose, explore

BEACON = "http://127.0.0.1:{port}"
"""Where the payloads' links and images point (a port nothing listens on; the browser test watches for it)."""


def hostile_nodes(port: int) -> dict[str, str]:
    """Synthetic node id -> hostile replacement (links point at ``127.0.0.1:port``)."""
    beacon = BEACON.format(port=port)
    return {
        "1": "<img src=x onerror=\"window.__pwned=1;console.log('PWNED')\">",
        "2": "href <b>x</b><script>window.__pwned=2;console.log('PWNED')</script>",
        "3": f'=HYPERLINK("{beacon}/csv","x")',
        "1.1": f"![x]({beacon}/beacon-node) [link]({beacon}/link) **bold**",
        "2.1": "</script><script>window.__pwned=3;console.log('PWNED')</script><!--",
        "1.2": "-2+3",
        "3.1": "@SUM(1)",
        "3.2": "+cmd|' /C calc'!A0",
        "1.3": "HREF <a href=\"javascript:window.__pwned=4\">click</a>",
    }


def hostile_run_name(port: int) -> str:
    beacon = BEACON.format(port=port)
    return f"![run]({beacon}/beacon-run) <img src=x onerror=\"window.__pwned=5\"> =HYPERLINK(\"{beacon}\")"


def hostile_dataset_name(port: int) -> str:
    return f"![d]({BEACON.format(port=port)}/beacon-dataset) <b>ds</b>"


def _hostile_dataset(port: int) -> HMCDataset:
    data = make_synthetic(seed=0)
    rename = hostile_nodes(port)
    old = data.hierarchy
    new = Hierarchy([(rename.get(a, a), rename.get(b, b)) for a, b in old.graph.edges],
                    nodes=[rename.get(n, n) for n in old.nodes])
    columns = [old.index[n] for n in sorted(old.nodes, key=lambda n: new.index[rename.get(n, n)])]

    def split(s: Any) -> Any:
        return None if s is None else dataclasses.replace(s, Y=s.Y[:, columns])

    return dataclasses.replace(data, name=hostile_dataset_name(port), hierarchy=new, train=split(data.train),
                               valid=split(data.valid), test=split(data.test))


def build_hostile_runs(root: Path, port: int) -> list[Path]:
    """Two 1-epoch, 2-head runs (seeds 0, 1) of the hostile dataset in ``root``, registered with hostile names.

    Returns the run folders; the registry in ``root`` names them :func:`hostile_run_name` and that name + " 2".
    """
    data = _hostile_dataset(port)
    paths = [save_run(root / f"hostile{seed}", train(TrainConfig(dataset="synthetic", epochs=1, heads=2,
                                                                 seed=seed), data), data)
             for seed in (0, 1)]
    registry = Registry(root)
    try:
        records = {r.path.resolve(): r for r in registry.sync()}
        for i, path in enumerate(paths):
            registry.rename(records[path.resolve()].id, hostile_run_name(port) + ("" if i == 0 else " 2"))
    finally:
        registry.close()
    return paths


PORT = 9  # the discard port: nothing is fetched in these tests
HOSTILE = [*hostile_nodes(PORT).values(), hostile_run_name(PORT), hostile_dataset_name(PORT)]
HTML_HOSTILE = [h for h in HOSTILE if "<" in h]
"""Names that are HTML: a page, tooltip or plotly text must never hold them raw."""
MARKDOWN_HOSTILE = [h for h in HOSTILE if "](" in h or "<" in h or "**" in h]
"""Names that are markdown (or HTML): a markdown element must never hold them unescaped."""


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return build_hostile_runs(tmp_path_factory.mktemp("hostile_runs"), PORT)


# ----------------------------------------------------------------------------------------------- pyvis page


def _vis_nodes(page: str) -> list[dict[str, Any]]:
    match = re.search(r"nodes = new vis\.DataSet\((.*?)\);\n", page)
    assert match, "no node data in the pyvis page"
    return json.loads(match.group(1))


@pytest.mark.parametrize("key", ["1", "2", "1.1", "2.1", "1.3"])
def test_pyvis_page_has_no_html_tooltip_and_no_raw_name(hostile_runs: list[Path], key: str) -> None:
    run = load_run(hostile_runs[0])
    node = hostile_nodes(PORT)[key]
    page = explore.pyvis_html(run, node)
    assert "innerHTML = nodeData" not in page and "popup.innerHTML" not in page  # pyvis's tooltip_link path
    shown = explore.neighbourhood(run.hierarchy, node)
    for name in shown:
        if name in HTML_HOSTILE:
            assert name not in page, f"raw {name!r} in the page"
    assert "<script>window.__pwned" not in page and "</script><script>window" not in page
    nodes = _vis_nodes(page)
    assert [n["id"] for n in nodes] == shown and [n["label"] for n in nodes] == shown  # ids and labels intact
    for n in nodes:
        assert "href" not in n["title"].lower()
        assert n["title"].replace(explore.WORD_JOINER, "") == explore.node_hover_text(run, n["id"])


def test_pyvis_page_refuses_html_tooltips(hostile_runs: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Without :func:`explore.vis_tooltip_text`, the "href" node would turn pyvis's HTML tooltips on: refused."""
    monkeypatch.setattr(explore, "vis_tooltip_text", lambda text: text)
    with pytest.raises(RuntimeError, match="HTML tooltips"):
        explore.pyvis_html(load_run(hostile_runs[0]), hostile_nodes(PORT)["2"])


@given(st.text())
def test_vis_tooltip_text_reads_the_same_and_never_holds_href(text: str) -> None:
    shown = explore.vis_tooltip_text(text)
    assert "href" not in shown.lower()
    if explore.WORD_JOINER not in text:
        assert shown.replace(explore.WORD_JOINER, "") == text


# ------------------------------------------------------------------------------------------- plotly figures

_TEXT_KEYS = {"text", "title", "labels", "hovertext", "ticktext", "name", "meta", "hovertemplate",
              "texttemplate", "annotation_text"}


def _texts(spec: Any, key: str | None = None) -> Iterator[str]:
    """Strings a plotly figure spec shows as (a subset of) HTML: titles, labels, hover and legend text."""
    if isinstance(spec, dict):
        for k, v in spec.items():
            yield from _texts(v, k)
    elif isinstance(spec, list):
        for v in spec:
            yield from _texts(v, key)
    elif isinstance(spec, str) and key in _TEXT_KEYS:
        yield spec


def _raw_hostile(texts: Iterator[str]) -> list[str]:
    return [t for t in texts if any(h in t for h in HTML_HOSTILE) or "<img" in t or "<script" in t or "<a " in t]


def test_figures_escape_node_names(hostile_runs: list[Path]) -> None:
    run = load_run(hostile_runs[0])
    node = hostile_nodes(PORT)["1.1"]
    figures = [explore.sunburst_figure(run), diagnose.recall_frequency_figure(run, run.node_metrics.index, 0.5),
               explore.member_probs_figure(run.predictions(), run.hierarchy, node)]
    for fig in figures:
        assert _raw_hostile(_texts(fig.to_plotly_json())) == []


# --------------------------------------------------------------------------------------------------- pages

_TEXT_ELEMENTS = ("markdown", "caption", "title", "header", "subheader", "info", "warning", "error", "success")
_WIDGETS = ("selectbox", "multiselect", "radio", "slider", "select_slider", "text_input", "toggle", "checkbox",
            "number_input", "button")


def _page_texts(at: Any) -> Iterator[str]:
    for kind in _TEXT_ELEMENTS:
        for element in at.get(kind):
            yield str(element.value)
    for kind in _WIDGETS:
        for widget in at.get(kind):
            yield str(widget.label)
            if getattr(widget, "help", None):
                yield str(widget.help)
    for element in at.get("metric"):
        yield str(element.label)
        yield str(element.value)


@pytest.fixture
def hostile_app(hostile_runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from helpers import only_runs_in

    only_runs_in(hostile_runs[0].parent, tmp_path, monkeypatch)
    return hostile_runs[0]


@pytest.mark.parametrize("page, key", [("app_pages/explorer.py", "1.1"), ("app_pages/explorer.py", "2"),
                                       ("app_pages/missed.py", None), ("app_pages/overview.py", None),
                                       ("app_pages/how_it_works.py", None), ("app_pages/compare.py", None)])
def test_pages_show_hostile_names_as_text(hostile_app: Path, page: str, key: str | None) -> None:
    from helpers import open_app

    query = {"run": hostile_app.name}
    if key is not None:
        query["node"] = hostile_nodes(PORT)[key]
    if page.endswith("compare.py"):
        query["runs"] = [hostile_app.name, hostile_app.parent.joinpath("hostile1").name]
    at = open_app(page, **query)
    assert not at.exception, at.exception
    raw = [t for t in _page_texts(at) if any(h in t for h in MARKDOWN_HOSTILE) or "](http" in t]
    assert raw == [], raw
    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert specs, "no chart drawn"
    assert _raw_hostile(t for spec in specs for t in _texts(spec)) == []


def test_url_values_are_shown_as_text(hostile_app: Path) -> None:
    from helpers import open_app

    bad = f"![u]({BEACON.format(port=PORT)}/beacon-url)"
    at = open_app("app_pages/explorer.py", run=hostile_app.name, node=bad)
    texts = list(_page_texts(at))
    assert not any(bad in t for t in texts), texts
    assert any("beacon" in t for t in at.get("warning") for t in [str(t.value)])


# ------------------------------------------------------------------------------------------------------ CSV


@given(st.text())
def test_csv_cell_round_trips_and_never_starts_like_a_formula(text: str) -> None:
    cell = csv_cell(text)
    assert not cell.startswith(FORMULA_STARTS)
    assert restore_csv_cell(cell) == text


def test_csv_cell_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="expects a str"):
        csv_cell(-1.5)  # type: ignore[arg-type]


def test_csv_safe_frame_keeps_numbers() -> None:
    table = pd.DataFrame({"path": ["=a", "b"], "delta": [-0.5, 2.0], "n": [-3, 4]},
                         index=pd.Index(["-1", "@x"], name="node"))
    safe = csv_safe_frame(table)
    assert list(safe.index) == ["'-1", "'@x"] and list(safe["path"]) == ["'=a", "b"]
    assert safe["delta"].tolist() == [-0.5, 2.0] and safe["n"].tolist() == [-3, 4]
    assert safe["n"].dtype == table["n"].dtype
    assert list(table.index) == ["-1", "@x"]  # the input is not changed


def test_missed_nodes_csv_has_no_formula_cell(hostile_runs: list[Path]) -> None:
    run = load_run(hostile_runs[0])
    table = diagnose.missed_nodes(run, threshold=1.0, support=None)
    hostile_rows = [n for n in table.index if n.startswith(FORMULA_STARTS)]
    assert hostile_rows, "the table should hold a node whose id starts like a formula"
    raw = diagnose.table_csv(table).decode("utf-8")
    back = pd.read_csv(io.StringIO(raw), dtype={"node": str, "path": str})
    for column in ("node", "path"):
        assert not back[column].str.startswith(FORMULA_STARTS).any()
    assert back["node"].map(restore_csv_cell).tolist() == list(table.index)
    assert back["path"].map(restore_csv_cell).tolist() == list(table["path"])
    numeric = table.select_dtypes("number").columns
    assert np.allclose(back[numeric].to_numpy(dtype=float), table[numeric].to_numpy(dtype=float), equal_nan=True)
