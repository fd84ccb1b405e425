"""The numpy (torch-free) part of the weighted loss: node frequencies, node weights, the focal factor.

:func:`hmlc_core.losses.node_frequencies`, :func:`hmlc_core.losses.node_weights`
and :func:`hmlc_core.losses.focal_weight` compute their values with these
functions, so the dashboard can show the same numbers without importing torch
(its read path must not, ``tests/test_imports.py``). The functions take counts
rather than label matrices, so a saved run (whose ``node_metrics.csv`` holds
each node's propagated training count) is enough to reproduce its weights.

Sources: Xu et al. 2026, *Improving Detection of Rare Nodes in Hierarchical
Multi-Label Learning*, node-wise imbalance weights and the focal term
``focal_min + u**k``, as released by the authors (docs/method.md, *Node
weights* and *Focal weighting*). Class-balanced weights (Cui et al., CVPR
2019) and the log prior odds of logit adjustment (Menon et al., ICLR 2021),
two tail-aware baselines (docs/method.md, *Tail-aware baselines*).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from hmlc_core.config import FREQUENCY_COUNTINGS, WEIGHTING_MODES
from hmlc_core.hierarchy import Hierarchy

__all__ = ["frequencies_from_counts", "weighting_constant", "raw_weights", "rescale_weights", "rescaled_weights",
           "focal_factor", "class_balanced_weights", "log_prior_odds"]

ArrayT = TypeVar("ArrayT")


def frequencies_from_counts(counts: np.ndarray, hierarchy: Hierarchy, counting: str = "descendant-sum") -> np.ndarray:
    """Node frequencies for the weights from each node's propagated positive count.

    Parameters
    ----------
    counts : array-like of float, shape (C,), values >= 0
        Column sums of the propagated training labels (the ``train_frequency``
        column of a run's ``node_metrics.csv``).
    hierarchy : Hierarchy
    counting : {"descendant-sum", "propagated"}, default "descendant-sum"
        "propagated": ``counts`` itself. "descendant-sum": each node's count
        plus those of all its descendants, as in the authors'
        ``obtain_node_frequencies`` with R (docs/method.md, *Node weights*).

    Returns
    -------
    numpy.ndarray of float64, shape (C,)

    Raises
    ------
    ValueError
        On an unknown ``counting`` or counts of the wrong length.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != (hierarchy.n_nodes,):
        raise ValueError(f"counts must have shape ({hierarchy.n_nodes},), got {counts.shape}")
    if counting == "propagated":
        return counts.copy()
    if counting != "descendant-sum":
        raise ValueError(f"counting must be one of {FREQUENCY_COUNTINGS}, got {counting!r}")
    nodes, ancestors = hierarchy.ancestor_pairs()
    freq = np.zeros_like(counts)
    np.add.at(freq, ancestors, counts[nodes])
    return freq


def weighting_constant(mode: str, n_nodes: int) -> int:
    """``K`` of the raw weights ``N / (K f)``: the number of nodes C ("class-wise") or 2 ("binary").

    Raises
    ------
    ValueError
        For "none", "class-balanced" (no ``K``: :func:`class_balanced_weights`) or an unknown mode.
    """
    if mode == "class-wise":
        return n_nodes
    if mode == "binary":
        return 2
    allowed = [m for m in WEIGHTING_MODES if m not in ("none", "class-balanced")]
    raise ValueError(f"weighting mode must be one of {allowed}, got {mode!r}")


def raw_weights(freq: np.ndarray, n_samples: int, k: int) -> np.ndarray:
    """``w = N / (K f)``, with 1 where ``f = 0`` or ``f = N`` (docs/method.md, *Node weights*).

    Parameters
    ----------
    freq : array-like of float, shape (C,)
    n_samples : int
        N, the number of training samples.
    k : int
        K, from :func:`weighting_constant`.

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
    """
    freq = np.asarray(freq, dtype=np.float64)
    raw = np.ones_like(freq)
    ok = (freq > 0) & (freq != n_samples)
    raw[ok] = n_samples / (k * freq[ok])
    return raw


def rescale_weights(raw: np.ndarray, omega: float) -> np.ndarray:
    """``w' = omega + max(w) (w - min w) / (max w - min w)`` (docs/method.md, *Node weights*).

    The smallest raw weight becomes ``omega`` and the largest ``omega + max(w)``;
    a constant input gives ``omega`` everywhere.

    Parameters
    ----------
    raw : numpy.ndarray of float, shape (C,)
    omega : float
        The minimum weight (>= 0).

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
    """
    raw = np.asarray(raw, dtype=np.float64)
    lo, hi = raw.min(), raw.max()
    if hi == lo:
        return np.full_like(raw, omega)
    return omega + hi * (raw - lo) / (hi - lo)


def rescaled_weights(freq: np.ndarray, n_samples: int, k: int, omega: float) -> np.ndarray:
    """:func:`rescale_weights` of :func:`raw_weights`: the node weights of Xu et al. 2026 from frequencies.

    Parameters
    ----------
    freq : array-like of float, shape (C,)
        From :func:`frequencies_from_counts` (or ``N - f`` for negative weights).
    n_samples : int
        N, the number of training samples (> 0).
    k : int
        K, from :func:`weighting_constant`.
    omega : float
        The minimum weight (>= 0).

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values in ``[omega, omega + max raw weight]``

    Raises
    ------
    ValueError
        If ``omega < 0`` or ``n_samples < 1``.
    """
    if omega < 0:
        raise ValueError(f"omega must be >= 0, got {omega}")
    if n_samples < 1:
        raise ValueError("node weights need at least one training sample")
    return rescale_weights(raw_weights(freq, n_samples, k), omega)


def focal_factor(u: ArrayT, k: float = 2.0, focal_min: float = 0.25) -> ArrayT:
    """Focal factor ``focal_min + max(u, 0)**k`` (Xu et al. 2026; docs/method.md, *Focal weighting*).

    Works on numpy arrays and on torch tensors alike (both have ``clip(min=...)``).

    Parameters
    ----------
    u : numpy.ndarray or torch.Tensor, any shape, values in [0, 1] for the bounded modes
        Ensemble uncertainty.
    k : float, default 2
        Focusing exponent (> 0).
    focal_min : float, default 0.25
        Floor of the factor (>= 0); the factor lies in ``[focal_min, focal_min + 1]``
        for ``u`` in [0, 1].

    Returns
    -------
    Same type and shape as ``u``.

    Raises
    ------
    ValueError
        If ``k <= 0`` or ``focal_min < 0``.
    """
    if k <= 0:
        raise ValueError(f"focal k must be > 0, got {k}")
    if focal_min < 0:
        raise ValueError(f"focal_min must be >= 0, got {focal_min}")
    return focal_min + u.clip(min=0) ** k  # type: ignore[attr-defined]


def class_balanced_weights(counts: np.ndarray, beta: float = 0.999, eval_mask: np.ndarray | None = None) -> np.ndarray:
    """Class-balanced node weights by the inverse effective number (Cui et al., CVPR 2019, Secs. 3-4).

    The effective number of ``n`` samples is ``E_n = (1 - beta**n) / (1 - beta)``
    (Cui et al., Sec. 3, Proposition 1) and the class-balanced weight is its
    inverse, ``w_j = (1 - beta) / (1 - beta**n_j)`` (Sec. 4). The weights are
    then normalised to sum to the number of classes, as the class-balanced
    loss is usually implemented; the classes here are the evaluated nodes (the
    nodes that enter the loss), so the weights average 1 over them and the
    loss keeps the scale of the unweighted one. ``beta = 0`` gives 1 everywhere;
    ``beta -> 1`` tends to inverse frequency ``1 / n_j``.

    Our adaptations (docs/method.md, *Tail-aware baselines*): ``n_j`` is node
    j's propagated positive count on the train split, and a node without
    training positives counts as one (``E_1 = 1``, the largest weight), since
    ``E_0 = 0`` would give it an infinite weight.

    Parameters
    ----------
    counts : array-like of float, shape (C,), values >= 0
        Propagated training positives per node (the ``train_frequency`` column
        of a run's ``node_metrics.csv``).
    beta : float, default 0.999
        In [0, 1).
    eval_mask : array-like of bool, shape (C,), optional
        The nodes the weights average 1 over; all nodes if None.

    Returns
    -------
    numpy.ndarray of float64, shape (C,), values > 0

    Raises
    ------
    ValueError
        If ``beta`` is outside [0, 1) (or NaN), on negative counts or on an
        empty or mismatched ``eval_mask``.
    """
    if not 0 <= beta < 1:
        raise ValueError(f"class-balanced beta must be in [0, 1), got {beta}")
    n = np.asarray(counts, dtype=np.float64)
    if n.ndim != 1 or (n < 0).any() or not np.isfinite(n).all():
        raise ValueError("counts must be a 1-d array of finite values >= 0")
    mask = np.ones(n.shape, dtype=bool) if eval_mask is None else np.asarray(eval_mask, dtype=bool)
    if mask.shape != n.shape or not mask.any():
        raise ValueError(f"eval_mask must have shape {n.shape} and select at least one node")
    # (1 - beta) / (1 - beta**n) with -expm1(n log beta) = 1 - beta**n, exact for beta near 1.
    n = np.maximum(n, 1.0)
    w = np.ones_like(n) if beta == 0 else (1 - beta) / -np.expm1(n * np.log(beta))
    return w / w[mask].mean()


def log_prior_odds(counts: np.ndarray, n_samples: int) -> np.ndarray:
    """Each node's training log prior odds ``log(pi_j / (1 - pi_j))``, the logit adjustment's offset.

    Menon et al. (ICLR 2021, the logit-adjusted softmax cross-entropy) add
    ``tau * log pi_y`` to the softmax logits in training and predict with the
    plain logits. For node j's binary problem (the classes "j" and "not
    j", priors ``pi_j`` and ``1 - pi_j``), the same adjustment of a two-way
    softmax is ``sigmoid(z_j + tau * log(pi_j / (1 - pi_j)))``: the offset
    returned here, times tau. This binary adaptation is ours (docs/method.md,
    *Tail-aware baselines*). ``pi_j = n_j / N``, with ``n_j`` clipped to
    ``[0.5, N - 0.5]`` so that a node with no training positives (or no
    negatives) gets a finite offset, as if it had half of one.

    Parameters
    ----------
    counts : array-like of float, shape (C,), values in [0, N]
        Propagated training positives per node.
    n_samples : int
        N, the number of training samples (>= 1).

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
        Negative for nodes with prior below 1/2, 0 at 1/2.

    Raises
    ------
    ValueError
        If ``n_samples < 1`` or a count lies outside [0, N].
    """
    if n_samples < 1:
        raise ValueError("the logit adjustment needs at least one training sample")
    n = np.asarray(counts, dtype=np.float64)
    if (n < 0).any() or (n > n_samples).any() or not np.isfinite(n).all():
        raise ValueError(f"counts must lie in [0, {n_samples}]")
    n = np.clip(n, 0.5, n_samples - 0.5)
    return np.log(n) - np.log(n_samples - n)
