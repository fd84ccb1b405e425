"""LPROS: random oversampling of minority label paths (Xu et al. 2026's resampling baseline).

Our statement of the released ``hros_pd`` procedure (docs/method.md, *LPROS,
schedules and the mixed loss*), an ML-ROS /
LP-ROS style method (Charte et al. 2015) applied to the paths of the label
hierarchy:

1. Count each sample's most specific labels (its positive nodes without a
   positive child). The released code counts the raw ARFF terms; the two agree
   unless a sample lists a term together with one of its own ancestors.
2. A *path key* is a root-to-node path (a tree has one per node; a DAG such
   as GO one per distinct path). A key starts with the count of its last
   node; counts are then added to each key's parent key (the path without its
   last node), deepest keys first, so a key counts the annotations below it.
   The root key counts all annotations.
3. Keys with a zero count are dropped. ``IRLbP(key) = max non-root count /
   count(key)``; ``HMeanIR`` is the mean IRLbP; a key is a *minority* key when
   its IRLbP exceeds HMeanIR.
4. ``samples_to_create = int(S * count(root))`` (S = 0.1),
   ``mean_size = ceil(count(root) / (#keys - 1))``,
   ``max_increase = ceil(samples_to_create / #minority keys)``.
5. Bottom-up: the keys at the current maximum depth are visited; a minority
   key gets ``min(max_increase, mean_size - count)`` duplicates of training
   rows drawn with replacement among the rows whose most specific labels
   contain its last node (else the rows positive for it); each duplicate's
   labels are replaced by that node and its ancestors; counts along the path
   are updated; the visited keys are removed, and the next depth follows,
   its minority status computed from the updated counts against the
   original maximum count and HMeanIR.
6. The duplicates are appended to the training rows.

Node frequencies for the imbalance weights still come from the original
training split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hmlc_core.hierarchy import Hierarchy

__all__ = ["LprosResult", "lpros", "most_specific_labels", "path_keys"]

Path = tuple[int, ...]


def most_specific_labels(labels: np.ndarray, hierarchy: Hierarchy) -> list[np.ndarray]:
    """Per sample, the column indices of positive nodes that have no positive child.

    Parameters
    ----------
    labels : array-like of {0, 1}, shape (N, C)
        Propagated labels.

    Returns
    -------
    list of numpy.ndarray of int64, one per sample
    """
    y = np.asarray(labels) != 0
    child, parent = hierarchy.edge_index()
    has_positive_child = np.zeros_like(y)
    np.logical_or.at(has_positive_child.T, parent, y[:, child].T)
    specific = y & ~has_positive_child
    return [np.flatnonzero(row) for row in specific]


def path_keys(hierarchy: Hierarchy) -> list[Path]:
    """Every path from a root to a node, as tuples of column indices (roots included)."""
    paths: list[Path] = []
    stack: list[Path] = [(hierarchy.index[r],) for r in hierarchy.roots]
    while stack:
        path = stack.pop()
        paths.append(path)
        node = hierarchy.nodes[path[-1]]
        stack.extend(path + (hierarchy.index[c],) for c in hierarchy.children(node))
    return paths


@dataclass(frozen=True)
class LprosResult:
    """The rows LPROS adds.

    Attributes
    ----------
    rows : numpy.ndarray of int64, shape (M,)
        Training row copied for each duplicate.
    labels : numpy.ndarray of uint8, shape (M, C)
        Each duplicate's labels: its path's last node and that node's ancestors.
    terms : numpy.ndarray of int64, shape (M,)
        The node each duplicate was made for.
    max_increase : int
        The per-key cap of step 4.
    minority_keys : int
        Number of minority keys before resampling.
    """

    rows: np.ndarray
    labels: np.ndarray
    terms: np.ndarray
    max_increase: int
    minority_keys: int


def lpros(labels: np.ndarray, hierarchy: Hierarchy, fraction: float = 0.1, seed: int = 0) -> LprosResult:
    """Choose the training rows to duplicate for minority label paths (see the module docstring).

    Parameters
    ----------
    labels : array-like of {0, 1}, shape (N, C)
        Propagated training labels.
    hierarchy : Hierarchy
    fraction : float, default 0.1
        ``S``: duplicates to create as a fraction of the root's annotation count, in (0, 1].
    seed : int
        Seed of the row sampling.

    Returns
    -------
    LprosResult

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1] or ``labels`` has the wrong width.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"LPROS fraction must be in (0, 1], got {fraction}")
    y = np.asarray(labels)
    if y.ndim != 2 or y.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"labels must have shape (N, {hierarchy.n_nodes}), got {y.shape}")
    rng = np.random.default_rng(seed)
    specific = most_specific_labels(y, hierarchy)
    term_count = np.zeros(hierarchy.n_nodes, dtype=np.int64)
    for terms in specific:
        term_count[terms] += 1

    roots = {hierarchy.index[r] for r in hierarchy.roots}
    keys = path_keys(hierarchy)
    count: dict[Path, int] = {k: int(term_count[k[-1]]) for k in keys}
    for key in sorted(keys, key=len, reverse=True):
        if len(key) > 1:
            count[key[:-1]] += count[key]
    count = {k: c for k, c in count.items() if c > 0}
    root_keys = [k for k in count if len(k) == 1]
    total = sum(count[k] for k in root_keys)
    inner = {k: c for k, c in count.items() if len(k) > 1 or k[0] not in roots}
    empty = LprosResult(np.zeros(0, np.int64), np.zeros((0, hierarchy.n_nodes), np.uint8), np.zeros(0, np.int64),
                        0, 0)
    if not inner:
        return empty
    top = max(inner.values())
    h_mean_ir = float(np.mean([top / c for c in inner.values()]))

    def is_minority(key: Path) -> bool:
        return top / count[key] > h_mean_ir

    n_minority = sum(is_minority(k) for k in inner)
    if n_minority == 0:
        return empty
    samples_to_create = int(fraction * total)
    mean_size = math.ceil(total / max(len(inner), 1))
    max_increase = math.ceil(samples_to_create / n_minority)

    rows_with_term: dict[int, np.ndarray] = {}
    picked_rows, picked_terms = [], []
    remaining = dict(inner)
    while remaining:
        depth = max(len(k) for k in remaining)
        layer = [k for k in remaining if len(k) == depth]
        for key in layer:
            if not is_minority(key):
                continue
            n = min(max_increase, mean_size - count[key])
            if n <= 0:
                continue
            term = key[-1]
            if term not in rows_with_term:
                exact = np.flatnonzero([term in s for s in specific])
                rows_with_term[term] = exact if len(exact) else np.flatnonzero(y[:, term])
            pool = rows_with_term[term]
            if len(pool) == 0:
                continue
            picked_rows.append(rng.choice(pool, size=n, replace=True))
            picked_terms.append(np.full(n, term, dtype=np.int64))
            for prefix_len in range(1, len(key) + 1):
                prefix = key[:prefix_len]
                if prefix in count:
                    count[prefix] += n
        for key in layer:
            del remaining[key]

    if not picked_rows:
        return LprosResult(empty.rows, empty.labels, empty.terms, max_increase, n_minority)
    rows = np.concatenate(picked_rows)
    terms = np.concatenate(picked_terms)
    one_hot = np.zeros((len(terms), hierarchy.n_nodes), dtype=np.uint8)
    one_hot[np.arange(len(terms)), terms] = 1
    return LprosResult(rows, hierarchy.propagate(one_hot), terms, max_increase, n_minority)
