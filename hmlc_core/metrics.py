"""Evaluation metrics for hierarchical multi-label predictions.

Pure functions on numpy arrays in the hierarchy's column order. Conventions
(docs/method.md, *Metrics*): threshold 0.5 on the ensemble-mean constrained
probabilities; macro averages are plain means over *all* evaluated nodes,
including nodes without test positives (their recall and F1 are 0); the micro
AUPRC is C-HMCNN's metric, scikit-learn's ``average_precision_score`` with
``average="micro"`` over the evaluated nodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from hmlc_core.hierarchy import Hierarchy

__all__ = [
    "auprc_micro",
    "is_binary",
    "average_precision_per_node",
    "confusion_counts",
    "precision_recall_f1",
    "macro_precision_recall_f1",
    "recall_by_depth",
    "rare_node_mask",
    "rare_node_recall",
    "node_metrics_table",
    "summarize",
    "hierarchical_precision_recall_f1",
    "deepest_correct_level",
]


def is_binary(values: np.ndarray) -> bool:
    """True when every entry of ``values`` is 0 or 1 (any numeric or bool dtype; False for object arrays).

    A comparison pass over the array: ``numpy.isin`` sorts, which took 35 s on the 2,000 x 111,111 labels of
    the 100k-node benchmark.
    """
    a = np.asarray(values)
    if a.dtype == bool:
        return True
    if a.dtype == object:
        return False
    if a.dtype.kind == "u":
        return bool((a <= 1).all())
    return bool(((a == 0) | (a == 1)).all())


def _check_pair(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} must be equal (N, C) shapes")
    return y != 0, s


def _average_precision_sorted(scores_sorted: np.ndarray, positives_sorted: np.ndarray) -> float:
    """Step-wise average precision from ascending scores of all samples and of the positives.

    ``AP = sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds equals the
    mean over positives ``i`` of the precision at threshold ``s_i``:
    ``#{positives >= s_i} / #{samples >= s_i}`` (positives that tie share a
    threshold). Two binary searches instead of an argsort.
    """
    n_at_or_above = len(scores_sorted) - np.searchsorted(scores_sorted, positives_sorted, side="left")
    tp_at_or_above = len(positives_sorted) - np.searchsorted(positives_sorted, positives_sorted, side="left")
    return float((tp_at_or_above / n_at_or_above).mean())


def auprc_micro(y_true: np.ndarray, probs: np.ndarray, eval_mask: np.ndarray | None = None) -> float:
    """Micro-averaged area under the precision-recall curve (C-HMCNN's AU(PRC)).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    probs : array-like of float, shape (N, C)
        Scores, normally the ensemble-mean constrained probabilities.
    eval_mask : array-like of bool, shape (C,), optional
        Columns to include (roots excluded); all if None.

    Returns
    -------
    float in [0, 1]; NaN when the selected entries hold no positive.

    Notes
    -----
    C-HMCNN computes this with ``sklearn.metrics.average_precision_score(...,
    average="micro")`` (docs/method.md, *Metrics*). We compute the same step-wise average
    precision over the flattened matrix from sorted scores (no argsort),
    about five times faster on GO's 5.3M entries; the tests check it against
    scikit-learn, ties included.
    """
    y, s = _check_pair(y_true, probs)
    if eval_mask is not None:
        y, s = y[:, eval_mask], s[:, eval_mask]
    if not y.any():
        return float("nan")
    positives = np.sort(s[y])
    # sorted in place: the masked copy is our own (in its memory order, a view), the caller's scores are copied
    flat = s.ravel(order="K") if eval_mask is not None else s.flatten()
    flat.sort()
    return _average_precision_sorted(flat, positives)


def average_precision_per_node(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of every column.

    The step-wise definition of scikit-learn's ``average_precision_score``
    (tied scores form one threshold), which the tests use as the reference;
    computed from each column's sorted scores (see
    :func:`_average_precision_sorted`), about ten times faster than one
    argsort of the whole matrix on GO.

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N, C)
    scores : array-like of float, shape (N, C)

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values in [0, 1]; NaN for columns
    without positives.
    """
    y, s = _check_pair(y_true, scores)
    y_cols, s_cols = np.ascontiguousarray(y.T), np.array(s.T, order="C")  # a copy of our own, sorted in place
    positives = {j: np.sort(s_cols[j][y_cols[j]]) for j in np.flatnonzero(y_cols.any(axis=1))}
    s_cols.sort(axis=1)
    ap = np.full(s_cols.shape[0], np.nan)
    for j, scores_j in positives.items():
        ap[j] = _average_precision_sorted(s_cols[j], scores_j)
    return ap


def _decided(y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray,
             predictions: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Labels and 0/1 decisions as bool arrays: ``predictions`` when given, else ``probs > threshold``."""
    y, s = _check_pair(y_true, probs)
    if predictions is None:
        return y, s > threshold
    pred = np.asarray(predictions)
    if pred.shape != y.shape:
        raise ValueError(f"predictions {pred.shape} must have the shape of y_true {y.shape}")
    return y, pred != 0


def confusion_counts(
    y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
    predictions: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-node TP, FP, FN and support at ``prob > threshold``, or of given predictions.

    ``threshold`` is one float or a (C,) array of per-node thresholds, broadcast over samples.
    ``predictions`` (array-like of {0, 1}, shape (N, C)) are a decision rule's label sets
    (:meth:`hmlc_core.decision.DecisionRule.predict`, which also adds the ancestors of predicted
    nodes); when given they replace ``probs > threshold``. Both hold for every function of this
    module that takes them.

    Returns
    -------
    dict with keys "tp", "fp", "fn", "support", each numpy.ndarray of int64, shape (C,)

    Raises
    ------
    ValueError
        If the shapes of ``y_true``, ``probs`` and ``predictions`` differ or are not (N, C).
    """
    y, pred = _decided(y_true, probs, threshold, predictions)
    tp = (pred & y).sum(axis=0)
    fp = (pred & ~y).sum(axis=0)
    fn = (~pred & y).sum(axis=0)
    return {"tp": tp.astype(np.int64), "fp": fp.astype(np.int64), "fn": fn.astype(np.int64),
            "support": (tp + fn).astype(np.int64)}


def precision_recall_f1(
    y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
    predictions: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-node precision, recall and F1 at ``prob > threshold`` or of ``predictions`` (docs/method.md, *Metrics*).

    Undefined ratios (no predicted positives, no true positives) are 0, as
    scikit-learn's ``zero_division=0``.

    Returns
    -------
    precision, recall, f1 : numpy.ndarray of float64, shape (C,), values in [0, 1]
    """
    counts = confusion_counts(y_true, probs, threshold, predictions)
    tp, fp, fn = counts["tp"], counts["fp"], counts["fn"]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / np.where(denom > 0, denom, 1), 0.0)
    return precision, recall, f1


def macro_precision_recall_f1(
    y_true: np.ndarray, probs: np.ndarray, eval_mask: np.ndarray | None = None,
    threshold: float | np.ndarray = 0.5, predictions: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Macro precision, recall and F1: plain means of the per-node values over evaluated nodes.

    Macro-F1 is the mean of per-node F1, not the F1 of macro P and R (docs/method.md, *Metrics*).
    """
    p, r, f = precision_recall_f1(y_true, probs, threshold, predictions)
    if eval_mask is not None:
        p, r, f = p[eval_mask], r[eval_mask], f[eval_mask]
    return float(p.mean()), float(r.mean()), float(f.mean())


def recall_by_depth(recall: np.ndarray, depth: np.ndarray, eval_mask: np.ndarray | None = None) -> dict[int, float]:
    """Macro recall of the evaluated nodes at each depth.

    Parameters
    ----------
    recall : array-like of float, shape (C,)
    depth : array-like of int, shape (C,)
        ``Hierarchy.depth`` (shortest-path depth from a root).
    eval_mask : array-like of bool, shape (C,), optional

    Returns
    -------
    dict of int to float
        depth -> mean recall, for every depth that has an evaluated node, in
        increasing depth order.
    """
    r = np.asarray(recall, dtype=np.float64)
    d = np.asarray(depth)
    keep = np.ones_like(d, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    return {int(k): float(r[keep & (d == k)].mean()) for k in np.unique(d[keep])}


def rare_node_mask(
    train_frequency: np.ndarray, eval_mask: np.ndarray | None = None, quantile: float = 0.25
) -> np.ndarray:
    """The rare nodes: evaluated nodes whose training frequency is at or below its ``quantile``.

    The cut is ``numpy.quantile`` (linear interpolation) of the evaluated
    nodes' training frequencies, so with the default every evaluated node with
    at most the bottom-quartile frequency is rare, ties included (docs/method.md,
    *Rare nodes*).

    Parameters
    ----------
    train_frequency : array-like, shape (C,)
        Positive training examples per node (propagated labels).
    eval_mask : array-like of bool, shape (C,), optional
        All nodes if None.
    quantile : float in (0, 1]

    Returns
    -------
    numpy.ndarray of bool, shape (C,)

    Raises
    ------
    ValueError
        If ``quantile`` is outside (0, 1] or no node is evaluated.
    """
    if not 0 < quantile <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    f = np.asarray(train_frequency, dtype=np.float64)
    keep = np.ones_like(f, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    if not keep.any():
        raise ValueError("no evaluated node")
    return keep & (f <= np.quantile(f[keep], quantile))


def rare_node_recall(
    recall: np.ndarray, train_frequency: np.ndarray, eval_mask: np.ndarray | None = None, quantile: float = 0.25
) -> float:
    """Macro recall of the rare nodes: evaluated nodes whose training frequency is at or below its ``quantile``.

    The quantile is taken over the evaluated nodes' training frequencies
    (default: the bottom quartile, as in the reproduction report; docs/method.md,
    *Rare nodes*).

    Parameters
    ----------
    recall, train_frequency : array-like, shape (C,)
    eval_mask : array-like of bool, shape (C,), optional
    quantile : float in (0, 1]

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        If ``quantile`` is outside (0, 1] or no node is evaluated.
    """
    r = np.asarray(recall, dtype=np.float64)
    return float(r[rare_node_mask(train_frequency, eval_mask, quantile)].mean())


def node_metrics_table(
    hierarchy: Hierarchy,
    y_true: np.ndarray,
    probs: np.ndarray,
    train_frequency: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    threshold: float | np.ndarray = 0.5,
    predictions: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per node with its structure and test metrics.

    Parameters
    ----------
    hierarchy : Hierarchy
    y_true : array-like of {0, 1}, shape (N, C)
        Test labels.
    probs : array-like of float, shape (N, C)
        Ensemble-mean constrained test probabilities.
    train_frequency : array-like, shape (C,), optional
        Number of training samples positive for each node (propagated).
    uncertainty : array-like of float, shape (N, C), optional
        Per-sample ensemble uncertainty; its column means are reported.
    threshold : float or numpy.ndarray of shape (C,), default 0.5
    predictions : array-like of {0, 1}, shape (N, C), optional
        A decision rule's predictions, used instead of ``probs > threshold`` for tp/fp/fn,
        precision, recall and F1 (see :func:`confusion_counts`).

    Returns
    -------
    pandas.DataFrame indexed by node id, columns: depth, parent (first
    parent), n_parents, n_children, evaluated, train_frequency, support
    (test positives), tp, fp, fn, precision, recall, f1, average_precision
    (NaN without test positives), mean_prob, uncertainty (NaN when not given).
    """
    counts = confusion_counts(y_true, probs, threshold, predictions)
    precision, recall, f1 = precision_recall_f1(y_true, probs, threshold, predictions)
    nodes = hierarchy.nodes
    table = pd.DataFrame(
        {
            "depth": hierarchy.depth,
            "parent": [hierarchy.first_parent(n) or "" for n in nodes],
            "n_parents": [hierarchy.graph.in_degree(n) for n in nodes],
            "n_children": [hierarchy.graph.out_degree(n) for n in nodes],
            "evaluated": hierarchy.eval_mask,
            "train_frequency": (np.asarray(train_frequency, dtype=np.int64) if train_frequency is not None
                                else np.full(len(nodes), -1, dtype=np.int64)),
            "support": counts["support"],
            "tp": counts["tp"],
            "fp": counts["fp"],
            "fn": counts["fn"],
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "average_precision": average_precision_per_node(y_true, probs),
            "mean_prob": np.asarray(probs).mean(axis=0, dtype=np.float64),
            "uncertainty": (np.asarray(uncertainty).mean(axis=0, dtype=np.float64) if uncertainty is not None
                            else np.full(len(nodes), np.nan)),
        },
        index=pd.Index(nodes, name="node"),
    )
    return table


def summarize(
    hierarchy: Hierarchy, y_true: np.ndarray, probs: np.ndarray, threshold: float | np.ndarray = 0.5,
    predictions: np.ndarray | None = None,
) -> dict[str, Any]:
    """Headline metrics of a run on its test set, at ``probs > threshold`` or of ``predictions``.

    ``predictions`` (array-like of {0, 1}, shape (N, C)) are a decision rule's label sets; see
    :func:`confusion_counts`. ``auprc_micro`` is threshold-free either way.

    Returns
    -------
    dict with keys
        ``auprc_micro`` (float), ``macro_precision``, ``macro_recall``,
        ``macro_f1`` (floats in [0, 1]), ``n_eval_nodes`` (int),
        ``n_eval_nodes_with_positives`` (int), ``recall_by_depth``
        (dict str(depth) -> macro recall; string keys so it survives JSON),
        ``coherence_violations`` (int, of the thresholded predictions) and
        ``n_test`` (int).
    """
    mask = hierarchy.eval_mask
    y, pred = _decided(y_true, probs, threshold, predictions)
    precision, recall, f1 = precision_recall_f1(y, probs, predictions=pred)
    return {
        "auprc_micro": auprc_micro(y_true, probs, mask),
        "macro_precision": float(precision[mask].mean()),
        "macro_recall": float(recall[mask].mean()),
        "macro_f1": float(f1[mask].mean()),
        "n_eval_nodes": int(mask.sum()),
        "n_eval_nodes_with_positives": int(y[:, mask].any(axis=0).sum()),
        "recall_by_depth": {str(k): v for k, v in recall_by_depth(recall, hierarchy.depth, mask).items()},
        "coherence_violations": hierarchy.coherence_violations(pred.astype(np.uint8)),
        "n_test": int(y.shape[0]),
    }


# ------------------------------------------------------------ hierarchical (set-based) metrics
def _augmented_sets(
    hierarchy: Hierarchy, y_true: np.ndarray, y_pred: np.ndarray, eval_mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ancestor-augmented true and predicted sets as bool (N, C) matrices, and the bool (C,) mask of scored nodes."""
    arrays = []
    for name, value in (("y_true", y_true), ("y_pred", y_pred)):
        a = np.asarray(value)
        if a.ndim != 2 or a.shape[1] != hierarchy.n_nodes:
            raise ValueError(f"{name} must have shape (N, {hierarchy.n_nodes}), got {a.shape}")
        if not is_binary(a):
            raise ValueError(f"{name} must hold 0/1 labels or predictions (threshold probabilities first)")
        arrays.append(a)
    if arrays[0].shape != arrays[1].shape:
        raise ValueError(f"y_true {arrays[0].shape} and y_pred {arrays[1].shape} must have the same shape")
    mask = hierarchy.eval_mask if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    if mask.shape != (hierarchy.n_nodes,):
        raise ValueError(f"eval_mask must have shape ({hierarchy.n_nodes},), got {mask.shape}")
    true_sets = hierarchy.propagate(arrays[0]) != 0
    pred_sets = hierarchy.propagate(arrays[1]) != 0
    return true_sets, pred_sets, mask


def hierarchical_precision_recall_f1(
    y_true: np.ndarray, y_pred: np.ndarray, hierarchy: Hierarchy, eval_mask: np.ndarray | None = None
) -> tuple[float, float, float]:
    """Micro hierarchical precision, recall and F1 over examples (Kiritchenko et al., 2005).

    Each example's true label set ``T_i`` and predicted set ``P_i`` are
    augmented with all their ancestors (:meth:`Hierarchy.propagate`) and then
    restricted to the scored nodes ``eval_mask`` (by default
    ``hierarchy.eval_mask``: the roots, and for GO the CLUS root terms, are
    excluded, as in docs/method.md, *Evaluated nodes*, so the always-true root does not inflate the
    scores). Then, summing over the N examples,

    ``hP = sum_i |T_i & P_i| / sum_i |P_i|``,
    ``hR = sum_i |T_i & P_i| / sum_i |T_i|``,
    ``hF = 2 hP hR / (hP + hR)``.

    Undefined ratios (nothing predicted, nothing true, hP + hR = 0) are 0, as
    scikit-learn's ``zero_division=0``.

    Parameters
    ----------
    y_true : array-like of {0, 1} or bool, shape (N, C)
        True labels in the hierarchy's column order (propagated or only the
        most specific terms: both give the same augmented sets).
    y_pred : array-like of {0, 1} or bool, shape (N, C)
        Predictions, e.g. ``mean_probs > 0.5`` (docs/method.md, *Metrics*).
    hierarchy : Hierarchy
        Gives the ancestors and the default ``eval_mask``.
    eval_mask : array-like of bool, shape (C,), optional
        Nodes that are scored; ``hierarchy.eval_mask`` if None.

    Returns
    -------
    hP, hR, hF : float
        Each in [0, 1].

    Raises
    ------
    ValueError
        If a matrix does not have shape (N, C) (C = ``hierarchy.n_nodes``),
        the two shapes differ, a matrix holds values other than 0/1 (for
        example probabilities), or ``eval_mask`` has the wrong shape.

    Notes
    -----
    Source: S. Kiritchenko, S. Matwin, A. F. Famili, "Functional annotation of
    genes using hierarchical text categorization", BioLINK SIG, ISMB 2005, and
    Kiritchenko et al., Canadian AI 2006; the same definition as the micro
    ``precision``/``recall``/``f1`` of hiclass (Miranda et al., JMLR 24(29),
    2023) and the survey of Silla & Freitas (Data Min. Knowl. Disc. 22, 2011).
    With propagated labels and hierarchy-coherent predictions (C-HMCNN's;
    docs/method.md, *MCM and MCLoss*) the augmentation changes nothing, and hP/hR equal the flat
    micro precision/recall over the same nodes; they differ from the macro
    averages, which weight every node equally.
    """
    true_sets, pred_sets, mask = _augmented_sets(hierarchy, y_true, y_pred, eval_mask)
    t, p = true_sets[:, mask], pred_sets[:, mask]
    both = int(np.count_nonzero(t & p))
    n_pred, n_true = int(np.count_nonzero(p)), int(np.count_nonzero(t))
    h_precision = both / n_pred if n_pred else 0.0
    h_recall = both / n_true if n_true else 0.0
    denom = h_precision + h_recall
    h_f1 = 2 * h_precision * h_recall / denom if denom > 0 else 0.0
    return float(h_precision), float(h_recall), float(h_f1)


def deepest_correct_level(
    y_true: np.ndarray, y_pred: np.ndarray, hierarchy: Hierarchy, eval_mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per example, the depth of the deepest correctly predicted node, and the depth of its deepest true node.

    Depth is :attr:`Hierarchy.depth`: the length of the shortest path from a
    root (roots have depth 0; in a DAG a node reachable by paths of several
    lengths has the shortest one; docs/method.md, *Data and hierarchy*). The sets are ancestor-augmented
    and restricted to ``eval_mask`` as in
    :func:`hierarchical_precision_recall_f1`: the deepest correct level of
    example ``i`` is ``max depth(T_i & P_i)`` and its true depth is
    ``max depth(T_i)``; an empty set gives 0 (only the root level, which is
    never scored, is "correct"). Hence ``0 <= correct <= true``, and
    ``correct == true`` means the prediction reaches the example's deepest
    true level.

    Parameters
    ----------
    y_true, y_pred : array-like of {0, 1} or bool, shape (N, C)
    hierarchy : Hierarchy
    eval_mask : array-like of bool, shape (C,), optional
        ``hierarchy.eval_mask`` if None.

    Returns
    -------
    correct_depth, true_depth : numpy.ndarray of int64, shape (N,)

    Raises
    ------
    ValueError
        As :func:`hierarchical_precision_recall_f1`.
    """
    true_sets, pred_sets, mask = _augmented_sets(hierarchy, y_true, y_pred, eval_mask)
    depth = np.where(mask, hierarchy.depth, 0).astype(np.int32)
    correct = np.where(true_sets & pred_sets, depth, 0).max(axis=1, initial=0)
    true = np.where(true_sets, depth, 0).max(axis=1, initial=0)
    return correct.astype(np.int64), true.astype(np.int64)
