"""Metrics beyond one threshold: macro and rare-node AUPRC, CAFA Fmax and Smin, P@k, PSP@k, nDCG@k and PSnDCG@k.

Pure numpy, torch-free (the dashboard's read path imports it). Every function
takes matrices in the hierarchy's column order: ``y_true`` (N, C) 0/1 test
labels (propagated), ``probs`` (N, C) scores (normally the ensemble-mean
MCM-coherent probabilities), ``pred`` (N, C) 0/1 predictions of any decision
rule. Conventions and sources are in docs/method.md, *Metrics*, *Threshold-free
and tail metrics*:

- macro AUPRC: the mean per-node average precision, in two labelled variants,
  over all evaluated nodes (a node without a test positive counts 0, as in
  the macro recall of :mod:`hmlc_core.metrics`) and over the nodes with at least
  one test positive;
- Fmax (Radivojac et al., Nature Methods 10, 2013, the evaluation metrics of
  the Online Methods; Jiang et al., Genome Biology 17:184, 2016, the
  evaluation metrics of the Methods) and Smin (Clark & Radivojac,
  Bioinformatics 29(13), 2013, i53-i61, the definitions of remaining
  uncertainty, misinformation and semantic distance) on a threshold grid,
  checked in the tests against the CAFA evaluator (``cafaeval``, Piovesan et
  al., Bioinformatics Advances 4(1), 2024);
- P@k and propensity-scored PSP@k (Jain, Prabhu & Varma, KDD 2016, the
  propensity-scored precision and the paper's empirical propensity model),
  checked against napkinXC;
- nDCG@k and propensity-scored PSnDCG@k (the same paper's propensity-scored
  nDCG; the per-sample ideal-DCG normaliser of the Extreme Classification
  Repository's nDCG@k), checked against napkinXC;
- :func:`tail_summary`: all of them at once, overall, for the rare nodes, per
  frequency bin and per depth, as one JSON-safe dict.
"""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import average_precision_per_node, is_binary, rare_node_mask

__all__ = [
    "FREQUENCY_BINS",
    "DEFAULT_THRESHOLDS",
    "macro_auprc",
    "fmax",
    "information_content",
    "smin",
    "propensities",
    "precision_at_k",
    "psp_at_k",
    "ndcg_at_k",
    "psndcg_at_k",
    "frequency_bin_masks",
    "RARE_BIN",
    "tail_summary",
]

FREQUENCY_BINS: tuple[tuple[str, int, int | None], ...] = (("<= 8", 0, 8), ("9-34", 9, 34), (">= 35", 35, None))
"""Absolute bins of training positives ``(label, low, high)``, both bounds inclusive, ``None`` = no upper bound."""

DEFAULT_THRESHOLDS: np.ndarray = np.round(np.arange(1, 100) / 100, 2)
"""CAFA's threshold grid for Fmax and Smin: 0.01, 0.02, ..., 0.99 (the CAFA evaluator's default step 0.01)."""

RARE_BIN = "bottom quartile"
"""Key of the rare nodes (:func:`hmlc_core.metrics.rare_node_mask`) in ``tail_summary()["by_frequency_bin"]``."""


# ------------------------------------------------------------------------------------------------ input checks
def _labels(y_true: np.ndarray, name: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 2:
        raise ValueError(f"{name} must be a 2-d (N, C) matrix, got shape {y.shape}")
    if not is_binary(y):
        raise ValueError(f"{name} must hold 0/1 values")
    return y != 0


def _scores(scores: np.ndarray, shape: tuple[int, ...], name: str = "probs") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != shape:
        raise ValueError(f"{name} {s.shape} must have the shape of y_true {shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} must be finite")
    return s


def _column_mask(mask: np.ndarray | None, n_columns: int, name: str = "mask") -> np.ndarray:
    if mask is None:
        return np.ones(n_columns, dtype=bool)
    m = np.asarray(mask)
    if m.shape != (n_columns,):
        raise ValueError(f"{name} must have shape ({n_columns},), got {m.shape}")
    return m.astype(bool)


def _mask_and_hierarchy(
    hierarchy_or_eval_mask: Hierarchy | np.ndarray, n_columns: int
) -> tuple[np.ndarray, Hierarchy | None]:
    if isinstance(hierarchy_or_eval_mask, Hierarchy):
        if hierarchy_or_eval_mask.n_nodes != n_columns:
            raise ValueError(f"the hierarchy has {hierarchy_or_eval_mask.n_nodes} nodes, the matrices {n_columns} "
                             "columns")
        return hierarchy_or_eval_mask.eval_mask.copy(), hierarchy_or_eval_mask
    return _column_mask(hierarchy_or_eval_mask, n_columns, "eval_mask"), None


def _threshold_grid(thresholds: np.ndarray | None) -> np.ndarray:
    t = DEFAULT_THRESHOLDS if thresholds is None else np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or not np.isfinite(t).all() or np.any(np.diff(t) <= 0):
        raise ValueError("thresholds must be a non-empty, strictly increasing sequence of finite numbers")
    return t


# ------------------------------------------------------------------------------------------------ macro AUPRC
def _mean_or_nan(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def macro_auprc(
    y_true: np.ndarray, probs: np.ndarray, mask: np.ndarray | None = None, *, with_positives_only: bool = False
) -> float:
    """Macro AUPRC: the mean over nodes of each node's average precision.

    ``AP_j = sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds of
    column ``j`` (scikit-learn's step-wise average precision, ties forming one
    threshold; :func:`hmlc_core.metrics.average_precision_per_node`). Then

    - ``with_positives_only=False`` ("all evaluated nodes"):
      ``mean_{j in mask} AP_j`` with ``AP_j = 0`` for a node without a test
      positive, the convention of the macro recall (docs/method.md,
      *Evaluated nodes*);
    - ``with_positives_only=True`` ("nodes with >= 1 test positive"): the mean
      over the masked nodes that have a test positive.

    The node-averaged AUPRC (the average of per-class areas, AUPRC-bar, of
    Vens et al., *Decision trees for hierarchical multi-label
    classification*, Machine Learning 73:185-214, 2008), with AP in place of
    the interpolated area.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    probs : array-like of float, shape (N, C)
    mask : array-like of bool, shape (C,), optional
        Nodes to average over (e.g. ``hierarchy.eval_mask`` or the rare nodes);
        all if None.
    with_positives_only : bool, default False

    Returns
    -------
    float in [0, 1]; NaN when no node is selected (or, with
    ``with_positives_only``, none of them has a test positive).

    Raises
    ------
    ValueError
        If the shapes disagree or ``y_true`` is not 0/1.
    """
    y = _labels(y_true)
    s = _scores(probs, y.shape)
    m = _column_mask(mask, y.shape[1])
    ap = average_precision_per_node(y[:, m], s[:, m])
    return _mean_or_nan(ap[~np.isnan(ap)]) if with_positives_only else _mean_or_nan(np.nan_to_num(ap, nan=0.0))


# ------------------------------------------------------------------------------------------------ Fmax and Smin
def _max_propagate(hierarchy: Hierarchy, scores: np.ndarray) -> np.ndarray:
    """Each node's score raised to the maximum over its descendants (CAFA's ``max`` propagation).

    One pass over the nodes in reverse topological order pushing each node's
    column into its parents; a no-op on MCM-coherent probabilities.
    """
    columns = np.array(scores, dtype=np.float64).T.copy()
    index = hierarchy.index
    for node in reversed(list(nx.topological_sort(hierarchy.graph))):
        j = index[node]
        for parent in hierarchy.graph.predecessors(node):
            p = index[parent]
            np.maximum(columns[p], columns[j], out=columns[p])
    return columns.T


class _Curves:
    """Per-sample counts at every threshold of a grid, from one ``searchsorted`` of the scores.

    ``levels[i, j]`` is the number of thresholds ``<= s_ij``, so node ``j`` is
    predicted for sample ``i`` at threshold ``t_k`` (0-based ``k``) exactly when
    ``levels[i, j] > k`` (CAFA predicts ``s >= t``). A weighted histogram of the
    levels per sample, summed from the top, gives any weighted count of the
    predicted set at every threshold in O(N C + N K).
    """

    def __init__(self, y: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> None:
        self.y = y
        self.thresholds = thresholds
        self.levels = np.searchsorted(thresholds, scores, side="right")

    def select(self, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Labels and levels of the columns, restricted to samples with a true node among them."""
        y = self.y[:, columns]
        rows = y.any(axis=1)
        return y[rows], self.levels[np.ix_(rows, columns)], columns

    def counts(self, levels: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        """(n, K) sums of ``weights`` over the entries predicted at each threshold."""
        n, width = levels.shape[0], len(self.thresholds) + 1
        flat = (np.arange(n)[:, None] * width + levels).ravel()
        w = None if weights is None else np.broadcast_to(weights, levels.shape).ravel()
        hist = np.bincount(flat, weights=w, minlength=n * width).reshape(n, width)
        return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]

    def fmax(self, columns: np.ndarray) -> tuple[float, float]:
        y, levels, _ = self.select(columns)
        if y.shape[0] == 0:
            return float("nan"), float("nan")
        n_pred = self.counts(levels, None)
        tp = self.counts(levels, y)
        covered = n_pred > 0
        m = covered.sum(axis=0)
        precision = np.divide(tp, n_pred, out=np.zeros_like(tp), where=covered).sum(axis=0) / np.maximum(m, 1)
        recall = (tp / y.sum(axis=1, keepdims=True)).mean(axis=0)
        denom = precision + recall
        f = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
        if not (m > 0).any():
            return 0.0, float("nan")
        best = int(np.argmax(np.where(m > 0, f, -1.0)))
        return float(f[best]), float(self.thresholds[best])

    def smin(self, columns: np.ndarray, ic: np.ndarray) -> tuple[float, float]:
        y, levels, cols = self.select(columns)
        if y.shape[0] == 0:
            return float("nan"), float("nan")
        w = ic[cols]
        covered = (self.counts(levels, None) > 0).any(axis=0)
        if not covered.any():
            return float("nan"), float("nan")
        misinformation = self.counts(levels, np.where(y, 0.0, w)).mean(axis=0)
        remaining = ((y * w).sum(axis=1, keepdims=True) - self.counts(levels, np.where(y, w, 0.0))).mean(axis=0)
        s = np.sqrt(remaining**2 + misinformation**2)
        best = int(np.argmin(np.where(covered, s, np.inf)))
        return float(s[best]), float(self.thresholds[best])


def _curves(
    y_true: np.ndarray, probs: np.ndarray, hierarchy_or_eval_mask: Hierarchy | np.ndarray,
    thresholds: np.ndarray | None,
) -> tuple[_Curves, np.ndarray]:
    y = _labels(y_true)
    s = _scores(probs, y.shape)
    mask, hierarchy = _mask_and_hierarchy(hierarchy_or_eval_mask, y.shape[1])
    if hierarchy is not None:
        y = hierarchy.propagate(y) != 0
        s = _max_propagate(hierarchy, s)
    return _Curves(y, s, _threshold_grid(thresholds)), np.flatnonzero(mask)


def fmax(
    y_true: np.ndarray, probs: np.ndarray, hierarchy_or_eval_mask: Hierarchy | np.ndarray,
    thresholds: np.ndarray | None = None,
) -> tuple[float, float]:
    """CAFA's protein-centric maximum F-measure, Fmax, and the threshold that attains it.

    For a threshold ``t`` let ``P_i(t) = {v : s_iv >= t}`` and ``T_i`` be the
    predicted and true sets of sample ``i`` over the evaluated nodes. Over the
    ``n_e`` samples with ``T_i`` non-empty (CAFA's benchmark targets) and the
    ``m(t)`` of them with ``P_i(t)`` non-empty:

    ``pr(t) = (1/m(t)) sum_{i: P_i(t) != {}} |P_i(t) & T_i| / |P_i(t)|``,
    ``rc(t) = (1/n_e) sum_i |P_i(t) & T_i| / |T_i|``,
    ``Fmax = max_t 2 pr(t) rc(t) / (pr(t) + rc(t))``,

    over the thresholds with ``m(t) > 0`` (Radivojac et al., *A large-scale
    evaluation of computational protein function prediction*, Nature Methods
    10, 2013, the evaluation metrics of the Online Methods; Jiang et al.,
    Genome Biology 17:184, 2016, the evaluation metrics of the Methods). The grid, the ``>=``
    and the skipped empty thresholds are those of the CAFA evaluator
    (``cafaeval``), which the tests reproduce.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    probs : array-like of float, shape (N, C)
    hierarchy_or_eval_mask : Hierarchy or array-like of bool, shape (C,)
        A :class:`Hierarchy`: its ``eval_mask`` selects the nodes, and labels
        and scores are first propagated to the ancestors (scores by the
        maximum over descendants, as CAFA does; a no-op for propagated labels
        and MCM-coherent probabilities). A mask: the nodes, used as given.
    thresholds : array-like of float, strictly increasing, optional
        :data:`DEFAULT_THRESHOLDS` (0.01, ..., 0.99) if None.

    Returns
    -------
    fmax : float in [0, 1]
        0 when no threshold predicts anything; NaN without a sample with a
        true evaluated node.
    threshold : float
        The smallest grid threshold attaining it (NaN when undefined).

    Raises
    ------
    ValueError
        On shape mismatches, non-0/1 labels, non-finite scores or a bad grid.
    """
    curves, columns = _curves(y_true, probs, hierarchy_or_eval_mask, thresholds)
    return curves.fmax(columns)


def information_content(y_train: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    """Information content (information accretion) of every node from training labels, in bits.

    ``ic(v) = -log2 P(v | Pa(v))``, with ``Pa(v)`` all parents of ``v``,
    estimated from the propagated training labels as
    ``P(v | Pa(v)) = n(v) / n(Pa(v))``: ``n(v)`` the samples positive for ``v``
    (each is positive for all its parents), ``n(Pa(v))`` the samples positive
    for every parent at once (all samples for a root). Clark & Radivojac,
    *Information-theoretic evaluation of predicted ontological annotations*,
    Bioinformatics 29(13), 2013, i53-i61: the Bayesian network over the
    ontology in which each term depends on all its parents, and the
    information accretion it defines.

    Zero counts follow the CAFA evaluator (its information-accretion input
    sets NaN and infinite values to 0): ``ic(v) = 0`` when no training sample
    has all parents (0/0) and when ``n(v) = 0`` (``-log2 0``). So a node never
    seen in training costs nothing in Smin, missed or predicted.

    Parameters
    ----------
    y_train : array-like of {0, 1}, shape (N, C)
        Training labels (propagated here again, so most-specific labels work too).
    hierarchy : Hierarchy

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values >= 0

    Raises
    ------
    ValueError
        If ``y_train`` is not an (N, C) 0/1 matrix.
    """
    y = _labels(y_train, "y_train")
    if y.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"y_train must have shape (N, {hierarchy.n_nodes}), got {y.shape}")
    # Sparse: a 111k-node hierarchy's dense propagated copy would be another N x C matrix.
    y = hierarchy.propagate_sparse(y).tocsc()
    n_node = y.getnnz(axis=0).astype(np.float64)
    n_parents = np.full(hierarchy.n_nodes, float(y.shape[0]))
    child, parent = hierarchy.edge_index()
    n_parents[child] = n_node[parent]  # one parent: its own count; nodes of several parents are counted below
    order = np.argsort(child, kind="stable")  # the edges grouped by child: one pass, not one scan per node
    child, parent = child[order], parent[order]
    starts = np.flatnonzero(np.r_[True, child[1:] != child[:-1]])
    for first, last in zip(starts, np.r_[starts[1:], child.size]):
        if last - first > 1:
            parents = parent[first:last]
            n_parents[child[first]] = float(((y[:, parents] > 0).sum(axis=1) == len(parents)).sum())
    ic = np.zeros(hierarchy.n_nodes)
    seen = (n_node > 0) & (n_parents > 0)
    ic[seen] = -np.log2(n_node[seen] / n_parents[seen])
    return ic + 0.0  # no -0.0 for nodes with P = 1


def smin(
    y_true: np.ndarray, probs: np.ndarray, ic: np.ndarray, eval_mask: Hierarchy | np.ndarray,
    thresholds: np.ndarray | None = None,
) -> tuple[float, float]:
    """Minimum semantic distance, Smin, and the threshold that attains it.

    With ``P_i(t) = {v : s_iv >= t}`` and ``T_i`` over the evaluated nodes and
    the ``n_e`` samples with ``T_i`` non-empty:

    ``ru(t) = (1/n_e) sum_i sum_{v in T_i - P_i(t)} ic(v)`` (remaining uncertainty),
    ``mi(t) = (1/n_e) sum_i sum_{v in P_i(t) - T_i} ic(v)`` (misinformation),
    ``Smin = min_t sqrt(ru(t)^2 + mi(t)^2)``,

    over the thresholds at which some sample has a prediction, as the CAFA
    evaluator does (Clark & Radivojac, Bioinformatics 29(13), 2013, i53-i61:
    remaining uncertainty, misinformation and the semantic distance with
    k = 2; Jiang et al., Genome Biology 17:184, 2016, the evaluation metrics
    of the Methods).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    probs : array-like of float, shape (N, C)
    ic : array-like of float, shape (C,)
        Information content in bits, e.g. :func:`information_content`.
    eval_mask : Hierarchy or array-like of bool, shape (C,)
        As ``hierarchy_or_eval_mask`` of :func:`fmax` (a Hierarchy propagates first).
    thresholds : array-like of float, strictly increasing, optional
        :data:`DEFAULT_THRESHOLDS` if None.

    Returns
    -------
    smin : float >= 0, in bits
        NaN without a sample with a true evaluated node, or when no threshold
        predicts anything.
    threshold : float
        The smallest grid threshold attaining it (NaN when undefined).

    Raises
    ------
    ValueError
        As :func:`fmax`, or if ``ic`` is not a finite, non-negative (C,) vector.
    """
    curves, columns = _curves(y_true, probs, eval_mask, thresholds)
    w = np.asarray(ic, dtype=np.float64)
    if w.shape != (curves.y.shape[1],) or not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"ic must be a finite, non-negative vector of shape ({curves.y.shape[1]},)")
    return curves.smin(columns, w)


# ------------------------------------------------------------------------------------------------ P@k and PSP@k
def propensities(train_frequency: np.ndarray, n_train: int, a: float = 0.55, b: float = 1.5) -> np.ndarray:
    """Jain et al.'s empirical label propensities.

    ``p_l = 1 / (1 + C exp(-A log(N_l + B)))`` with ``C = (log N - 1)(B + 1)^A``
    (natural logarithms), ``N_l`` the training positives of label ``l`` and
    ``N`` the training samples; ``A = 0.55``, ``B = 1.5`` are the paper's values
    for data sets other than Wikipedia and Amazon (Jain, Prabhu & Varma,
    *Extreme multi-label loss functions for recommendation, tagging, ranking
    & other missing label applications*, KDD 2016, the empirical propensity
    model fitted on its Wikipedia and Amazon data). A frequent label has ``p_l`` near 1; a label never seen in
    training has the smallest propensity ``1 / (1 + C B^-A)``.

    Parameters
    ----------
    train_frequency : array-like of float, shape (C,), values >= 0
        Training positives per node (propagated counts).
    n_train : int, >= 3
        Training samples ``N`` (``log N > 1`` keeps ``C`` positive).
    a, b : float
        ``A > 0`` and ``B > 0``.

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values in (0, 1)

    Raises
    ------
    ValueError
        If ``n_train < 3``, a frequency is negative or not finite, or ``a`` or ``b`` is not positive.
    """
    f = np.asarray(train_frequency, dtype=np.float64)
    if n_train < 3:
        raise ValueError(f"n_train must be at least 3 (log N > 1), got {n_train}")
    if not np.isfinite(f).all() or (f < 0).any():
        raise ValueError("train_frequency must be finite and non-negative")
    if a <= 0 or b <= 0:
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    c = (math.log(n_train) - 1.0) * (b + 1.0) ** a
    return 1.0 / (1.0 + c * np.exp(-a * np.log(f + b)))


def _check_k(k: int, width: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k > width:
        raise ValueError(f"k = {k} exceeds the {width} ranked nodes")


def _largest(scores: np.ndarray, k_max: int) -> np.ndarray:
    """(N, k_max): each row's k_max largest values in descending order (one partial sort for every k)."""
    return -np.partition(-scores, list(range(k_max)), axis=1)[:, :k_max]


def _top_k(scores: np.ndarray, k: int, largest: np.ndarray | None = None) -> np.ndarray:
    """(N, C) bool: each row's k highest scores; ties at the k-th value go to the lower column (shallower node).

    ``largest`` is :func:`_largest` of ``scores`` for some ``k_max >= k`` (computed here if None).
    """
    _check_k(k, scores.shape[1])
    kth = (_largest(scores, k) if largest is None else largest)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(axis=1, keepdims=True)
    crowded = np.flatnonzero(tied.sum(axis=1) > room[:, 0])
    if crowded.size:
        tied[crowded] &= np.cumsum(tied[crowded], axis=1) <= room[crowded]
    return above | tied


def _sorted_gains(y: np.ndarray, inverse_propensity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every true entry's sample, gain ``1 / p_l`` and 0-based rank among its sample's gains (largest first)."""
    rows, cols = np.nonzero(y)
    gain = inverse_propensity[cols]
    order = np.lexsort((-gain, rows))
    rows, gain = rows[order], gain[order]
    rank = np.arange(rows.size) - np.searchsorted(rows, rows, side="left")
    return rows, gain, rank


def _best_gains(y: np.ndarray, inverse_propensity: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """For each k, the sum over samples of the k largest ``y_il / p_l`` (PSP@k's best attainable numerator)."""
    _, gain, rank = _sorted_gains(y, inverse_propensity)
    return {k: float(gain[rank < k].sum()) for k in ks}


def _discounts(k: int) -> np.ndarray:
    """DCG's discounts ``1 / log2(r + 1)`` of the ranks ``r = 1..k`` (the base cancels in every reported ratio)."""
    return 1.0 / np.log2(np.arange(2, k + 2))


def _ideal_dcg(n_true: np.ndarray, k: int) -> np.ndarray:
    """Ideal DCG ``Z_i(k) = sum_{r=1}^{min(k, n_i)} 1 / log2(r + 1)`` per sample, ``n_i`` true nodes (0 if none)."""
    return np.concatenate(([0.0], np.cumsum(_discounts(k))))[np.minimum(n_true, k)]


def _best_dcg(y: np.ndarray, inverse_propensity: np.ndarray, ks: tuple[int, ...]) -> dict[int, float]:
    """For each k, ``sum_i PSDCG*_i(k) / Z_i(k)``: PSnDCG@k's best attainable numerator.

    ``PSDCG*_i(k)`` ranks sample ``i``'s true nodes by decreasing ``1 / p_l``
    (the largest propensity-scored DCG at k); samples without a true node add 0.
    """
    rows, gain, rank = _sorted_gains(y, inverse_propensity)
    n_true = y.sum(axis=1)
    best = {}
    for k in ks:
        keep = rank < k
        best[k] = float((gain[keep] * _discounts(k)[rank[keep]] / _ideal_dcg(n_true, k)[rows[keep]]).sum())
    return best


def _ranking(scores: np.ndarray, k: int, largest: np.ndarray | None = None) -> np.ndarray:
    """(N, k) column indices: each row's k top-scored columns in rank order, ties to the lower column.

    The rows' first ``j`` entries are :func:`_top_k` of ``j`` for every ``j <= k``
    (``largest`` as there).
    """
    columns = np.nonzero(_top_k(scores, k, largest))[1].reshape(-1, k)
    order = np.argsort(-np.take_along_axis(scores, columns, axis=1), axis=1, kind="stable")
    return np.take_along_axis(columns, order, axis=1)


def _ndcg(y: np.ndarray, ranking: np.ndarray, k: int, gain: np.ndarray | None, best: float | None) -> float:
    """nDCG@k (``gain`` None) or PSnDCG@k (``gain`` = inverse propensities) from the first k columns of ``ranking``.

    The mean over samples of ``DCG_i(k) / Z_i(k)`` (0 for a sample without a
    true node); with ``best`` (:func:`_best_dcg`), the sum divided by it instead.
    """
    top = ranking[:, :k]
    hits = np.take_along_axis(y, top, axis=1).astype(np.float64)
    if gain is not None:
        hits *= gain[top]
    norms = _ideal_dcg(y.sum(axis=1), k)
    dcg = hits @ _discounts(k)
    scored = np.divide(dcg, norms, out=np.zeros_like(dcg), where=norms > 0)
    if best is None:
        return float(scored.mean())
    return float(scored.sum() / best) if best > 0 else float("nan")


def _ranked(y_true: np.ndarray, scores: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    s = _scores(scores, y.shape, "scores")
    m = _column_mask(mask, y.shape[1])
    return y[:, m], s[:, m]


def precision_at_k(y_true: np.ndarray, scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> float:
    """Precision at k: the mean over samples of the share of true nodes among the k top-scored ones.

    ``P@k = (1/N) sum_i (1/k) sum_{l in top_k(s_i)} y_il`` over the masked
    nodes (Jain et al., KDD 2016, with the propensity-scored losses; the extreme-classification
    convention, every sample counted). Ties at the k-th score go to the lower
    column, i.e. the shallower node (the hierarchy's column order), which with
    MCM-coherent probabilities ranks an ancestor before a descendant of equal
    score.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    scores : array-like of float, shape (N, C)
    k : int, 1 <= k <= number of masked nodes
    mask : array-like of bool, shape (C,), optional
        Nodes to rank (e.g. ``hierarchy.eval_mask``, which drops the
        always-true root); all if None.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        On bad shapes, non-0/1 labels, non-finite scores or a bad ``k``.
    """
    y, s = _ranked(y_true, scores, mask)
    return _hits_at_k(y, _top_k(s, k), None) / k


def psp_at_k(
    y_true: np.ndarray, scores: np.ndarray, propensity: np.ndarray, k: int, mask: np.ndarray | None = None,
    normalised: bool = True,
) -> float:
    """Propensity-scored precision at k (Jain, Prabhu & Varma, KDD 2016, the propensity-scored losses).

    ``PSP@k = (1/N) sum_i (1/k) sum_{l in top_k(s_i)} y_il / p_l``, an unbiased
    estimate of precision under missing labels that rewards correct rare
    labels (small propensity ``p_l``; :func:`propensities`). Normalised, as
    reported in the extreme-classification repository and computed by
    pyxclib and napkinXC, it is divided by its best attainable value
    ``(1/N) sum_i (1/k) sum of the k largest y_il / p_l`` (a ratio of sums over
    samples), giving a value in [0, 1]. Ties as in :func:`precision_at_k`.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    scores : array-like of float, shape (N, C)
    propensity : array-like of float, shape (C,), values in (0, 1]
    k : int, 1 <= k <= number of masked nodes
    mask : array-like of bool, shape (C,), optional
    normalised : bool, default True

    Returns
    -------
    float; in [0, 1] when normalised (NaN when no sample has a true masked
    node), else >= 0.

    Raises
    ------
    ValueError
        As :func:`precision_at_k`, or if ``propensity`` has the wrong shape or
        values outside (0, 1].
    """
    y, s = _ranked(y_true, scores, mask)
    inverse = _inverse_propensity(propensity, y_true, mask)
    return _psp(y, _top_k(s, k), inverse, k, _best_gains(y, inverse, (k,))[k] if normalised else None)


def _inverse_propensity(propensity: np.ndarray, y_true: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``1 / p_l`` of the masked columns, after checking the shape and the range (0, 1]."""
    p = np.asarray(propensity, dtype=np.float64)
    m = _column_mask(mask, np.asarray(y_true).shape[1])
    if p.shape != m.shape or not ((p > 0) & (p <= 1)).all():
        raise ValueError(f"propensity must have shape {m.shape} with values in (0, 1]")
    return 1.0 / p[m]


def ndcg_at_k(y_true: np.ndarray, scores: np.ndarray, k: int, mask: np.ndarray | None = None) -> float:
    """Normalised discounted cumulative gain at k, the mean over samples.

    ``DCG_i(k) = sum_{r=1}^{k} y_{i,l_r} / log2(r + 1)`` with ``l_r`` the node
    at rank ``r`` of sample ``i``, and
    ``nDCG@k = (1/N) sum_i DCG_i(k) / Z_i(k)``,
    ``Z_i(k) = sum_{r=1}^{min(k, |y_i|)} 1 / log2(r + 1)`` the DCG of a perfect
    ranking, over the masked nodes: the nDCG@k of the Extreme Classification
    Repository (Bhatia et al., 2016, its performance metrics) and of Jain,
    Prabhu & Varma, KDD 2016, as napkinXC and pyxclib compute it. A sample
    without a true masked node counts 0 (every sample counted, as in
    :func:`precision_at_k`). The base of the logarithm cancels. Ties as in
    :func:`precision_at_k`: the lower column (shallower node) ranks first.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    scores : array-like of float, shape (N, C)
    k : int, 1 <= k <= number of masked nodes
    mask : array-like of bool, shape (C,), optional
        Nodes to rank (e.g. ``hierarchy.eval_mask``); all if None.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        On bad shapes, non-0/1 labels, non-finite scores or a bad ``k``.
    """
    y, s = _ranked(y_true, scores, mask)
    return _ndcg(y, _ranking(s, k), k, None, None)


def psndcg_at_k(
    y_true: np.ndarray, scores: np.ndarray, propensity: np.ndarray, k: int, mask: np.ndarray | None = None,
    normalised: bool = True,
) -> float:
    """Propensity-scored nDCG at k (Jain, Prabhu & Varma, KDD 2016, the propensity-scored losses).

    ``PSDCG_i(k) = sum_{r=1}^{k} y_{i,l_r} / (p_{l_r} log2(r + 1))`` rewards a
    correct rare node (small propensity ``p_l``, :func:`propensities`) at a
    high rank. With ``Z_i(k)`` the ideal DCG of :func:`ndcg_at_k`:

    - ``normalised=False``: ``(1/N) sum_i PSDCG_i(k) / Z_i(k)``;
    - ``normalised=True`` (the value the extreme-classification literature
      reports): ``sum_i PSDCG_i(k) / Z_i(k)`` divided by
      ``sum_i PSDCG*_i(k) / Z_i(k)``, where ``PSDCG*_i(k)`` ranks sample
      ``i``'s true nodes by decreasing ``1 / p_l``, the best attainable
      propensity-scored DCG. A ratio of sums over samples, each sample
      weighted by its own ``1 / Z_i(k)``, exactly as napkinXC
      (``psndcg_at_k(normalize=True)``) and pyxclib (``psndcg``) compute it;
      in [0, 1].

    Samples without a true masked node add 0 to every sum. Ties as in
    :func:`precision_at_k`.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    scores : array-like of float, shape (N, C)
    propensity : array-like of float, shape (C,), values in (0, 1]
    k : int, 1 <= k <= number of masked nodes
    mask : array-like of bool, shape (C,), optional
    normalised : bool, default True

    Returns
    -------
    float; in [0, 1] when normalised (NaN when no sample has a true masked
    node), else >= 0.

    Raises
    ------
    ValueError
        As :func:`precision_at_k`, or if ``propensity`` has the wrong shape or
        values outside (0, 1].
    """
    y, s = _ranked(y_true, scores, mask)
    _check_k(k, s.shape[1])
    inverse = _inverse_propensity(propensity, y_true, mask)
    best = _best_dcg(y, inverse, (k,))[k] if normalised else None
    return _ndcg(y, _ranking(s, k), k, inverse, best)


def _hits_at_k(y: np.ndarray, top: np.ndarray, gain: np.ndarray | None) -> float:
    """Mean over samples of the (gain-weighted) true nodes among the top-k."""
    hits = top & y
    total = hits.sum() if gain is None else hits.sum(axis=0) @ gain
    return float(total / y.shape[0])


def _psp(y: np.ndarray, top: np.ndarray, inverse_propensity: np.ndarray, k: int, best: float | None) -> float:
    """PSP@k from the top-k mask; normalised by ``best`` (:func:`_best_gains`) unless it is None."""
    scored = _hits_at_k(y, top, inverse_propensity) / k
    if best is None:
        return scored
    best_mean = best / (k * y.shape[0])
    return scored / best_mean if best_mean > 0 else float("nan")


# ------------------------------------------------------------------------------------------------ the summary
def frequency_bin_masks(train_frequency: np.ndarray, eval_mask: np.ndarray) -> dict[str, np.ndarray]:
    """The evaluated nodes of each frequency bin.

    Parameters
    ----------
    train_frequency : array-like, shape (C,)
        Training positives per node (propagated).
    eval_mask : array-like of bool, shape (C,)

    Returns
    -------
    dict of str to numpy.ndarray of bool, shape (C,)
        ``"bottom quartile"`` (the rare nodes, :func:`hmlc_core.metrics.rare_node_mask`,
        docs/method.md, *Rare nodes*), then the bins of :data:`FREQUENCY_BINS`
        (``"<= 8"``, ``"9-34"``, ``">= 35"``).

    Raises
    ------
    ValueError
        If no node is evaluated.
    """
    f = np.asarray(train_frequency, dtype=np.float64)
    keep = np.asarray(eval_mask, dtype=bool)
    bins = {RARE_BIN: rare_node_mask(f, keep)}
    for label, low, high in FREQUENCY_BINS:
        bins[label] = keep & (f >= low) & (f <= (np.inf if high is None else high))
    return bins


def _json_number(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def tail_summary(
    hierarchy: Hierarchy,
    y_true: np.ndarray,
    probs: np.ndarray,
    pred: np.ndarray,
    train_frequency: np.ndarray,
    n_train: int,
    y_train: np.ndarray | None = None,
    ks: tuple[int, ...] = (1, 3, 5),
    *,
    ic: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Threshold-free and tail metrics of one set of test predictions, overall, per frequency bin and per depth.

    The node-wise metrics (precision, recall, F1 per node from ``pred``; AP
    per node from ``probs``) are averaged in two labelled variants: over all
    the group's evaluated nodes (a node without a test positive counts 0, as
    :func:`hmlc_core.metrics.summarize`) and, suffixed ``_with_positives``,
    over those with at least one test positive. The sample-wise metrics
    (:func:`fmax`, :func:`smin`, :func:`precision_at_k`, :func:`psp_at_k`,
    :func:`ndcg_at_k`, :func:`psndcg_at_k`) are
    computed on the group's nodes only (a group's Fmax ranks and thresholds
    only its nodes, over the samples with a true node in it).

    Parameters
    ----------
    hierarchy : Hierarchy
        Its ``eval_mask`` selects the nodes and its ``depth`` the depth groups.
    y_true : array-like of {0, 1}, shape (N, C)
        Test labels.
    probs : array-like of float, shape (N, C)
        Test scores (ensemble-mean coherent probabilities).
    pred : array-like of {0, 1}, shape (N, C)
        The decision rule's predictions (e.g. ``DecisionRule.predict(probs)``).
    train_frequency : array-like, shape (C,)
        Training positives per node (propagated); defines the bins and the propensities.
    n_train : int, >= 3
        Training samples (for :func:`propensities`).
    y_train : array-like of {0, 1}, shape (N_train, C), optional
        Training labels for :func:`information_content`; without it (and
        without ``ic``) Smin is left out.
    ks : tuple of int, default (1, 3, 5)
        The k of P@k, PSP@k, nDCG@k and PSnDCG@k.
    ic : array-like of float, shape (C,), optional
        Information content, instead of computing it from ``y_train``.
    thresholds : array-like of float, optional
        Grid of Fmax and Smin; :data:`DEFAULT_THRESHOLDS` if None.

    Returns
    -------
    dict
        JSON-safe (Python ints and floats, undefined values as None), with keys

        - ``n_eval_nodes``, ``n_eval_nodes_with_positives``, ``n_test``;
        - ``macro_precision``, ``macro_recall``, ``macro_f1``, ``macro_auprc``
          (all evaluated nodes) and each with ``_with_positives``;
        - ``micro_precision``, ``micro_recall``, ``micro_f1`` (pooled over the
          evaluated nodes);
        - ``n_rare_nodes``, ``rare_cut`` (the training-frequency cut),
          ``rare_node_recall``, ``rare_node_f1``, ``rare_node_auprc`` and each
          with ``_with_positives``;
        - ``fmax``, ``fmax_threshold``; ``smin``, ``smin_threshold`` (with
          ``y_train`` or ``ic``);
        - ``p@k``, ``psp@k`` (normalised), ``ndcg@k`` and ``psndcg@k``
          (normalised) for each k in ``ks``;
        - ``by_frequency_bin``: ``{"bottom quartile" | "<= 8" | "9-34" | ">= 35": group}``,
          ``by_depth``: ``{str(depth): group}``, each group a dict with
          ``n_nodes``, ``n_nodes_with_positives``, the macro, micro, Fmax,
          Smin, P@k, PSP@k, nDCG@k and PSnDCG@k keys above (None where a
          group has too few nodes for k or no sample with a true node in it).

    Raises
    ------
    ValueError
        On shape mismatches, non-0/1 labels or predictions, non-finite
        scores, no evaluated node, or ``n_train < 3``.
    """
    y = _labels(y_true)
    if y.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"y_true must have shape (N, {hierarchy.n_nodes}), got {y.shape}")
    s = _scores(probs, y.shape)
    hard = _labels(pred, "pred")
    if hard.shape != y.shape:
        raise ValueError(f"pred {hard.shape} must have the shape of y_true {y.shape}")
    eval_mask = hierarchy.eval_mask
    if not eval_mask.any():
        raise ValueError("no evaluated node")
    frequency = np.asarray(train_frequency, dtype=np.float64)
    if frequency.shape != (hierarchy.n_nodes,):
        raise ValueError(f"train_frequency must have shape ({hierarchy.n_nodes},), got {frequency.shape}")
    inverse_propensity = 1.0 / propensities(frequency, n_train)
    if ic is None and y_train is not None:
        ic = information_content(y_train, hierarchy)
    ic_vector = None if ic is None else np.asarray(ic, dtype=np.float64)
    if ic_vector is not None and (ic_vector.shape != (hierarchy.n_nodes,) or not np.isfinite(ic_vector).all()):
        raise ValueError(f"ic must be a finite vector of shape ({hierarchy.n_nodes},)")

    tp = (hard & y).sum(axis=0).astype(np.float64)
    n_pred = hard.sum(axis=0).astype(np.float64)
    support = y.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    ap = average_precision_per_node(y, s)
    has_positive = support > 0
    curves = _Curves(hierarchy.propagate(y) != 0, _max_propagate(hierarchy, s), _threshold_grid(thresholds))

    def group(nodes: np.ndarray) -> dict[str, Any]:
        with_pos = nodes & has_positive
        out: dict[str, Any] = {"n_nodes": int(nodes.sum()), "n_nodes_with_positives": int(with_pos.sum())}
        for name, values in (("precision", precision), ("recall", recall), ("f1", f1),
                             ("auprc", np.nan_to_num(ap, nan=0.0))):
            out[f"macro_{name}"] = _json_number(_mean_or_nan(values[nodes]))
            out[f"macro_{name}_with_positives"] = _json_number(_mean_or_nan(values[with_pos]))
        columns = np.flatnonzero(nodes)
        g_tp, g_pred, g_true = tp[nodes].sum(), n_pred[nodes].sum(), support[nodes].sum()
        micro_p = g_tp / g_pred if g_pred else 0.0
        micro_r = g_tp / g_true if g_true else 0.0
        micro_f = 2 * micro_p * micro_r / (micro_p + micro_r) if micro_p + micro_r > 0 else 0.0
        for name, value in (("precision", micro_p), ("recall", micro_r), ("f1", micro_f)):
            out[f"micro_{name}"] = float(value) if columns.size else None
        f_value, f_t = curves.fmax(columns) if columns.size else (float("nan"), float("nan"))
        out["fmax"], out["fmax_threshold"] = _json_number(f_value), _json_number(f_t)
        if ic_vector is not None:
            s_value, s_t = curves.smin(columns, ic_vector) if columns.size else (float("nan"), float("nan"))
            out["smin"], out["smin_threshold"] = _json_number(s_value), _json_number(s_t)
        fitting = tuple(k for k in ks if 1 <= k <= columns.size)
        if fitting:
            y_group, s_group, inverse = y[:, columns], s[:, columns], inverse_propensity[columns]
            largest = _largest(s_group, max(fitting))
            best = _best_gains(y_group, inverse, fitting)
            ranking = _ranking(s_group, max(fitting), largest)
            best_dcg = _best_dcg(y_group, inverse, fitting)
        for k in ks:
            if k in fitting:
                top = _top_k(s_group, k, largest)
                out[f"p@{k}"] = _hits_at_k(y_group, top, None) / k
                out[f"psp@{k}"] = _json_number(_psp(y_group, top, inverse, k, best[k]))
                out[f"ndcg@{k}"] = _json_number(_ndcg(y_group, ranking, k, None, None))
                out[f"psndcg@{k}"] = _json_number(_ndcg(y_group, ranking, k, inverse, best_dcg[k]))
            else:
                out[f"p@{k}"] = out[f"psp@{k}"] = out[f"ndcg@{k}"] = out[f"psndcg@{k}"] = None
        return out

    bins = frequency_bin_masks(frequency, eval_mask)
    overall = group(eval_mask)
    result: dict[str, Any] = {
        "n_eval_nodes": overall.pop("n_nodes"),
        "n_eval_nodes_with_positives": overall.pop("n_nodes_with_positives"),
        "n_test": int(y.shape[0]),
        **overall,
    }
    rare = bins[RARE_BIN]
    result["n_rare_nodes"] = int(rare.sum())
    result["rare_cut"] = float(np.quantile(frequency[eval_mask], 0.25))
    rare_with_pos = rare & has_positive
    for name, values in (("recall", recall), ("f1", f1), ("auprc", np.nan_to_num(ap, nan=0.0))):
        result[f"rare_node_{name}"] = _json_number(_mean_or_nan(values[rare]))
        result[f"rare_node_{name}_with_positives"] = _json_number(_mean_or_nan(values[rare_with_pos]))
    result["by_frequency_bin"] = {label: group(nodes) for label, nodes in bins.items()}
    depth = hierarchy.depth
    result["by_depth"] = {str(int(d)): group(eval_mask & (depth == d)) for d in np.unique(depth[eval_mask])}
    return result
