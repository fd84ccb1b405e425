"""Decision rules: from coherent probabilities to hierarchy-consistent label sets.

A trained ensemble gives coherent probabilities ``p`` of shape ``(N, C)`` (MCM output, so
``p[:, child] <= p[:, parent]``; docs/method.md, *MCM and MCLoss*). A decision rule turns them into
0/1 predictions with one threshold per node, ``t`` of shape ``(C,)``:

``fixed``
    ``t = T`` for every evaluated node (default 0.5, the project's behaviour before rules existed).
``global``
    one threshold for every evaluated node, tuned on held-out labelled data to maximise the micro F1
    over the evaluated nodes.
``per-node``
    each evaluated node's own F1-optimal held-out threshold, shrunk towards the global one with a
    strength ``m`` in pseudo-positives, ``t_v = (n_v t*_v + m t_g) / (n_v + m)``, and never above the
    node's prevalence floor (the threshold that predicts the node for its training share of the
    held-out samples; :func:`prevalence_floor`).

A rule predicts ``p > t`` and then every ancestor of a predicted node (the upward closure,
:meth:`DecisionRule.predict`), so its predictions are hierarchy-consistent on any DAG, whatever the
thresholds. With coherent probabilities and one shared threshold (``fixed``, ``global``) the closure
adds nothing. Nodes that are not evaluated (the roots, GO's CLUS top terms: ``Hierarchy.eval_mask``)
get the threshold ``-inf``, so a root is always predicted positive, as its label always is.

Tuning uses held-out data only: the valid split of a run trained with ``fit_on="train"``
(docs/method.md, *Decision rules*). The module is pure numpy (no torch, no plotting).

Sources: Lipton, Elkan & Naryanaswamy, "Optimal thresholding of classifiers to maximize F1
measure", ECML PKDD 2014 (F1-optimal thresholds are found by scanning the held-out scores; the
micro-F1 optimum is one shared threshold, per-label optima maximise macro F1); Fan & Lin, "A study
on threshold selection for multi-label classification", Tech. report, National Taiwan University
2007 (SCut: a per-label threshold tuned on held-out data, and its over-fitting on labels with few
positives); Yang, "A study of thresholding strategies for text categorization", SIGIR 2001 (PCut:
predict each category for its training share of the documents; SCut's over-fitting on rare
categories, which the prevalence floor bounds).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    "prevalence_floor",
    "micro_f1",
    "shrinkage_tradeoff",
]

log = logging.getLogger(__name__)

DEFAULT_SHRINKAGE: float = 5.0
"""Default strength ``m`` (pseudo-positives) of the per-node rule's shrinkage towards the global threshold.

Chosen from the micro/macro F1 trade-off measured by ``bench/decision_tradeoff.py`` on cellcycle,
derisi, eisen and gasch1 FUN (plain ensemble, quick profile, 3 seeds; docs/method.md, *Decision
rules*): the smallest measured ``m`` whose test micro F1 is >= 0.8x the global rule's on every one
of them (0.82x-0.89x), where macro F1 is 5.4x that of the fixed 0.5 rule (mean of the datasets'
ratios) and rare nodes are recalled on each."""

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


def prevalence_floor(probs_heldout: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """Per-node thresholds that predict each node for its training share of the held-out samples.

    ``f_v`` is the ``1 - pi_v`` quantile of node ``v``'s held-out probabilities (``numpy.quantile``,
    linear interpolation), with ``pi_v`` the node's training prevalence: ``p > f_v`` holds for about
    ``pi_v N`` held-out samples, at least the top-scored one when ``0 < pi_v N < 1``. This is
    PCut (Yang, SIGIR 2001, sec. 2.2), used here only as a floor of the per-node rule's
    thresholds (:func:`per_node_thresholds`): shrinkage towards the global threshold protects
    against thresholds fitted on a few held-out positives, but pulls the thresholds of rare nodes up
    to where they are never predicted (rare-node recall 0 on most CLUS FUN datasets at ``m = 5``;
    docs/method.md, *Decision rules*); the floor caps that pull at the node's own base rate.

    Parameters
    ----------
    probs_heldout : array-like of float, shape (N, C)
        Coherent held-out probabilities, N >= 1.
    prevalence : array-like of float in [0, 1], shape (C,)
        Training positives per node divided by the number of training samples.

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
        ``+inf`` (no floor) where ``pi_v = 0``.

    Raises
    ------
    ValueError
        If the shapes do not match, there is no held-out sample, or a prevalence is outside [0, 1]
        or not finite.
    """
    p = np.asarray(probs_heldout, dtype=np.float64)
    pi = np.asarray(prevalence, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or pi.shape != (p.shape[1],):
        raise ValueError(f"probs_heldout {p.shape} must be (N >= 1, C) and prevalence {pi.shape} (C,)")
    if not (np.isfinite(pi).all() and (pi >= 0).all() and (pi <= 1).all()):
        raise ValueError("prevalence must hold finite values in [0, 1] (training positives / training samples)")
    floor = np.full(pi.shape, np.inf)
    known = pi > 0
    if known.any():
        floor[known] = [np.quantile(p[:, j], 1.0 - pi[j]) for j in np.flatnonzero(known)]
    return floor


def per_node_thresholds(
    hierarchy: Hierarchy, y_heldout: np.ndarray, probs_heldout: np.ndarray, shrinkage: float, t_global: float,
    prevalence: np.ndarray | None = None,
) -> np.ndarray:
    """Per-node F1-optimal held-out thresholds, shrunk towards ``t_global``, capped by the prevalence floor.

    For an evaluated node ``v`` with ``n_v > 0`` held-out positives and F1-optimal threshold ``t*_v``
    (:func:`best_f1_threshold` on its column; SCut of Fan & Lin 2007),

    ``t_v = min((n_v t*_v + m t_g) / (n_v + m), f_v)``,

    a weighted average in which the global threshold counts as ``m`` pseudo-positives, capped by
    the node's prevalence floor ``f_v`` (:func:`prevalence_floor`; no cap without
    ``prevalence``). The weighted average is the credibility weighting of actuarial statistics
    (Buhlmann 1967) and of empirical-Bayes shrinkage towards a pooled estimate; using it for
    thresholds, with ``n_v`` the held-out positives (which bound how well ``t*_v`` is estimated),
    and capping it by PCut's threshold (Yang 2001) are this project's choices. ``m = 0`` gives SCut
    (which is at or below the floor for nearly every node), ``m -> inf`` the global threshold capped
    by the floor. Evaluated nodes without held-out positives get ``t_g``; nodes that are not
    evaluated get ``-inf``.

    Parameters
    ----------
    hierarchy : Hierarchy
    y_heldout, probs_heldout : array-like, shape (N, C)
    shrinkage : float >= 0
        ``m``; ``math.inf`` gives ``t_g`` (capped by the floor) everywhere.
    t_global : float
    prevalence : array-like of float in [0, 1], shape (C,), optional
        Training prevalence per node, for the floor.

    Returns
    -------
    numpy.ndarray of float64, shape (C,)

    Raises
    ------
    ValueError
        On shape mismatches, a negative ``shrinkage`` or a prevalence outside [0, 1].
    """
    if not shrinkage >= 0:
        raise ValueError(f"shrinkage m must be >= 0, got {shrinkage}")
    y, p = _check(y_heldout, probs_heldout, hierarchy.n_nodes)
    floor = None if prevalence is None else prevalence_floor(p, prevalence)
    return _shrunk(hierarchy, *_node_optima(hierarchy, y, p), shrinkage, t_global, floor)


def _node_optima(hierarchy: Hierarchy, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Held-out positives per node, and the F1-optimal threshold of each evaluated node that has some (else NaN)."""
    n_pos = y.sum(axis=0)
    t_star = np.full(hierarchy.n_nodes, np.nan)
    for j in np.flatnonzero(hierarchy.eval_mask & (n_pos > 0)):
        t_star[j] = best_f1_threshold(y[:, j], p[:, j])[0]
    return n_pos, t_star


def _shrunk(hierarchy: Hierarchy, n_pos: np.ndarray, t_star: np.ndarray, shrinkage: float, t_global: float,
            floor: np.ndarray | None) -> np.ndarray:
    """:func:`per_node_thresholds` from the per-node optima of :func:`_node_optima` (shared across ``m``)."""
    t = np.full(hierarchy.n_nodes, -np.inf)
    t[hierarchy.eval_mask] = t_global
    tuned = np.flatnonzero(~np.isnan(t_star))
    if not math.isinf(shrinkage):
        t[tuned] = (n_pos[tuned] * t_star[tuned] + shrinkage * t_global) / (n_pos[tuned] + shrinkage)
    if floor is not None:
        t[tuned] = np.minimum(t[tuned], floor[tuned])
    return t


def _rule_label(rule: str, threshold: float, shrinkage: float | None) -> str:
    if rule == "fixed":
        return f"fixed {threshold:g}"
    if rule == "global":
        return f"global {threshold:.2f}"
    return f"per-node (m = {shrinkage:g})"


@dataclass(frozen=True)
class DecisionRule:
    """A fitted decision rule: one threshold per node and the hierarchy whose closure it applies.

    Attributes
    ----------
    rule : {"fixed", "global", "per-node"}
    thresholds : numpy.ndarray of float64, shape (C,)
        ``-inf`` for the nodes that are not evaluated (the roots), which are always predicted.
    threshold : float
        The fixed ``T``, or the tuned global threshold (also for ``per-node``, where it is the
        shrinkage target).
    hierarchy : Hierarchy
        The hierarchy of the columns (C nodes).
    shrinkage : float or None
        ``m`` of the per-node rule, else None.
    """

    rule: str
    thresholds: np.ndarray = field(repr=False)
    threshold: float
    hierarchy: Hierarchy = field(repr=False)
    shrinkage: float | None = None

    def __post_init__(self) -> None:
        if self.thresholds.shape != (self.hierarchy.n_nodes,):
            raise ValueError(f"thresholds must have shape ({self.hierarchy.n_nodes},), got {self.thresholds.shape}")

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Predictions ``probs > thresholds``, then every ancestor of a predicted node (the upward closure).

        Consistency: the closure sets ``pred[u] = 1`` for every ancestor ``u`` of a node with
        ``probs > thresholds`` (``Hierarchy.propagate``, the label propagation of the training
        labels), so a predicted node's ancestors are always predicted and
        ``Hierarchy.coherence_violations`` of the result is 0 on any DAG, for any thresholds and
        even for incoherent probabilities. Equivalently, ``pred[u] = max over v in {u} and the
        descendants of u of [p(v) > t(v)]``: the max-constraint of C-HMCNN (Giunchiglia &
        Lukasiewicz 2020) applied to the decisions. With coherent probabilities and one threshold
        ``T`` for every evaluated node (``fixed``, ``global``) it changes nothing: ``p(v) > T``
        implies ``p(u) >= p(v) > T`` for every ancestor ``u``. Lowering a node's threshold can only
        add predictions for that node and, on the samples where it fires, for its ancestors: unlike
        thresholds made monotone along the edges (a parent's lowered to its lowest descendant's),
        a rare node's low threshold does not make its ancestors fire on every sample that clears it
        (measured in docs/method.md, *Decision rules*).

        Parameters
        ----------
        probs : array-like of float, shape (N, C)

        Returns
        -------
        numpy.ndarray of uint8, shape (N, C), hierarchy-consistent.

        Raises
        ------
        ValueError
            If the last dimension is not C.
        """
        p = np.asarray(probs)
        if p.ndim != 2 or p.shape[1] != self.thresholds.shape[0]:
            raise ValueError(f"probs must have shape (N, {self.thresholds.shape[0]}), got {p.shape}")
        return self.hierarchy.propagate(p > self.thresholds)

    def predict_node(self, probs: np.ndarray, node: int) -> np.ndarray:
        """Column ``node`` of :meth:`predict`, from that node and its descendants only.

        ``pred[:, node] = max over v in {node} and the descendants of node of [p(v) > t(v)]`` (the upward
        closure of :meth:`predict`), without deciding and propagating the other nodes: a node's
        precision-recall point on a 111,111-node hierarchy reads its own subtree instead of the whole
        (N, C) matrix.

        Parameters
        ----------
        probs : array-like of float, shape (N, C)
        node : int
            Column index, in [0, C).

        Returns
        -------
        numpy.ndarray of uint8, shape (N,)

        Raises
        ------
        ValueError
            If the last dimension is not C.
        IndexError
            If ``node`` is not a column.
        """
        p = np.asarray(probs)
        if p.ndim != 2 or p.shape[1] != self.thresholds.shape[0]:
            raise ValueError(f"probs must have shape (N, {self.thresholds.shape[0]}), got {p.shape}")
        if not 0 <= node < p.shape[1]:
            raise IndexError(f"node column {node} is outside [0, {p.shape[1]})")
        pred = p[:, node] > self.thresholds[node]
        if pred.all():  # a root (threshold -inf): its subtree, the whole hierarchy, need not be read
            return pred.astype(np.uint8)
        h = self.hierarchy
        below = [h.index[d] for d in h.descendants(h.nodes[node])]
        rest = ~pred
        pred[rest] = (p[np.ix_(rest, below)] > self.thresholds[below]).any(axis=1) if below else False
        return pred.astype(np.uint8)

    def label(self) -> str:
        """Short display text: ``"fixed 0.5"``, ``"global 0.27"``, ``"per-node (m = 2)"``."""
        return _rule_label(self.rule, self.threshold, self.shrinkage)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``-inf`` thresholds become None), the inverse of :meth:`from_dict`."""
        return {"rule": self.rule, "threshold": float(self.threshold), "shrinkage": self.shrinkage,
                "label": self.label(),
                "thresholds": [None if not np.isfinite(t) else float(t) for t in self.thresholds]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], hierarchy: Hierarchy) -> DecisionRule:
        """Rebuild a rule from :meth:`to_dict` output and the run's hierarchy.

        Raises
        ------
        ValueError
            On a missing field, an unknown rule or thresholds of the wrong length.
        """
        try:
            rule, threshold, shrinkage, values = data["rule"], data["threshold"], data["shrinkage"], data["thresholds"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"decision rule data lacks the field {exc}") from exc
        if rule not in DECISION_RULES:
            raise ValueError(f"unknown decision rule {rule!r}; expected one of {list(DECISION_RULES)}")
        thresholds = np.array([-np.inf if v is None else float(v) for v in values], dtype=np.float64)
        return cls(rule=rule, thresholds=thresholds, threshold=float(threshold), hierarchy=hierarchy,
                   shrinkage=None if shrinkage is None else float(shrinkage))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DecisionRule):
            return NotImplemented
        return (self.rule, self.threshold, self.shrinkage) == (other.rule, other.threshold, other.shrinkage) and \
            self.hierarchy.nodes == other.hierarchy.nodes and np.array_equal(self.thresholds, other.thresholds)


def fit_decision_rule(
    rule: str,
    hierarchy: Hierarchy,
    y_heldout: np.ndarray | None = None,
    probs_heldout: np.ndarray | None = None,
    *,
    threshold: float = 0.5,
    shrinkage: float | None = None,
    prevalence: np.ndarray | None = None,
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
    prevalence : array-like of float in [0, 1], shape (C,), optional
        Training prevalence per node (training positives / training samples): the per-node rule's
        floor (:func:`prevalence_floor`); without it the per-node thresholds are not capped.

    Returns
    -------
    DecisionRule

    Raises
    ------
    ValueError
        On an unknown rule, a negative ``shrinkage``, a tuned rule without held-out data (or without
        a held-out positive on an evaluated node), a prevalence outside [0, 1], or shape mismatches.
    """
    if rule not in DECISION_RULES:
        raise ValueError(f"unknown decision rule {rule!r}; expected one of {list(DECISION_RULES)}")
    if rule == "fixed":
        t = np.where(hierarchy.eval_mask, float(threshold), -np.inf)
        return DecisionRule("fixed", t, float(threshold), hierarchy)
    if y_heldout is None or probs_heldout is None:
        raise ValueError(f"the {rule!r} decision rule is tuned on held-out labelled data, and none was given: "
                         "train with fit_on='train' (--fit-on train) to keep the valid split aside, or use 'fixed'")
    t_global = global_threshold(hierarchy, y_heldout, probs_heldout)
    if rule == "global":
        t = np.where(hierarchy.eval_mask, t_global, -np.inf)
        return DecisionRule("global", t, t_global, hierarchy)
    m = DEFAULT_SHRINKAGE if shrinkage is None else float(shrinkage)
    t = per_node_thresholds(hierarchy, y_heldout, probs_heldout, m, t_global, prevalence)
    return DecisionRule("per-node", t, t_global, hierarchy, m)


def shrinkage_tradeoff(
    hierarchy: Hierarchy,
    y_heldout: np.ndarray,
    probs_heldout: np.ndarray,
    y_test: np.ndarray,
    probs_test: np.ndarray,
    ms: Sequence[float] = DEFAULT_TRADEOFF_MS,
    train_frequency: np.ndarray | None = None,
    threshold: float = 0.5,
    n_train: int | None = None,
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
    n_train : int, optional
        Training samples; with ``train_frequency`` it gives the per-node rule's prevalence floor
        (:func:`fit_decision_rule`), without it the per-node thresholds are not capped.

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
    y, p = _check(y_heldout, probs_heldout, hierarchy.n_nodes)
    glob = fit_decision_rule("global", hierarchy, y, p)
    rules = [fit_decision_rule("fixed", hierarchy, threshold=threshold), glob]
    floor = (prevalence_floor(p, np.asarray(train_frequency, dtype=np.float64) / n_train)
             if train_frequency is not None and n_train else None)
    optima = _node_optima(hierarchy, y, p)  # the global threshold and the per-node scans are shared by every m
    for m in ms:
        if not m >= 0:
            raise ValueError(f"shrinkage m must be >= 0, got {m}")
        rules.append(DecisionRule("per-node", _shrunk(hierarchy, *optima, float(m), glob.threshold, floor),
                                  glob.threshold, hierarchy, float(m)))
    rows = []
    for r in rules:
        pred = r.predict(probs_test)
        _, recall, f1 = precision_recall_f1(y_test, probs_test, predictions=pred)
        rare = (rare_node_recall(recall, train_frequency, mask) if train_frequency is not None else float("nan"))
        rows.append({"rule": r.rule, "m": np.nan if r.shrinkage is None else r.shrinkage, "label": r.label(),
                     "micro_f1": micro_f1(y_test, pred, mask),
                     "macro_f1": float(f1[mask].mean()), "macro_recall": float(recall[mask].mean()),
                     "rare_node_recall": rare})
    return pd.DataFrame(rows)
