"""MCLoss, node-wise imbalance weights and the uncertainty focal factor.

Sources:
- MCLoss: C-HMCNN (Giunchiglia & Lukasiewicz, NeurIPS 2020); docs/method.md, *MCM and MCLoss*.
- Node-wise imbalance weights and the focal term ``focal_min + u**k``: Xu et al.
  2026, *Improving Detection of Rare Nodes in Hierarchical Multi-Label Learning*
  (docs/method.md, *Node weights* and *Focal weighting*), as released by the authors.
- ZLPR: Su et al. 2022 (docs/method.md, *ZLPR*).
- Class-balanced weights (Cui et al. 2019) and the asymmetric loss (Ridnik et al.
  2021), tail-aware baselines on the same constrained outputs (docs/method.md,
  *Tail-aware baselines*).

Pure functions first; :class:`WeightedMCLoss` bundles them for training. The
option tuples (``WEIGHTING_MODES``, ``FOCAL_MODES``, ...) are defined in the
torch-free :mod:`hmlc_core.config` and re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.config import FOCAL_MODES, FREQUENCY_COUNTINGS, LOSSES, SCHEDULES, WEIGHT_INDEXINGS, WEIGHTING_MODES
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.model import MCM
from hmlc_core.uncertainty import uncertainty
from hmlc_core.weighting import (class_balanced_weights, focal_factor, frequencies_from_counts, rescaled_weights,
                                 weighting_constant)

__all__ = [
    "WEIGHTING_MODES",
    "FREQUENCY_COUNTINGS",
    "WEIGHT_INDEXINGS",
    "FOCAL_MODES",
    "mc_loss",
    "node_frequencies",
    "node_weights",
    "select_weights",
    "focal_weight",
    "NodeWeights",
    "WeightedMCLoss",
    "zlpr_loss",
    "hierarchical_scores",
    "WeightedZLPRLoss",
    "LOSSES",
    "SCHEDULES",
    "schedule_fraction",
    "asymmetric_loss",
    "WeightedASLLoss",
]

def _check_loss_args(name: str, outputs: torch.Tensor, targets: torch.Tensor, reduction: str) -> None:
    if outputs.shape[-2:] != targets.shape:
        raise ValueError(f"{name} {tuple(outputs.shape)} and targets {tuple(targets.shape)} do not match")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


_INT_OF_SIZE = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _positives_first(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Exact integer sort keys for MCLoss's single arg-max pass: every positive entry above every negative one.

    Every descendant of a negative node is negative (coherent labels), so with
    these keys a negative node's arg-max runs over all its descendants and a
    positive node's over its positive descendants only, as in C-HMCNN's
    ``o = (1 - y) MCM(h) + y MCM(y h)``. The keys are the probabilities' IEEE
    bit patterns, which order non-negative floats exactly (an arithmetic shift
    such as ``h - 2`` would round in float32 and create ties), as integers of
    the same width; a negative entry's key is lowered by ``2**(bits - 2)``,
    which is above every pattern of a value in [0, 1], so it falls below
    every positive key without overflowing.
    """
    bits = probs.detach().view(_INT_OF_SIZE[probs.element_size()])
    return torch.where(targets > 0.5, bits, bits - (1 << (8 * probs.element_size() - 2)))


def mc_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    mcm: MCM,
    eval_mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    elementwise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """C-HMCNN's MCLoss, optionally weighted per (sample, node).

    With raw outputs ``h`` and labels ``y``: ``c = MCM(h)``, ``p = MCM(y * h)``,
    ``o = (1 - y) * c + y * p`` and the loss is the binary cross-entropy of
    ``o`` against ``y`` over the evaluated nodes (docs/method.md, *MCM and MCLoss*). A negative
    node is scored by the max over all its descendants; a positive node only
    by its positive descendants (itself included).

    With coherent targets (the usual case: propagated labels) ``o`` takes one
    MCM arg-max pass instead of two: every descendant of a negative node is
    negative, so ranking the negative entries below every positive one (exactly,
    on the floats' bit patterns) keeps a negative node's max over all its
    descendants and limits a positive node's max to its positive descendants.
    Incoherent targets fall back to the two passes of the formula. With the
    same MCM strategy both give the same values and gradients, bit for bit;
    the strategy is chosen by the number of rows, which the single pass
    halves, and the two strategies may send an exact tie between two
    descendants (neither of them the node) to different ones of them.

    Parameters
    ----------
    probs : torch.Tensor, shape (B, C) or (H, B, C), values in [0, 1]
        Raw (unconstrained) probabilities of one network or of H members.
    targets : torch.Tensor, shape (B, C), values in {0, 1}
        Coherent (propagated) labels, float.
    mcm : MCM
        The hierarchy's max-constraint module.
    eval_mask : torch.Tensor of bool, shape (C,), or of int64, shape (C_eval,), optional
        Nodes that enter the loss (roots are skipped in C-HMCNN), as a mask or
        as their column indices. All if None.
    weight : torch.Tensor, shape (B, C), optional
        Non-negative factor per (sample, node), shared by all members, e.g.
        ``select_weights(...) * focal_weight(...)``. No gradient flows into it.
    reduction : {"mean", "sum", "none"}, default "mean"
        "mean" averages over members x samples x evaluated nodes (C-HMCNN's
        ``BCELoss``); "sum" adds them up (the authors' focal path);
        "none" returns the element-wise loss of shape (..., B, C_eval).
    elementwise : callable, optional
        ``f(o, y)`` -> the element-wise loss of the constrained outputs ``o``
        (shape (..., B, C_eval)) against the targets ``y`` (broadcast to the
        same shape); binary cross-entropy if None. The asymmetric loss
        (:func:`asymmetric_loss`) plugs in here, on the same MCM paths.

    Returns
    -------
    torch.Tensor
        A scalar, or the element-wise loss for ``reduction="none"``.

    Raises
    ------
    ValueError
        On a shape mismatch or an unknown reduction.
    """
    _check_loss_args("probs", probs, targets, reduction)
    targets = targets.to(probs.dtype)
    if mcm.is_coherent(targets):
        out = probs.gather(-1, mcm.argmax(_positives_first(probs, targets)))
    else:
        constrained, constrained_pos = mcm(torch.stack([probs, targets * probs]))
        out = (1 - targets) * constrained + targets * constrained_pos
    if eval_mask is not None:
        index = eval_mask if eval_mask.dtype == torch.long else eval_mask.nonzero().squeeze(1)
        out = out.index_select(-1, index)
        targets = targets.index_select(-1, index)
        if weight is not None:
            weight = weight.index_select(-1, index)
    if elementwise is None:
        loss = F.binary_cross_entropy(out, targets.expand_as(out), reduction="none")
    else:
        loss = elementwise(out, targets.expand_as(out))
    if weight is not None:
        loss = loss * weight.detach()
    return _reduce(loss, reduction)


def node_frequencies(
    labels: np.ndarray, hierarchy: Hierarchy, counting: str = "descendant-sum"
) -> np.ndarray:
    """Per-node positive counts used by the imbalance weights.

    Parameters
    ----------
    labels : array-like of {0, 1}, shape (N, C)
        Propagated training labels (train split only; docs/method.md, *Data and hierarchy*).
    hierarchy : Hierarchy
    counting : {"descendant-sum", "propagated"}, default "descendant-sum"
        "propagated": the column sums of ``labels``. "descendant-sum": each
        node's propagated count plus those of all its descendants, as in the
        authors' ``obtain_node_frequencies`` with R (docs/method.md, *Node weights*), without its
        in-place ordering artefact; a sample counts once for every node on the
        path between the node and the sample's deepest labels, so the root's
        value exceeds N.

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values >= 0

    Raises
    ------
    ValueError
        On an unknown ``counting`` or a label matrix of the wrong width.
    """
    y = np.asarray(labels)
    if y.ndim != 2 or y.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"labels must have shape (N, {hierarchy.n_nodes}), got {y.shape}")
    return frequencies_from_counts(y.sum(axis=0, dtype=np.float64), hierarchy, counting)


@dataclass(frozen=True)
class NodeWeights:
    """Positive and negative node weights.

    Attributes
    ----------
    positive, negative : numpy.ndarray of float64, shape (C,)
        Values in ``[omega, omega + max raw weight]`` when computed, 1 when
        switched off (the authors' default keeps negative weights at 1).
    """

    positive: np.ndarray
    negative: np.ndarray


def node_weights(
    labels: np.ndarray,
    hierarchy: Hierarchy,
    mode: str = "class-wise",
    omega: float = 0.25,
    counting: str = "descendant-sum",
    negative: bool = False,
    common: bool = False,
    beta: float = 0.999,
) -> NodeWeights:
    """Node-wise imbalance weights of Xu et al. 2026 (docs/method.md, *Node weights*), or class-balanced ones.

    Raw weights ``w_n = N / (K f_n)`` with ``K = C`` ("class-wise") or
    ``K = 2`` ("binary"); nodes with ``f_n = 0`` or ``f_n = N`` get 1; then
    ``w' = omega + max(w) (w - min w) / (max w - min w)``, so the most
    frequent node gets exactly ``omega`` and the rarest ``omega + max(w)``.

    ``mode="class-balanced"`` gives instead Cui et al. 2019's inverse effective
    numbers :func:`hmlc_core.weighting.class_balanced_weights` of the propagated
    training counts (``counting``, ``omega``, ``negative`` and ``common`` do
    not apply), averaging 1 over the evaluated nodes, as both the positive and
    the negative weights: the weight multiplies the node's whole binary
    cross-entropy, as Cui et al.'s class-balanced term multiplies the whole
    loss of its class, so ``weight_indexing`` makes no difference
    (docs/method.md, *Tail-aware baselines*).

    Parameters
    ----------
    labels : array-like of {0, 1}, shape (N, C)
        Propagated training labels.
    hierarchy : Hierarchy
    mode : {"class-wise", "binary", "class-balanced", "none"}, default "class-wise"
        "none" returns all-ones weights.
    omega : float, default 0.25
        ``min_weight_const``; must be >= 0.
    counting : {"descendant-sum", "propagated"}
        See :func:`node_frequencies`.
    negative : bool, default False
        Also compute negative weights from ``g = N - f`` (the authors' default
        leaves them at 1).
    common : bool, default False
        Use the positive weights for negatives too (overrides ``negative``).
    beta : float, default 0.999
        ``mode="class-balanced"`` only: beta of the effective number, in [0, 1).

    Returns
    -------
    NodeWeights

    Raises
    ------
    ValueError
        On an unknown mode, a negative omega, empty labels or a class-balanced
        beta outside [0, 1).
    """
    if mode not in WEIGHTING_MODES:
        raise ValueError(f"weighting mode must be one of {WEIGHTING_MODES}, got {mode!r}")
    if omega < 0:
        raise ValueError(f"omega must be >= 0, got {omega}")
    y = np.asarray(labels)
    n = y.shape[0] if y.ndim == 2 else 0
    if n == 0:
        raise ValueError("node weights need at least one training sample")
    ones = np.ones(hierarchy.n_nodes)
    if mode == "none":
        return NodeWeights(ones, ones.copy())
    if mode == "class-balanced":
        w = class_balanced_weights(y.sum(axis=0, dtype=np.float64), beta, hierarchy.eval_mask)
        return NodeWeights(w, w.copy())
    k = weighting_constant(mode, hierarchy.n_nodes)
    freq = node_frequencies(y, hierarchy, counting)
    pos = rescaled_weights(freq, n, k, omega)
    if common:
        neg = pos.copy()
    elif negative:
        neg = rescaled_weights(np.clip(n - freq, 0, None), n, k, omega)
    else:
        neg = ones
    return NodeWeights(pos, neg)


def select_weights(
    targets: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    indexing: str = "released",
) -> torch.Tensor:
    """Pick a weight per (sample, node) from the node weights (docs/method.md, *Node weights*).

    Parameters
    ----------
    targets : torch.Tensor, shape (B, C), values in {0, 1}
    positive, negative : torch.Tensor, shape (C,)
    indexing : {"released", "intended"}, default "released"
        "released" reproduces the authors' code, which indexes the stacked
        (positive, negative) weights with the label: an entry with ``y = 0``
        gets the positive weight and ``y = 1`` the negative weight.
        "intended" gives positive entries the positive weight and negative
        entries the negative weight, as the method's description suggests.

    Returns
    -------
    torch.Tensor, shape (B, C), dtype of ``positive``

    Raises
    ------
    ValueError
        On an unknown indexing.
    """
    if indexing not in WEIGHT_INDEXINGS:
        raise ValueError(f"weight indexing must be one of {WEIGHT_INDEXINGS}, got {indexing!r}")
    is_pos = targets > 0.5
    if indexing == "released":
        return torch.where(is_pos, negative, positive)
    return torch.where(is_pos, positive, negative)


def focal_weight(u: torch.Tensor, k: float = 2.0, focal_min: float = 0.25) -> torch.Tensor:
    """Focal factor ``focal_min + u**k`` on a detached ``u`` (Xu et al. 2026; docs/method.md, *Focal weighting*).

    :func:`hmlc_core.weighting.focal_factor` (same parameters, range and
    errors) on ``u.detach()``, so no gradient flows through the uncertainty.

    Parameters
    ----------
    u : torch.Tensor, shape (B, C)
        Ensemble uncertainty.

    Returns
    -------
    torch.Tensor, shape (B, C)
    """
    return focal_factor(u.detach(), k, focal_min)


def schedule_fraction(schedule: str, step: int, n_steps: int, k: float = 3.0) -> float:
    """How far the node weights have moved from their values towards omega at a step of an epoch.

    The weighted-to-unweighted schedules of Xu et al. 2026 (docs/method.md,
    *LPROS, schedules and the mixed loss*); the
    weights at batch ``i`` are ``w_i = w_0 + (omega - w_0) * f`` with ``f``:

    - ``"lin"``: ``i / (n - 1)`` (w_0 at the first batch, omega at the last);
    - ``"exp"``: ``(i / (n - 1)) ** k``;
    - ``"alt"``: 0 on even batches, 1 (every weight omega) on odd batches;
    - ``"none"``: 0.

    The step counts within the epoch, so the schedule is a per-epoch sawtooth;
    with one batch per epoch ``lin`` and ``exp`` stay at 0.

    Parameters
    ----------
    schedule : {"none", "lin", "exp", "alt"}
    step : int
        Batch index within the epoch, in ``[0, n_steps)``.
    n_steps : int
        Batches per epoch (>= 1).
    k : float, default 3
        Exponent of ``"exp"`` (> 0).

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    ValueError
        On an unknown schedule or out-of-range arguments.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if n_steps < 1 or not 0 <= step < n_steps or k <= 0:
        raise ValueError(f"need 0 <= step < n_steps and k > 0, got step={step}, n_steps={n_steps}, k={k}")
    if schedule == "none":
        return 0.0
    if schedule == "alt":
        return float(step % 2)
    progress = step / (n_steps - 1) if n_steps > 1 else 0.0
    return progress if schedule == "lin" else progress ** k


class WeightedMCLoss(nn.Module):
    """MCLoss with node-wise imbalance weights and an uncertainty focal factor.

    ``L = reduce_{h, b, n in eval} W[b, n] * (focal_min + u[b, n]**k) * l_MCLoss[h, b, n]``
    with ``u`` computed from the detached member probabilities (Xu et al. 2026,
    docs/method.md, *Focal weighting*). With ``weights=None`` and ``focal="none"`` it is plain
    C-HMCNN's MCLoss.

    Parameters
    ----------
    hierarchy : Hierarchy
    weights : NodeWeights, optional
        From :func:`node_weights`; None switches weighting off.
    weight_indexing : {"released", "intended"}
        See :func:`select_weights`.
    focal : str, default "none"
        An uncertainty mode of :mod:`hmlc_core.uncertainty`, or "none".
    focal_k, focal_min : float
        See :func:`focal_weight`.
    reduction : {"mean", "sum"}
    mixed_lambda : float, optional
        Mixed loss (docs/method.md, *LPROS, schedules and the mixed loss*):
        ``lambda * weighted + (1 - lambda) * plain``
        MCLoss, the plain one without node weights or focal factor; in [0, 1].

    Shapes
    ------
    forward(probs (H, B, C), targets (B, C)) -> scalar
    """

    def __init__(
        self,
        hierarchy: Hierarchy,
        weights: NodeWeights | None = None,
        weight_indexing: str = "released",
        focal: str = "none",
        focal_k: float = 2.0,
        focal_min: float = 0.25,
        reduction: str = "mean",
        mixed_lambda: float | None = None,
    ) -> None:
        super().__init__()
        if mixed_lambda is not None and not 0.0 <= mixed_lambda <= 1.0:
            raise ValueError(f"mixed_lambda must be in [0, 1], got {mixed_lambda}")
        self.mixed_lambda = mixed_lambda
        if focal not in FOCAL_MODES:
            raise ValueError(f"focal mode must be one of {FOCAL_MODES}, got {focal!r}")
        if weight_indexing not in WEIGHT_INDEXINGS:
            raise ValueError(f"weight indexing must be one of {WEIGHT_INDEXINGS}, got {weight_indexing!r}")
        focal_weight(torch.zeros(1), focal_k, focal_min)
        self.mcm = MCM(hierarchy)
        self.register_buffer("eval_index", torch.from_numpy(np.flatnonzero(hierarchy.eval_mask)), persistent=False)
        self.weighted = weights is not None
        if weights is not None:
            self.register_buffer("w_pos", torch.as_tensor(weights.positive, dtype=torch.float32), persistent=False)
            self.register_buffer("w_neg", torch.as_tensor(weights.negative, dtype=torch.float32), persistent=False)
        self.weight_indexing = weight_indexing
        self.focal, self.focal_k, self.focal_min = focal, float(focal_k), float(focal_min)
        self.reduction = reduction

    def sample_weights(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor | None:
        """The (B, C) factor ``W * focal`` applied to the element-wise MCLoss, or None if both are off."""
        factor = None
        if self.weighted:
            factor = select_weights(targets, self.w_pos, self.w_neg, self.weight_indexing)
        if self.focal != "none":
            f = focal_weight(uncertainty(probs.detach(), self.focal), self.focal_k, self.focal_min)
            factor = f if factor is None else factor * f
        return factor

    def set_node_weights(self, positive: torch.Tensor, negative: torch.Tensor) -> None:
        """Replace the node weights in place (used by the schedules).

        See docs/method.md, *LPROS, schedules and the mixed loss*.

        Raises
        ------
        ValueError
            If the loss was built without node weights.
        """
        if not self.weighted:
            raise ValueError("this loss has no node weights to schedule")
        self.w_pos.copy_(positive)
        self.w_neg.copy_(negative)

    def forward(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if probs.dim() == 2:
            probs = probs.unsqueeze(0)
        weight = self.sample_weights(probs, targets)
        if self.mixed_lambda is None or weight is None:
            return mc_loss(probs, targets, self.mcm, self.eval_index, weight, self.reduction)
        elementwise = mc_loss(probs, targets, self.mcm, self.eval_index, None, "none")
        weighted = elementwise * weight.index_select(-1, self.eval_index)
        return (self.mixed_lambda * _reduce(weighted, self.reduction)
                + (1 - self.mixed_lambda) * _reduce(elementwise, self.reduction))


ZLPR_EPS = 1e-7
"""Soft targets at or below this (above ``1 - ZLPR_EPS``) leave the positive (negative) sum."""


def zlpr_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    log_weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Zero-bounded log-sum-exp and pairwise rank-based loss (ZLPR), hard or soft.

    For one sample with scores ``s`` and targets ``t`` in [0, 1]
    (Su et al. 2022, arXiv 2208.02955; docs/method.md, *ZLPR*)::

        L = log(1 + sum_i t_i exp(-s_i)) + log(1 + sum_i (1 - t_i) exp(s_i))

    computed stably as ``LSE([-s + log t, 0]) + LSE([s + log(1 - t), 0])``.
    Entries with ``t <= ZLPR_EPS`` leave the positive sum and entries with
    ``t >= 1 - ZLPR_EPS`` leave the negative sum, so 0/1 targets give the hard
    loss ``log(1 + sum_pos e^-s) + log(1 + sum_neg e^s)`` exactly. A label is
    predicted on when ``s > 0``.

    Parameters
    ----------
    scores : torch.Tensor, shape (..., B, K), real (logits)
    targets : torch.Tensor, shape (B, K), values in [0, 1]
        0/1 labels, or soft targets (label smoothing).
    log_weight : torch.Tensor, shape (B, K), optional
        Added to every entry's exponent (``e^-s -> w e^-s``): a node weight or
        focal factor ``w`` acts as a per-node margin ``log w`` (docs/method.md, *ZLPR*).
        No gradient flows into it.
    reduction : {"mean", "sum", "none"}
        Over the leading dims and samples; "none" returns shape (..., B).

    Returns
    -------
    torch.Tensor, a scalar or shape (..., B); values >= 0.

    Raises
    ------
    ValueError
        On a shape mismatch or an unknown reduction.
    """
    _check_loss_args("scores", scores, targets, reduction)
    t = targets.to(scores.dtype)
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    log_t = torch.where(t > ZLPR_EPS, torch.log(t.clamp_min(ZLPR_EPS)), neg_inf)
    log_not_t = torch.where(t < 1 - ZLPR_EPS, torch.log1p(-t.clamp_max(1 - ZLPR_EPS)), neg_inf)
    if log_weight is not None:
        log_weight = log_weight.detach().to(scores.dtype)
        log_t = log_t + log_weight
        log_not_t = log_not_t + log_weight
    zero = torch.zeros(scores.shape[:-1] + (1,), dtype=scores.dtype, device=scores.device)
    pos = torch.logsumexp(torch.cat([-scores + log_t, zero], dim=-1), dim=-1)
    neg = torch.logsumexp(torch.cat([scores + log_not_t, zero], dim=-1), dim=-1)
    return _reduce(pos + neg, reduction)


def hierarchical_scores(logits: torch.Tensor, labels: torch.Tensor, mcm: MCM) -> torch.Tensor:
    """MCLoss's coupling on logits: the scores ZLPR is computed on (docs/method.md, *ZLPR*).

    A positive node is scored by the max logit over its *positive* descendants
    (itself included), a negative node by the max over all its descendants,
    both with the masked-max MCM, so the gradients follow C-HMCNN's MCLoss and
    ``MCM(logits) > 0`` stays the (coherent) prediction.

    Parameters
    ----------
    logits : torch.Tensor, shape (..., B, C)
    labels : torch.Tensor, shape (B, C), values in {0, 1}
    mcm : MCM

    Returns
    -------
    torch.Tensor, shape (..., B, C)
    """
    positive = labels > 0.5
    neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
    all_desc, pos_desc = mcm(torch.stack(torch.broadcast_tensors(logits, torch.where(positive, logits, neg_inf))))
    return torch.where(positive, pos_desc, all_desc)


class WeightedZLPRLoss(WeightedMCLoss):
    """ZLPR on hierarchy-constrained logits, with node weights and the focal factor as log-weights.

    The alternative objective of the project (docs/method.md, *ZLPR*): scores from
    :func:`hierarchical_scores`, then :func:`zlpr_loss` over the evaluated
    nodes of every (member, sample), the weight ``W * (focal_min + u**k)`` of
    :class:`WeightedMCLoss` entering as ``log`` inside the sums. Label
    smoothing ``a`` uses the soft targets ``y (1 - a) + (1 - y) a``.

    Parameters
    ----------
    As :class:`WeightedMCLoss`, plus
    label_smoothing : float, default 0
        In [0, 0.5).

    Shapes
    ------
    forward(logits (H, B, C), targets (B, C)) -> scalar
    """

    def __init__(self, hierarchy: Hierarchy, weights: NodeWeights | None = None, weight_indexing: str = "released",
                 focal: str = "none", focal_k: float = 2.0, focal_min: float = 0.25, reduction: str = "mean",
                 label_smoothing: float = 0.0) -> None:
        super().__init__(hierarchy, weights, weight_indexing, focal, focal_k, focal_min, reduction)
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.dim() == 2:
            logits = logits.unsqueeze(0)
        targets = targets.to(logits.dtype)
        weight = self.sample_weights(torch.sigmoid(logits), targets)
        scores = hierarchical_scores(logits, targets, self.mcm).index_select(-1, self.eval_index)
        soft = targets * (1 - self.label_smoothing) + (1 - targets) * self.label_smoothing
        soft = soft.index_select(-1, self.eval_index)
        log_weight = None if weight is None else torch.log(weight.index_select(-1, self.eval_index))
        return zlpr_loss(scores, soft, log_weight, self.reduction)


ASL_EPS = 1e-8
"""Floor of the probabilities inside ASL's logarithms (the value of Ridnik et al.'s released code)."""


def asymmetric_loss(
    probs: torch.Tensor,
    targets: torch.Tensor,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
) -> torch.Tensor:
    """Element-wise asymmetric loss (ASL; Ridnik et al., ICCV 2021, Sec. 3).

    With ``p`` the probability and ``p_m = max(p - m, 0)`` the shifted
    probability of a negative::

        L+ = -(1 - p)**gamma_pos * log(p)          (y = 1)
        L- = -p_m**gamma_neg * log(1 - p_m)        (y = 0)

    so easy negatives (``p <= m``) are discarded and the others are
    down-weighted by ``p_m**gamma_neg``. ``gamma_pos = gamma_neg = m = 0`` is
    binary cross-entropy. The focusing weights ``(1 - p)**gamma_pos`` and
    ``p_m**gamma_neg`` are constants of the gradient, as in the authors'
    training code (``disable_torch_grad_focal_loss=True``); the
    probabilities inside the logarithms are floored at :data:`ASL_EPS`.

    Parameters
    ----------
    probs : torch.Tensor, any shape, values in [0, 1]
        Here: MCLoss's constrained outputs (:func:`mc_loss` with
        ``elementwise``), so a positive node is scored through its positive
        descendants and a negative node through all of them.
    targets : torch.Tensor, same shape, values in {0, 1}
    gamma_pos, gamma_neg : float, defaults 0 and 4 (the paper's)
        Focusing exponents, >= 0.
    clip : float, default 0.05 (the paper's)
        Probability margin ``m``, in [0, 1).

    Returns
    -------
    torch.Tensor, the shape of ``probs``, values >= 0.

    Raises
    ------
    ValueError
        On a negative or non-finite exponent or a margin outside [0, 1).
    """
    if not (gamma_pos >= 0 and gamma_neg >= 0 and np.isfinite(gamma_pos) and np.isfinite(gamma_neg)):
        raise ValueError(f"ASL exponents must be finite and >= 0, got {gamma_pos}, {gamma_neg}")
    if not 0 <= clip < 1:
        raise ValueError(f"ASL margin clip must be in [0, 1), got {clip}")
    shifted = (probs - clip).clamp_min(0) if clip > 0 else probs
    with torch.no_grad():
        focus_pos = (1 - probs) ** gamma_pos
        focus_neg = shifted ** gamma_neg
    loss_pos = -focus_pos * torch.log(probs.clamp_min(ASL_EPS))
    loss_neg = -focus_neg * torch.log((1 - shifted).clamp_min(ASL_EPS))
    return torch.where(targets > 0.5, loss_pos, loss_neg)


class WeightedASLLoss(WeightedMCLoss):
    """The asymmetric loss on MCLoss's constrained outputs, with node weights and the focal factor.

    A tail-aware baseline (docs/method.md, *Tail-aware baselines*): MCLoss
    (:func:`mc_loss`: ``o = (1 - y) MCM(h) + y MCM(y h)``, a positive node
    scored through its positive descendants, a negative one through all of
    them) with the binary cross-entropy of ``o`` replaced by
    :func:`asymmetric_loss`; the factor ``W * (focal_min + u**k)`` of
    :class:`WeightedMCLoss` multiplies it as it does MCLoss.

    Parameters
    ----------
    As :class:`WeightedMCLoss` (without ``mixed_lambda``), plus
    gamma_pos, gamma_neg, clip : float
        See :func:`asymmetric_loss`.

    Shapes
    ------
    forward(probs (H, B, C), targets (B, C)) -> scalar
    """

    def __init__(self, hierarchy: Hierarchy, weights: NodeWeights | None = None, weight_indexing: str = "released",
                 focal: str = "none", focal_k: float = 2.0, focal_min: float = 0.25, reduction: str = "mean",
                 gamma_pos: float = 0.0, gamma_neg: float = 4.0, clip: float = 0.05) -> None:
        super().__init__(hierarchy, weights, weight_indexing, focal, focal_k, focal_min, reduction)
        asymmetric_loss(torch.zeros(1), torch.zeros(1), gamma_pos, gamma_neg, clip)  # validates the arguments
        self.gamma_pos, self.gamma_neg, self.clip = float(gamma_pos), float(gamma_neg), float(clip)

    def elementwise(self, out: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """:func:`asymmetric_loss` with this loss's exponents and margin."""
        return asymmetric_loss(out, targets, self.gamma_pos, self.gamma_neg, self.clip)

    def forward(self, probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if probs.dim() == 2:
            probs = probs.unsqueeze(0)
        weight = self.sample_weights(probs, targets)
        return mc_loss(probs, targets, self.mcm, self.eval_index, weight, self.reduction, self.elementwise)
