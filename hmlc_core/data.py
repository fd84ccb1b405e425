"""Loading CLUS HMC ARFF benchmark datasets (FunCat trees and Gene Ontology DAGs).

This module turns the CLUS hierarchical multi-label ARFF files (Vens et al. 2008,
the splits used by C-HMCNN) into feature matrices, propagated label matrices and a
:class:`~hmlc_core.hierarchy.Hierarchy`:

* :func:`parse_arff` -- our own parser for one ARFF file (liac-arff rejects the
  ``hierarchical`` attribute type); docs/method.md, *Data and hierarchy*.
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
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hmlc_core.hierarchy import Hierarchy

__all__ = [
    "ArffTable",
    "DatasetNotFoundError",
    "HMCDataset",
    "Split",
    "DATA_DIR_ENV",
    "GO_ROOTS",
    "find_dataset_files",
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
    """

    path: Path
    feature_names: list[str]
    X: np.ndarray
    label_terms: list[list[str]]
    edges: list[tuple[str, str]]
    style: str
    relation: str = ""

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
    """

    name: str
    hierarchy: Hierarchy
    feature_names: list[str]
    train: Split
    valid: Split | None
    test: Split
    source: dict[str, str] = field(default_factory=dict)

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
@dataclass
class _Attribute:
    name: str
    kind: str  # "numeric", "nominal" or "class"
    values: list[str] = field(default_factory=list)  # nominal values / hierarchy items


def _strip_quotes(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_name(rest: str, where: str) -> tuple[str, str]:
    """Split ``<name> <type...>`` where the name may be quoted."""
    rest = rest.strip()
    if not rest:
        raise ValueError(f"{where}: @ATTRIBUTE without a name")
    if rest[0] in "'\"":
        end = rest.find(rest[0], 1)
        if end < 0:
            raise ValueError(f"{where}: unterminated quoted attribute name")
        return rest[1:end], rest[end + 1 :].strip()
    parts = rest.split(None, 1)
    return parts[0], (parts[1].strip() if len(parts) > 1 else "")


def _parse_attribute(rest: str, where: str) -> _Attribute:
    name, type_text = _split_name(rest, where)
    if not type_text:
        raise ValueError(f"{where}: attribute {name!r} has no type")
    lowered = type_text.lower()
    if type_text.startswith("{"):
        if not type_text.endswith("}"):
            raise ValueError(f"{where}: nominal attribute {name!r} lacks a closing '}}'")
        values = [_strip_quotes(v) for v in type_text[1:-1].split(",")]
        values = [v for v in values if v != ""]
        if not values:
            raise ValueError(f"{where}: nominal attribute {name!r} declares no values")
        return _Attribute(name, "nominal", values)
    first = lowered.split(None, 1)[0]
    if first in _NUMERIC_TYPES:
        return _Attribute(name, "numeric")
    if first == "hierarchical":
        items_text = type_text[len("hierarchical") :]
        items = [_strip_quotes(v) for v in items_text.split(",")]
        items = [v for v in items if v != ""]
        if not items:
            raise ValueError(f"{where}: hierarchical attribute {name!r} lists no items")
        return _Attribute(name, "class", items)
    if first in _UNSUPPORTED_TYPES:
        raise ValueError(f"{where}: attribute {name!r} has unsupported type {first!r}")
    raise ValueError(f"{where}: attribute {name!r} has unknown type {type_text[:40]!r}")


def _detect_style(items: Sequence[str]) -> str:
    """'dag' iff every item is ``parent/child`` and some parent is ``root``."""
    if all(item.count("/") == 1 for item in items) and any(item.split("/", 1)[0] == ROOT for item in items):
        return "dag"
    return "tree"


def _hierarchy_edges(items: Sequence[str], style: str, where: str) -> list[tuple[str, str]]:
    """Turn hierarchy items into unique ``(parent, child)`` edges (docs/method.md, *Data and hierarchy*)."""
    edges: dict[tuple[str, str], None] = {}
    if style == "tree":
        for item in items:
            parts = [p.strip() for p in item.split("/")]
            if any(p == "" for p in parts):
                raise ValueError(f"{where}: malformed hierarchy path {item!r}")
            parent = ROOT
            for k in range(1, len(parts) + 1):
                node = ".".join(parts[:k])
                edges.setdefault((parent, node))
                parent = node
    else:
        for item in items:
            parts = [p.strip() for p in item.split("/")]
            if len(parts) != 2 or not parts[0] or not parts[1]:
                raise ValueError(f"{where}: DAG hierarchy item {item!r} is not of the form parent/child")
            if parts[0] == parts[1]:
                raise ValueError(f"{where}: DAG hierarchy item {item!r} is a self-loop")
            edges.setdefault((parts[0], parts[1]))
    return list(edges)


def _read_lines(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline=None) as handle:
            text = handle.read()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not valid UTF-8 text ({exc})") from exc
    return text.split("\n")


def parse_arff(path: str | Path, hierarchy_style: str = "auto") -> ArffTable:
    """Parse one CLUS HMC ARFF file (docs/method.md, *Data and hierarchy*).

    Header: ``@RELATION``, then ``@ATTRIBUTE name type`` lines (keywords are
    case-insensitive, names may be quoted). ``numeric``/``real``/``integer`` give
    one float column; a nominal ``{a,b,...}`` gives a one-hot block with one
    column per value (named ``name=value``). The class attribute is the one
    whose type is ``hierarchical <comma-separated items>`` (wherever it is).
    Lines starting with ``%`` are comments; in data lines everything after a
    ``%`` is dropped.

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
        Features ``X`` float64 (N, D) with NaN for missing numeric values, the
        per-sample label node ids, the ``(parent, child)`` edges and the style.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For an invalid ``hierarchy_style``; an unsupported attribute type
        (``string``, ``date``, ``relational``) or an unknown one; a missing or
        repeated ``hierarchical`` attribute; a missing ``@DATA`` section;
        sparse rows (``{...}``); a row with the wrong number of fields; a
        non-numeric value in a numeric column; or a label term that is not a
        node of the file's hierarchy. Messages name the file and line
        (``file:line``) and the attribute or term concerned.
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
        where = f"{path}:{lineno}"
        if line[0] != "@":
            raise ValueError(f"{where}: expected an @RELATION, @ATTRIBUTE or @DATA line before the data")
        parts = line.split(None, 1)
        keyword = parts[0].lower()
        rest = parts[1] if len(parts) > 1 else ""
        if keyword == "@relation":
            relation = _strip_quotes(rest)
        elif keyword == "@attribute":
            attributes.append(_parse_attribute(rest, where))
        elif keyword == "@data":
            data_start = lineno  # 1-based number of the @DATA line
            break
        else:
            raise ValueError(f"{where}: unknown header keyword {keyword!r}")
    if data_start is None:
        raise ValueError(f"{path}: no @DATA section")
    class_positions = [i for i, a in enumerate(attributes) if a.kind == "class"]
    if not class_positions:
        raise ValueError(f"{path}: no attribute of type 'hierarchical' (the class attribute)")
    if len(class_positions) > 1:
        names = ", ".join(attributes[i].name for i in class_positions)
        raise ValueError(f"{path}: more than one hierarchical attribute ({names})")
    class_pos = class_positions[0]
    class_attr = attributes[class_pos]
    items = class_attr.values
    style = _detect_style(items) if hierarchy_style == "auto" else hierarchy_style
    edges = _hierarchy_edges(items, style, f"{path} (attribute {class_attr.name!r})")
    node_set = {ROOT} if style == "tree" else set()
    for parent, child in edges:
        node_set.add(parent)
        node_set.add(child)

    # ------------------------------------------------------------- data rows
    n_fields = len(attributes)
    rows: list[list[str]] = []
    row_lines: list[int] = []
    label_terms: list[list[str]] = []
    for lineno in range(data_start + 1, len(lines) + 1):
        line = lines[lineno - 1]
        if "%" in line:
            line = line[: line.index("%")]
        line = line.strip()
        if not line:
            continue
        if line[0] == "{":
            raise ValueError(f"{path}:{lineno}: sparse ARFF is not supported")
        fields = line.split(",")
        if len(fields) != n_fields:
            raise ValueError(
                f"{path}:{lineno}: expected {n_fields} comma-separated fields "
                f"({n_fields - 1} features + label field {class_attr.name!r}), found {len(fields)}"
            )
        label_field = fields[class_pos].strip()
        terms: dict[str, None] = {}
        for term in label_field.split("@"):
            term = term.strip()
            if not term:
                continue
            node = term.replace("/", ".") if style == "tree" else term
            if node not in node_set:
                raise ValueError(
                    f"{path}:{lineno}: label term {term!r} is not a node of the hierarchy "
                    f"declared by attribute {class_attr.name!r}"
                )
            terms.setdefault(node)
        label_terms.append(list(terms))
        rows.append(fields)
        row_lines.append(lineno)

    # ------------------------------------------------------------- features
    n = len(rows)
    feature_names: list[str] = []
    offsets: list[int] = []  # first output column of each non-class attribute
    feature_attrs = [(pos, a) for pos, a in enumerate(attributes) if pos != class_pos]
    for _, attr in feature_attrs:
        offsets.append(len(feature_names))
        if attr.kind == "numeric":
            feature_names.append(attr.name)
        else:
            feature_names.extend(f"{attr.name}={v}" for v in attr.values)
    X = np.zeros((n, len(feature_names)), dtype=np.float64)
    numeric = [(pos, a, off) for (pos, a), off in zip(feature_attrs, offsets, strict=True) if a.kind == "numeric"]
    if numeric and n:
        positions = [pos for pos, _, _ in numeric]
        flat = [r[p] for r in rows for p in positions]
        values = _to_float(flat, rows, positions, [a.name for _, a, _ in numeric], path, row_lines)
        X[:, [off for _, _, off in numeric]] = values.reshape(n, len(positions))
    for (pos, attr), off in zip(feature_attrs, offsets, strict=True):
        if attr.kind == "nominal":
            column = [r[pos] for r in rows]
            X[:, off : off + len(attr.values)] = _one_hot_block(column, attr, path)
    logger.debug("parsed %s: %d rows, %d features, %d edges (%s)", path, n, X.shape[1], len(edges), style)
    return ArffTable(
        path=path,
        feature_names=feature_names,
        X=X,
        label_terms=label_terms,
        edges=edges,
        style=style,
        relation=relation,
    )


def _to_float(
    flat: list[str],
    rows: list[list[str]],
    positions: list[int],
    names: list[str],
    path: Path,
    row_lines: list[int],
) -> np.ndarray:
    """Convert the numeric fields (row-major, ``len(rows) * len(positions)``) to float64; ``?`` -> NaN.

    The fast path converts everything at once with numpy; on failure every
    value is retried with :class:`float` so that the offending line and
    attribute can be named.
    """
    arr = np.array(flat, dtype=np.str_)
    arr[arr == "?"] = "nan"
    try:
        return arr.astype(np.float64)
    except ValueError:
        pass
    out = np.empty(len(flat), dtype=np.float64)
    k = 0
    for row, lineno in zip(rows, row_lines, strict=True):
        for pos, name in zip(positions, names, strict=True):
            text = row[pos].strip()
            if text == "?":
                out[k] = np.nan
            else:
                try:
                    out[k] = float(text)
                except ValueError:
                    raise ValueError(
                        f"{path}:{lineno}: value {text!r} of numeric attribute {name!r} is not a number"
                    ) from None
            k += 1
    return out


def _one_hot_block(column: list[str], attr: _Attribute, path: Path) -> np.ndarray:
    """One-hot encode a nominal column; ``?`` and undeclared values give all zeros."""
    lookup = {v: i for i, v in enumerate(attr.values)}
    block = np.zeros((len(column), len(attr.values)), dtype=np.float64)
    stripped = [_strip_quotes(v) for v in column]
    codes = np.array([lookup.get(v, -1) for v in stripped], dtype=np.int64)
    known = codes >= 0
    block[np.nonzero(known)[0], codes[known]] = 1.0
    unknown = [v for v, c in zip(stripped, codes, strict=True) if c < 0 and v != "?"]
    if unknown:
        logger.warning(
            "%s: %d value(s) of nominal attribute %r are not declared in the header (e.g. %r); "
            "encoded as all-zero",
            path,
            len(unknown),
            attr.name,
            unknown[0],
        )
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


_DOTTED = re.compile(r"^(?P<name>.+)\.(?P<split>train|valid|test)\.arff$", re.IGNORECASE)
_FLAT = re.compile(r"^(?P<name>.+)[._](?P<split>train|valid|test)\.arff$", re.IGNORECASE)


def _scan(folder: Path) -> dict[str, dict[str, Path]]:
    """Map every dataset name below ``folder`` to its split files (complete or not)."""
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

    # <group>/<name>/<name>.<split>.arff for the CLUS groups, then the user's <name>/<name>.<split>.arff
    nested_parents = [folder / "datasets_FUN", folder / "datasets_GO", folder]
    for parent in nested_parents:
        for sub in subdirs(parent):
            for f in files(sub):
                m = _DOTTED.match(f.name)
                if m and m.group("name") == sub.name:
                    add(sub.name, m.group("split").lower(), f)
    # flat folders: others/<Name>_{Train,Test}.arff and <name>.<split>.arff directly in the folder
    for flat in (folder / "others", folder):
        for f in files(flat):
            m = _FLAT.match(f.name)
            if m:
                add(m.group("name"), m.group("split").lower(), f)
    return found


def _complete(found: dict[str, dict[str, Path]]) -> dict[str, dict[str, Path]]:
    return {k: v for k, v in found.items() if "train" in v and "test" in v}


def _sort_names(names: Iterable[str]) -> list[str]:
    return sorted(names, key=lambda s: (s.lower(), s))


def list_datasets(data_dir: str | Path | None = None) -> list[str]:
    """Names of every complete dataset (train and test present) below the data folder.

    Layouts recognised (split names are case-insensitive):

    * ``datasets_FUN/<name>/<name>.{train,valid,test}.arff`` and the same under
      ``datasets_GO/`` (docs/method.md, *Data and hierarchy*);
    * ``others/<Name>_{train,test}.arff`` (Diatoms, ImCLEF07A/D; ``Train``/``Test``
      capitalised as in the CLUS files);
    * the user's own data: ``<name>/<name>.{train,valid,test}.arff`` or
      ``<name>.{train,valid,test}.arff`` directly in the folder.

    Parameters
    ----------
    data_dir : str or pathlib.Path, optional
        The data folder; None uses ``HMLC_DATA_DIR`` (see :func:`resolve_data_dir`).

    Returns
    -------
    list of str
        Dataset names sorted case-insensitively. A ``valid`` split is optional;
        folders with only some splits (no train or no test) are left out.

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

    Parameters
    ----------
    name : str
        Dataset name as listed by :func:`list_datasets`.
    data_dir : str or pathlib.Path, optional
        The data folder; None uses ``HMLC_DATA_DIR``.

    Returns
    -------
    dict of str to pathlib.Path
        Keys ``"train"`` and ``"test"``, plus ``"valid"`` when present.

    Raises
    ------
    DatasetNotFoundError
        If the folder cannot be resolved, the name is unknown (the message lists
        the folder searched and the datasets found), the case-insensitive match
        is ambiguous, or the dataset lacks its train or test file.
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
    splits = found[key]
    missing = [s for s in ("train", "test") if s not in splits]
    if missing:
        raise DatasetNotFoundError(
            f"dataset {key!r} in {folder} lacks its {' and '.join(missing)} file(s); "
            f"found only: {', '.join(f'{s}={p}' for s, p in splits.items())}"
        )
    return {s: splits[s] for s in _SPLITS if s in splits}


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
        suffix.
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
    ValueError
        From :func:`parse_arff`; if the splits' feature names or counts differ
        (both files are named); if the splits use different hierarchy styles;
        or if the union of the hierarchies has a cycle.
    """
    paths: dict[str, Path] = {"train": Path(train)}
    if valid is not None:
        paths["valid"] = Path(valid)
    paths["test"] = Path(test)
    tables = {split: parse_arff(p, hierarchy_style) for split, p in paths.items()}

    ref = tables["train"]
    for split, table in tables.items():
        if table.feature_names != ref.feature_names:
            if len(table.feature_names) != len(ref.feature_names):
                detail = f"{len(ref.feature_names)} vs {len(table.feature_names)} feature columns"
            else:
                first = next(
                    i for i, (a, b) in enumerate(zip(ref.feature_names, table.feature_names, strict=True)) if a != b
                )
                detail = f"column {first}: {ref.feature_names[first]!r} vs {table.feature_names[first]!r}"
            raise ValueError(f"features of {ref.path} and {table.path} ({split}) differ: {detail}")
        if table.style != ref.style:
            raise ValueError(
                f"{ref.path} has a {ref.style}-style hierarchy but {table.path} ({split}) a {table.style}-style one"
            )

    edges: dict[tuple[str, str], None] = {}
    for split, table in tables.items():
        before = len(edges)
        for e in table.edges:
            edges.setdefault(e)
        if split != "train" and len(edges) != before:
            logger.info("%s adds %d hierarchy edge(s) not declared in %s", table.path, len(edges) - before, ref.path)
    children = {c for _, c in edges}
    all_nodes = {n for e in edges for n in e} | ({ROOT} if ref.style == "tree" else set())
    roots = {n for n in all_nodes if n not in children}
    hierarchy = Hierarchy(list(edges), nodes=sorted(all_nodes), skip_eval=roots | GO_ROOTS)

    Ys = {split: hierarchy.label_matrix(t.label_terms) for split, t in tables.items()}
    x_train, x_valid, x_test = standardize_features(
        tables["train"].X, tables["valid"].X if "valid" in tables else None, tables["test"].X
    )

    if name is None:
        name = re.sub(r"[._]train$", "", paths["train"].stem, flags=re.IGNORECASE)
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
    ValueError
        If a file is malformed or the splits disagree (see :func:`load_arff_files`).
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
