"""Browser test: hostile node ids and run names run no script and fetch nothing (issue 13, item 1).

``streamlit run app.py`` on 127.0.0.1 serves two small runs (tests/test_hostile_names.py,
:func:`build_hostile_runs`) whose node ids, run names and dataset name are payloads: ``<img onerror>``,
``<script>``, a node id holding ``href`` (which made pyvis 0.3.2 draw every tooltip with ``innerHTML``),
markdown images and links to a port on 127.0.0.1 that nothing serves, ``=HYPERLINK(...)``. Headless Chromium
opens the Overview, the Hierarchy explorer on hostile nodes (hovering every node of the neighbourhood
graph, so each tooltip is drawn), Missed nodes and Compare, and checks that no payload ran (no dialog, no
``PWNED`` console message, ``window.__pwned`` unset in every frame) and that the browser requested nothing
but the Streamlit server. Skips like tests/test_e2e_browser.py without Chromium or playwright.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, _free_port, _no_exception, _settle, streamlit_app, sync_api
from test_hostile_names import build_hostile_runs, hostile_nodes


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, list[Path]]]:
    """Streamlit on a free port serving the hostile runs. Yields (url, beacon port, run folders)."""
    beacon = _free_port()  # nothing listens there: a request to it is only seen by the browser's request log
    runs = build_hostile_runs(tmp_path_factory.mktemp("hostile_e2e_runs"), beacon)
    env = {**os.environ, "HMLC_RUNS_DIR": str(runs[0].parent), "OMP_NUM_THREADS": "1",
           "HMLC_LOCAL_RUNS_DIR": str(tmp_path_factory.mktemp("hostile_e2e_no_user_runs"))}
    with streamlit_app(env, tmp_path_factory.mktemp("hostile_e2e_log") / "streamlit.log") as url:
        yield url, beacon, runs


_NODE_POSITIONS = """() => Object.entries(network.getPositions()).map(([id, p]) => {
    const d = network.canvasToDOM(p); return [id, d.x, d.y]; })"""


def _graph_frame(page: object) -> object:
    """The neighbourhood graph's frame (the one that defines vis-network's ``network``)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for frame in page.frames:
            try:
                if frame.evaluate("typeof network !== 'undefined' && typeof network.getPositions === 'function'"):
                    return frame
            except sync_api.Error:
                continue
        page.wait_for_timeout(300)
    raise AssertionError("the neighbourhood graph did not draw")


def _hover_every_node(page: object) -> int:
    """Move the mouse over each node of the neighbourhood graph, so that each tooltip is drawn."""
    frame = _graph_frame(page)
    element = frame.frame_element()
    element.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    box = element.bounding_box()
    positions = frame.evaluate(_NODE_POSITIONS)
    for _, x, y in positions:
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.wait_for_timeout(200)  # the tooltip shows after 80 ms
        page.mouse.move(box["x"] + 2, box["y"] + 2)
        page.wait_for_timeout(50)
    return len(positions)


def test_hostile_names_run_no_script_and_fetch_nothing(server: tuple[str, int, list[Path]]) -> None:
    url, beacon, runs = server
    run = runs[0].name
    nodes = hostile_nodes(beacon)
    events: list[str] = []
    outside: list[str] = []

    def on_request(request: object) -> None:
        if not request.url.startswith((url + "/", "data:", "blob:", "about:")):
            outside.append(request.url)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.on("request", on_request)
            page.on("dialog", lambda dialog: (events.append(f"dialog: {dialog.message}"), dialog.dismiss()))
            page.on("console", lambda msg: events.append(f"console: {msg.text}") if "PWNED" in msg.text else None)

            def check(where: str) -> None:
                _no_exception(page)
                for frame in page.frames:
                    try:
                        pwned = frame.evaluate("window.__pwned")
                    except sync_api.Error:
                        continue  # a frame that went away
                    assert pwned is None, f"{where}: payload {pwned} ran in frame {frame.url}"
                assert events == [], f"{where}: {events}"
                assert outside == [], f"{where}: requests outside the server: {outside}"

            # "2" holds "href", its sibling "1" an <img onerror>, its child "2.1" "</script>"; "1.1" markdown, and
            # its sibling "1.3" an HTML link
            for key in ("2", "1.1"):
                page.goto(f"{url}/hierarchy?{urlencode({'run': run, 'node': nodes[key]})}")
                page.wait_for_selector("g.slice", timeout=60_000)
                _settle(page)
                assert _hover_every_node(page) > 1
                check(f"explorer on node {nodes[key]!r}")
                assert page.get_by_role("combobox", name="Node").input_value() == nodes[key]
            for path in ("", "missed-nodes", "comparison"):
                query = {"run": run} if path != "comparison" else [("run", run), *(("runs", r.name) for r in runs)]
                page.goto(f"{url}/{path}?{urlencode(query)}")
                _settle(page)
                page.wait_for_timeout(1000)
                check(f"page /{path}")
            body = page.inner_text("body")
            assert f"![run](http://127.0.0.1:{beacon}/beacon-run)" in body  # the run name, shown as typed
        finally:
            browser.close()
