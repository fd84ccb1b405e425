"""Image runs on the dashboard (issue 16, item 4): hmlc_core.views.images and the pages that show the images.

The image run is built here (:func:`build_image_run`): coloured squares on noise over a 5-node taxonomy,
a 2-epoch MLP on the pixels, saved with ``save_run`` (which writes ``images.npz``). Its test images are
named with payloads (``<img onerror>``, markdown, math) so every caption is checked to be escaped.
Expected false negatives and positives are computed here with plain loops over ``predictions.npz``
(read with numpy) and an independent closure of ``probs > 0.5``; expected pixels are ``np.kron``
enlargements of the stored thumbnails, compared with the PNG bytes Streamlit was given.
"""

from __future__ import annotations

import builtins
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from helpers import closure_reference, only_runs_in, open_app
from app_pages import common as app_common
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.images.sets import image_dataset
from hmlc_core.runs import load_run, save_run
from hmlc_core.train import TrainConfig, train
from hmlc_core.views import images as image_views

EDGES = [("root", "Shapes"), ("root", "Colours"), ("Shapes", "Shapes/Square"), ("Shapes", "Shapes/Circle")]
LEAVES = ["Shapes/Square", "Shapes/Circle", "Colours"]
COLOURS = np.array([[220, 40, 40], [40, 200, 40], [40, 40, 220]], dtype=np.uint8)
SIDE = 16
HOSTILE = ("<img src=x onerror=alert({i})>", "**bold{i}**", "$x_{i}$", "Shapes/img{i:03d}.png")


def image_name(i: int) -> str:
    """Display name of test image ``i``: three of four are payloads."""
    return HOSTILE[i % len(HOSTILE)].format(i=i)


def build_image_run(root: Path, seed: int = 0) -> Path:
    """A saved image run under ``root / "image_run"``: 40/12/24 train/valid/test 16 x 16 images, 10 epochs.

    Each image is a square of its leaf's colour on dark noise; a third of the test images carry another
    leaf's label, so the trained ensemble has both missed positives and false positives.
    """
    hierarchy = Hierarchy(EDGES)
    rng = np.random.default_rng(seed)
    pixels, labels, names = {}, {}, {}
    for split, n in (("train", 40), ("valid", 12), ("test", 24)):
        classes = rng.integers(0, len(LEAVES), size=n)
        px = rng.integers(0, 60, size=(n, SIDE, SIDE, 3), dtype=np.uint8)
        for i, c in enumerate(classes):
            px[i, 4:12, 4:12] = COLOURS[c]
        pixels[split] = px
        if split == "test":  # a third mislabelled: a model that learnt the colours misses some, wrongly finds others
            relabel = rng.random(n) < 1 / 3
            classes = np.where(relabel, (classes + rng.integers(1, len(LEAVES), size=n)) % len(LEAVES), classes)
        labels[split] = hierarchy.label_matrix([[LEAVES[c]] for c in classes])
        names[split] = [image_name(i) if split == "test" else f"{split}/{i}.png" for i in range(n)]
    dataset = image_dataset("squares", hierarchy, pixels, labels, names, "generated:squares")
    config = TrainConfig(dataset="squares", epochs=10, heads=2, hidden=16, lr=1e-2, dropout=0.0, batch_size=16,
                         fit_on="train", seed=seed)
    return save_run(root / "image_run", train(config, dataset), dataset)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The image run (read-only, shared by this module)."""
    return build_image_run(tmp_path_factory.mktemp("image_runs"))


@pytest.fixture
def image_env(image_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The image run is the app's only run."""
    only_runs_in(image_run.parent, tmp_path, monkeypatch)
    return image_run


def _arrays(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(y_true, mean_probs, thumbnails, names) read with numpy alone."""
    with np.load(run_dir / "predictions.npz") as preds, np.load(run_dir / "images.npz") as imgs:
        return preds["y_true"], preds["mean_probs"], imgs["thumbnails"], [str(n) for n in imgs["names"]]


Examples = list[tuple[int, float]]


def _expected(run_dir: Path, node: str, threshold: float = 0.5) -> tuple[Examples, Examples]:
    """(false negatives, false positives) of ``node`` at a fixed threshold, most confidently wrong first."""
    y, probs, _, _ = _arrays(run_dir)
    hierarchy = Hierarchy(EDGES)
    pred = closure_reference(hierarchy, probs > threshold)
    j = hierarchy.index[node]
    fn = [(i, float(probs[i, j])) for i in range(len(y)) if y[i, j] == 1 and pred[i, j] == 0]
    fp = [(i, float(probs[i, j])) for i in range(len(y)) if y[i, j] == 0 and pred[i, j] == 1]
    return sorted(fn, key=lambda t: (t[1], t[0])), sorted(fp, key=lambda t: (-t[1], t[0]))


def _busiest_node(run_dir: Path) -> str:
    """The evaluated node with both kinds of error and the most errors (ties: first in column order)."""
    scores = {node: (len(fn) + len(fp), bool(fn and fp)) for node in Hierarchy(EDGES).nodes[1:]
              for fn, fp in [_expected(run_dir, node)]}
    both = [n for n, (_, ok) in scores.items() if ok]
    assert both, f"the fixture run has no node with both kinds of error: {scores}"
    return max(both, key=lambda n: scores[n][0])


# ----------------------------------------------------------------------------------------- pure views
def test_node_errors_match_an_independent_count() -> None:
    hierarchy = Hierarchy(EDGES)
    rng = np.random.default_rng(3)
    n = 50
    y = rng.integers(0, 2, size=(n, hierarchy.n_nodes)).astype(np.uint8)
    probs = rng.random((n, hierarchy.n_nodes)).astype(np.float32)
    probs[:5] = probs[5:10]  # some tied probabilities: ties go by row
    pred = rng.integers(0, 2, size=(n, hierarchy.n_nodes)).astype(np.uint8)
    names = [f"n{i}" for i in range(n)]
    for node in hierarchy.nodes:
        j = hierarchy.index[node]
        fn = [i for i in range(n) if y[i, j] == 1 and pred[i, j] == 0]
        fp = [i for i in range(n) if y[i, j] == 0 and pred[i, j] == 1]
        got = image_views.node_errors(y, probs, pred, hierarchy, node, names, k=n)
        assert (got.n_false_negatives, got.n_false_positives) == (len(fn), len(fp))
        assert [e.row for e in got.false_negatives] == sorted(fn, key=lambda i: (probs[i, j], i))
        assert [e.row for e in got.false_positives] == sorted(fp, key=lambda i: (-probs[i, j], i))
        assert [e.name for e in got.false_negatives] == [f"n{e.row}" for e in got.false_negatives]
        assert [e.probability for e in got.false_positives] == pytest.approx([probs[i, j] for i in
                                                                             [e.row for e in got.false_positives]])
        near = image_views.node_errors(y, probs, pred, hierarchy, node, names, k=3, order="borderline")
        assert [e.row for e in near.false_negatives] == sorted(fn, key=lambda i: (-probs[i, j], i))[:3]
        assert [e.row for e in near.false_positives] == sorted(fp, key=lambda i: (probs[i, j], i))[:3]
        assert near.n_false_negatives == len(fn)


def test_node_errors_refuse_bad_input() -> None:
    hierarchy = Hierarchy(EDGES)
    y = np.zeros((4, hierarchy.n_nodes), dtype=np.uint8)
    names = ["a", "b", "c", "d"]
    with pytest.raises(ValueError, match="3 test images"):
        image_views.node_errors(y, y, y, hierarchy, "Colours", names[:3])
    with pytest.raises(ValueError, match="k must be"):
        image_views.node_errors(y, y, y, hierarchy, "Colours", names, k=0)
    with pytest.raises(ValueError, match="unknown order"):
        image_views.node_errors(y, y, y, hierarchy, "Colours", names, order="random")
    with pytest.raises(KeyError, match="not in the hierarchy"):
        image_views.node_errors(y, y, y, hierarchy, "../../etc/passwd", names)


def test_missed_examples_keep_the_order_and_the_limit() -> None:
    hierarchy = Hierarchy([("r", f"c{i}") for i in range(30)])
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=(20, hierarchy.n_nodes)).astype(np.uint8)
    probs = rng.random(y.shape)
    pred = np.zeros_like(y)
    nodes = [f"c{i}" for i in reversed(range(30))]
    strips = image_views.missed_examples(y, probs, pred, hierarchy, nodes, [str(i) for i in range(20)], k=2)
    assert list(strips) == nodes[:image_views.MAX_STRIP_NODES]
    for node, errors in strips.items():
        j = hierarchy.index[node]
        assert [e.row for e in errors.false_negatives] == sorted(np.flatnonzero(y[:, j]),
                                                                 key=lambda i: (probs[i, j], i))[:2]


@pytest.mark.parametrize("shape", [(16, 16), (16, 8), (7, 13), (96, 96)])
def test_display_image_enlarges_by_an_integer_factor(shape: tuple[int, int]) -> None:
    thumb = np.random.default_rng(0).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    shown = image_views.display_image(thumb, 96)
    f = 96 // max(shape)
    np.testing.assert_array_equal(shown, np.kron(thumb, np.ones((f, f, 1), dtype=np.uint8)))


def test_display_image_reduces_a_large_thumbnail() -> None:
    thumb = np.full((300, 150, 3), 77, dtype=np.uint8)
    shown = image_views.display_image(thumb, 96)
    assert shown.shape == (96, 48, 3) and (shown == 77).all()
    with pytest.raises(ValueError, match="uint8"):
        image_views.display_image(thumb.astype(np.float32))


def test_caption_keeps_the_end_of_a_long_name() -> None:
    example = image_views.ImageExample(3, "Echinodermata/Asteroidea/a_very_long_file_name_of_an_image.jpg", 0.4321)
    text = image_views.caption_text(example, max_chars=20)
    assert text == "…ame_of_an_image.jpg · 0.432" and len(text.split(" · ")[0]) == 20
    # three decimals: a miss just under a 0.5 threshold does not read as 0.50
    assert image_views.caption_text(image_views.ImageExample(1, "a.png", 0.4996)) == "a.png · 0.499"
    hostile = image_views.ImageExample(0, "**x** <img src=y>", 1.0)
    assert image_views.caption_text(hostile) == "**x** <img src=y> · 1.000"  # plain text: the page escapes it


def test_run_images_are_the_test_split(image_run: Path) -> None:
    run = load_run(image_run)
    images = run.images()
    y, _, thumbnails, names = _arrays(image_run)
    assert images is not None and images.thumbnails.shape == (len(y), SIDE, SIDE, 3)
    assert images.names == names == [image_name(i) for i in range(len(y))]
    node = _busiest_node(image_run)
    preds = run.predictions()
    got = image_views.node_errors(preds["y_true"], preds["mean_probs"],
                                  run.decision_rule("fixed", 0.5).predict(preds["mean_probs"]), run.hierarchy, node,
                                  images.names)
    fn, fp = _expected(image_run, node)
    assert [e.row for e in got.false_negatives] == [i for i, _ in fn][:image_views.DEFAULT_EXAMPLES]
    assert [e.row for e in got.false_positives] == [i for i, _ in fp][:image_views.DEFAULT_EXAMPLES]


# --------------------------------------------------------------------------------------------- pages
@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Every file Streamlit's in-memory media storage receives (AppTest's), by file id."""
    stored: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def spy(self: MemoryMediaFileStorage, path_or_data: bytes | str, mimetype: str, kind: object,
            filename: str | None = None) -> str:
        file_id = original(self, path_or_data, mimetype, kind, filename)
        if isinstance(path_or_data, bytes):
            stored[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", spy)
    return stored


def _shown(at: AppTest, media: dict[str, bytes]) -> list[tuple[list[np.ndarray], list[str]]]:
    """Each st.image element of the page: (decoded pixels of each image, captions)."""
    result = []
    for element in at.get("image"):
        pixels = []
        for url in element.value:
            file_id = url.rsplit("/", 1)[-1].split(".")[0]
            pixels.append(np.asarray(Image.open(io.BytesIO(media[file_id])).convert("RGB")))
        result.append((pixels, element.captions))
    return result


def _caption(name: str, p: float) -> str:
    return app_common.md_text(image_views.caption_text(image_views.ImageExample(0, name, p)))


def test_node_card_shows_the_missed_and_false_positive_images(image_env: Path, media: dict[str, bytes]) -> None:
    node = _busiest_node(image_env)
    at = open_app("app_pages/explorer.py", run=image_env.name, node=node)
    assert not at.exception and not at.main.error
    _, _, thumbnails, names = _arrays(image_env)
    fn, fp = _expected(image_env, node)
    shown = _shown(at, media)
    assert len(shown) == 2
    for (pixels, captions), expected in zip(shown, (fn, fp), strict=True):
        expected = expected[:image_views.DEFAULT_EXAMPLES]
        assert captions == [_caption(names[i], p) for i, p in expected]
        f = image_views.DISPLAY_SIZE // SIDE
        for got, (i, _) in zip(pixels, expected, strict=True):
            np.testing.assert_array_equal(got, np.kron(thumbnails[i], np.ones((f, f, 1), dtype=np.uint8)))
    markdown = " ".join(m.value for m in at.markdown)
    assert f"Missed positives** ({len(fn)})" in markdown and f"False positives** ({len(fp)})" in markdown
    # The payloads are escaped: no raw tag, emphasis or math reaches the markdown renderer.
    captions = [c for _, cs in shown for c in cs]
    assert any("\\<img" in c for c in captions) and any("\\*\\*bold" in c for c in captions)
    assert not any("<img" in c.replace("\\<img", "") or "**" in c.replace("\\*\\*", "") for c in captions)


def test_node_card_follows_the_decision_rule_and_the_order(image_env: Path, media: dict[str, bytes]) -> None:
    node = _busiest_node(image_env)
    at = open_app("app_pages/explorer.py", run=image_env.name, node=node, threshold="0.3",
                  image_order=image_views.ORDERS["borderline"])
    assert not at.exception
    _, _, _, names = _arrays(image_env)
    fn, fp = _expected(image_env, node, threshold=0.3)
    fn, fp = sorted(fn, key=lambda t: (-t[1], t[0])), sorted(fp, key=lambda t: (t[1], t[0]))  # near misses first
    (_, fn_captions), (_, fp_captions) = _shown(at, media)
    assert fn_captions == [_caption(names[i], p) for i, p in fn[:image_views.DEFAULT_EXAMPLES]]
    assert fp_captions == [_caption(names[i], p) for i, p in fp[:image_views.DEFAULT_EXAMPLES]]


def test_missed_page_shows_a_strip_per_missed_node(image_env: Path, media: dict[str, bytes]) -> None:
    at = open_app("app_pages/missed.py", run=image_env.name, recall_below="0.95")
    assert not at.exception
    assert len(at.get("image")) == 0  # off by default
    at.toggle(key="show_images").set_value(True).run()
    assert not at.exception and not at.main.error
    nodes = list(at.dataframe[0].value.index)
    _, _, _, names = _arrays(image_env)
    shown = _shown(at, media)
    assert nodes and len(shown) == len([n for n in nodes if _expected(image_env, n)[0]])
    strips = iter(shown)
    for node in nodes:
        fn = _expected(image_env, node)[0][:image_views.STRIP_EXAMPLES]
        if fn:
            assert next(strips)[1] == [_caption(names[i], p) for i, p in fn]
    # the toggle is kept in the URL
    assert len(open_app("app_pages/missed.py", run=image_env.name, recall_below="0.95", show_images="true")
               .get("image")) == len(shown)


def test_a_corrupt_images_file_is_reported_not_a_crash(image_run: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runs = tmp_path / "runs"
    broken = shutil.copytree(image_run, runs / "broken_images")
    (broken / "images.npz").write_bytes(b"PK\x03\x04 this is not a zip file")
    (shutil.copytree(image_run, runs / "lost_images") / "images.npz").unlink()
    only_runs_in(runs, tmp_path, monkeypatch)
    node = _busiest_node(image_run)
    at = open_app("app_pages/explorer.py", run="broken_images", node=node)
    assert not at.exception
    file_name = app_common.md_text("images.npz")  # the message is escaped for markdown
    assert any(file_name in e.value and "cannot read the images" in e.value for e in at.main.error)
    assert at.get("plotly_chart")  # the rest of the card is drawn
    missed = open_app("app_pages/missed.py", run="broken_images", show_images="true")
    assert not missed.exception
    assert any(file_name in e.value for e in missed.main.error)
    assert missed.dataframe  # the rest of the page is drawn
    lost = open_app("app_pages/explorer.py", run="lost_images", node=node)
    assert not lost.exception and not lost.main.error and len(lost.get("image")) == 0
    assert any("images.npz" in w.value and "missing" in w.value for w in lost.main.warning)


def test_query_parameters_cannot_make_a_page_read_a_file(image_env: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         media: dict[str, bytes]) -> None:
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    secret_png = secret_dir / "secret.png"
    Image.fromarray(np.full((SIDE, SIDE, 3), 255, dtype=np.uint8)).save(secret_png)
    secret_npz = secret_dir / "images.npz"
    np.savez(secret_npz, thumbnails=np.full((24, SIDE, SIDE, 3), 255, dtype=np.uint8), names=np.array(["s"] * 24))
    opened: list[str] = []
    real_open, real_io_open = builtins.open, io.open

    def spy_open(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def spy_io_open(file: object, *args: object, **kwargs: object) -> object:
        opened.append(str(file))
        return real_io_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "open", spy_io_open)
    app_common._run_images.clear()  # so the images are read again, under the spy
    node = _busiest_node(image_env)
    for page in ("app_pages/explorer.py", "app_pages/missed.py"):
        at = open_app(page, run=image_env.name, node=node, show_images="true", recall_below="0.95",
                      image=str(secret_png),
                      images=str(secret_npz), path=str(secret_dir), file=str(secret_png), row="../../secret.png")
        assert not at.exception
        assert _shown(at, media)
    assert not [p for p in opened if "secret" in p]
    assert str(image_env / "images.npz") in opened  # the spy saw the images being read: from the run only
    _, _, thumbnails, _ = _arrays(image_env)
    white = np.full((image_views.DISPLAY_SIZE, image_views.DISPLAY_SIZE, 3), 255, dtype=np.uint8)
    assert not any(np.array_equal(np.asarray(Image.open(io.BytesIO(b)).convert("RGB")), white)
                   for b in media.values() if b.startswith(b"\x89PNG"))


def test_tabular_runs_show_no_images(app_env: Path, media: dict[str, bytes]) -> None:
    at = open_app("app_pages/explorer.py", run=app_env.name, node="1")
    assert not at.exception and not at.main.error, [e.value for e in at.error]
    assert len(at.get("image")) == 0
    assert not any("Missed positives" in m.value for m in at.markdown)
    missed = open_app("app_pages/missed.py", run=app_env.name, show_images="true")
    assert not missed.exception and not missed.main.error
    assert "show_images" not in [t.key for t in missed.toggle]
    assert len(missed.get("image")) == 0
    assert load_run(app_env).images() is None
