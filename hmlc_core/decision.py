"""Decision rules: from coherent probabilities to hierarchy-consistent label sets.

A trained ensemble gives coherent probabilities ``p`` of shape ``(N, C)`` (MCM output, so
``p[:, child] <= p[:, parent]``; docs/method.md, *MCM and MCLoss*). A decision rule turns them into
0/1 predictions ``p > t`` with one threshold per node, ``t`` of shape ``(C,)``:

``fixed``
    ``t = T`` for every evaluated node (default 0.5, the project's behaviour before rules existed).
``global``
    one threshold for every evaluated node, tuned on held-out labelled data to maximise the micro F1
    over the evaluated nodes.
``per-node``
    each evaluated node's own F1-optimal held-out threshold, shrunk towards the global one with a
    strength ``m`` in pseudo-positives: ``t_v = (n_v t*_v + m t_g) / (n_v + m)``.

Every rule then makes its thresholds monotone along the edges (:func:`make_monotone`), which with
coherent probabilities guarantees coherent predictions (proof in :func:`make_monotone`). Nodes that
are not evaluated (the roots, GO's CLUS top terms: ``Hierarchy.eval_mask``) get the threshold
``-inf`` before that step, so a root is always predicted positive, as its label always is.

Tuning uses held-out data only: the valid split of a run trained with ``fit_on="train"``
(docs/method.md, *Decision rules*). The module is pure numpy (no torch, no plotting).

Sources: Lipton, Elkan & Naryanaswamy, "Optimal thresholding of classifiers to maximize F1
measure", ECML PKDD 2014 (F1-optimal thresholds are found by scanning the held-out scores; the
micro-F1 optimum is one shared threshold, per-label optima maximise macro F1); Fan & Lin, "A study
on threshold selection for multi-label classification", Tech. report, National Taiwan University
2007 (SCut: a per-label threshold tuned on held-out data, and its over-fitting on labels with few
positives).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd

from hmlc_core.config import DECISION_RULES
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import precision_recall_f1, rare_node_recall

__all__ = [
    "DECISION_RULES",
    "DEFAULT_SHRINKAGE",
    "DEFAULT_TRADEOFF_MS",
    "DecisionRule",
    "fit_decision_rule",
    "best_f1_threshold",
    "global_threshold",
    "per_node_thresholds",
    "make_monotone",
    "micro_f1",
    "shrinkage_tradeoff",
]

log = logging.getLogger(__name__)

DEFAULT_SHRINKAGE: float = 5.0
"""Default strength ``m`` (pseudo-positives) of the per-node rule's shrinkage towards the global threshold.

Chosen from the micro/macro F1 trade-off measured on cellcycle_FUN and derisi_FUN (docs/method.md,
*Decision rules*): the smallest measured ``m`` whose test micro F1 is >= 0.8x the global rule's on both
(0.86x and 0.81x), where macro F1 is 3.5x and 7.8x that of the fixed 0.5 rule and above the global
rule's."""

DEFAULT_TRADEOFF_MS: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
"""The shrinkage strengths of :func:`shrinkage_tradeoff` by default (those of the measured table)."""


def _check(y: np.ndarray | None, p: np.ndarray | None, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    if y is None or p is None:
        raise ValueError("a tuned decision rule needs held-out labels and probabilities")
    y, p = np.asarray(y), np.asarray(p)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != n_nodes:
        raise ValueError(f"held-out labels {y.shape} and probabilities {p.shape} must both have shape (N, {n_nodes})")
    if y.shape[0] == 0:
        raise ValueError("the held-out data has no sample")
    return y != 0, p.astype(np.float64)


def best_f1_threshold(y: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The threshold ``t`` that maximises the F1 of ``scores > t`` against ``y``, by an exact scan.

    Predicting ``scores > t`` only changes when ``t`` crosses a distinct score, so it suffices to scan
    one candidate between each pair of consecutive distinct scores (their midpoint) and one below the
    smallest score (predict all): the F1 of the top ``k`` scores is ``2 TP_k / (k + P)`` (``P``
    positives), computed for all cuts from one sort (Lipton, Elkan & Naryanaswamy 2014, sec. 3:
    the optimum is attained at a held-out score). Ties in F1 go to the highest threshold (fewest
    predictions).

    Parameters
    ----------
    y : array-like of bool or {0, 1}, shape (n,)
    scores : array-like of float, shape (n,)

    Returns
    -------
    threshold, f1 : float, float
        ``threshold`` is a midpoint of two consecutive distinct scores, or just below the smallest
        score (``numpy.nextafter``) when predicting everything is best; ``f1`` in [0, 1].

    Raises
    ------
    ValueError
        If ``y`` holds no positive (F1 is then 0 at every threshold) or the shapes differ.
    """
    y = np.asarray(y).ravel() != 0
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y {y.shape} and scores {s.shape} must have the same length")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("no positive: the F1-optimal threshold is undefined")
    order = np.argsort(-s, kind="stable")
    s_sorted, tp = s[order], np.cumsum(y[order])
    # a cut after position i (0-based) is possible only where the next score is strictly lower
    last_of_tie = np.flatnonzero(np.r_[s_sorted[1:] < s_sorted[:-1], True])
    f1 = 2.0 * tp[last_of_tie] / (last_of_tie + 1 + n_pos)
    best = int(np.argmax(f1))  # first maximum in descending score order: the highest threshold
    i = last_of_tie[best]
    t = (s_sorted[i] + s_sorted[i + 1]) / 2 if i + 1 < len(s_sorted) else float(np.nextafter(s_sorted[i], -np.inf))
    return float(t), float(f1[best])


def micro_f1(y_true: np.ndarray, pred: np.ndarray, eval_mask: np.ndarray | None = None) -> float:
    """Micro F1 ``2 TP / (2 TP + FP + FN)`` over the (sample, node) pairs of the evaluated columns.

    Parameters
    ----------
    y_true, pred : array-like of {0, 1} or bool, shape (N, C)
    eval_mask : array-like of bool, shape (C,), optional
        Columns counted (all if None).

    Returns
    -------
    float in [0, 1]; 0 when there is neither a positive nor a prediction.
    """
    y, p = np.asarray(y_true) != 0, np.asarray(pred) != 0
    if eval_mask is not None:
        y, p = y[:, eval_mask], p[:, eval_mask]
    tp = int(np.count_nonzero(y & p))
    denom = int(np.count_nonzero(y)) + int(np.count_nonzero(p))
    return 2.0 * tp / denom if denom else 0.0


def global_threshold(hierarchy: Hierarchy, y_heldout: np.ndarray, probs_heldout: np.ndarray) -> float:
    """The one threshold that maximises the held-out micro F1 over the evaluated nodes.

    Micro F1 of a shared threshold is the F1 of the flattened (sample, evaluated node) pairs, so
    :func:`best_f1_threshold` on the flattened matrix gives the exact optimum over all thresholds
    (candidates: midpoints of consecutive distinct held-out scores; Lipton, Elkan & Naryanaswamy 2014).

    Parameters
    ----------
    hierarchy : Hierarchy
    y_heldout : array-like of {0, 1}, shape (N, C)
    probs_heldout : array-like of float, shape (N, C)
        Coherent held-out probabilities.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On shape mismatches, no held-out sample, or no positive among the evaluated nodes.
    """
    y, p = _check(y_heldout, probs_heldout, hierarchy.n_nodes)
    mask = hierarchy.eval_mask
    if not y[:, mask].any():
        raise ValueError("the held-out labels have no positive on an evaluated node: cannot tune a threshold")
    return best_f1_threshold(y[:, mask], p[:, mask])[0]


def per_node_thresholds(
    hierarchy: Hierarchy, y_heldout: np.ndarray, probs_heldout: np.ndarray, shrinkage: float, t_global: float
) -> np.ndarray:
    """Per-node F1-optimal held-out thresholds, shrunk towards ``t_global`` (before monotone fixing).

    For an evaluated node ``v`` with ``n_v > 0`` held-out positives and F1-optimal threshold ``t*_v``
    (:func:`best_f1_threshold` on its column; SCut of Fan & Lin 2007),

    ``t_v = (n_v t*_v + m t_g) / (n_v + m)``,

    a weighted average in which the global threshold counts as ``m`` pseudo-positives. The form is
    the credibility weighting of actuarial statistics (Buhlmann 1967) and of empirical-Bayes
    shrinkage towards a pooled estimate; using it for thresholds, with ``n_v`` the held-out positives
    (which bound how well ``t*_v`` is estimated), is this project's choice. ``m = 0`` gives SCut,
    ``m -> inf`` the global threshold. Evaluated nodes without held-out positives get ``t_g``; nodes
    that are not evaluated get ``-inf``.

    Parameters
    ----------
    hierarchy : Hierarchy
    y_heldout, probs_heldout : array-like, shape (N, C)
    shrinkage : float >= 0
        ``m``; ``math.inf`` gives ``t_g`` everywhere.
    t_global : float

    Returns
    -------
    numpy.ndarray of float64, shape (C,)

    Raises
    ------
    ValueError
        On shape mismatches or a negative ``shrinkage``.
    """
    if not shrinkage >= 0:
        raise ValueError(f"shrinkage m must be >= 0, got {shrinkage}")
    y, p = _check(y_heldout, probs_heldout, hierarchy.n_nodes)
    t = np.full(hierarchy.n_nodes, -np.inf)
    t[hierarchy.eval_mask] = t_global
    n_pos = y.sum(axis=0)
    for j in np.flatnonzero(hierarchy.eval_mask & (n_pos > 0)):
        if math.isinf(shrinkage):
            continue
        t_node = best_f1_threshold(y[:, j], p[:, j])[0]
        t[j] = (n_pos[j] * t_node + shrinkage * t_global) / (n_pos[j] + shrinkage)
    return t


def make_monotone(hierarchy: Hierarchy, thresholds: np.ndarray) -> np.ndarray:
    """Lower thresholds along the edges until every child's is >= each of its parents'.

    In a reverse topological order of the graph (every child final before its parents are
    visited, so one pass suffices), ``t[u] <- min(t[u], min over children c of t[c])``: a node's
    threshold becomes the smallest over itself and its descendants, the largest monotone thresholds
    below the input. A rare node keeps its own (low) threshold and lowers its ancestors'.

    Why lower the parents rather than raise the children (``t[c] <- max(t[c], t[u])``, the other
    way to make thresholds monotone): rare deep nodes have low F1-optimal thresholds under frequent
    parents with high ones, and raising them to their parents' undoes the per-node rule. Measured
    on cellcycle_FUN and derisi_FUN (docs/method.md, *Decision rules*): per-node with m = 2 gives
    test macro F1 0.071 / 0.039 when parents are lowered and 0.050 / 0.023 when children are raised,
    below the global rule's 0.058 / 0.026.

    Consistency. Let the probabilities be coherent, ``p(c) <= p(u)`` for every edge ``u -> c``
    (MCM output; ``Hierarchy.max_constraint``), and the thresholds monotone, ``t(c) >= t(u)``. If
    ``c`` is predicted, ``p(c) > t(c)``, then ``p(u) >= p(c) > t(c) >= t(u)``, so ``u`` is
    predicted. By induction along any path every ancestor of a predicted node is predicted: the
    predictions ``p > t`` are coherent and ``Hierarchy.coherence_violations`` of them is 0. Nodes
    with ``t = -inf`` (the roots) are predicted for every finite probability, so they never violate
    either.

    Parameters
    ----------
    hierarchy : Hierarchy
    thresholds : array-like of float, shape (C,)

    Returns
    -------
    numpy.ndarray of float64, shape (C,), monotone along every edge.

    Raises
    ------
    ValueError
        If ``thresholds`` does not have shape (C,).
    """
    t = np.array(thresholds, dtype=np.float64)
    if t.shape != (hierarchy.n_nodes,):
        raise ValueError(f"thresholds must have shape ({hierarchy.n_nodes},), got {t.shape}")
    index, graph = hierarchy.index, hierarchy.graph
    for node in reversed(list(nx.topological_sort(graph))):
        children = [index[c] for c in graph.successors(node)]
        if children:
            j = index[node]
            t[j] = min(t[j], float(t[children].min()))
    return t


def _rule_label(rule: str, threshold: float, shrinkage: float | None) -> str:
    if rule == "fixed":
        return f"fixed {threshold:g}"
    if rule == "global":
        return f"global {threshold:.2f}"
    return f"per-node (m = {shrinkage:g})"


@dataclass(frozen=True)
class DecisionRule:
    """A fitted decision rule: one threshold per node, monotone along the hierarchy's edges.

    Attributes
    ----------
    rule : {"fixed", "global", "per-node"}
    thresholds : numpy.ndarray of float64, shape (C,)
        ``t[child] >= t[parent]`` on every edge; ``-inf`` for the nodes that are not evaluated (the
        roots), which are always predicted.
    threshold : float
        The fixed ``T``, or the tuned global threshold (also for ``per-node``, where it is the
        shrinkage target).
    shrinkage : float or None
        ``m`` of the per-node rule, else None.
    """

    rule: str
    thresholds: np.ndarray = field(repr=False)
    threshold: float
    shrinkage: float | None = None

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Predictions ``probs > thresholds`` (thresholds broadcast over samples).

        Parameters
        ----------
        probs : array-like of float, shape (N, C)

        Returns
        -------
        numpy.ndarray of uint8, shape (N, C); coherent when ``probs`` is (see :func:`make_monotone`).

        Raises
        ------
        ValueError
            If the last dimension is not C.
        """
        p = np.asarray(probs)
        if p.ndim != 2 or p.shape[1] != self.thresholds.shape[0]:
            raise ValueError(f"probs must have shape (N, {self.thresholds.shape[0]}), got {p.shape}")
        return (p > self.thresholds).astype(np.uint8)

    def label(self) -> str:
        """Short display text: ``"fixed 0.5"``, ``"global 0.27"``, ``"per-node (m = 2)"``."""
        return _rule_label(self.rule, self.threshold, self.shrinkage)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``-inf`` thresholds become None), the inverse of :meth:`from_dict`."""
        return {"rule": self.rule, "threshold": float(self.threshold), "shrinkage": self.shrinkage,
                "label": self.label(),
                "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionRule:
        """Rebuild a rule from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            On a missing field or an unknown rule.
        """
        try:
            rule, threshold, shrinkage, values = data["rule"], data["threshold"], data["shrinkage"], data["thresholds"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"decision rule data lacks the field {exc}") from exc
        if rule not in DECISION_RULES:
            raise ValueError(f"unknown decision rule {rule!r}; expected one of {list(DECISION_RULES)}")
        thresholds = np.array([-np.inf if v is None else float(v) for v in values], dtype=np.float64)
        return cls(rule=rule, thresholds=thresholds, threshold=float(threshold),
                   shrinkage=None if shrinkage is None else float(shrinkage))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecisionRule):
            return NotImplemented
        return (self.rule, self.threshold, self.shrinkage) == (other.rule, other.threshold, other.shrinkage) and \
            np.array_equal(self.thresholds, other.thresholds)


def fit_decision_rule(
    rule: str,
    hierarchy: Hierarchy,
    y_heldout: np.ndarray | None = None,
    probs_heldout: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    shrinkage: float | None = None,
) -> DecisionRule:
    """Fit a decision rule (``fixed`` needs no data; ``global`` and ``per-node`` tune on held-out data).

    Parameters
    ----------
    rule : {"fixed", "global", "per-node"}
    hierarchy : Hierarchy
    y_heldout : array-like of {0, 1}, shape (N, C), optional
        Held-out labels (never the test split's).
    probs_heldout : array-like of float, shape (N, C), optional
        Coherent held-out probabilities (ensemble mean).
    threshold : float, default 0.5
        ``T`` of the fixed rule (ignored by the tuned rules).
    shrinkage : float or None
        ``m`` of the per-node rule, >= 0 (``math.inf`` allowed); None means :data:`DEFAULT_SHRINKAGE`.

    Returns
    -------
    DecisionRule
        With thresholds made monotone by :func:`make_monotone`.

    Raises
    ------
    ValueError
        On an unknown rule, a negative ``shrinkage``, a tuned rule without held-out data (or without
        a held-out positive on an evaluated node), or shape mismatches.
    """
    if rule not in DECISION_RULES:
        raise ValueError(f"unknown decision rule {rule!r}; expected one of {list(DECISION_RULES)}")
    if rule == "fixed":
        t = np.where(hierarchy.eval_mask, float(threshold), -np.inf)
        return DecisionRule("fixed", make_monotone(hierarchy, t), float(threshold), None)
    if y_heldout is None or probs_heldout is None:
        raise ValueError(f"the {rule!r} decision rule is tuned on held-out labelled data, and none was given: "
                         "train with fit_on='train' (--fit-on train) to keep the valid split aside, or use 'fixed'")
    t_global = global_threshold(hierarchy, y_heldout, probs_heldout)
    if rule == "global":
        t = np.where(hierarchy.eval_mask, t_global, -np.inf)
        return DecisionRule("global", make_monotone(hierarchy, t), t_global, None)
    m = DEFAULT_SHRINKAGE if shrinkage is None else float(shrinkage)
    t = per_node_thresholds(hierarchy, y_heldout, probs_heldout, m, t_global)
    return DecisionRule("per-node", make_monotone(hierarchy, t), t_global, m)


def shrinkage_tradeoff(
    hierarchy: Hierarchy,
    y_heldout: np.ndarray,
    probs_heldout: np.ndarray,
    y_test: np.ndarray,
    probs_test: np.ndarray,
    ms: Sequence[float] = DEFAULT_TRADEOFF_MS,
    train_frequency: np.ndarray | None = None,
    threshold: float = 0.5,
) -> pd.DataFrame:
    """Test micro and macro F1 of the fixed and global rules and of the per-node rule at each ``m``.

    Shows why one threshold cannot serve rare and frequent nodes alike: small ``m`` gives every node
    its own threshold (macro F1 up, micro F1 down), large ``m`` tends to the global rule.

    Parameters
    ----------
    hierarchy : Hierarchy
    y_heldout, probs_heldout : array-like, shape (N_h, C)
        Held-out labels and coherent probabilities (tuning).
    y_test, probs_test : array-like, shape (N, C)
        Test labels and probabilities (scoring only).
    ms : sequence of float >= 0
        Shrinkage strengths of the per-node rows.
    train_frequency : array-like of int, shape (C,), optional
        Training positives per node, for ``rare_node_recall`` (NaN without it).
    threshold : float, default 0.5
        ``T`` of the fixed row.

    Returns
    -------
    pandas.DataFrame
        One row for ``fixed``, one for ``global``, then one per ``m``; columns ``rule``, ``m`` (NaN
        except per-node), ``label``, ``micro_f1``, ``macro_f1``, ``macro_recall`` (plain means over
        all evaluated nodes; docs/method.md, *Metrics*) and ``rare_node_recall`` (bottom quartile by
        training frequency; *Rare nodes*).

    Raises
    ------
    ValueError
        As :func:`fit_decision_rule`.
    """
    mask = hierarchy.eval_mask
    rules = [fit_decision_rule("fixed", hierarchy, threshold=threshold),
             fit_decision_rule("global", hierarchy, y_heldout, probs_heldout)]
    rules += [fit_decision_rule("per-node", hierarchy, y_heldout, probs_heldout, shrinkage=m) for m in ms]
    rows = []
    for r in rules:
        _, recall, f1 = precision_recall_f1(y_test, probs_test, r.thresholds)
        rare = (rare_node_recall(recall, train_frequency, mask) if train_frequency is not None else float("nan"))
        rows.append({"rule": r.rule, "m": np.nan if r.shrinkage is None else r.shrinkage, "label": r.label(),
                     "micro_f1": micro_f1(y_test, r.predict(probs_test), mask),
                     "macro_f1": float(f1[mask].mean()), "macro_recall": float(recall[mask].mean()),
                     "rare_node_recall": rare})
    return pd.DataFrame(rows)
