"""Image datasets from a folder tree or a CSV file (issue 16, item 1): decoding, labels, splits, errors, catalog.

Every image is written here with Pillow into ``tmp_path``; the expected labels are written out by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hmlc_core.catalog import available_datasets, open_dataset
from hmlc_core.data import DatasetNotFoundError, HMCDataset
from hmlc_core.images.folders import (find_image_dataset, list_image_datasets, load_image_csv, load_image_folder,
                                      load_images)
from hmlc_core.images.pixels import ImageReadError, read_image
from hmlc_core.tables import TableError

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 200, 0)


def _solid(path: Path, colour: tuple[int, ...] = RED, size: tuple[int, int] = (20, 14), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)
    return path


def _corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    return path


def _truncated_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _rows(dataset: HMCDataset) -> dict[str, tuple[str, set[str]]]:
    """Display name -> (split, the node ids of its positive labels)."""
    nodes = dataset.hierarchy.nodes
    out = {}
    for split, data in dataset.splits.items():
        for name, y in zip(dataset.images.names[split], data.Y):
            out[name] = (split, {nodes[j] for j in np.flatnonzero(y)})
    return out


# The tree: each folder level a hierarchy level; same-named folders under different parents stay distinct.
EXPECTED = {
    "Echinodermata/Asteroidea/a1.png": {"root", "Echinodermata", "Echinodermata/Asteroidea"},
    "Echinodermata/Asteroidea/a2.jpg": {"root", "Echinodermata", "Echinodermata/Asteroidea"},
    "Echinodermata/Asteroidea/a3.PNG": {"root", "Echinodermata", "Echinodermata/Asteroidea"},
    "Echinodermata/Echinoidea/e1.png": {"root", "Echinodermata", "Echinodermata/Echinoidea"},
    "Echinodermata/Echinoidea/e2.jpeg": {"root", "Echinodermata", "Echinodermata/Echinoidea"},
    "Echinodermata/top.png": {"root", "Echinodermata"},
    "Porifera/p1.png": {"root", "Porifera"},
    "Porifera/p2.bmp": {"root", "Porifera"},
    "Porifera/Asteroidea/x1.png": {"root", "Porifera", "Porifera/Asteroidea"},
}
BAD = {"Echinodermata/Asteroidea/bad.jpg", "Porifera/trunc.png"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "benthic"
    for i, name in enumerate(sorted(EXPECTED)):
        _solid(root / name, (10 * i, 255 - 10 * i, 7 * i))
    _corrupt(root / "Echinodermata/Asteroidea/bad.jpg")
    _truncated_png(root / "Porifera/trunc.png")
    # ignored: not an image suffix, hidden file, hidden folder, an image without a class folder
    (root / "Porifera/notes.txt").write_text("not an image")
    _solid(root / "Porifera/.hidden.png")
    _solid(root / ".thumbs/Porifera/h.png")
    _solid(root / "loose.png")
    return root


def test_folder_labels_and_skipped_images(tree: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="hmlc_core.images.folders"):
        ds = load_image_folder(tree, size=8, valid_fraction=0.0, test_fraction=0.3)
    assert set(ds.hierarchy.nodes) == {"root", "Echinodermata", "Echinodermata/Asteroidea",
                                       "Echinodermata/Echinoidea", "Porifera", "Porifera/Asteroidea"}
    assert ds.hierarchy.parents("Porifera/Asteroidea") == ["Porifera"]
    rows = _rows(ds)
    assert {name: labels for name, (_, labels) in rows.items()} == EXPECTED
    assert ds.name == "benthic" and ds.valid is None
    assert ds.images.shape == (3, 8, 8) and ds.train.X.shape[1] == 3 * 8 * 8
    assert {f for f, _ in ds.images.skipped} == BAD
    assert all(reason for _, reason in ds.images.skipped)
    for bad in BAD:
        assert any(bad.split("/")[-1] in r.getMessage() for r in caplog.records), bad


def test_folder_on_error_raise_names_the_file(tree: Path) -> None:
    with pytest.raises(ImageReadError) as caught:
        load_image_folder(tree, size=8, on_error="raise")
    assert caught.value.path == tree / "Echinodermata/Asteroidea/bad.jpg"
    assert "bad.jpg" in str(caught.value)
    with pytest.raises(ValueError, match="on_error"):
        load_image_folder(tree, size=8, on_error="ignore")


def test_seeded_split_is_reproducible_and_covers_every_image(tree: Path) -> None:
    def split_of(seed: int) -> dict[str, str]:
        ds = load_image_folder(tree, size=4, valid_fraction=0.2, test_fraction=0.3, seed=seed)
        return {name: split for name, (split, _) in _rows(ds).items()}

    first, again, other = split_of(0), split_of(0), split_of(1)
    assert first == again
    assert first != other
    assert set(first) == set(EXPECTED)
    # 11 files listed (2 unreadable): round(11 * 0.3) = 3 test and round(11 * 0.2) = 2 valid before decoding
    counts = {s: list(first.values()).count(s) for s in ("train", "valid", "test")}
    assert counts["train"] + counts["valid"] + counts["test"] == 9
    assert 1 <= counts["test"] <= 3 and 0 < counts["valid"] <= 2


def test_seeded_split_is_stratified_by_label_path(tmp_path: Path) -> None:
    root = tmp_path / "strat"
    for cls in ("A", "B/C", "D"):
        for i in range(10):
            _solid(root / cls / f"{i}.png")
    ds = load_image_folder(root, size=4, valid_fraction=0.0, test_fraction=0.2, seed=3)
    test_labels = [name.rsplit("/", 1)[0] for name in ds.images.names["test"]]
    assert sorted(test_labels) == ["A", "A", "B/C", "B/C", "D", "D"]


def test_given_split_folders(tmp_path: Path) -> None:
    root = tmp_path / "given"
    _solid(root / "train/A/x.png")
    _solid(root / "train/B/y.png")
    _solid(root / "train/A/A1/w.png")
    _solid(root / "valid/B/v.png")
    _solid(root / "test/A/z.png")
    _solid(root / "test/B/t.png")
    _solid(root / "unrelated/q.png")
    rows = [_rows(load_image_folder(root, size=4, seed=s)) for s in (0, 5)]
    assert rows[0] == rows[1] == {
        "train/A/x.png": ("train", {"root", "A"}),
        "train/B/y.png": ("train", {"root", "B"}),
        "train/A/A1/w.png": ("train", {"root", "A", "A/A1"}),
        "valid/B/v.png": ("valid", {"root", "B"}),
        "test/A/z.png": ("test", {"root", "A"}),
        "test/B/t.png": ("test", {"root", "B"}),
    }


def test_given_splits_must_be_complete_and_non_empty(tmp_path: Path) -> None:
    root = tmp_path / "half"
    _solid(root / "train/A/x.png")
    _solid(root / "B/y.png")
    with pytest.raises(ValueError, match="test/"):
        load_image_folder(root, size=4)
    _corrupt(root / "test/A/broken.png")
    with pytest.raises(ValueError, match="test split has no readable image"):
        load_image_folder(root, size=4)


def test_symlink_leaving_the_folder_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "links"
    for i in range(4):
        _solid(root / "A" / f"{i}.png")
        _solid(root / "B" / f"{i}.png")
    outside = _solid(tmp_path / "secret" / "outside.png")
    os.symlink(outside, root / "A" / "escape.png")
    os.symlink(tmp_path / "secret", root / "B" / "linked_dir")
    os.symlink(root / "A" / "0.png", root / "B" / "inside.png")
    ds = load_image_folder(root, size=4, valid_fraction=0.0)
    names = {n for split in ds.images.names.values() for n in split}
    assert "A/escape.png" not in names and not any("outside" in n for n in names)
    assert "B/inside.png" in names
    assert [f for f, _ in ds.images.skipped] == ["A/escape.png"]
    assert "outside" in ds.images.skipped[0][1]
    with pytest.raises(ImageReadError, match="escape.png"):
        load_image_folder(root, size=4, valid_fraction=0.0, on_error="raise")


def test_top_level_folder_named_root_is_refused(tmp_path: Path) -> None:
    _solid(tmp_path / "t/root/a.png")
    _solid(tmp_path / "t/other/b.png")
    with pytest.raises(ValueError, match="'root'"):
        load_image_folder(tmp_path / "t", size=4)


# ---------------------------------------------------------------- pixels
def test_solid_colours_match_pillows_own_decode(tmp_path: Path) -> None:
    png = _solid(tmp_path / "red.png", RED, (37, 21))
    assert (read_image(png, 6) == np.array(RED, dtype=np.uint8)).all()
    jpg = tmp_path / "blue.jpg"
    Image.new("RGB", (30, 50), BLUE).save(jpg, quality=95)
    with Image.open(jpg) as im:
        reference = np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)
    assert len(reference) == 1
    out = read_image(jpg, 5)
    assert out.dtype == np.uint8 and out.shape == (5, 5, 3)
    assert (out == reference[0]).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # stored 40 x 20, left half red, right half blue; orientation 6 shows it turned 90 degrees clockwise,
    # so upright it is 20 x 40 with red on top and blue below
    stored = np.zeros((20, 40, 3), dtype=np.uint8)
    stored[:, :20] = RED
    stored[:, 20:] = BLUE
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    out = read_image(path, 8).astype(int)
    for corner in (out[0, 0], out[0, 7]):
        assert corner[0] > 200 and corner[2] < 60, corner
    for corner in (out[7, 0], out[7, 7]):
        assert corner[2] > 200 and corner[0] < 60, corner


def test_greyscale_rgba_and_palette_become_rgb(tmp_path: Path) -> None:
    grey = _solid(tmp_path / "grey.png", 100, mode="L")
    assert (read_image(grey, 4) == 100).all()
    opaque = _solid(tmp_path / "opaque.png", (0, 0, 255, 255), mode="RGBA")
    assert (read_image(opaque, 4) == np.array(BLUE, dtype=np.uint8)).all()
    clear = _solid(tmp_path / "clear.png", (0, 0, 0, 0), mode="RGBA")
    assert (read_image(clear, 4) == 255).all()
    palette = Image.new("P", (12, 9), 1)
    palette.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    palette.save(tmp_path / "palette.gif")
    assert (read_image(tmp_path / "palette.gif", 4) == np.array(GREEN, dtype=np.uint8)).all()
    deep = Image.fromarray(np.full((9, 7), 25700, dtype=np.uint16))  # 16-bit greyscale: 25700 / 257 = 100
    deep.save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")
    assert (read_image(tmp_path / "deep.png", 4) == 100).all()
    for name in ("grey.png", "opaque.png", "clear.png", "palette.gif", "deep.png"):
        assert read_image(tmp_path / name, 4).shape == (4, 4, 3)


def test_decompression_bomb_and_bad_files_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = _solid(tmp_path / "big.png", RED, (20, 14))  # 280 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # over the limit: Pillow's warning, an error here
    with pytest.raises(ImageReadError, match="big.png.*decompression bomb"):
        read_image(big)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # over twice the limit: Pillow's error
    with pytest.raises(ImageReadError, match="big.png.*decompression bomb"):
        read_image(big)
    with pytest.raises(ImageReadError, match="noise.jpg"):
        read_image(_corrupt(tmp_path / "noise.jpg"))
    with pytest.raises(ImageReadError, match="cut.png"):
        read_image(_truncated_png(tmp_path / "cut.png"))
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


# ---------------------------------------------------------------- CSV
def _csv_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "survey"
    for name in ("a", "b", "c", "d", "e", "f"):
        _solid(folder / "imgs" / f"{name}.png")
    return folder


def test_csv_multi_label_and_split_column(tmp_path: Path) -> None:
    folder = _csv_folder(tmp_path)
    (folder / "images.csv").write_text(
        "path,labels,split\n"
        "imgs/a.png,Echinodermata/Asteroidea,train\n"
        'imgs/b.png,"Echinodermata/Asteroidea @\nPorifera",TRAIN\n'
        "imgs/c.png,Porifera,test\n"
        "imgs/d.png,Echinodermata,valid\n"
        "imgs/e.png, Echinodermata / Echinoidea ,test\n", encoding="utf-8")
    ds = load_image_csv(folder / "images.csv", size=4, split_column="split")
    assert _rows(ds) == {
        "imgs/a.png": ("train", {"root", "Echinodermata", "Echinodermata/Asteroidea"}),
        "imgs/b.png": ("train", {"root", "Echinodermata", "Echinodermata/Asteroidea", "Porifera"}),
        "imgs/c.png": ("test", {"root", "Porifera"}),
        "imgs/d.png": ("valid", {"root", "Echinodermata"}),
        "imgs/e.png": ("test", {"root", "Echinodermata", "Echinodermata/Echinoidea"}),
    }
    assert ds.name == "images" and ds.images.root == str(folder / "images.csv")


def test_csv_seeded_split_and_unreadable_rows(tmp_path: Path) -> None:
    folder = _csv_folder(tmp_path)
    _corrupt(folder / "imgs/z.jpg")
    lines = ["file,taxon"] + [f"imgs/{n}.png,{'A' if n < 'd' else 'B/C'}" for n in "abcdef"] + ["imgs/z.jpg,A",
                                                                                              "imgs/gone.png,B"]
    (folder / "list.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    kw = dict(size=4, image_column="file", label_column="taxon", valid_fraction=0.0, test_fraction=0.4)
    first = load_image_csv(folder / "list.csv", seed=2, **kw)
    assert first.images.names == load_image_csv(folder / "list.csv", seed=2, **kw).images.names
    assert {f for f, _ in first.images.skipped} == {"imgs/z.jpg", "imgs/gone.png"}
    assert sorted(n for s in first.images.names.values() for n in s) == [f"imgs/{n}.png" for n in "abcdef"]
    with pytest.raises(ImageReadError, match="z.jpg"):
        load_image_csv(folder / "list.csv", on_error="raise", **kw)


@pytest.mark.parametrize(("row", "line", "message"), [
    ("imgs/c.png,,train", 5, "empty label"),
    ("imgs/c.png,A//B,train", 5, "empty level"),
    ("../outside.png,A,train", 5, "leaves the CSV file's folder"),
    ("imgs/../../outside.png,A,train", 5, "leaves the CSV file's folder"),
    ("/etc/hosts.png,A,train", 5, "absolute image path"),
    ("imgs/c.png,A,training", 5, "unknown split 'training'"),
    ("imgs/c.png,A", 5, "missing column 'split'"),
    ("imgs/a.png,A,test", 5, "already listed on line 2"),
    ("imgs/notes.txt,A,test", 5, "not an image file name"),
    ("imgs/c.png,root/A,test", 5, "starts with 'root'"),
])
def test_csv_bad_row_names_the_file_and_line(tmp_path: Path, row: str, line: int, message: str) -> None:
    folder = _csv_folder(tmp_path)
    _solid(tmp_path / "outside.png")
    # the 2nd row's quoted label spans lines 3 and 4, so the bad 3rd row is line 5 of the file
    text = 'path,labels,split\nimgs/a.png,A,train\nimgs/b.png,"B@\nA",test\n' + row + "\n"
    (folder / "images.csv").write_text(text, encoding="utf-8")
    with pytest.raises(TableError) as caught:
        load_image_csv(folder / "images.csv", size=4, split_column="split")
    assert str(caught.value).startswith(f"{folder / 'images.csv'}: line {line}")
    assert str(caught.value)[len(f"{folder / 'images.csv'}: line {line}")] in ",:"
    assert message in str(caught.value)


def test_csv_header_without_the_label_column(tmp_path: Path) -> None:
    folder = _csv_folder(tmp_path)
    (folder / "images.csv").write_text("path,label\nimgs/a.png,A\n", encoding="utf-8")
    with pytest.raises(TableError, match=r"images\.csv: line 1: no column named 'labels'"):
        load_image_csv(folder / "images.csv", size=4)


def test_load_images_dispatches_on_the_path(tmp_path: Path, tree: Path) -> None:
    assert load_images(tree, size=4, valid_fraction=0.0).name == "benthic"
    folder = _csv_folder(tmp_path)
    (folder / "images.csv").write_text("path,labels\n" + "".join(f"imgs/{n}.png,A\n" for n in "abcdef"),
                                       encoding="utf-8")
    assert load_images(folder / "images.csv", size=4, name="s").images.names["train"]
    (folder / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="folder or a .csv"):
        load_images(folder / "notes.txt")
    with pytest.raises(DatasetNotFoundError):
        load_images(tmp_path / "nothing")


# ---------------------------------------------------------------- the data folder and the catalog
def test_catalog_finds_image_datasets_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for i in range(5):
        _solid(data / "reef" / "images" / "Corals" / f"{i}.png")
        _solid(data / "reef" / "images" / "Sponges" / f"{i}.jpg")
        _solid(data / "survey" / "pics" / f"{i}.png")
    (data / "survey" / "images.csv").write_text(
        "path,labels\n" + "".join(f"pics/{i}.png,{'A' if i % 2 else 'B/C'}\n" for i in range(5)), encoding="utf-8")
    _solid(data / "notimages" / "other" / "x.png")
    assert list_image_datasets(data) == ["reef", "survey"]
    assert find_image_dataset("reef", data) == data / "reef" / "images"
    assert find_image_dataset("survey", data) == data / "survey" / "images.csv"
    assert find_image_dataset("../data", data) is None and find_image_dataset("notimages", data) is None
    assert {"reef", "survey"} <= set(available_datasets(data))
    reef = open_dataset("reef", data)
    assert reef.name == "reef" and reef.images is not None
    assert set(reef.hierarchy.nodes) == {"root", "Corals", "Sponges"}
    survey = open_dataset("survey", data)
    assert survey.images is not None and set(survey.hierarchy.nodes) == {"root", "A", "B", "B/C"}
    with pytest.raises(DatasetNotFoundError):
        open_dataset("notimages", data)
