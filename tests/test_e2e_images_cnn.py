"""A CNN run on the generated ``shapes`` dataset opens in the dashboard with thumbnails (issue 16, "Done when").

A module fixture trains the small CNN ensemble (``encoder="cnn"``, 2 epochs, batch 32, learning rate 1e-3,
``fit_on="train"``) on ``make_shapes(seed=0)`` with 200/60/80 train/valid/test images and saves it with
``save_run``. Then:

- the saved run is a CNN run: its config records ``encoder="cnn"``, its model holds the trunk's convolutions, and
  its ``images.npz`` holds the generated test images, equal to the dataset's own;
- AppTest opens the Hierarchy explorer's node card on a node with many errors of both kinds at the fixed 0.5 rule
  (:func:`_busiest_node`) and finds its missed positives and false positives as images, each the stored
  thumbnail enlarged by an integer factor, in the order and with the captions computed here from
  ``predictions.npz`` with plain loops and an independent upward closure (:func:`helpers.closure_reference`);
  the Missed nodes page shows a strip per missed node;
- headless Chromium (``streamlit run app.py``) shows those images as loaded ``<img>`` elements on the node card
  and saves ``test-artifacts/explorer-cnn-shapes.png``. Without Chromium or playwright that test skips like
  tests/test_e2e_browser.py (and fails under ``HMLC_E2E_REQUIRED=1``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import numpy as np
import pytest

from helpers import closure_reference, only_runs_in, open_app
from test_images_views import _shown, media  # noqa: F401 - media is a fixture used below
from app_pages import common as app_common
from hmlc_core.images.teaching import make_shapes
from hmlc_core.runs import load_run, save_run
from hmlc_core.train import TrainConfig, train
from hmlc_core.views import images as image_views

RUN_NAME = "shapes_cnn"

Examples = list[tuple[int, float]]


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The saved CNN run (read-only) and the dataset's test thumbnails (N, 32, 32, 3)."""
    dataset = make_shapes(seed=0, n_train=200, n_valid=60, n_test=80)
    config = TrainConfig(dataset="shapes", encoder="cnn", epochs=2, batch_size=32, lr=1e-3, heads=2, fit_on="train",
                         seed=0, threads=1)
    run_dir = save_run(tmp_path_factory.mktemp("cnn_runs") / RUN_NAME, train(config, dataset), dataset)
    return run_dir, dataset.images.thumbnails["test"]


def _arrays(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(y_true, mean_probs, thumbnails, names) read from the run's files with numpy alone."""
    with np.load(run_dir / "predictions.npz") as preds, np.load(run_dir / "images.npz") as imgs:
        return preds["y_true"], preds["mean_probs"], imgs["thumbnails"], [str(n) for n in imgs["names"]]


def _errors(run_dir: Path) -> dict[str, tuple[Examples, Examples]]:
    """Node -> (false negatives, false positives) at the fixed 0.5 rule, most confidently wrong first."""
    y, probs, _, _ = _arrays(run_dir)
    hierarchy = load_run(run_dir).hierarchy
    pred = closure_reference(hierarchy, probs > 0.5)
    errors = {}
    for node in hierarchy.nodes:
        j = hierarchy.index[node]
        fn = [(i, float(probs[i, j])) for i in range(len(y)) if y[i, j] == 1 and pred[i, j] == 0]
        fp = [(i, float(probs[i, j])) for i in range(len(y)) if y[i, j] == 0 and pred[i, j] == 1]
        errors[node] = sorted(fn, key=lambda t: (t[1], t[0])), sorted(fp, key=lambda t: (-t[1], t[0]))
    return errors


def _busiest_node(errors: dict[str, tuple[Examples, Examples]]) -> str:
    """The non-root node whose scarcer kind of error is the most common, then with the most errors (ties: first in
    column order), so that its card shows both missed positives and false positives when any node has both."""
    scores = {node: (min(len(fn), len(fp)), len(fn) + len(fp)) for node, (fn, fp) in errors.items() if node != "root"}
    node = max(scores, key=lambda n: scores[n])
    assert scores[node][1] > 0, "the CNN run makes no error on any node"
    return node


def test_the_run_is_a_cnn_run_of_the_generated_images(cnn_run: tuple[Path, np.ndarray]) -> None:
    run_dir, test_thumbnails = cnn_run
    config = json.loads((run_dir / "config.json").read_text("utf-8"))
    assert config["train"]["encoder"] == "cnn" and config["train"]["kernel"] == "torch"
    assert config["dataset"]["images"]["shape"] == [3, 32, 32]
    state = load_run(run_dir).load_model().state_dict()
    assert tuple(state["trunk.convs.0.weight"].shape) == (16, 3, 3, 3)  # encoder_width 16: 3 -> 16 channels
    y, probs, thumbnails, names = _arrays(run_dir)
    assert y.shape == probs.shape and len(y) == 80
    np.testing.assert_array_equal(thumbnails, test_thumbnails)
    assert names[:2] == ["test/000000.png", "test/000001.png"]


def test_node_card_shows_the_cnn_runs_missed_and_false_positive_images(
        cnn_run: tuple[Path, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        media: dict[str, bytes]) -> None:  # noqa: F811 - the imported fixture
    run_dir, _ = cnn_run
    only_runs_in(run_dir.parent, tmp_path, monkeypatch)
    errors = _errors(run_dir)
    node = _busiest_node(errors)
    at = open_app("app_pages/explorer.py", run=RUN_NAME, node=node)
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]
    _, _, thumbnails, names = _arrays(run_dir)
    fn, fp = errors[node]
    shown = _shown(at, media)
    f = image_views.DISPLAY_SIZE // thumbnails.shape[1]
    for (pixels, captions), expected in zip(shown, [e for e in (fn, fp) if e], strict=True):
        expected = expected[:image_views.DEFAULT_EXAMPLES]
        assert captions == [app_common.md_text(image_views.caption_text(image_views.ImageExample(i, names[i], p)))
                            for i, p in expected]
        assert len(pixels) == len(expected)
        for got, (i, _) in zip(pixels, expected, strict=True):
            np.testing.assert_array_equal(got, np.kron(thumbnails[i], np.ones((f, f, 1), dtype=np.uint8)))
    markdown = " ".join(m.value for m in at.markdown)
    assert f"Missed positives** ({len(fn)}" in markdown and f"False positives** ({len(fp)}" in markdown

    missed = open_app("app_pages/missed.py", run=RUN_NAME, recall_below="0.95", show_images="true")
    assert not missed.exception and not missed.main.error
    nodes = list(missed.dataframe[0].value.index)
    with_misses = [n for n in nodes[:image_views.MAX_STRIP_NODES] if errors[n][0]]
    assert with_misses and len(missed.get("image")) == len(with_misses)


def test_cnn_run_thumbnails_in_the_browser(cnn_run: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    import test_e2e_browser as e2e  # skips here (fails under HMLC_E2E_REQUIRED=1) without Chromium or playwright

    run_dir, _ = cnn_run
    errors = _errors(run_dir)
    node = _busiest_node(errors)
    fn, fp = errors[node]
    want = min(len(fn), image_views.DEFAULT_EXAMPLES) + min(len(fp), image_views.DEFAULT_EXAMPLES)
    _, _, thumbnails, names = _arrays(run_dir)
    side = image_views.DISPLAY_SIZE // thumbnails.shape[1] * thumbnails.shape[1]
    env = {**os.environ, "HMLC_RUNS_DIR": str(run_dir.parent), "OMP_NUM_THREADS": "1",
           "HMLC_LOCAL_RUNS_DIR": str(tmp_path / "no_user_runs")}
    loaded = """() => [...document.querySelectorAll('[data-testid=stMain] [data-testid=stImage] img')]
                      .filter(img => img.complete && img.naturalWidth > 0)
                      .map(img => [img.naturalWidth, img.naturalHeight])"""
    e2e.ARTIFACTS.mkdir(exist_ok=True)
    hosts: set[str] = set()
    with e2e.streamlit_app(env, tmp_path / "streamlit.log") as url, e2e.sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=e2e.CHROMIUM, args=e2e.CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
            page.goto(f"{url}/hierarchy?{urlencode({'run': RUN_NAME, 'node': node})}")
            page.wait_for_selector("[data-testid=stMain] [data-testid=stImage] img", timeout=60_000)
            e2e._settle(page)
            e2e._no_exception(page)
            page.wait_for_function(f"() => ({loaded})().length >= {want}", timeout=30_000)
            assert [tuple(s) for s in page.evaluate(loaded)] == [(side, side)] * want
            body = page.inner_text("[data-testid=stMain]")
            assert "Missed positives" in body and "False positives" in body
            for i, p in fn[:image_views.DEFAULT_EXAMPLES] + fp[:image_views.DEFAULT_EXAMPLES]:
                assert image_views.caption_text(image_views.ImageExample(i, names[i], p)) in body
            page.locator("[data-testid=stImage]").first.scroll_into_view_if_needed()
            page.screenshot(path=str(e2e.ARTIFACTS / "explorer-cnn-shapes.png"))
        finally:
            browser.close()
    assert hosts <= {urlsplit(url).netloc}, f"the browser requested other hosts: {hosts}"
