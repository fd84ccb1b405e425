"""Loading a user's own data: a CSV/Parquet table with a hierarchy given as an edge list or an OBO file.

* The **table** (``.csv``, or ``.parquet`` when pyarrow is installed) has one row per
  sample: numeric feature columns and one label column (default ``labels``) holding
  the sample's node ids separated by ``@`` (``GO:0008150@GO:0009987``; an empty cell is
  a sample without labels). Empty cells and pandas' usual missing-value markers (``NA``,
  ``NaN``, ...) in feature columns are missing values.
* The **hierarchy** is an edge-list CSV with the header ``parent,child`` (one edge a
  line; duplicated edges are fine) or an OBO 1.2/1.4 ontology read with obonet
  (``.obo``): ``is_a`` relations, optionally ``part_of``; obsolete terms and the
  relations pointing at them are dropped.
* The **test split** is a second table with the same feature columns, or
  :data:`TEST_FRACTION` of the rows drawn with the fixed seed :data:`SPLIT_SEED` (the
  same split for every training seed, so runs with different seeds are comparable).

The result is the project's :class:`~hmlc_core.data.HMCDataset`, built as
:func:`hmlc_core.data.load_arff_files` builds one: labels propagated to all ancestors
(:meth:`Hierarchy.label_matrix`), features mean-imputed and standardised on train+valid
(:func:`hmlc_core.data.standardize_features`), ``skip_eval`` the hierarchy's roots plus
:data:`hmlc_core.data.GO_ROOTS` (docs/method.md, *Data and hierarchy*, *Evaluated nodes*).

Every problem raises :class:`TableError` (a ``ValueError``) naming the file and the
line (CSV, OBO) or row (Parquet) and column at fault.

Data folder layout found by :func:`list_table_datasets`: ``<name>/<name>.csv`` (or
``.parquet``) beside ``<name>/<name>.obo`` or ``<name>/<name>.edges.csv``, and
optionally ``<name>/<name>.test.csv`` (or ``.parquet``).
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hmlc_core.data import (GO_ROOTS, MAX_ABS_VALUE, SPLIT_SEED, DatasetNotFoundError, HMCDataset, Split,
                            held_out_rows, resolve_data_dir, standardize_features)
from hmlc_core.hierarchy import Hierarchy

__all__ = [
    "LABEL_COLUMN", "LABEL_SEPARATOR", "OBO_RELATIONS", "SPLIT_SEED", "TEST_FRACTION", "TableError",
    "find_table_dataset", "list_table_datasets", "load_table_dataset", "read_edge_list", "read_hierarchy",
    "read_obo", "read_table",
]

logger = logging.getLogger(__name__)

#: Default name of the label column.
LABEL_COLUMN = "labels"

#: Separator of the node ids in a label cell.
LABEL_SEPARATOR = "@"

#: The OBO relations that may become hierarchy edges.
OBO_RELATIONS = ("is_a", "part_of")

#: Share of the rows held out for testing when no test table is given.
TEST_FRACTION = 0.2

_TABLE_SUFFIXES = (".csv", ".parquet")


class TableError(ValueError):
    """A table or hierarchy file that cannot be loaded; the message reads ``FILE:LOCATION: reason``.

    Parameters
    ----------
    path : str or pathlib.Path
        The file at fault.
    location : str
        ``"line N"`` (CSV, OBO; 1-based, the header is line 1), ``"row N"`` (Parquet; 1-based data
        row), optionally followed by ``", column 'NAME'"``; ``""`` for the file as a whole.
    reason : str
        What is wrong.

    Attributes
    ----------
    path : pathlib.Path
    location : str
    reason : str
    """

    def __init__(self, path: str | Path, location: str, reason: str) -> None:
        self.path = Path(path)
        self.location = location
        self.reason = reason
        super().__init__(f"{self.path}:{' ' + location + ':' if location else ''} {reason}")

    def __reduce__(self) -> tuple[type[TableError], tuple[Path, str, str]]:
        return type(self), (self.path, self.location, self.reason)


MAX_LISTED_CELLS = 20
"""How many bad feature cells a :class:`TableError` locates (the first, then the others up to this count)."""


def _where(path: Path, row: int, column: str | None = None) -> str:
    """The location of data row ``row`` (0-based) of a table: its line in a CSV, its row in a Parquet file.

    CSV lines assume one line per row (a quoted cell spanning several lines shifts them).
    """
    place = f"line {row + 2}" if path.suffix.lower() == ".csv" else f"row {row + 1}"
    return place if column is None else f"{place}, column {column!r}"


# =====================================================================
# Tables
# =====================================================================
def _read_csv(path: Path, expected: str, **options: Any) -> pd.DataFrame:
    """``pandas.read_csv`` of a UTF-8 file (BOM allowed) as text cells; its failures as :class:`TableError`.

    ``expected`` says what an empty file lacks (for the message); ``options`` go to ``pandas.read_csv``.
    """
    try:
        return pd.read_csv(path, dtype=str, encoding="utf-8-sig", **options)
    except pd.errors.EmptyDataError as exc:
        raise TableError(path, "line 1", f"the file is empty (expected {expected})") from exc
    except UnicodeDecodeError as exc:
        raise TableError(path, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except pd.errors.ParserError as exc:
        raise TableError(path, "", f"not a well-formed CSV file ({exc})") from exc


def _read_frame(path: Path) -> pd.DataFrame:
    """The file as a DataFrame of text cells (NaN for missing) by its suffix."""
    if not path.is_file():
        raise DatasetNotFoundError(f"table file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401  (pandas reads Parquet through it)
        except ImportError as exc:
            raise TableError(path, "", "reading Parquet files needs the pyarrow package "
                                       "(pip install pyarrow), or save the table as CSV") from exc
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:
            raise TableError(path, "", f"not a readable Parquet file ({exc})") from exc
        return frame.astype(object).where(frame.notna(), np.nan)
    if suffix != ".csv":
        raise TableError(path, "", f"unsupported table type {path.suffix!r}: use .csv or .parquet")
    frame = _read_csv(path, "a header line", skipinitialspace=True, index_col=False)
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = [c.strip() for c in next(csv.reader(handle))]
    repeated = [c for i, c in enumerate(header) if c in header[:i]]
    if repeated:
        raise TableError(path, "line 1", f"column {repeated[0]!r} appears more than once")
    frame.columns = header
    return frame


def read_table(path: str | Path, label_column: str = LABEL_COLUMN,
               feature_names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray, list[list[str]]]:
    """Read one table: its feature columns and its label column.

    Parameters
    ----------
    path : str or pathlib.Path
        A ``.csv`` (UTF-8, header line first) or ``.parquet`` file.
    label_column : str, default ``"labels"``
        The column of ``@``-separated node ids; every other column is a feature.
    feature_names : sequence of str, optional
        The feature columns expected (those of the training table); the file must hold exactly
        these, in any order, and ``X`` follows this order.

    Returns
    -------
    feature_names : list of str, length D
    X : numpy.ndarray of float64, shape (N, D)
        NaN for missing values.
    label_terms : list of list of str, length N
        Per sample, the node ids of its label cell (whitespace stripped, duplicates removed, in cell order).

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) If the file does not exist.
    TableError
        (a ``ValueError``) If the file is empty, unreadable, of another type, has no data row, lacks the
        label column, has no feature column, repeats a column name, differs from ``feature_names``, or a
        feature cell is not a finite number of magnitude at most :data:`hmlc_core.data.MAX_ABS_VALUE`
        (the line or row and the column are named).
    """
    path = Path(path)
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if label_column not in columns:
        raise TableError(path, "line 1" if path.suffix.lower() == ".csv" else "",
                         f"no label column {label_column!r} (columns: {', '.join(map(repr, columns[:10]))}"
                         f"{', ...' if len(columns) > 10 else ''}); name it with --label-column")
    if len(frame) == 0:
        raise TableError(path, "", "the table has no data rows")
    names = [c for c in columns if c != label_column]
    if not names:
        raise TableError(path, "", f"the table has no feature columns besides {label_column!r}")
    if feature_names is not None:
        missing = [c for c in feature_names if c not in names]
        extra = [c for c in names if c not in feature_names]
        if missing or extra:
            what = f"lacks the feature column {missing[0]!r}" if missing else f"has the extra column {extra[0]!r}"
            raise TableError(path, "", f"{what} of the training table; both must hold the same feature columns")
        names = list(feature_names)
    cells = frame[names]
    values = cells.apply(pd.to_numeric, errors="coerce").astype(np.float64)
    bad = (values.isna() & cells.notna()) | (values.notna() & ~(values.abs() <= MAX_ABS_VALUE))
    if bad.to_numpy().any():
        cells_at = np.argwhere(bad.to_numpy())
        row, col = cells_at[0]
        others = [_where(path, int(r), names[c]) for r, c in cells_at[1:MAX_LISTED_CELLS]]
        more = "" if len(cells_at) == 1 else (
            f"; {len(cells_at) - 1} more such cell(s): {'; '.join(others)}"
            f"{'; ...' if len(cells_at) > MAX_LISTED_CELLS else ''}")
        raise TableError(path, _where(path, int(row), names[col]),
                         f"{str(cells.iat[row, col])[:60]!r} is not a number (or its magnitude is over "
                         f"{MAX_ABS_VALUE:g}){more}")
    labels: list[list[str]] = []
    for cell in frame[label_column]:
        text = "" if pd.isna(cell) else str(cell)
        labels.append(list(dict.fromkeys(t.strip() for t in text.split(LABEL_SEPARATOR) if t.strip())))
    return names, values.to_numpy(), labels


# =====================================================================
# Hierarchies
# =====================================================================
def _cycle_error(path: Path, edges: Sequence[tuple[str, str]], where: dict[tuple[str, str], str]) -> None:
    """Raise a :class:`TableError` naming one cycle of ``edges`` (and the line of its first edge), if any."""
    import networkx as nx  # imported here: the dashboard imports this module, a page view never reads a table

    graph = nx.DiGraph(edges)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        return
    text = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
    raise TableError(path, where.get(cycle[0][:2], ""), f"the hierarchy has a cycle: {text[:200]}")


def read_edge_list(path: str | Path) -> list[tuple[str, str]]:
    """Read a hierarchy from a CSV edge list with the header ``parent,child`` (columns in any order).

    Parameters
    ----------
    path : str or pathlib.Path
        UTF-8 CSV; one ``parent,child`` edge a line. Node ids are text (``NA`` is an id, not a
        missing value) with surrounding whitespace stripped. Other columns are ignored.

    Returns
    -------
    list of (str, str)
        Unique ``(parent, child)`` edges in order of first appearance.

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) If the file does not exist.
    TableError
        If the file is empty or not CSV, lacks a ``parent`` or ``child`` column, has no edge, or an
        edge has an empty id, is a self-loop, or closes a cycle (the line is named).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetNotFoundError(f"hierarchy file {path} does not exist")
    frame = _read_csv(path, "the header 'parent,child'", keep_default_na=False)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    for column in ("parent", "child"):
        if column not in frame.columns:
            raise TableError(path, "line 1", f"no {column!r} column: the header must read 'parent,child'")
    if len(frame) == 0:
        raise TableError(path, "", "the edge list has no edges")
    where: dict[tuple[str, str], str] = {}
    for row, (parent, child) in enumerate(zip(frame["parent"].str.strip(), frame["child"].str.strip())):
        if not parent or not child:
            raise TableError(path, f"line {row + 2}", f"empty {'parent' if not parent else 'child'} id")
        if parent == child:
            raise TableError(path, f"line {row + 2}", f"the edge {parent!r} -> {child!r} is a self-loop")
        where.setdefault((parent, child), f"line {row + 2}")
    edges = list(where)
    _cycle_error(path, edges, where)
    return edges


def read_obo(path: str | Path, relations: Sequence[str] = ("is_a",)) -> list[tuple[str, str]]:
    """Read a hierarchy from an OBO ontology file with obonet (Gene Ontology's ``go-basic.obo`` and the like).

    Parameters
    ----------
    path : str or pathlib.Path
        An OBO 1.2/1.4 file (UTF-8).
    relations : sequence of str, default ``("is_a",)``
        The relations that become edges, from :data:`OBO_RELATIONS`; ``("is_a", "part_of")`` adds
        ``relationship: part_of`` lines.

    Returns
    -------
    list of (str, str)
        Unique ``(parent, child)`` edges (``child is_a parent``). Obsolete terms (``is_obsolete: true``)
        and relations pointing at them are dropped (logged at INFO); terms without any kept relation
        are not nodes.

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) If the file does not exist.
    TableError
        If a relation is not one of :data:`OBO_RELATIONS`, the file cannot be parsed (the message quotes
        the line), a relation points at a term the file does not define, no edge remains, or the kept
        relations form a cycle (the ``id:`` line of a term on it is named).
    """
    import obonet

    path = Path(path)
    unknown = [r for r in relations if r not in OBO_RELATIONS]
    if unknown:
        raise TableError(path, "", f"unknown OBO relation {unknown[0]!r}; choose from {', '.join(OBO_RELATIONS)}")
    if not path.is_file():
        raise DatasetNotFoundError(f"hierarchy file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TableError(path, "", f"not valid UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    lines = {}
    for number, line in enumerate(text.splitlines(), start=1):
        m = re.match(r"\s*id:\s*(\S+)", line)
        if m:
            lines.setdefault(m.group(1), f"line {number}")
    try:
        graph = obonet.read_obo(io.StringIO(text), ignore_obsolete=False)
    except ValueError as exc:
        raise TableError(path, "", f"not a valid OBO file: {exc}") from exc
    obsolete = {n for n, d in graph.nodes(data=True) if str(d.get("is_obsolete", "false")).lower() == "true"}
    defined = {n for n, d in graph.nodes(data=True) if d or n in lines}
    edges: dict[tuple[str, str], None] = {}
    dropped = 0
    for child, parent, relation in graph.edges(keys=True):
        if relation not in relations:
            continue
        if parent not in defined:
            raise TableError(path, lines.get(child, ""), f"term {child!r} has {relation} {parent!r}, "
                                                         "a term this file does not define")
        if child in obsolete or parent in obsolete:
            dropped += 1
            continue
        if child != parent:
            edges.setdefault((parent, child))
    if obsolete:
        logger.info("%s: dropped %d obsolete term(s) and %d relation(s) involving them", path, len(obsolete), dropped)
    if not edges:
        raise TableError(path, "", f"no {' or '.join(relations)} relation between non-obsolete terms")
    edge_list = list(edges)
    _cycle_error(path, edge_list, {e: lines.get(e[1], "") for e in edge_list})
    return edge_list


def read_hierarchy(path: str | Path, relations: Sequence[str] = ("is_a",)) -> Hierarchy:
    """Read a hierarchy file by its suffix: ``.obo`` (:func:`read_obo`) or ``.csv`` (:func:`read_edge_list`).

    Parameters
    ----------
    path : str or pathlib.Path
    relations : sequence of str, default ``("is_a",)``
        OBO files only (see :func:`read_obo`).

    Returns
    -------
    Hierarchy
        Nodes are every id of an edge; ``skip_eval`` is the roots plus :data:`hmlc_core.data.GO_ROOTS`.

    Raises
    ------
    DatasetNotFoundError, TableError
        See :func:`read_obo` and :func:`read_edge_list`; also for another suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".obo":
        edges = read_obo(path, relations)
    elif suffix == ".csv":
        edges = read_edge_list(path)
    else:
        raise TableError(path, "", f"unsupported hierarchy type {path.suffix!r}: use an edge-list .csv or an .obo file")
    nodes = {n for e in edges for n in e}
    children = {c for _, c in edges}
    roots = {n for n in nodes if n not in children}
    return Hierarchy(edges, nodes=sorted(nodes), skip_eval=roots | GO_ROOTS)


# =====================================================================
# Datasets
# =====================================================================
def _check_labels(path: Path, label_column: str, terms: list[list[str]], hierarchy: Hierarchy,
                  rows: np.ndarray) -> None:
    """Raise a :class:`TableError` for the first label that is not a node (``rows`` maps to file rows)."""
    for i, sample in enumerate(terms):
        for term in sample:
            if term not in hierarchy.index:
                raise TableError(path, _where(path, int(rows[i]), label_column),
                                 f"label {term[:80]!r} is not a node of the hierarchy")


def _split(table: Path, part: str, n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`hmlc_core.data.held_out_rows`, its error a :class:`TableError` naming the table and the part."""
    try:
        return held_out_rows(n, fraction)
    except ValueError as exc:
        raise TableError(table, "", f"cannot hold out the {part} split: {exc}") from None


def load_table_dataset(
    table: str | Path,
    hierarchy: str | Path,
    *,
    label_column: str = LABEL_COLUMN,
    test_table: str | Path | None = None,
    test_fraction: float = TEST_FRACTION,
    valid_fraction: float = 0.0,
    relations: Sequence[str] = ("is_a",),
    name: str | None = None,
) -> HMCDataset:
    """Load a dataset from a table and a hierarchy file (see the module docstring for the formats).

    Parameters
    ----------
    table : str or pathlib.Path
        The (training) table, ``.csv`` or ``.parquet``.
    hierarchy : str or pathlib.Path
        ``.obo`` or edge-list ``.csv`` (:func:`read_hierarchy`).
    label_column : str, default ``"labels"``
    test_table : str or pathlib.Path, optional
        A table with the same feature columns; without it, ``test_fraction`` of the rows of ``table``
        are the test split (seed :data:`SPLIT_SEED`).
    test_fraction : float in (0, 1), default 0.2
        Used without ``test_table``.
    valid_fraction : float in [0, 1), default 0
        Share of the training rows held out as the valid split (seed :data:`SPLIT_SEED`); 0 gives no
        valid split.
    relations : sequence of str, default ``("is_a",)``
        OBO relations that become edges.
    name : str, optional
        Dataset name; defaults to the table's file name without its suffix.

    Returns
    -------
    HMCDataset
        ``X`` float32 (N, D) mean-imputed and standardised on train+valid, ``Y`` uint8 (N, C) propagated
        to ancestors in ``hierarchy.nodes`` order; ``source`` names the files.

    Raises
    ------
    DatasetNotFoundError
        (a ``FileNotFoundError``) If a file does not exist.
    TableError
        (a ``ValueError``) From :func:`read_table` and :func:`read_hierarchy`; for a label that is not a
        node (file, line or row, and column named); for a split too small to leave a row in each part.
    ValueError
        If ``test_fraction`` or ``valid_fraction`` is out of range.
    """
    table, hierarchy_path = Path(table), Path(hierarchy)
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    if test_table is None and not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    h = read_hierarchy(hierarchy_path, relations)
    names, x, terms = read_table(table, label_column)
    _check_labels(table, label_column, terms, h, np.arange(len(terms)))
    y = h.label_matrix(terms)
    rows = np.arange(len(terms))
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if test_table is None:
        if len(rows) < 2:
            raise TableError(table, "", "a table of one row cannot be split into train and test; give --test-table")
        train_pos, test_pos = _split(table, "test", len(rows), test_fraction)
        parts["test"] = (x[rows[test_pos]], y[rows[test_pos]])
        rows = rows[train_pos]
    else:
        _, x_test, test_terms = read_table(test_table, label_column, names)
        _check_labels(Path(test_table), label_column, test_terms, h, np.arange(len(test_terms)))
        parts["test"] = (x_test, h.label_matrix(test_terms))
    if valid_fraction > 0:
        train_pos, valid_pos = _split(table, "valid", len(rows), valid_fraction)
        parts["valid"] = (x[rows[valid_pos]], y[rows[valid_pos]])
        rows = rows[train_pos]
    parts["train"] = (x[rows], y[rows])
    x_train, x_valid, x_test = standardize_features(
        parts["train"][0], parts["valid"][0] if "valid" in parts else None, parts["test"][0])
    source = {"train": str(table), "test": str(test_table if test_table is not None else table),
              "hierarchy": str(hierarchy_path)}
    dataset = HMCDataset(
        name=name or table.stem,
        hierarchy=h,
        feature_names=names,
        train=Split(x_train, parts["train"][1]),
        valid=None if x_valid is None else Split(x_valid, parts["valid"][1]),
        test=Split(x_test, parts["test"][1]),
        source=source,
    )
    logger.info("loaded %s from %s and %s: %s; train/valid/test = %d/%s/%d, %d features", dataset.name, table,
                hierarchy_path, h, dataset.train.n_samples, "-" if dataset.valid is None else dataset.valid.n_samples,
                dataset.test.n_samples, dataset.n_features)
    return dataset


def _table_files(folder: Path) -> dict[str, Path] | None:
    """The files of the table dataset in ``folder`` (named after it), or None if it holds none."""
    name = folder.name
    found: dict[str, Path] = {}
    for suffix in _TABLE_SUFFIXES:
        if (folder / f"{name}{suffix}").is_file():
            found.setdefault("table", folder / f"{name}{suffix}")
        if (folder / f"{name}.test{suffix}").is_file():
            found.setdefault("test_table", folder / f"{name}.test{suffix}")
    for hierarchy in (folder / f"{name}.obo", folder / f"{name}.edges.csv"):
        if hierarchy.is_file():
            found.setdefault("hierarchy", hierarchy)
    return found if "table" in found and "hierarchy" in found else None


def list_table_datasets(data_dir: str | Path | None = None) -> list[str]:
    """Names of the table datasets in the data folder: every ``<name>/`` holding ``<name>.csv`` (or
    ``.parquet``) and ``<name>.obo`` (or ``<name>.edges.csv``).

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
        subs = [p for p in folder.iterdir() if p.is_dir()]
    except OSError:
        return []
    return sorted((p.name for p in subs if _table_files(p) is not None), key=lambda s: (s.lower(), s))


def find_table_dataset(name: str, data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """The files of table dataset ``name`` in the data folder, or None if there is none of that name.

    Parameters
    ----------
    name : str
        Matched exactly (a folder name).
    data_dir : str or pathlib.Path, optional
        None uses ``HMLC_DATA_DIR``.

    Returns
    -------
    dict of str to pathlib.Path or None
        Keys ``"table"``, ``"hierarchy"`` and, when present, ``"test_table"``: the keyword arguments of
        :func:`load_table_dataset`.

    Raises
    ------
    DatasetNotFoundError
        If the data folder cannot be resolved.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        return None
    folder = resolve_data_dir(data_dir) / name
    return _table_files(folder) if folder.is_dir() else None
