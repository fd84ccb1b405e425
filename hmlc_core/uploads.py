"""A user's uploaded table and hierarchy: check them, then store them as a table dataset in the data folder.

The dashboard's Retrain page calls :func:`validate_upload` on the uploaded bytes (it shows the summary
before anything is written) and :func:`save_upload` to store a valid pair under the data folder as
``upload-YYYYmmdd-HHMMSS-<6 hex>/`` in the layout :func:`hmlc_core.tables.list_table_datasets` finds
(``NAME/NAME.csv`` or ``.parquet`` beside ``NAME/NAME.obo`` or ``NAME/NAME.edges.csv``). The files are
read with :mod:`hmlc_core.tables`' readers, so an upload is accepted exactly when ``train --table ...
--hierarchy ...`` would accept it; problems name the uploaded file, the line (CSV, OBO) or row (Parquet)
and the column.

Nothing is written outside the data folder: the uploaded file names choose only the file types, never a
path, and the dataset folder is written under a hidden temporary name inside the data folder and renamed
into place, so it is never half written.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from hmlc_core.data import DatasetNotFoundError
from hmlc_core.tables import LABEL_COLUMN, TableError, read_hierarchy, read_table

__all__ = ["HIERARCHY_TYPES", "TABLE_TYPES", "UploadSummary", "save_upload", "validate_upload"]

logger = logging.getLogger(__name__)

#: Accepted table file types (suffixes without the dot).
TABLE_TYPES = ("csv", "parquet")

#: Accepted hierarchy file types: an OBO ontology or an edge-list CSV.
HIERARCHY_TYPES = ("obo", "csv")

_TMP_PREFIX = ".upload-tmp-"


@dataclass
class UploadSummary:
    """What :func:`validate_upload` found in an uploaded table and hierarchy.

    Attributes
    ----------
    problems : list of str
        Every problem found, each naming the uploaded file and the line, row or column; empty when the
        upload can be saved.
    n_samples, n_features : int or None
        Rows and feature columns of the table (None when it could not be read).
    n_nodes, depth : int or None
        Nodes and maximum depth (edges from a root) of the hierarchy (None when it could not be read).
    label_coverage : float in [0, 1] or None
        Share of the samples with at least one label (None when the table could not be read).
    nodes_without_positives : list of str
        Nodes no sample is labelled with, after propagation to the ancestors (empty when either file could
        not be read).
    """

    problems: list[str] = field(default_factory=list)
    n_samples: int | None = None
    n_features: int | None = None
    n_nodes: int | None = None
    depth: int | None = None
    label_coverage: float | None = None
    nodes_without_positives: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def _suffix(name: str, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix (without the dot) of uploaded file ``name``.

    Raises
    ------
    ValueError
        If it is not one of ``allowed``.
    """
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in allowed:
        raise ValueError(f"{name}: unsupported {what} type {('.' + suffix) if suffix else '(no suffix)'!r}; "
                         f"use {' or '.join('.' + a for a in allowed)}")
    return suffix


def _message(exc: TableError | DatasetNotFoundError, uploaded: str) -> str:
    """``exc``'s message with the temporary file's path replaced by the uploaded file's name."""
    if isinstance(exc, TableError):
        return f"{uploaded}:{' ' + exc.location + ':' if exc.location else ''} {exc.reason}"
    return f"{uploaded}: {exc}"


def validate_upload(table_bytes: bytes, table_name: str, hierarchy_bytes: bytes, hierarchy_name: str, *,
                    max_bytes: int | None = None, label_column: str = LABEL_COLUMN) -> UploadSummary:
    """Check an uploaded table and hierarchy as ``train --table ... --hierarchy ...`` would read them.

    The bytes are written to a private temporary folder (removed afterwards) under fixed names whose
    suffixes come from the uploaded names, and read with :func:`hmlc_core.tables.read_table` and
    :func:`hmlc_core.tables.read_hierarchy`.

    Parameters
    ----------
    table_bytes : bytes
        The table: CSV (UTF-8, header first) or Parquet.
    table_name : str
        The uploaded table's file name; only its suffix (``.csv``, ``.parquet``) is used, and it names the
        file in the problems.
    hierarchy_bytes : bytes
        The hierarchy: an OBO file or an edge-list CSV (``parent,child``).
    hierarchy_name : str
        The uploaded hierarchy's file name (``.obo`` or ``.csv``), used as ``table_name``.
    max_bytes : int, optional
        Largest accepted size of each file; None: no limit here.
    label_column : str, default ``"labels"``

    Returns
    -------
    UploadSummary
        The figures of what could be read and every problem: an unsupported type, a file over
        ``max_bytes``, the first reading error of each file (:class:`hmlc_core.tables.TableError`, with its
        line or row and column) and every label that is not a node of the hierarchy (line or row named).
    """
    summary = UploadSummary()
    checks = ((table_bytes, table_name, TABLE_TYPES, "table"),
              (hierarchy_bytes, hierarchy_name, HIERARCHY_TYPES, "hierarchy"))
    suffixes = []
    for data, name, allowed, what in checks:
        try:
            suffixes.append(_suffix(name, allowed, what))
        except ValueError as exc:
            summary.problems.append(str(exc))
            suffixes.append(None)
        if max_bytes is not None and len(data) > max_bytes:
            summary.problems.append(f"{name}: {len(data) / 2**20:.1f} MB is over the upload limit of "
                                    f"{max_bytes / 2**20:.0f} MB")
    if summary.problems:
        return summary
    table_suffix, hierarchy_suffix = suffixes
    with tempfile.TemporaryDirectory(prefix="hmlc-upload-") as tmp:
        table_path = Path(tmp) / f"table.{table_suffix}"
        hierarchy_path = Path(tmp) / f"hierarchy.{hierarchy_suffix}"
        table_path.write_bytes(table_bytes)
        hierarchy_path.write_bytes(hierarchy_bytes)
        hierarchy = terms = None
        try:
            hierarchy = read_hierarchy(hierarchy_path)
            summary.n_nodes, summary.depth = hierarchy.n_nodes, int(hierarchy.depth.max())
        except (TableError, DatasetNotFoundError) as exc:
            summary.problems.append(_message(exc, hierarchy_name))
        try:
            names, x, terms = read_table(table_path, label_column)
            summary.n_samples, summary.n_features = x.shape[0], len(names)
            summary.label_coverage = float(np.mean([bool(t) for t in terms]))
        except (TableError, DatasetNotFoundError) as exc:
            summary.problems.append(_message(exc, table_name))
    if hierarchy is None or terms is None:
        return summary
    known = []
    for row, sample in enumerate(terms):
        place = f"line {row + 2}" if table_suffix == "csv" else f"row {row + 1}"
        for term in sample:
            if term not in hierarchy.index:
                summary.problems.append(f"{table_name}: {place}, column {label_column!r}: label {term[:80]!r} "
                                        "is not a node of the hierarchy")
        known.append([t for t in sample if t in hierarchy.index])
    positives = hierarchy.label_matrix(known).sum(axis=0)
    summary.nodes_without_positives = [n for n, p in zip(hierarchy.nodes, positives) if p == 0]
    return summary


def save_upload(data_dir: str | Path, table_bytes: bytes, table_name: str, hierarchy_bytes: bytes,
                hierarchy_name: str, *, max_bytes: int | None = None) -> Path:
    """Store a valid upload as a new table dataset in ``data_dir``, atomically.

    Parameters
    ----------
    data_dir : str or pathlib.Path
        The data folder (an existing directory); the dataset is its new sub-folder.
    table_bytes, table_name, hierarchy_bytes, hierarchy_name, max_bytes
        As :func:`validate_upload`, which is run first.

    Returns
    -------
    pathlib.Path
        The new dataset folder ``data_dir/upload-YYYYmmdd-HHMMSS-<6 hex>``, holding ``NAME.csv`` (or
        ``NAME.parquet``) and ``NAME.obo`` (or ``NAME.edges.csv``); its name is the dataset's name.

    Raises
    ------
    ValueError
        If :func:`validate_upload` finds a problem (the message lists them); nothing is written.
    DatasetNotFoundError
        If ``data_dir`` is not an existing directory.
    OSError
        (``FileExistsError`` when the generated name is taken) If writing fails; the temporary folder is removed and nothing is left behind.
    """
    summary = validate_upload(table_bytes, table_name, hierarchy_bytes, hierarchy_name, max_bytes=max_bytes)
    if not summary.ok:
        raise ValueError("the upload was not saved:\n" + "\n".join(summary.problems))
    root = Path(data_dir).resolve()
    if not root.is_dir():
        raise DatasetNotFoundError(f"data folder {root} does not exist")
    name = f"upload-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    table_suffix = _suffix(table_name, TABLE_TYPES, "table")
    hierarchy_file = f"{name}.obo" if _suffix(hierarchy_name, HIERARCHY_TYPES, "hierarchy") == "obo" \
        else f"{name}.edges.csv"
    if (root / name).exists():
        raise FileExistsError(f"dataset folder {root / name} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        (tmp / f"{name}.{table_suffix}").write_bytes(table_bytes)
        (tmp / hierarchy_file).write_bytes(hierarchy_bytes)
        os.rename(tmp, root / name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved the uploaded %s and %s as dataset %s in %s", table_name, hierarchy_name, name, root)
    return root / name
