"""Loading CLUS HMC ARFF benchmark datasets (FunCat trees and Gene Ontology DAGs).

This module turns the CLUS hierarchical multi-label ARFF files (Vens et al. 2008,
the splits used by C-HMCNN) into feature matrices, propagated label matrices and a
:class:`~hmlc_core.hierarchy.Hierarchy`:

* :func:`parse_arff` -- our own parser for one ARFF file (liac-arff rejects the
  ``hierarchical`` attribute type); docs/method.md, *Data and hierarchy*. Every
  problem in a file raises :class:`ArffError` (a ``ValueError``) whose message
  starts with ``FILE:LINE:``.
* :func:`resolve_data_dir`, :func:`list_datasets`, :func:`find_dataset_files` --
  locate datasets below a data folder (argument or env ``HMLC_DATA_DIR``).
* :func:`load_dataset`, :func:`load_arff_files` -- parse the splits, build the
  hierarchy from the union of the splits' hierarchy items, propagate labels and
  preprocess the features (docs/method.md, *Data and hierarchy*: mean imputation and
  standardisation, both fitted on train+valid).

Nothing here trains or evaluates models.
"""

from __future__ import annotations

import logging
import math
import os
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hmlc_core.hierarchy import Hierarchy

if TYPE_CHECKING:
    from hmlc_core.images.sets import ImageSet

__all__ = [
    "ArffError",
    "ArffTable",
    "DatasetNotFoundError",
    "HMCDataset",
    "Split",
    "DATA_DIR_ENV",
    "GO_ROOTS",
    "MAX_ABS_VALUE",
    "MAX_DENSE_BYTES",
    "SPLIT_SEED",
    "find_dataset_files",
    "held_out_rows",
    "hold_out_valid",
    "list_datasets",
    "load_arff_files",
    "load_dataset",
    "parse_arff",
    "resolve_data_dir",
    "standardize_features",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the folder that holds the datasets.
DATA_DIR_ENV = "HMLC_DATA_DIR"

#: Nodes skipped in evaluation besides the hierarchy's roots (docs/method.md, *Evaluated nodes*).
GO_ROOTS: frozenset[str] = frozenset({"root", "GO0003674", "GO0005575", "GO0008150"})

#: Largest magnitude accepted for a numeric value: squares of larger values (summed over
#: millions of rows) overflow float64 in the standardisation (:func:`standardize_features`).
MAX_ABS_VALUE = 1e150

#: Fixed allowance for the dense feature matrix of one file; beyond it the matrix may take at most
#: 64 bytes per byte of the file (only very wide one-hot blocks of nominal attributes go beyond).
MAX_DENSE_BYTES = 256 * 2**20

#: Seed of every split this project draws from a file's rows (a table's test split, a valid split held out of
#: the training rows): the same rows in every run, so runs of different configurations and seeds compare.
SPLIT_SEED = 0

#: Name of the artificial top node of tree (FunCat-style) hierarchies.
ROOT = "root"

_SPLITS = ("train", "valid", "test")
_NUMERIC_TYPES = {"numeric", "real", "integer"}
_UNSUPPORTED_TYPES = {"string", "date", "relational"}


# =====================================================================
# Data classes
# =====================================================================
@dataclass
class ArffTable:
    """The parsed content of one CLUS HMC ARFF file.

    Attributes
    ----------
    path : pathlib.Path
        The file that was read.
    feature_names : list of str, length D
        Column names after one-hot expansion: a numeric attribute keeps its name,
        a nominal attribute ``a`` with values ``{x, y}`` gives ``a=x`` and ``a=y``.
    X : numpy.ndarray of float64, shape (N, D)
        Feature values. A numeric ``?`` is NaN; a nominal ``?`` or a value not
        declared in the header gives an all-zero one-hot block (docs/method.md, *Data and hierarchy*).
    label_terms : list of list of str, length N
        Per sample, the node ids of the listed (most specific) terms, duplicates
        removed, in file order. Tree paths ``01/01/03`` become ``01.01.03``.
    edges : list of (str, str)
        ``(parent, child)`` pairs of the hierarchy declared in the header,
        without duplicates, in order of first appearance.
    style : {"tree", "dag"}
        How the hierarchy items were read (see :func:`parse_arff`).
    relation : str
        The ``@RELATION`` name ("" when absent).
    feature_lines : list of int, length D
        Per feature column, the 1-based line of the ``@ATTRIBUTE`` it comes from.
    hierarchy_line : int
        The line of the ``hierarchical`` attribute (0 when unknown).
    data_line : int
        The line of ``@DATA`` (0 when unknown).
    """

    path: Path
    feature_names: list[str]
    X: np.ndarray
    label_terms: list[list[str]]
    edges: list[tuple[str, str]]
    style: str
    relation: str = ""
    feature_lines: list[int] = field(default_factory=list)
    hierarchy_line: int = 0
    data_line: int = 0

    @property
    def n_samples(self) -> int:
        """Number of data rows ``N``."""
        return int(self.X.shape[0])

    @property
    def nodes(self) -> list[str]:
        """Every node id that appears in :attr:`edges` (first appearance order)."""
        seen: dict[str, None] = {}
        for parent, child in self.edges:
            seen.setdefault(parent)
            seen.setdefault(child)
        return list(seen)


@dataclass
class Split:
    """One split (train, valid or test) of an :class:`HMCDataset`.

    Attributes
    ----------
    X : numpy.ndarray of float32, shape (N, D)
        Preprocessed features (no NaN).
    Y : numpy.ndarray of uint8, shape (N, C)
        Labels in {0, 1}, propagated to all ancestors (coherent), columns in
        ``hierarchy.nodes`` order.
    """

    X: np.ndarray
    Y: np.ndarray

    @property
    def n_samples(self) -> int:
        """Number of samples ``N``."""
        return int(self.X.shape[0])


@dataclass
class HMCDataset:
    """A hierarchical multi-label dataset with train, optional valid, and test splits.

    Attributes
    ----------
    name : str
        Dataset name (for example ``"cellcycle_FUN"``).
    hierarchy : Hierarchy
        The label hierarchy; its ``nodes`` fix the column order of every ``Y``.
    feature_names : list of str, length D
        Feature column names (after one-hot expansion).
    train, test : Split
        Training and test data.
    valid : Split or None
        Validation data; None for datasets shipped without it (Diatoms, ImCLEF07).
    source : dict of str to str
        Split name -> path of the file it was read from ("synthetic" for
        generated data).
    images : hmlc_core.images.sets.ImageSet or None
        For image datasets: image shape, normalisation, display names and
        thumbnails (``X`` then holds normalised pixels,
        :func:`hmlc_core.images.sets.pixels_to_features`); None for tabular data.
    """

    name: str
    hierarchy: Hierarchy
    feature_names: list[str]
    train: Split
    valid: Split | None
    test: Split
    source: dict[str, str] = field(default_factory=dict)
    images: ImageSet | None = None

    @property
    def n_features(self) -> int:
        """Number of feature columns ``D``."""
        return len(self.feature_names)

    @property
    def splits(self) -> dict[str, Split]:
        """The present splits by name, in the order train, valid, test."""
        out = {"train": self.train}
        if self.valid is not None:
            out["valid"] = self.valid
        out["test"] = self.test
        return out


class DatasetNotFoundError(FileNotFoundError):
    """A data folder or a dataset inside it could not be found."""


# =====================================================================
# ARFF parsing
# =====================================================================
class ArffError(ValueError):
    """An ARFF file that cannot be loaded; the message reads ``FILE:LINE: reason``.

    Every failure of :func:`parse_arff`, :func:`load_arff_files` and
    :func:`load_dataset` caused by a file's content raises this type (a
    :class:`ValueError`, so callers catching ``ValueError`` keep working).

    Parameters
    ----------
    path : str or pathlib.Path
        The file at fault.
    line : int
        The 1-based line at fault (>= 1): the offending data row or header line;
        for hierarchy problems the line of the ``hierarchical`` attribute.
    reason : str
        What is wrong, naming the attribute or term concerned.

    Attributes
    ----------
    path : pathlib.Path
    line : int
    reason : str
    """

    def __init__(self, path: str | Path, line: int, reason: str) -> None:
        self.path = Path(path)
        self.line = max(int(line), 1)
        self.reason = reason
        super().__init__(f"{self.path}:{self.line}: {reason}")

    def __reduce__(self) -> tuple[type[ArffError], tuple[Path, int, str]]:
        return type(self), (self.path, self.line, self.reason)


@dataclass
class _Attribute:
    name: str
    kind: str  # "numeric", "nominal" or "class"
    values: list[str] = field(default_factory=list)  # nominal values / hierarchy items
    line: int = 0  # the @ATTRIBUTE line


def _show(text: str, limit: int = 60) -> str:
    """``repr`` of ``text`` for an error message, shortened to about ``limit`` characters."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_name(rest: str, path: Path, lineno: int) -> tuple[str, str]:
    """Split ``<name> <type...>`` where the name may be quoted."""
    rest = rest.strip()
    if not rest:
        raise ArffError(path, lineno, "@ATTRIBUTE without a name")
    if rest[0] in "'\"":
        end = rest.find(rest[0], 1)
        if end < 0:
            raise ArffError(path, lineno, "unterminated quoted attribute name")
        return rest[1:end], rest[end + 1 :].strip()
    parts = rest.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _parse_attribute(rest: str, path: Path, lineno: int) -> _Attribute:
    name, type_text = _split_name(rest, path, lineno)
    if not type_text:
        raise ArffError(path, lineno, f"attribute {_show(name)} has no type")
    lowered = type_text.lower()
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise ArffError(path, lineno, f"nominal attribute {_show(name)} lacks a closing '}}'")
        values = [_strip_quotes(v) for v in type_text[1:-1].split(",")]
        values = [v for v in values if v != ""]
        if not values:
            raise ArffError(path, lineno, f"nominal attribute {_show(name)} declares no values")
        return _Attribute(name, "nominal", values, lineno)
    first = lowered.split(None, 1)[0]
    if first in _NUMERIC_TYPES:
        return _Attribute(name, "numeric", line=lineno)
    if first == "hierarchical":
        items_text = type_text[len("hierarchical") :]
        items = [_strip_quotes(v) for v in items_text.split(",")]
        items = [v for v in items if v != ""]
        if not items:
            raise ArffError(path, lineno, f"hierarchical attribute {_show(name)} lists no items")
        return _Attribute(name, "class", items, lineno)
    if first in _UNSUPPORTED_TYPES:
        raise ArffError(path, lineno, f"attribute {_show(name)} has unsupported type {first!r}")
    raise ArffError(path, lineno, f"attribute {_show(name)} has unknown type {_show(type_text, 40)}")


def _detect_style(items: Sequence[str]) -> str:
    """'dag' iff every item is ``parent/child`` and some parent is ``root``."""
    if all(item.count("/") == 1 for item in items) and any(item.split("/", 1)[0] == ROOT for item in items):
        return "dag"
    return "tree"


def _find_cycle(edges: Iterable[tuple[str, str]]) -> list[str] | None:
    """The nodes of one directed cycle (first node repeated at the end), or None for an acyclic graph.

    Acyclicity is checked by peeling parentless nodes (Kahn's algorithm, linear
    time); networkx is asked for a cycle only when one exists.
    """
    edge_list = list(edges)
    children: dict[str, list[str]] = {}
    n_parents: dict[str, int] = {}
    for parent, child in edge_list:
        children.setdefault(parent, []).append(child)
        n_parents[child] = n_parents.get(child, 0) + 1
    stack = [node for node in children if node not in n_parents]
    while stack:
        for child in children.get(stack.pop(), ()):
            n_parents[child] -= 1
            if n_parents[child] == 0:
                stack.append(child)
    if not any(n_parents.values()):
        return None
    import networkx as nx  # only for the error message: a dashboard page view never needs it

    cycle = nx.find_cycle(nx.DiGraph(edge_list))
    return [cycle[0][0]] + [v for _, v in cycle]


def _hierarchy_edges(attr: _Attribute, style: str, path: Path) -> list[tuple[str, str]]:
    """The unique ``(parent, child)`` edges of the hierarchy items of ``attr`` (docs/method.md, *Data and hierarchy*).

    In a tree path, a leading component ``root`` is the top node itself
    (``root/01`` gives the node ``root.01`` below ``root``). Errors name the line
    of the hierarchical attribute: an empty path component, a DAG item not of
    the form ``parent/child``, a self-loop, ``root`` as a DAG child, or a cycle.
    """
    edges: dict[tuple[str, str], None] = {}

    def fail(reason: str) -> ArffError:
        return ArffError(path, attr.line, f"hierarchical attribute {_show(attr.name)}: {reason}")

    if style == "tree":
        for item in attr.values:
            parts = [p.strip() for p in item.split("/")]
            if any(p == "" for p in parts):
                raise fail(f"malformed hierarchy path {_show(item)}")
            parent = ROOT
            for k in range(1, len(parts) + 1):
                node = ".".join(parts[:k])
                if node != parent:  # a leading 'root' component is the top node itself
                    edges.setdefault((parent, node))
                parent = node
        # every other child id is its parent's id plus ".component", hence longer: no cycle is possible
        return list(edges)
    for item in attr.values:
        parts = [p.strip() for p in item.split("/")]
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise fail(f"DAG hierarchy item {_show(item)} is not of the form parent/child")
        if parts[0] == parts[1]:
            raise fail(f"DAG hierarchy item {_show(item)} is a self-loop")
        if parts[1] == ROOT:
            raise fail(f"DAG hierarchy item {_show(item)} makes {ROOT!r}, the name reserved for the top node, a child")
        edges.setdefault((parts[0], parts[1]))
    cycle = _find_cycle(edges)
    if cycle is not None:
        raise fail(f"the hierarchy has a cycle: {_show(' -> '.join(cycle), 200)}")
    return list(edges)


def _read_lines(path: Path) -> list[str]:
    """The file's lines (universal newlines, UTF-8 with or without a byte order mark)."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as handle:
            text = handle.read()
    except UnicodeDecodeError:
        raw = path.read_bytes()
        body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            before = body[: exc.start].replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            line = before.count(b"\n") + 1
            column = exc.start - (before.rfind(b"\n") + 1) + 1
            raise ArffError(
                path, line, f"not valid UTF-8 text (byte {body[exc.start]:#04x} at column {column}: {exc.reason})"
            ) from None
        raise ArffError(path, 1, "not valid UTF-8 text (the file changed while it was read)") from None
    return text.split("\n")


def _parse_number(text: str, name: str, path: Path, lineno: int) -> float:
    """One numeric field: ``?`` -> NaN, else a finite float of magnitude at most :data:`MAX_ABS_VALUE`."""
    text = text.strip()
    if text == "?":
        return np.nan
    what = f"value {_show(text)} of numeric attribute {_show(name)}"
    try:
        value = float(text)
    except ValueError:
        raise ArffError(path, lineno, f"{what} is not a number") from None
    if math.isnan(value):
        raise ArffError(path, lineno, f"{what} is NaN (write '?' for a missing value)")
    if math.isinf(value):
        raise ArffError(path, lineno, f"{what} is infinite or overflows float64")
    if abs(value) > MAX_ABS_VALUE:
        raise ArffError(
            path,
            lineno,
            f"{what} exceeds {MAX_ABS_VALUE:g} in magnitude (standardising such values overflows; rescale it)",
        )
    return value


def _numeric_row(texts: list[str], names: list[str], path: Path, lineno: int) -> list[float]:
    """The numeric fields of one data row as floats (see :func:`_parse_number`).

    The fast path converts the whole row with :class:`float` and checks it with
    C-level reductions; a row with ``?``, a non-number or an out-of-range value
    goes through :func:`_parse_number` field by field, which names the attribute.
    """
    try:
        row = list(map(float, texts))
        total = sum(row)  # NaN or inf if some value is; max and min catch finite values beyond the bound
        if math.isfinite(total) and max(row) <= MAX_ABS_VALUE and min(row) >= -MAX_ABS_VALUE:
            return row
    except ValueError:
        pass
    return [_parse_number(text, name, path, lineno) for text, name in zip(texts, names, strict=True)]


def _data_fields(line: str) -> str:
    """A data line without its ``%`` comment and surrounding whitespace."""
    cut = line.find("%")
    return (line if cut < 0 else line[:cut]).strip()


def parse_arff(path: str | Path, hierarchy_style: str = "auto") -> ArffTable:
    """Parse one CLUS HMC ARFF file (docs/method.md, *Data and hierarchy*).

    The file is UTF-8 text, optionally starting with a byte order mark; line
    ends may be ``\\n``, ``\\r\\n`` or ``\\r``. Header: ``@RELATION``, then
    ``@ATTRIBUTE name type`` lines (keywords are case-insensitive, names may be
    quoted). ``numeric``/``real``/``integer`` give one float column; a nominal
    ``{a,b,...}`` gives a one-hot block with one column per value (named
    ``name=value``). The class attribute is the one whose type is
    ``hierarchical <comma-separated items>`` (wherever it is). Lines starting
    with ``%`` are comments; in data lines everything after a ``%`` is dropped.

    Numeric fields are ``?`` (missing, NaN) or finite numbers of magnitude at
    most :data:`MAX_ABS_VALUE` (``1e150``); larger ones would overflow the
    standardisation in :func:`standardize_features`. Memory use is
    proportional to the file size: the dense feature matrix may take at most
    :data:`MAX_DENSE_BYTES` plus 64 bytes per byte of the file.

    Hierarchy items are read in one of two styles:

    * ``"tree"`` (FunCat, Diatoms, ImCLEF07): each item is a path ``01/01/03``;
      node ids join the components with ``.``; every prefix becomes a node
      (``01``, ``01.01``, ``01.01.03``) and top-level components get the parent
      ``root``. Repeated items are ignored. Label terms are paths too.
    * ``"dag"`` (GO): each item is ``parent/child`` (parent first). Label terms
      are bare ids.

    Parameters
    ----------
    path : str or pathlib.Path
        The ARFF file.
    hierarchy_style : {"auto", "tree", "dag"}, default "auto"
        ``"auto"`` picks ``"dag"`` iff every item contains exactly one ``/``
        and some item's parent is ``root``, else ``"tree"``.

    Returns
    -------
    ArffTable
        Features ``X`` float64 (N, D), N >= 1, D >= 1, with NaN for missing
        numeric values; the per-sample label node ids, the ``(parent, child)``
        edges, the style and the header lines of the attributes.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist (other :class:`OSError` s pass through too).
    ValueError
        For an invalid ``hierarchy_style`` (a programming error; no file is named).
    ArffError
        For anything wrong in the file, with the message ``FILE:LINE: reason``:
        text that is not UTF-8; an unsupported attribute type (``string``,
        ``date``, ``relational``) or an unknown one; a missing or repeated
        ``hierarchical`` attribute; no feature attribute; a missing ``@DATA``
        section or one without rows; nominal attributes whose one-hot columns
        would exceed the memory bound above (the widest one's line is named); sparse rows (``{...}``); a row with the
        wrong number of fields; a numeric value that is not a number, not
        finite (``nan``, ``inf``, ``1e400``) or larger than ``1e150`` in
        magnitude; a label term that is not a node of the file's hierarchy; a
        malformed hierarchy item, a self-loop, the reserved node name ``root``
        as a child in a DAG, or a cycle (these name the line of the ``hierarchical``
        attribute).
    """
    path = Path(path)
    if hierarchy_style not in ("auto", "tree", "dag"):
        raise ValueError(f"hierarchy_style must be 'auto', 'tree' or 'dag', got {hierarchy_style!r}")
    lines = _read_lines(path)

    # ------------------------------------------------------------- header
    relation = ""
    attributes: list[_Attribute] = []
    data_start: int | None = None
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if line[0] != "@":
            raise ArffError(path, lineno, "expected an @RELATION, @ATTRIBUTE or @DATA line before the data")
        parts = line.split(None, 1)
        keyword = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        if keyword == "@relation":
            relation = _strip_quotes(rest)
        elif keyword == "@attribute":
            attributes.append(_parse_attribute(rest, path, lineno))
        elif keyword == "@data":
            data_start = lineno  # 1-based number of the @DATA line
            break
        else:
            raise ArffError(path, lineno, f"unknown header keyword {_show(keyword)}")
    if data_start is None:
        last = len(lines) - 1 if len(lines) > 1 and lines[-1] == "" else len(lines)
        raise ArffError(path, last, "no @DATA section (the file ends here)")
    class_positions = [i for i, a in enumerate(attributes) if a.kind == "class"]
    if not class_positions:
        raise ArffError(path, data_start, "no attribute of type 'hierarchical' (the class attribute) before @DATA")
    if len(class_positions) > 1:
        names = ", ".join(_show(attributes[i].name) for i in class_positions)
        raise ArffError(path, attributes[class_positions[1]].line, f"more than one hierarchical attribute ({names})")
    class_pos = class_positions[0]
    class_attr = attributes[class_pos]
    feature_attrs = [(pos, a) for pos, a in enumerate(attributes) if pos != class_pos]
    if not feature_attrs:
        raise ArffError(path, data_start, "no feature attribute: only the hierarchical class attribute is declared")
    style = _detect_style(class_attr.values) if hierarchy_style == "auto" else hierarchy_style
    edges = _hierarchy_edges(class_attr, style, path)
    node_set = {ROOT} if style == "tree" else set()
    for parent, child in edges:
        node_set.add(parent)
        node_set.add(child)

    # ------------------------------------------------------------- data rows
    n_fields = len(attributes)
    numeric_pos = [pos for pos, a in feature_attrs if a.kind == "numeric"]
    numeric_names = [attributes[pos].name for pos in numeric_pos]
    nominal = [(pos, {v: i for i, v in enumerate(a.values)}) for pos, a in feature_attrs if a.kind == "nominal"]
    values = array("d")  # numeric fields, row-major
    codes: list[list[int]] = [[] for _ in nominal]  # per nominal attribute: value index or -1
    undeclared: dict[int, tuple[int, str, int]] = {}  # nominal index -> (count, first value, its line)
    label_terms: list[list[str]] = []
    for lineno in range(data_start + 1, len(lines) + 1):
        line = _data_fields(lines[lineno - 1])
        if not line:
            continue
        if line[0] == "{":
            raise ArffError(path, lineno, "sparse ARFF is not supported")
        fields = line.split(",")
        if len(fields) != n_fields:
            raise ArffError(
                path,
                lineno,
                f"expected {n_fields} comma-separated fields "
                f"({n_fields - 1} features + label field {_show(class_attr.name)}), found {len(fields)}",
            )
        terms: dict[str, None] = {}
        for term in fields[class_pos].split("@"):
            term = term.strip()
            if not term:
                continue
            node = term.replace("/", ".") if style == "tree" else term
            if node not in node_set:
                raise ArffError(
                    path,
                    lineno,
                    f"label term {_show(term)} is not a node of the hierarchy "
                    f"declared by attribute {_show(class_attr.name)}",
                )
            terms.setdefault(node)
        label_terms.append(list(terms))
        if numeric_pos:
            values.extend(_numeric_row([fields[p] for p in numeric_pos], numeric_names, path, lineno))
        for k, ((pos, lookup), column) in enumerate(zip(nominal, codes, strict=True)):
            text = _strip_quotes(fields[pos])
            code = lookup.get(text, -1)
            column.append(code)
            if code < 0 and text != "?":
                count, first, first_line = undeclared.get(k, (0, text, lineno))
                undeclared[k] = (count + 1, first, first_line)
    n = len(label_terms)
    if n == 0:
        raise ArffError(path, data_start, "the @DATA section has no data rows")

    # ------------------------------------------------------------- features
    feature_names: list[str] = []
    feature_lines: list[int] = []
    offsets: dict[int, int] = {}  # position of a non-class attribute -> its first output column
    for pos, attr in feature_attrs:
        offsets[pos] = len(feature_names)
        if attr.kind == "numeric":
            feature_names.append(attr.name)
        else:
            feature_names.extend(f"{attr.name}={v}" for v in attr.values)
        feature_lines.extend([attr.line] * (len(feature_names) - offsets[pos]))
    _check_dense_size(path, n, len(feature_names), [a for _, a in feature_attrs if a.kind == "nominal"])
    X = np.zeros((n, len(feature_names)), dtype=np.float64)
    if numeric_pos:
        X[:, [offsets[p] for p in numeric_pos]] = np.frombuffer(values, dtype=np.float64).reshape(n, len(numeric_pos))
    del values
    for k, ((pos, _), column) in enumerate(zip(nominal, codes, strict=True)):
        attr = attributes[pos]
        X[:, offsets[pos] : offsets[pos] + len(attr.values)] = _one_hot_block(column, len(attr.values))
        if k in undeclared:
            count, first, first_line = undeclared[k]
            logger.warning(
                "%s:%d: %d value(s) of nominal attribute %r are not declared in the header (first: %s); "
                "encoded as all-zero",
                path,
                first_line,
                count,
                attr.name,
                _show(first),
            )
    logger.debug("parsed %s: %d rows, %d features, %d edges (%s)", path, n, X.shape[1], len(edges), style)
    return ArffTable(
        path=path,
        feature_names=feature_names,
        X=X,
        label_terms=label_terms,
        edges=edges,
        style=style,
        relation=relation,
        feature_lines=feature_lines,
        hierarchy_line=class_attr.line,
        data_line=data_start,
    )


def _check_dense_size(path: Path, n_rows: int, n_columns: int, nominal: list[_Attribute]) -> None:
    """Refuse a float64 feature matrix larger than :data:`MAX_DENSE_BYTES` plus 64 bytes per byte of the file.

    Numeric columns alone never exceed 4 bytes per byte of the file (a field
    takes at least 2 characters); only the one-hot blocks of nominal attributes
    with many values can, so the error names the widest nominal attribute.
    """
    need = n_rows * n_columns * 8
    size = path.stat().st_size
    if need <= MAX_DENSE_BYTES + 64 * size:
        return
    widest = max(nominal, key=lambda a: len(a.values))
    raise ArffError(
        path,
        widest.line,
        f"{n_rows} rows x {n_columns} feature columns would need {need / 2**20:.0f} MiB as a dense float64 matrix, "
        f"more than {MAX_DENSE_BYTES // 2**20} MiB + 64 x the file size ({size} bytes): the one-hot encoding of "
        f"nominal attributes is too wide (attribute {_show(widest.name)} declares {len(widest.values)} values)",
    )


def _one_hot_block(codes: list[int], n_values: int) -> np.ndarray:
    """One-hot encode a nominal column given as value indices; -1 (``?`` or undeclared) gives all zeros."""
    code_arr = np.asarray(codes, dtype=np.int64)
    block = np.zeros((len(codes), n_values), dtype=np.float64)
    known = code_arr >= 0
    block[np.nonzero(known)[0], code_arr[known]] = 1.0
    return block


# =====================================================================
# Locating datasets
# =====================================================================
def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """Return the folder that holds the datasets.

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        The folder. When None, the environment variable ``HMLC_DATA_DIR`` is used.
        ``~`` is expanded.

    Returns
    -------
    pathlib.Path
        An existing directory.

    Raises
    ------
    DatasetNotFoundError
        If neither the argument nor ``HMLC_DATA_DIR`` is set, or the folder
        does not exist / is not a directory. The message says how to set it.
    """
    if data_dir is None or str(data_dir) == "":
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env:
            raise DatasetNotFoundError(
                "no data folder given: pass data_dir=... or set the environment variable "
                f"{DATA_DIR_ENV} to the folder holding datasets_FUN/, datasets_GO/, others/ "
                f"(for example: export {DATA_DIR_ENV}=/path/to/hmc)"
            )
        folder, origin = Path(env).expanduser(), f"${DATA_DIR_ENV}"
    else:
        folder, origin = Path(data_dir).expanduser(), "data_dir"
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"data folder {str(folder)!r} (from {origin}) does not exist or is not a directory; "
            f"pass data_dir=... or set {DATA_DIR_ENV} to an existing folder"
        )
    return folder


_DOTTED = re.compile(r"^(?P<name>.+)\.(?P<split>trainvalid|train|valid|test)\.arff$", re.IGNORECASE)
_FLAT = re.compile(r"^(?P<name>.+)[._](?P<split>trainvalid|train|valid|test)\.arff$", re.IGNORECASE)

#: The folder of the C-HMCNN repository that holds the datasets (github.com/EGiunchiglia/C-HMCNN, ``HMC_data/``).
_CHMCNN_FOLDER = "HMC_data"


def _scan(folder: Path) -> dict[str, dict[str, Path]]:
    """Map every dataset name below ``folder`` (and ``folder/HMC_data``) to its split files, complete or not.

    The keys of a dataset's dict are the split words of its file names in lower case:
    ``train``, ``valid``, ``test`` and ``trainvalid`` (see :func:`_choose_splits`).
    """
    found: dict[str, dict[str, Path]] = {}

    def add(name: str, split: str, path: Path) -> None:
        splits = found.setdefault(name, {})
        if split in splits and splits[split] != path:
            logger.warning("dataset %r: %s split found twice, keeping %s (ignoring %s)", name, split, splits[split], path)
            return
        splits[split] = path

    def files(directory: Path) -> list[Path]:
        try:
            return sorted(p for p in directory.iterdir() if p.is_file())
        except OSError:
            return []

    def subdirs(directory: Path) -> list[Path]:
        try:
            return sorted(p for p in directory.iterdir() if p.is_dir())
        except OSError:
            return []

    # the folder itself, and a clone of C-HMCNN: the repository root holding HMC_data/
    roots = [folder] + [sub for sub in subdirs(folder) if sub.name == _CHMCNN_FOLDER]
    for root in roots:
        # <group>/<name>/<name>.<split>.arff for the CLUS groups, then the user's <name>/<name>.<split>.arff
        for parent in (root / "datasets_FUN", root / "datasets_GO", root):
            for sub in subdirs(parent):
                for f in files(sub):
                    m = _DOTTED.match(f.name)
                    if m and m.group("name") == sub.name:
                        add(sub.name, m.group("split").lower(), f)
        # flat folders: others/<Name>_{Train,Test}.arff and <name>.<split>.arff directly in the folder
        for flat in (root / "others", root):
            for f in files(flat):
                m = _FLAT.match(f.name)
                if m:
                    add(m.group("name"), m.group("split").lower(), f)
    return found


def _choose_splits(name: str, files: dict[str, Path], log: bool = False) -> dict[str, Path]:
    """The train / valid / test files of one dataset from the split files :func:`_scan` found.

    A ``trainvalid`` file (C-HMCNN's ``others/Enron_corr_trainvalid.arff``) holds the train and valid
    rows together; C-HMCNN trains its final models on exactly that union. So:

    * with a ``train`` file, ``train`` and ``valid`` are used and ``trainvalid`` is ignored: fitting
      on train+valid (``fit_on="train+valid"``) reads the same rows, and the separate valid split
      stays available to ``fit_on="train"`` and the tuned decision rules;
    * without one, ``trainvalid`` is the train split and the dataset has no valid split; a ``valid``
      file beside it is ignored too, as its rows are inside ``trainvalid`` (tuning on it would tune
      on training data). Such a dataset trains with ``fit_on="train+valid"`` only, and the tuned
      decision rules refuse it, as for every dataset without a valid split.

    With ``log``, each ignored file is logged (``trainvalid`` at INFO, ``valid`` at WARNING).
    """
    chosen = {s: files[s] for s in _SPLITS if s in files}
    if "trainvalid" not in files:
        return chosen
    if "train" in files:
        if log:
            logger.info("dataset %r: using its train and valid files; ignoring %s (their union)", name,
                        files["trainvalid"])
        return chosen
    if "valid" in chosen and log:
        logger.warning("dataset %r: ignoring %s, whose rows are part of the train split %s; the dataset has "
                       "no valid split", name, chosen["valid"], files["trainvalid"])
    chosen.pop("valid", None)
    chosen["train"] = files["trainvalid"]
    return {s: chosen[s] for s in _SPLITS if s in chosen}


def _complete(found: dict[str, dict[str, Path]]) -> dict[str, dict[str, Path]]:
    chosen = {k: _choose_splits(k, v) for k, v in found.items()}
    return {k: v for k, v in chosen.items() if "train" in v and "test" in v}


def _sort_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda s: (s.lower(), s))


def list_datasets(data_dir: str | Path | None = None) -> list[str]:
    """Names of every complete dataset (train and test present) below the data folder.

    Layouts recognised (split names are case-insensitive):

    * ``datasets_FUN/<name>/<name>.{train,valid,test}.arff`` and the same under
      ``datasets_GO/`` (docs/method.md, *Data and hierarchy*);
    * ``others/<Name>_{train,test}.arff`` (Diatoms, ImCLEF07A/D; ``Train``/``Test``
      capitalised as in the CLUS files) and ``others/Enron_corr_{trainvalid,test}.arff``;
    * the user's own data: ``<name>/<name>.{train,valid,test}.arff`` or
      ``<name>.{train,valid,test}.arff`` directly in the folder.

    These are the file names of C-HMCNN's ``HMC_data/`` folder (github.com/EGiunchiglia/C-HMCNN,
    commit 06d35fe; its ``utils/__init__.py`` maps each dataset to its files), which the data
    folder may also hold: a clone of C-HMCNN can be given as it is. A split may also be a
    ``trainvalid`` file (``.trainvalid.arff`` or ``_trainvalid.arff``): see
    :func:`find_dataset_files` for which files become which split.

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        The data folder; None uses ``HMLC_DATA_DIR`` (see :func:`resolve_data_dir`).

    Returns
    -------
    list of str
        Dataset names sorted case-insensitively. A ``valid`` split is optional;
        folders with only some splits (no train or trainvalid, or no test) are left out.

    Raises
    ------
    DatasetNotFoundError
        If the data folder cannot be resolved.
    """
    return _sort_names(_complete(_scan(resolve_data_dir(data_dir))))


def find_dataset_files(name: str, data_dir: str | Path | None = None) -> dict[str, Path]:
    """Locate the split files of dataset ``name``.

    The name is matched exactly first, then case-insensitively (so
    ``"diatoms"`` finds ``others/Diatoms_train.arff``).

    A ``trainvalid`` file holds the train and valid rows together (C-HMCNN's
    ``others/Enron_corr_trainvalid.arff``; C-HMCNN trains its final models on train+valid).
    When a ``train`` file exists, the ``train`` and ``valid`` files are returned and the
    ``trainvalid`` file is ignored (logged at INFO): ``fit_on="train+valid"`` reads the
    same rows, and the valid split stays available for ``fit_on="train"`` and the tuned
    decision rules. Without a ``train`` file, the ``trainvalid`` file is the ``"train"``
    split and there is no ``"valid"`` split, even when a ``valid`` file exists (its rows
    are inside ``trainvalid``; ignored with a WARNING): the dataset trains with
    ``fit_on="train+valid"`` only, and the tuned decision rules refuse it.

    Parameters
    ----------
    name : str
        Dataset name as listed by :func:`list_datasets`.
    data_dir : str or pathlib.Path, optional
        The data folder; None uses ``HMLC_DATA_DIR``.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``"train"`` (possibly a ``trainvalid`` file, see above) and ``"test"``,
        plus ``"valid"`` when present.

    Raises
    ------
    DatasetNotFoundError
        If the folder cannot be resolved, the name is unknown (the message lists
        the folder searched and the datasets found), the case-insensitive match
        is ambiguous, or the dataset lacks its test file or both its train and trainvalid files.
    """
    folder = resolve_data_dir(data_dir)
    found = _scan(folder)
    key: str | None = name if name in found else None
    if key is None:
        matches = [k for k in found if k.lower() == name.lower()]
        if len(matches) > 1:
            raise DatasetNotFoundError(
                f"dataset name {name!r} matches several datasets in {folder} when case is ignored: "
                f"{', '.join(_sort_names(matches))}; use the exact name"
            )
        key = matches[0] if matches else None
    if key is None:
        complete = _sort_names(_complete(found))
        listing = ", ".join(complete) if complete else "(none)"
        raise DatasetNotFoundError(f"dataset {name!r} not found in {folder}; datasets found: {listing}")
    splits = _choose_splits(key, found[key], log=True)
    missing = [("train (or trainvalid)" if s == "train" else s) for s in ("train", "test") if s not in splits]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {key!r} in {folder} lacks its {' and '.join(missing)} file(s); "
            f"found only: {', '.join(f'{s}={p}' for s, p in found[key].items())}"
        )
    return splits


# =====================================================================
# Loading
# =====================================================================
def standardize_features(
    train: np.ndarray, valid: np.ndarray | None, test: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Mean-impute then standardise, both fitted on train+valid (docs/method.md, *Data and hierarchy*).

    Parameters
    ----------
    train, valid, test : numpy.ndarray, shape (N_split, D), NaN for missing values
        ``valid`` may be None; then the statistics come from train alone.

    Returns float32 copies (``scikit-learn``'s ``SimpleImputer`` and ``StandardScaler``). A column missing everywhere in train+valid is
    imputed with 0 (``keep_empty_features=True``); a constant column is only
    centred (``StandardScaler`` uses scale 1 for zero variance).
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    fit_on = train if valid is None else np.vstack([train, valid])
    imputer = SimpleImputer(strategy="mean", keep_empty_features=True).fit(fit_on)
    scaler = StandardScaler().fit(imputer.transform(fit_on))

    def apply(x: np.ndarray) -> np.ndarray:
        return scaler.transform(imputer.transform(x)).astype(np.float32)

    return apply(train), (None if valid is None else apply(valid)), apply(test)


def load_arff_files(
    train: str | Path,
    test: str | Path,
    valid: str | Path | None = None,
    name: str | None = None,
    hierarchy_style: str = "auto",
) -> HMCDataset:
    """Load a dataset from explicit ARFF file paths.

    The hierarchy is built from the union of the splits' hierarchy items
    (normally identical); ``skip_eval`` is the hierarchy's roots plus the CLUS GO
    roots ``{"root", "GO0003674", "GO0005575", "GO0008150"}`` (docs/method.md,
    *Evaluated nodes*). Labels are propagated to all ancestors. Features are
    mean-imputed and standardised with statistics of train+valid (train alone
    when there is no valid split), then cast to float32 (docs/method.md,
    *Data and hierarchy*: C-HMCNN first imputes each split with its own column means;
    here the train+valid means are used for every split).

    Parameters
    ----------
    train, test : str or pathlib.Path
        Training and test files.
    valid : str or pathlib.Path, optional
        Validation file.
    name : str, optional
        Dataset name; defaults to the training file's stem without the split
        suffix (``train`` or ``trainvalid``).
    hierarchy_style : {"auto", "tree", "dag"}, default "auto"
        Passed to :func:`parse_arff` for every file.

    Returns
    -------
    HMCDataset
        ``X`` float32 (N, D), ``Y`` uint8 (N, C) in ``hierarchy.nodes`` order.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ArffError
        (a :class:`ValueError`) From :func:`parse_arff`; if the splits' feature
        names or counts differ (the training file's ``@ATTRIBUTE`` line of the
        first differing column is named, and the other file with its line); if
        the splits use different hierarchy styles (both ``hierarchical``
        attribute lines are named); or if a later split's hierarchy edges close
        a cycle with the earlier ones (its ``hierarchical`` attribute line is named).
    """
    paths: dict[str, Path] = {"train": Path(train)}
    if valid is not None:
        paths["valid"] = Path(valid)
    paths["test"] = Path(test)
    tables = {split: parse_arff(p, hierarchy_style) for split, p in paths.items()}

    ref = tables["train"]
    for split, table in tables.items():
        if table.feature_names != ref.feature_names:
            i = next(
                (k for k, (a, b) in enumerate(zip(ref.feature_names, table.feature_names, strict=False)) if a != b),
                min(len(ref.feature_names), len(table.feature_names)),
            )
            raise ArffError(
                ref.path,
                _column_line(ref, i),
                f"the splits declare different features: column {i} is {_column_name(ref, i)} here "
                f"but {_column_name(table, i)} in {table.path}:{_column_line(table, i)} ({split}); "
                f"{len(ref.feature_names)} vs {len(table.feature_names)} feature columns",
            )
        if table.style != ref.style:
            raise ArffError(
                ref.path,
                ref.hierarchy_line,
                f"{ref.style}-style hierarchy here but {table.style}-style in "
                f"{table.path}:{table.hierarchy_line} ({split})",
            )

    edges: dict[tuple[str, str], None] = {}
    read: list[str] = []  # the files whose edges are in ``edges``
    for split, table in tables.items():
        before = len(edges)
        for e in table.edges:
            edges.setdefault(e)
        if split != "train" and len(edges) != before:
            logger.info("%s adds %d hierarchy edge(s) not declared in %s", table.path, len(edges) - before, ref.path)
            cycle = _find_cycle(edges)
            if cycle is not None:
                raise ArffError(
                    table.path,
                    table.hierarchy_line,
                    f"the hierarchy edges declared here close a cycle with those of {', '.join(read)}: "
                    f"{_show(' -> '.join(cycle), 200)}",
                )
        read.append(str(table.path))
    children = {c for _, c in edges}
    all_nodes = {n for e in edges for n in e} | ({ROOT} if ref.style == "tree" else set())
    roots = {n for n in all_nodes if n not in children}
    hierarchy = Hierarchy(list(edges), nodes=sorted(all_nodes), skip_eval=roots | GO_ROOTS)

    Ys = {split: hierarchy.label_matrix(t.label_terms) for split, t in tables.items()}
    x_train, x_valid, x_test = standardize_features(
        tables["train"].X, tables["valid"].X if "valid" in tables else None, tables["test"].X
    )

    if name is None:
        name = re.sub(r"[._]train(valid)?$", "", paths["train"].stem, flags=re.IGNORECASE)
    dataset = HMCDataset(
        name=name,
        hierarchy=hierarchy,
        feature_names=list(ref.feature_names),
        train=Split(x_train, Ys["train"]),
        valid=None if x_valid is None else Split(x_valid, Ys["valid"]),
        test=Split(x_test, Ys["test"]),
        source={split: str(p) for split, p in paths.items()},
    )
    logger.info(
        "loaded %s: %s; train/valid/test = %d/%s/%d, %d features",
        name,
        hierarchy,
        dataset.train.n_samples,
        "-" if dataset.valid is None else dataset.valid.n_samples,
        dataset.test.n_samples,
        dataset.n_features,
    )
    return dataset


def held_out_rows(n: int, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the rows kept for training and of those held out, drawn with :data:`SPLIT_SEED`.

    scikit-learn's ``train_test_split`` on ``range(n)`` with ``test_size=fraction``: ``ceil(fraction * n)`` rows
    are held out.

    Parameters
    ----------
    n : int
        Number of rows, >= 2.
    fraction : float in (0, 1)
        Share of the rows held out.

    Returns
    -------
    (kept, held_out) : numpy.ndarray of int64
        Sorted, disjoint, together ``range(n)``; neither is empty.

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1) or either part would be empty (the message gives ``n``).
    """
    from sklearn.model_selection import train_test_split

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"the held-out fraction must be in (0, 1), got {fraction}")
    if n < 2 or math.ceil(fraction * n) >= n:
        raise ValueError(f"{n} row(s) are too few to hold out a fraction {fraction} and keep the rest")
    kept, held = train_test_split(np.arange(n), test_size=fraction, random_state=SPLIT_SEED)
    return np.sort(kept), np.sort(held)


def hold_out_valid(dataset: HMCDataset, fraction: float) -> HMCDataset:
    """``dataset`` with ``fraction`` of its training rows held out as the valid split, if it has none.

    For datasets shipped without a valid split (Diatoms and the ImageCLEF sets of the CLUS benchmark, a user's
    table): the held-out rows let a run keep data aside (``fit_on="train"``) to tune the decision rules and
    stop early, as the valid split of the FUN and GO datasets does. The rows are drawn with :data:`SPLIT_SEED`
    (:func:`held_out_rows`), so every run holds out the same ones. Features are not re-standardised: the
    statistics came from the training rows, which are train+valid now, as for a dataset with its own valid split
    (:func:`standardize_features`).

    Parameters
    ----------
    dataset : HMCDataset
    fraction : float in [0, 1)
        Share of the training rows held out; 0 returns ``dataset`` unchanged. A dataset with a valid split
        of its own is returned unchanged (logged at INFO): its own split is the one to tune on.

    Returns
    -------
    HMCDataset
        A new dataset sharing the hierarchy, test split and ``images``; ``source["valid"]`` says where the
        rows came from.

    Raises
    ------
    ValueError
        If ``fraction`` is outside [0, 1), or the training split is too small to hold out a row and keep one
        (the dataset is named).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return dataset
    if dataset.valid is not None:
        logger.info("dataset %r has its own valid split (%d rows): valid_fraction %g is not used", dataset.name,
                    dataset.valid.n_samples, fraction)
        return dataset
    try:
        kept, held = held_out_rows(dataset.train.n_samples, fraction)
    except ValueError as exc:
        raise ValueError(f"dataset {dataset.name!r}: its training split: {exc}") from None
    train = dataset.train
    logger.info("dataset %r: %d of its %d training rows held out as the valid split (seed %d)", dataset.name,
                len(held), train.n_samples, SPLIT_SEED)
    return replace(dataset, train=Split(train.X[kept], train.Y[kept]), valid=Split(train.X[held], train.Y[held]),
                   source={**dataset.source,
                           "valid": f"{fraction:g} of the training rows of {dataset.source.get('train', 'train')}"})


def _column_name(table: ArffTable, i: int) -> str:
    return _show(table.feature_names[i]) if i < len(table.feature_names) else "absent"


def _column_line(table: ArffTable, i: int) -> int:
    """The ``@ATTRIBUTE`` line of feature column ``i``, or the ``@DATA`` line past the last column."""
    return table.feature_lines[i] if i < len(table.feature_lines) else table.data_line


def load_dataset(name: str, data_dir: str | Path | None = None, hierarchy_style: str = "auto") -> HMCDataset:
    """Find dataset ``name`` below the data folder and load it.

    Parameters
    ----------
    name : str
        Dataset name (see :func:`list_datasets`; case-insensitive fallback).
    data_dir : str or pathlib.Path, optional
        The data folder; None uses ``HMLC_DATA_DIR``.
    hierarchy_style : {"auto", "tree", "dag"}, default "auto"
        Passed to :func:`parse_arff`.

    Returns
    -------
    HMCDataset
        See :func:`load_arff_files`; ``name`` is the dataset's name as found on disk.

    Raises
    ------
    DatasetNotFoundError
        If the folder or the dataset cannot be found (see :func:`find_dataset_files`).
    ArffError
        (a :class:`ValueError`) If a file is malformed or the splits disagree
        (see :func:`load_arff_files`); the message starts with ``FILE:LINE:``.
    """
    files = find_dataset_files(name, data_dir)
    canonical = _canonical_name(name, files["train"])
    return load_arff_files(
        files["train"], files["test"], files.get("valid"), name=canonical, hierarchy_style=hierarchy_style
    )


def _canonical_name(requested: str, train_file: Path) -> str:
    m = _FLAT.match(train_file.name)
    found = m.group("name") if m else requested
    return found if found.lower() == requested.lower() else requested
