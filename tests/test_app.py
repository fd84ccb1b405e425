"""AppTest tests of the Streamlit app (app.py, its run chooser) and the Hierarchy explorer (app_pages/explorer.py).

Charts and iframes cannot be clicked in AppTest; their content is read from the
element protos (plotly spec JSON, iframe srcdoc). The click handlers are unit
tests in test_explore.py.

Reaching a page (Streamlit 1.67): app.py gives every page a URL path that differs from its file name
(see the comment there), so each rerun runs app.py's frame (run chooser, navigation) and then the page,
in AppTest as in a browser. A page other than the default (Overview) is reached by running the app once
and then ``switch_page`` (:func:`_explorer`); changes of run are tested with a fresh AppTest and a ``run``
query parameter, as a URL would do, and page widgets are changed with ``set_value``.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from helpers import open_app
from app_pages import common as app_common
from hmlc_core.runs import load_run
from hmlc_core.uncertainty import UNCERTAINTY_LABELS

EXPLORER = "app_pages/explorer.py"


def _app(**query: str) -> AppTest:
    return open_app(**query)


def _explorer(**query: str) -> AppTest:
    """The app run once on its default page (sidebar checks), then switched to the Hierarchy explorer."""
    return open_app(EXPLORER, **query)


def _sunburst_spec(at: AppTest) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if s["data"][0]["type"] == "sunburst")


def _srcdoc(at: AppTest) -> str:
    frames = at.get("iframe")
    assert len(frames) == 1
    return frames[0].proto.srcdoc


def _alltext(at: AppTest) -> str:
    parts = [e.value for e in (*at.warning, *at.error, *at.sidebar.error, *at.info, *at.caption, *at.subheader)]
    return "\n".join(str(p) for p in parts)


def test_app_renders_the_run_from_the_url(app_env: Path) -> None:
    at = _app(run=app_env.name)
    assert not at.exception
    assert not at.warning
    assert at.selectbox(key="run").value == app_env.name
    assert "demo" in _alltext(at)  # the missing demo run is reported in the sidebar with the command
    assert "python -m hmlc_core demo" in "\n".join(e.value for e in at.sidebar.error)
    at.switch_page(EXPLORER).run()
    assert not at.exception and not at.warning
    nodes = load_run(app_env).hierarchy.nodes
    spec = _sunburst_spec(at)
    assert sorted(spec["data"][0]["ids"]) == sorted(nodes)
    assert at.selectbox(key="node").value == nodes[0]
    assert f'"{nodes[0]}"' in _srcdoc(at)
    assert any(m.label == "micro AUPRC" for m in at.metric)


def test_page_starts_with_its_title(app_env: Path) -> None:
    at = _explorer(run=app_env.name)
    # app.py's Plotly warm-up placeholder is emptied by the end of the run: nothing is drawn before the title
    assert at.main.children[0].type == "empty"
    first = at.main.children[1]
    while getattr(first, "children", None):  # containers: take their first element
        first = next(iter(first.children.values())) if isinstance(first.children, dict) else first.children[0]
    assert first.type == "title" and first.value == f"Hierarchy explorer · {app_common.md_text(app_env.name)}"


def test_app_accepts_a_run_path_in_the_url(app_env: Path) -> None:
    at = _app(run=str(app_env))
    assert not at.exception and not at.warning
    assert at.selectbox(key="run").value == app_env.name


def test_node_query_param_selects_the_node(app_env: Path) -> None:
    at = _explorer(run=app_env.name, node="2.3.1")
    assert not at.exception and not at.warning
    assert at.selectbox(key="node").value == "2.3.1"
    html = _srcdoc(at)
    assert '"2.3.1"' in html and '"2.3"' in html and '"2.3.1.1"' in html  # node, parent, child drawn
    assert any(s.value.endswith(app_common.md_text("2.3.1")) for s in at.subheader)  # escaped markdown


def test_node_selectbox_changes_the_neighbourhood(app_env: Path) -> None:
    at = _explorer(run=app_env.name)
    at.selectbox(key="node").set_value("3.1").run()
    assert not at.exception
    assert '"3.1.2"' in _srcdoc(at)
    assert '"1.1"' not in _srcdoc(at)


def test_colour_selector_changes_the_colours(app_env: Path) -> None:
    at = _explorer(run=app_env.name)
    assert at.radio(key="color").value == "recall"
    before = _sunburst_spec(at)["data"][0]["marker"]["colors"]
    at.radio(key="color").set_value("training frequency").run()
    assert not at.exception
    after = _sunburst_spec(at)["data"][0]["marker"]["colors"]
    assert before != after
    freq = load_run(app_env).node_metrics["train_frequency"].to_numpy(dtype=float)
    np.testing.assert_allclose(np.array(after, dtype=float), np.log10(1 + freq), atol=1e-3)


def test_invalid_run_in_url_warns_and_falls_back(app_env: Path) -> None:
    at = _app(run="no-such-run")
    assert not at.exception
    assert any(app_common.md_text("'no-such-run'") in w.value for w in at.warning)  # shown as text
    assert at.selectbox(key="run").value == app_env.name
    at.switch_page(EXPLORER).run()
    assert not at.exception
    assert sorted(_sunburst_spec(at)["data"][0]["ids"]) == sorted(load_run(app_env).hierarchy.nodes)


def test_invalid_node_in_url_warns_and_falls_back(app_env: Path) -> None:
    at = _explorer(run=app_env.name, node="GO:nothing")
    assert not at.exception
    assert any(app_common.md_text("'GO:nothing'") in w.value for w in at.warning)  # shown as text
    assert at.selectbox(key="node").value == "root"


def test_demo_run_is_the_default(synthetic_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(synthetic_run, tmp_path / "weighted_demo")
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", synthetic_run)
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", tmp_path / "weighted_demo")
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _app()
    assert not at.exception and not at.sidebar.error
    assert at.selectbox(key="run").value == "demo"
    assert at.selectbox(key="run").options == ["demo", "demo-weighted"]


def test_bundled_weighted_demo_opens_from_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _app(run="demo-weighted")
    assert not at.exception and not at.warning and not at.sidebar.error
    assert at.selectbox(key="run").value == "demo-weighted"
    assert list(at.selectbox(key="run").options[:2]) == ["demo", "demo-weighted"]
    assert any(str(app_common.DEMO_WEIGHTED_RUN_DIR) in c.value for c in at.sidebar.caption)
    # the title names the run as the chooser does, not by its folder (demo_weighted_run)
    assert at.title[0].value == f"Overview · {app_common.md_text('demo-weighted')}"


def test_no_runs_at_all_shows_how_to_make_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_common, "DEMO_RUN_DIR", tmp_path / "no_demo_run")
    monkeypatch.setattr(app_common, "DEMO_WEIGHTED_RUN_DIR", tmp_path / "no_demo_weighted_run")
    monkeypatch.setattr(app_common, "LOCAL_RUNS_DIR", tmp_path / "runs")
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _app()
    assert not at.exception
    assert any("python -m hmlc_core demo" in e.value for e in at.error)
    assert not at.get("plotly_chart")


def test_bundled_demo_run_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HMLC_RUNS_DIR", raising=False)
    at = _app()
    assert not at.exception
    assert at.selectbox(key="run").value == "demo"
    at.switch_page(EXPLORER).run()
    assert not at.exception
    ids = _sunburst_spec(at)["data"][0]["ids"]
    assert sorted(ids) == sorted(load_run(app_common.DEMO_RUN_DIR).hierarchy.nodes)


# ---------------------------------------------------------------- node card
def _chart(at: AppTest, trace_type: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return next(s for s in specs if s["data"] and s["data"][0]["type"] == trace_type)


def test_node_card_shows_member_probabilities_and_uncertainty_by_mode(app_env: Path) -> None:
    at = _explorer(run=app_env.name, node="1.2")
    assert not at.exception
    with np.load(app_env / "predictions.npz") as data:
        y, members = data["y_true"], data["member_probs"]
    nodes = load_run(app_env).hierarchy.nodes

    def expected(node: str) -> list[np.ndarray]:
        j = nodes.index(node)
        pos = y[:, j] == 1
        return [members[h, pos, j].astype(float) for h in range(members.shape[0])]

    boxes = _chart(at, "box")["data"]
    assert [b["name"] for b in boxes] == ["member 1", "member 2", "ensemble mean"]
    for box, want in zip(boxes[:2], expected("1.2"), strict=True):
        np.testing.assert_allclose(_numbers(box["y"]), want, rtol=1e-6)
    modes = next(d for d in at.dataframe if "uncertainty" in d.value.columns and "percentile" in d.value.columns)
    nm = pd.read_csv(app_env / "node_metrics.csv", index_col="node", dtype={"node": str})
    assert list(modes.value.index) == [UNCERTAINTY_LABELS[m] for m in modes.value["mode"]]
    for mode, value in zip(modes.value["mode"], modes.value["uncertainty"], strict=True):
        assert value == pytest.approx(nm.loc["1.2", f"uncertainty_{mode}"])
    facts = "\n".join(m.value for m in at.markdown)
    assert f"**{nm.loc['1.2', 'average_precision']:.3f}**" in facts  # AP among the node facts

    at.selectbox(key="node").set_value("3.1").run()
    assert not at.exception
    for box, want in zip(_chart(at, "box")["data"][:2], expected("3.1"), strict=True):
        np.testing.assert_allclose(_numbers(box["y"]), want, rtol=1e-6)
    modes = next(d for d in at.dataframe if "percentile" in d.value.columns).value
    first = modes["mode"].iloc[0]
    assert modes["uncertainty"].iloc[0] == pytest.approx(nm.loc["3.1", f"uncertainty_{first}"])


def _numbers(value: object) -> np.ndarray:
    """A plotly JSON array: a plain list, or a typed array ``{"dtype", "bdata"}`` (base64, little-endian)."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]).newbyteorder("<"))
    return np.asarray(value, dtype=float)


# ------------------------------------------------------- layout at 1280 px (issue 11)
def test_node_tables_lead_with_precision_recall_f1_and_write_missing_ap_as_n_a(app_env: Path) -> None:
    nm = pd.read_csv(app_env / "node_metrics.csv", index_col="node", dtype={"node": str})
    no_positives = next(n for n in nm.index if nm.loc[n, "evaluated"] and nm.loc[n, "support"] == 0)
    parent = no_positives.rsplit(".", 1)[0]
    at = _explorer(run=app_env.name, node=parent)
    assert not at.exception
    tables = {("relation" in d.value.columns, "tp" in d.value.columns): d for d in at.dataframe}
    for table in (tables[True, False], tables[False, True]):  # relatives, per-node table
        # P, R, F1 come first, so they are on screen in a 300 px column and at 1280 px
        assert list(table.proto.column_order)[:3] == ["precision", "recall", "f1"]
    per_node = tables[False, True].value
    assert per_node.loc[no_positives, "average_precision"] == "n/a"  # st.dataframe would draw NaN as "None"
    some = next(n for n in nm.index if nm.loc[n, "evaluated"] and nm.loc[n, "support"] > 0)
    assert float(per_node.loc[some, "average_precision"]) == pytest.approx(nm.loc[some, "average_precision"], abs=5e-4)


def test_sunburst_is_centred_on_the_selected_node_and_draws_every_depth(app_env: Path) -> None:
    at = _explorer(run=app_env.name, node="1.2")
    trace = _sunburst_spec(at)["data"][0]
    assert trace["level"] == "1.2"
    assert trace["maxdepth"] == -1  # the synthetic tree's 121 nodes: every depth drawn at once
    leaf = next(n for n in load_run(app_env).hierarchy.nodes if n.count(".") == 3)
    at = _explorer(run=app_env.name, node=leaf)
    assert _sunburst_spec(at)["data"][0]["level"] == leaf.rsplit(".", 1)[0]  # a leaf: its parent's sunburst


def test_dataset_name_is_shown_in_full_not_in_a_metric_card(app_env: Path) -> None:
    at = _explorer(run=app_env.name, node="1.2")
    assert "dataset" not in [m.label for m in at.metric]  # a metric card cuts long names ("cellcyc...")
    assert any("synthetic" in c.value for c in at.caption)


def test_md_text_escapes_every_markdown_character() -> None:
    # CommonMark 0.31, "Backslash escapes": any ASCII punctuation character may be backslash-escaped, and an
    # escaped character is shown as itself. Streamlit's own :color[...], :material/...: and $math$ syntax starts
    # with such characters too.
    text = "*bold* _it_ `code` [link](x) <b>h</b> :red[x] :material/home: $y$ # 1. | a\\b ~s~ & ok"
    escaped = app_common.md_text(text)
    assert re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", escaped) == text  # unescaping gives the text back
    assert not re.search(r"(?<!\\)[!-/:-@\[-`{-~]", re.sub(r"\\.", "", escaped))  # nothing left unescaped
    assert app_common.md_text("two\nlines") == "two lines"


# ------------------------------------------- a large hierarchy: the details after the sunburst (issue 17)
def _page_order(at: AppTest) -> list[str]:
    """Every main-area element in page order: its type, and its key or text where it has one."""
    return [f"{e.type}:{getattr(e, 'key', None) or getattr(e, 'value', '')}"[:80] for e in at.main
            if e.type not in ("flex_container", "column", "tab_container", "tab", "main")]


def test_a_large_explorer_sends_the_details_once_the_browser_has_drawn_the_sunburst(
        app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc_core.views import explore

    whole = _explorer(run=app_env.name, node="2.3")  # the synthetic run is small: one pass
    assert not whole.exception and whole.get("iframe")
    monkeypatch.setattr(explore, "DETAILS_AFTER_DRAW_MIN_NODES", 10)  # the synthetic run counts as large
    at = _explorer(run=app_env.name, node="2.3")
    assert not at.exception and not at.warning
    # first pass: the page down to the node card's facts, in the same order as the whole page, then a note and
    # the component that reports the drawn sunburst; no other chart, table, tab or iframe yet
    first, every = _page_order(at), _page_order(whole)
    assert first[:-2] == every[:len(first) - 2]
    note, drawn = list(at.main)[-2:]
    assert note.type == "caption" and "once the overview is drawn" in note.value
    assert drawn.type == "bidi_component" and drawn.proto.component_name == "hmlc_chart_drawn"
    assert [json.loads(c.proto.spec)["data"][0]["type"] for c in at.get("plotly_chart")] == ["sunburst"]
    assert not at.get("iframe") and not at.dataframe and not at.tabs
    assert any(s.value == app_common.md_text("2.3") for s in at.subheader)  # the node card's heading
    # the browser's report (the component's trigger, whose callback sets this key) reruns with every element
    at.session_state["_explorer_details"] = True
    at.run()
    assert not at.exception and _page_order(at) == every
    assert '"2.3.1"' in _srcdoc(at)
    # the rest of the session keeps them: a new node is shown whole at once
    at.selectbox(key="node").set_value("3.1").run()
    assert not at.exception and '"3.1.2"' in _srcdoc(at) and not at.get("bidi_component")
