"""Loading a user's images: a folder tree or a CSV file of image paths and taxonomy labels (Pillow and numpy only).

Two formats give an image dataset (an :class:`~hmlc_core.data.HMCDataset` built by
:func:`hmlc_core.images.sets.image_dataset`, pixels decoded by
:func:`hmlc_core.images.pixels.read_image`):

* **Folder tree** (:func:`load_image_folder`): each folder level is a hierarchy level.
  ``ROOT/Echinodermata/Asteroidea/a.jpg`` is labelled ``Echinodermata`` and
  ``Echinodermata/Asteroidea``; an image may sit at any level (``ROOT/Echinodermata/b.jpg`` is
  labelled ``Echinodermata`` only). Images directly in ``ROOT`` have no label and are ignored
  (logged as a warning). If ``ROOT/train/`` and ``ROOT/test/`` exist (and optionally
  ``ROOT/valid/``), they are the given splits, each holding the taxonomy below it, and every
  other entry of ``ROOT`` is ignored; a ``valid/`` or only one of ``train/`` and ``test/`` is an
  error. Folder names are case-sensitive.
* **CSV file** (:func:`load_image_csv`): a header line, then one image a line: an image path
  column (default ``path``) relative to the CSV's folder, written with ``/``, and a label column
  (default ``labels``) of ``/``-separated taxonomy paths from the top level down, several joined by
  ``@`` (``Echinodermata/Asteroidea@Porifera``: multi-label). An optional split column holds
  ``train``, ``valid`` or ``test`` (case-insensitive). Absolute paths, paths that leave the CSV's
  folder (through ``..`` or a symbolic link), a path listed twice, a suffix that is not an
  image's, an empty label, an empty taxonomy level and an unknown split value are refused with a
  :class:`~hmlc_core.tables.TableError` naming the CSV file and line (the first line of a row).

Common rules:

* **Node ids** are the ``/``-joined paths from the top (``Echinodermata/Asteroidea``), under one
  root node :data:`ROOT`, so same-named folders under different parents stay distinct (display the
  last part). A top-level class named ``root`` is refused (it would be the root node itself).
* **Image files** are those with a suffix in :data:`~hmlc_core.images.pixels.IMAGE_SUFFIXES`
  (case-insensitive); other files, hidden files and folders (name starting with ``.``) and
  ``__MACOSX`` folders are ignored.
* **Symbolic links**: in a folder tree, a link whose target lies outside ``ROOT`` is not read: it
  is treated as an unreadable image (see ``on_error``). Linked folders inside ``ROOT`` are not
  followed (their images are found under the real folder). In a CSV, a path whose target leaves
  the CSV's folder is refused with a line error.
* **Unreadable images** (corrupt, truncated, decompression bombs, missing, links leaving the
  folder): with ``on_error="skip"`` (the default) each is left out, logged as a warning naming
  it, and recorded as ``(name, reason)`` in :attr:`ImageSet.skipped
  <hmlc_core.images.sets.ImageSet.skipped>`; with ``on_error="raise"`` the first one raises
  :class:`~hmlc_core.images.pixels.ImageReadError` naming the file. A split left without images
  raises ``ValueError``.
* **Seeded split** (no split given): the images are grouped by their set of label paths; each
  group is shuffled with ``numpy.random.default_rng(seed)`` and its members spread evenly over
  [0, 1) (member ``k`` of ``n`` at ``(k + u) / n``, ``u`` uniform per group); in that order the
  first ``round(N * test_fraction)`` images are the test split, the next
  ``round(N * valid_fraction)`` the valid split (each at least one when its fraction is positive),
  the rest train. Every label path is thus spread over the splits in proportion (stratified),
  while a path with a single image lands in test with probability ``test_fraction``. The split
  is made before decoding, so an unreadable image never moves the others.
* **Display names** (:attr:`ImageSet.names <hmlc_core.images.sets.ImageSet.names>`) are the
  paths relative to the folder or the CSV's folder: user text, to escape wherever shown.

Data folder layout found by :func:`list_image_datasets`: ``<data_dir>/<name>/images.csv`` (CSV
format; its paths relative to ``<name>/``) or else ``<data_dir>/<name>/images/`` (folder format).
Neither name is an ARFF (``<name>.<split>.arff``) or table (``<name>.csv`` with ``<name>.obo`` or
``<name>.edges.csv``) file, and :func:`hmlc_core.catalog.open_dataset` looks for ARFF and table
datasets of a name first.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmlc_core.data import DatasetNotFoundError, HMCDataset, resolve_data_dir
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.images.pixels import IMAGE_SUFFIXES, ImageReadError, is_image_file, read_image
from hmlc_core.images.sets import image_dataset
from hmlc_core.tables import LABEL_SEPARATOR, TableError

__all__ = [
    "IMAGES_CSV", "IMAGES_FOLDER", "ON_ERROR", "PATH_SEPARATOR", "ROOT", "find_image_dataset",
    "list_image_datasets", "load_image_csv", "load_image_folder", "load_images",
]

logger = logging.getLogger(__name__)

#: Id of the root node above every taxonomy's top level.
ROOT = "root"

#: Separator of the levels of a taxonomy path (and of the parts of a node id).
PATH_SEPARATOR = "/"

#: What to do with an image that cannot be read: leave it out (recorded), or raise.
ON_ERROR = ("skip", "raise")

#: File name of a CSV-format image dataset in the data folder (``<data_dir>/<name>/images.csv``).
IMAGES_CSV = "images.csv"

#: Folder name of a folder-format image dataset in the data folder (``<data_dir>/<name>/images/``).
IMAGES_FOLDER = "images"

_SPLITS = ("train", "valid", "test")
_IGNORED_FOLDERS = ("__MACOSX",)


@dataclass(frozen=True)
class _Item:
    """One image to read: the file, its display name, its label paths (node ids) and its given split."""

    file: Path
    name: str
    labels: tuple[str, ...]
    split: str | None = None
    refused: str | None = None  # why the file is not read at all (a link leaving the folder)


# =====================================================================
# Shared checks, hierarchy, split and decoding
# =====================================================================
def _check_options(size: int, valid_fraction: float, test_fraction: float, on_error: str) -> None:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 <= valid_fraction < 1.0 or valid_fraction + test_fraction >= 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1) with valid_fraction + test_fraction < 1, got "
                         f"{valid_fraction} (test_fraction {test_fraction})")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name in _IGNORED_FOLDERS


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` with every symbolic link resolved lies in ``folder`` (already resolved)."""
    return path.resolve().is_relative_to(folder)


def _hierarchy(items: Sequence[_Item]) -> Hierarchy:
    """The tree of every prefix of every label path, under :data:`ROOT`."""
    edges: set[tuple[str, str]] = set()
    for item in items:
        for label in item.labels:
            parts = label.split(PATH_SEPARATOR)
            parent = ROOT
            for depth in range(1, len(parts) + 1):
                node = PATH_SEPARATOR.join(parts[:depth])
                edges.add((parent, node))
                parent = node
    return Hierarchy(sorted(edges), nodes=[ROOT])


def _count(n: int, fraction: float) -> int:
    return 0 if fraction <= 0 else max(1, int(round(n * fraction)))


def _seeded_split(items: Sequence[_Item], valid_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """A split name per item, stratified by label paths (module docstring, *Seeded split*)."""
    n = len(items)
    n_test, n_valid = _count(n, test_fraction), _count(n, valid_fraction)
    if n_test + n_valid >= n:
        raise ValueError(f"{n} image(s) are too few to hold out {n_test} test and {n_valid} valid image(s) and "
                         "keep one for training")
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(tuple(sorted(item.labels)), []).append(i)
    position = np.empty(n, dtype=np.float64)
    for key in sorted(groups):
        members = np.asarray(groups[key])[rng.permutation(len(groups[key]))]
        position[members] = (np.arange(len(members)) + rng.random()) / len(members)
    order = np.lexsort((rng.permutation(n), position))
    split = ["train"] * n
    for i in order[:n_test]:
        split[int(i)] = "test"
    for i in order[n_test:n_test + n_valid]:
        split[int(i)] = "valid"
    return split


def _build(name: str, items: Sequence[_Item], splits: Sequence[str], size: int, on_error: str,
           root: Path, wanted: Sequence[str]) -> HMCDataset:
    """Decode the items, drop (or raise on) unreadable ones, and assemble the dataset."""
    kept: dict[str, list[tuple[_Item, np.ndarray]]] = {s: [] for s in _SPLITS}
    skipped: list[tuple[str, str]] = []
    for item, split in zip(items, splits):
        try:
            if item.refused is not None:
                raise ImageReadError(item.file, item.refused)
            pixels = read_image(item.file, size)
        except ImageReadError as exc:
            if on_error == "raise":
                raise
            logger.warning("skipping %s", exc)
            skipped.append((item.name, exc.reason))
            continue
        kept[split].append((item, pixels))
    for split in wanted:
        if not kept[split]:
            lost = sum(1 for s in splits if s == split)
            raise ValueError(f"image dataset {name!r} from {root}: the {split} split has no readable image "
                             f"({lost} listed, all skipped as unreadable)" if lost else
                             f"image dataset {name!r} from {root}: the {split} split has no image")
    present = [s for s in _SPLITS if kept[s]]
    hierarchy = _hierarchy([item for s in present for item, _ in kept[s]])
    dataset = image_dataset(
        name, hierarchy,
        pixels={s: np.stack([p for _, p in kept[s]]) for s in present},
        labels={s: hierarchy.label_matrix([item.labels for item, _ in kept[s]]) for s in present},
        names={s: [item.name for item, _ in kept[s]] for s in present},
        root=str(root), skipped=skipped)
    logger.info("loaded image dataset %s from %s: %s; train/valid/test = %s, %d skipped", name, root, hierarchy,
                "/".join(str(len(kept[s])) if kept[s] else "-" for s in _SPLITS), len(skipped))
    return dataset


# =====================================================================
# Folder tree
# =====================================================================
def _walk(top: Path, root: Path, resolved_root: Path, split: str | None) -> list[_Item]:
    """The images below ``top``, labelled by their folder path under ``top``, named relative to ``root``."""
    items: list[_Item] = []
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        here = Path(dirpath)
        parts = here.relative_to(top).parts
        for d in sorted(dirnames):
            link = here / d
            if link.is_symlink() and not _hidden(d):
                if _inside(link, resolved_root):
                    logger.info("not following the linked folder %s (its images are read from the folder it "
                                "links to)", link)
                else:
                    logger.warning("not following the linked folder %s: it leaves %s", link, root)
        dirnames[:] = sorted(d for d in dirnames if not _hidden(d) and not (here / d).is_symlink())
        files = sorted(f for f in filenames if not _hidden(f) and is_image_file(f))
        if files and not parts:
            logger.warning("ignoring %d image(s) directly in %s: an image needs a class folder for its label",
                           len(files), top)
            continue
        if parts and parts[0] == ROOT:
            raise ValueError(f"{here}: a top-level class folder may not be named {ROOT!r} (the name of the "
                             "hierarchy's root node); rename it")
        label = PATH_SEPARATOR.join(parts)
        for f in files:
            path = here / f
            refused = None
            if path.is_symlink() and not _inside(path, resolved_root):
                refused = f"symbolic link to a file outside {root}"
            items.append(_Item(path, path.relative_to(root).as_posix(), (label,), split, refused))
    return items


def load_image_folder(root: str | Path, size: int = 32, valid_fraction: float = 0.15, test_fraction: float = 0.2,
                      seed: int = 0, on_error: str = "skip", name: str | None = None) -> HMCDataset:
    """Load an image dataset from a folder tree whose folder levels are hierarchy levels.

    See the module docstring for the layout, the given or seeded splits, the symbolic links and
    the unreadable images.

    Parameters
    ----------
    root : str or pathlib.Path
        The top folder.
    size : int, default 32
        Side in pixels of every image after centre-cropping and resizing.
    valid_fraction : float in [0, 1), default 0.15
        Share of the images held out as the valid split when the folder gives no splits (0: no valid
        split).
    test_fraction : float in (0, 1), default 0.2
        Share of the images held out as the test split when the folder gives no splits.
    seed : int, default 0
        Seed of that split (the same seed gives the same split).
    on_error : {"skip", "raise"}, default "skip"
        What an unreadable image does.
    name : str, optional
        Dataset name; defaults to the folder's name.

    Returns
    -------
    HMCDataset
        An image dataset (:func:`hmlc_core.images.sets.image_dataset`): node ids are ``/``-joined
        folder paths under :data:`ROOT`; ``images.names`` the paths relative to ``root``.

    Raises
    ------
    DatasetNotFoundError
        If ``root`` is not a folder.
    ImageReadError
        With ``on_error="raise"``, for the first image that cannot be read (named).
    ValueError
        On a bad option, an incomplete set of split folders, a top-level folder named ``root``, no
        labelled image, too few images to split, or a split left without a readable image.
    """
    _check_options(size, valid_fraction, test_fraction, on_error)
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    resolved_root = root.resolve()
    given = [s for s in _SPLITS if (root / s).is_dir()]
    if given and not {"train", "test"} <= set(given):
        raise ValueError(f"{root}: has the split folder(s) {', '.join(given)} but not both train/ and test/; give "
                         "train/ and test/ (and optionally valid/), or no split folder to split with a seed")
    if given:
        others = sorted(p.name for p in root.iterdir() if p.name not in given and not _hidden(p.name)
                        and (p.is_dir() or is_image_file(p.name)))
        if others:
            logger.warning("%s gives its splits in %s; ignoring %s", root, ", ".join(given), ", ".join(others))
        items = [item for s in given for item in _walk(root / s, root, resolved_root, s)]
        splits = [item.split or "train" for item in items]
    else:
        items = _walk(root, root, resolved_root, None)
        if not items:
            raise ValueError(f"{root}: no image in a class folder (image suffixes: {', '.join(IMAGE_SUFFIXES)})")
        splits = _seeded_split(items, valid_fraction, test_fraction, seed)
        given = ["train", "test"] + (["valid"] if valid_fraction > 0 else [])
    return _build(name or root.name, items, splits, size, on_error, root, given)


# =====================================================================
# CSV file
# =====================================================================
def _parse_labels(cell: str, csv_path: Path, where: str) -> tuple[str, ...]:
    """The node ids of a label cell: ``@``-separated ``/``-paths, each level stripped of blanks."""
    if not cell.strip():
        raise TableError(csv_path, where, "empty label (every image needs at least one taxonomy path)")
    labels: list[str] = []
    for path in cell.split(LABEL_SEPARATOR):
        parts = [p.strip() for p in path.split(PATH_SEPARATOR)]
        if any(not p for p in parts):
            raise TableError(csv_path, where, f"taxonomy path {path.strip()[:80]!r} has an empty level (paths are "
                             f"levels joined by {PATH_SEPARATOR!r}, several paths joined by {LABEL_SEPARATOR!r})")
        if parts[0] == ROOT:
            raise TableError(csv_path, where, f"taxonomy path {path.strip()[:80]!r} starts with {ROOT!r}, the name "
                             "of the hierarchy's root node; write the path from the first level below it")
        label = PATH_SEPARATOR.join(parts)
        if label not in labels:
            labels.append(label)
    return tuple(labels)


def _column(header: list[str], column: str, csv_path: Path) -> int:
    matches = [i for i, h in enumerate(header) if h.strip() == column]
    if len(matches) != 1:
        problem = "no column" if not matches else "several columns"
        raise TableError(csv_path, "line 1", f"{problem} named {column!r} in the header (columns: "
                         f"{', '.join(repr(h[:40]) for h in header[:30])})")
    return matches[0]


def _read_rows(csv_path: Path) -> list[tuple[int, list[str]]]:
    """``(first line, cells)`` of every row of a UTF-8 CSV file (BOM allowed), the header first."""
    rows: list[tuple[int, list[str]]] = []
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            line = 1
            for row in reader:
                rows.append((line, row))
                line = reader.line_num + 1
    except UnicodeDecodeError as exc:
        raise TableError(csv_path, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise TableError(csv_path, f"line {line}", f"not a well-formed CSV row ({exc})") from exc
    return rows


def _csv_items(csv_path: Path, image_column: str, label_column: str,
               split_column: str | None) -> list[_Item]:
    rows = _read_rows(csv_path)
    if not rows or not any(cell.strip() for cell in rows[0][1]):
        raise TableError(csv_path, "line 1", f"no header line (expected the columns {image_column!r} and "
                         f"{label_column!r})")
    header = rows[0][1]
    columns = {"image": _column(header, image_column, csv_path), "label": _column(header, label_column, csv_path)}
    if split_column is not None:
        columns["split"] = _column(header, split_column, csv_path)
    names = {"image": image_column, "label": label_column, "split": split_column}
    folder = csv_path.parent
    resolved_folder = folder.resolve()
    items: list[_Item] = []
    first_line: dict[str, int] = {}
    for line, row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        for key, index in columns.items():
            if index >= len(row):
                raise TableError(csv_path, f"line {line}", f"missing column {names[key]!r} (the row has "
                                 f"{len(row)} field(s), the header {len(header)})")
        where = f"line {line}"
        text = row[columns["image"]].strip()
        if not text:
            raise TableError(csv_path, f"{where}, column {image_column!r}", "empty image path")
        if Path(text).is_absolute():
            raise TableError(csv_path, f"{where}, column {image_column!r}", f"absolute image path {text[:120]!r} "
                             "refused: give the path relative to the CSV file's folder")
        file = Path(os.path.normpath(folder / text))
        if not file.is_relative_to(Path(os.path.normpath(folder))) or not _inside(file, resolved_folder):
            raise TableError(csv_path, f"{where}, column {image_column!r}", f"image path {text[:120]!r} leaves the "
                             f"CSV file's folder {folder} (through '..' or a symbolic link); images must lie in "
                             "that folder or below it")
        if not is_image_file(file):
            raise TableError(csv_path, f"{where}, column {image_column!r}", f"{text[:120]!r} is not an image file "
                             f"name (suffixes: {', '.join(IMAGE_SUFFIXES)})")
        name = file.relative_to(Path(os.path.normpath(folder))).as_posix()
        if name in first_line:
            raise TableError(csv_path, f"{where}, column {image_column!r}", f"image {name[:120]!r} is already "
                             f"listed on line {first_line[name]}")
        first_line[name] = line
        labels = _parse_labels(row[columns["label"]], csv_path, f"{where}, column {label_column!r}")
        split = None
        if "split" in columns:
            split = row[columns["split"]].strip().lower()
            if split not in _SPLITS:
                raise TableError(csv_path, f"{where}, column {split_column!r}", f"unknown split "
                                 f"{row[columns['split']][:40]!r} (expected train, valid or test)")
        items.append(_Item(file, name, labels, split))
    if not items:
        raise TableError(csv_path, "", "no image row below the header")
    return items


def load_image_csv(csv_path: str | Path, size: int = 32, image_column: str = "path", label_column: str = "labels",
                   split_column: str | None = None, valid_fraction: float = 0.15, test_fraction: float = 0.2,
                   seed: int = 0, on_error: str = "skip", name: str | None = None) -> HMCDataset:
    """Load an image dataset from a CSV file of image paths and ``/``-separated taxonomy labels.

    See the module docstring for the format, the seeded split and the unreadable images.

    Parameters
    ----------
    csv_path : str or pathlib.Path
        The CSV file (UTF-8, a header line first).
    size : int, default 32
        Side in pixels of every image after centre-cropping and resizing.
    image_column, label_column : str, default ``"path"`` and ``"labels"``
        Header names of the image path and label columns.
    split_column : str, optional
        Header name of a column of ``train``/``valid``/``test``; then the fractions and the seed are
        unused. Without it the images are split with the seed.
    valid_fraction : float in [0, 1), default 0.15
    test_fraction : float in (0, 1), default 0.2
    seed : int, default 0
    on_error : {"skip", "raise"}, default "skip"
    name : str, optional
        Dataset name; defaults to the CSV file's name without its suffix.

    Returns
    -------
    HMCDataset
        An image dataset (:func:`hmlc_core.images.sets.image_dataset`); ``images.names`` the image
        paths relative to the CSV file's folder.

    Raises
    ------
    DatasetNotFoundError
        If the CSV file does not exist.
    TableError
        (a ``ValueError``) For a bad header or row, naming the CSV file and line (module docstring).
    ImageReadError
        With ``on_error="raise"``, for the first image that cannot be read (named).
    ValueError
        On a bad option, too few images to split, or a split left without a readable image.
    """
    _check_options(size, valid_fraction, test_fraction, on_error)
    csv_path = Path(csv_path).expanduser().absolute()
    if not csv_path.is_file():
        raise DatasetNotFoundError(f"image CSV file {str(csv_path)!r} does not exist or is not a file")
    items = _csv_items(csv_path, image_column, label_column, split_column)
    if split_column is not None:
        splits = [item.split or "train" for item in items]
        wanted = ["train", "test"] + (["valid"] if "valid" in splits else [])
    else:
        splits = _seeded_split(items, valid_fraction, test_fraction, seed)
        wanted = ["train", "test"] + (["valid"] if valid_fraction > 0 else [])
    return _build(name or csv_path.stem, items, splits, size, on_error, csv_path, wanted)


def load_images(path: str | Path, **options: Any) -> HMCDataset:
    """Load an image dataset from a folder tree (:func:`load_image_folder`) or a ``.csv`` file
    (:func:`load_image_csv`); ``options`` go to that function.

    Raises
    ------
    DatasetNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``path`` is a file that is not a ``.csv``, and everything the loader raises.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        return load_image_folder(path, **options)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise ValueError(f"{path}: an image dataset is a folder or a .csv file")
        return load_image_csv(path, **options)
    raise DatasetNotFoundError(f"image dataset {str(path)!r} does not exist")


# =====================================================================
# The data folder
# =====================================================================
def _image_source(folder: Path) -> Path | None:
    """``folder/images.csv`` if it is a file, else ``folder/images/`` if it is a folder, else None."""
    if (folder / IMAGES_CSV).is_file():
        return folder / IMAGES_CSV
    if (folder / IMAGES_FOLDER).is_dir():
        return folder / IMAGES_FOLDER
    return None


def list_image_datasets(data_dir: str | Path | None = None) -> list[str]:
    """Names of the image datasets in the data folder: every ``<name>/`` holding ``images.csv`` or an
    ``images/`` folder (module docstring).

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        None uses ``HMLC_DATA_DIR`` (:func:`hmlc_core.data.resolve_data_dir`).

    Returns
    -------
    list of str
        Sorted case-insensitively.

    Raises
    ------
    DatasetNotFoundError
        If the data folder cannot be resolved.
    """
    folder = resolve_data_dir(data_dir)
    try:
        subs = [p for p in folder.iterdir() if p.is_dir() and not _hidden(p.name)]
    except OSError:
        return []
    return sorted((p.name for p in subs if _image_source(p) is not None), key=lambda s: (s.lower(), s))


def find_image_dataset(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The source of image dataset ``name`` in the data folder (for :func:`load_images`), or None.

    Parameters
    ----------
    name : str
        Matched exactly (a folder name).
    data_dir : str or pathlib.Path, optional
        None uses ``HMLC_DATA_DIR``.

    Returns
    -------
    pathlib.Path or None
        ``<data_dir>/<name>/images.csv`` if it exists, else ``<data_dir>/<name>/images/`` if it
        exists, else None.

    Raises
    ------
    DatasetNotFoundError
        If the data folder cannot be resolved.
    """
    if not name or Path(name).name != name or name in (".", "..") or _hidden(name):
        return None
    folder = resolve_data_dir(data_dir) / name
    return _image_source(folder) if folder.is_dir() else None
