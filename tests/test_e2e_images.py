"""Browser test: an image run's thumbnails on the node card and the Missed nodes page (issue 16, item 4).

``streamlit run app.py`` on 127.0.0.1 serves the small image run of tests/test_images_views.py
(:func:`build_image_run`; its test images are named with payloads such as ``<img src=x onerror=...>``).
Headless Chromium opens the Hierarchy explorer on the node with the most errors and finds its missed
positives and false positives as loaded ``<img>`` elements with their names as text, then the Missed nodes
page with the image strips on; no payload runs (no dialog) and the browser requests nothing but the
Streamlit server. Screenshots: ``test-artifacts/explorer-images.png``, ``test-artifacts/missed-images.png``.
Skips like tests/test_e2e_browser.py without Chromium or playwright.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from test_e2e_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, _no_exception, _settle, streamlit_app, sync_api
from test_images_views import _arrays, _busiest_node, _expected, build_image_run
from hmlc_core.views import images as image_views


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Streamlit on a free port serving the image run alone. Yields (url, run folder)."""
    run = build_image_run(tmp_path_factory.mktemp("image_e2e_runs"))
    env = {**os.environ, "HMLC_RUNS_DIR": str(run.parent), "OMP_NUM_THREADS": "1",
           "HMLC_LOCAL_RUNS_DIR": str(tmp_path_factory.mktemp("image_e2e_no_user_runs"))}
    with streamlit_app(env, tmp_path_factory.mktemp("image_e2e_log") / "streamlit.log") as url:
        yield url, run


def _loaded_images(page: object) -> list[tuple[int, int]]:
    """(natural width, natural height) of every loaded ``st.image`` picture in the main area."""
    return [tuple(size) for size in page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]
               .filter(img => img.complete && img.naturalWidth > 0)
               .map(img => [img.naturalWidth, img.naturalHeight])""")]


def test_image_run_thumbnails_in_the_browser(server: tuple[str, Path]) -> None:
    url, run = server
    node = _busiest_node(run)
    fn, fp = _expected(run, node)
    want = min(len(fn), image_views.DEFAULT_EXAMPLES) + min(len(fp), image_views.DEFAULT_EXAMPLES)
    _, _, thumbnails, names = _arrays(run)
    side = image_views.DISPLAY_SIZE // thumbnails.shape[1] * thumbnails.shape[1]
    ARTIFACTS.mkdir(exist_ok=True)
    dialogs: list[str] = []
    hosts: set[str] = set()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
            page.goto(f"{url}/hierarchy?{urlencode({'run': run.name, 'node': node})}")
            page.wait_for_selector("[data-testid=stMain] [data-testid=stImage] img", timeout=60_000)
            _settle(page)
            _no_exception(page)
            page.wait_for_function(
                f"() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]"
                f".filter(img => img.complete && img.naturalWidth > 0).length >= {want}", timeout=30_000)
            assert _loaded_images(page) == [(side, side)] * want
            body = page.inner_text("[data-testid=stMain]")
            assert "Missed positives" in body and "False positives" in body
            shown = [image_views.caption_text(image_views.ImageExample(i, names[i], p))
                     for i, p in fn[:image_views.DEFAULT_EXAMPLES] + fp[:image_views.DEFAULT_EXAMPLES]]
            assert [c for c in shown if "<img" in c], f"no payload among the captions {shown}"
            for caption in shown:  # each caption appears as typed: no tag, emphasis or math was rendered
                assert caption in body, caption
            card = page.locator("[data-testid=stImage]").first
            card.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "explorer-images.png"))

            query = {"run": run.name, "recall_below": "0.95", "show_images": "true"}
            page.goto(f"{url}/missed-nodes?{urlencode(query)}")
            page.wait_for_selector("[data-testid=stMain] [data-testid=stImage] img", timeout=60_000)
            _settle(page)
            _no_exception(page)
            assert len(_loaded_images(page)) >= 1
            page.locator("[data-testid=stImage]").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "missed-images.png"))
        finally:
            browser.close()
    assert not dialogs, f"a payload opened a dialog: {dialogs}"
    assert hosts <= {urlsplit(url).netloc}, f"the browser requested other hosts: {hosts}"
