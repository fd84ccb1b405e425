"""Per-node ensemble uncertainty from member probabilities.

Every function here is pure: it takes the member probabilities of an ensemble,
``probs`` of shape (H, B, C) (H members, B samples, C nodes; values in [0, 1];
any float dtype) and returns a tensor of shape (B, C) in the same dtype. Entropies
are in bits (log base 2).

Source: Xu et al. 2026, *Improving Detection of Rare Nodes in Hierarchical
Multi-Label Learning*, focal weighting by ensemble uncertainty (formulas as in
the authors' released ``conf_hml_loss.py``; docs/method.md, *Uncertainty modes*,
which also gives the scale of each mode). The paper's names: ``mean`` is
"bBMA (mean confidence)", ``pcs`` is "GMU (gated margin)" (our inference, same section).

The mode names and their display names (``UNCERTAINTY_MODE_NAMES``,
``UNCERTAINTY_LABELS``) are defined in the torch-free :mod:`hmlc_core.config`
and re-exported here, so the dashboard can name modes without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hmlc_core.config import UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES

__all__ = [
    "EPS",
    "UNCERTAINTY_MODES",
    "UNCERTAINTY_MODE_NAMES",
    "UNCERTAINTY_LABELS",
    "binary_entropy",
    "mean_uncertainty",
    "predictive_entropy",
    "aleatoric_uncertainty",
    "epistemic_uncertainty",
    "epistemic_kl_uncertainty",
    "pcs_uncertainty",
    "uncertainty",
]

EPS = 1e-10
"""Added inside every logarithm, as in the released code (so H2(0) is about -1.4e-10, not 0)."""


def _check(probs: torch.Tensor) -> torch.Tensor:
    if probs.dim() != 3:
        raise ValueError(f"member probabilities must have shape (H, B, C), got {tuple(probs.shape)}")
    if probs.shape[0] < 1:
        raise ValueError("member probabilities need at least one member (H >= 1)")
    return probs


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """Binary entropy in bits, ``H2(p) = -p log2(p+eps) - (1-p) log2(1-p+eps)``.

    Parameters
    ----------
    p : torch.Tensor, any shape, values in [0, 1]

    Returns
    -------
    torch.Tensor, same shape, values in [0, 1] (up to about -1.4e-10 at p in {0, 1})
    """
    return -p * torch.log2(p + EPS) - (1 - p) * torch.log2(1 - p + EPS)


def _binary_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL divergence in bits between Bernoulli(p) and Bernoulli(q), clamped >= 0.

    Source: docs/method.md, *Uncertainty modes*.
    """
    kl = p * (torch.log2(p + EPS) - torch.log2(q + EPS)) + (1 - p) * (
        torch.log2(1 - p + EPS) - torch.log2(1 - q + EPS)
    )
    return kl.clamp_min(0)


def mean_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """bBMA (mean confidence): ``u = 1 - |2 p_bar - 1|`` with ``p_bar`` the member mean.

    A triangle in ``p_bar``: 1 at 0.5, 0 at 0 and 1. Range [0, 1]. Defined for
    any H >= 1. Source: docs/method.md, *Uncertainty modes*, mode ``mean``.
    """
    p_bar = _check(probs).mean(dim=0)
    return 1 - (2 * p_bar - 1).abs()


def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Total (predictive) uncertainty ``H2(p_bar)`` in bits. Range [0, 1].

    Source: docs/method.md, *Uncertainty modes*, mode ``predictive``.
    """
    return binary_entropy(_check(probs).mean(dim=0))


def aleatoric_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """Aleatoric uncertainty: the members' mean entropy ``mean_h H2(p_h)``.

    Range [0, 1]; never above :func:`predictive_entropy` (concavity of H2).
    Source: docs/method.md, *Uncertainty modes*, mode ``aleatoric``.
    """
    return binary_entropy(_check(probs)).mean(dim=0)


def _js(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    m = (p + q) / 2
    return 0.5 * _binary_kl(p, m) + 0.5 * _binary_kl(q, m)


def epistemic_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """Epistemic uncertainty as the mean pairwise Jensen-Shannon divergence (bits).

    ``u = 1/(H(H-1)) sum_{h != h'} JS(p_h, p_h')``. Range [0, 1]
    (``JS(0, 1) = 1`` bit). With H = 2 it equals predictive minus aleatoric.
    Members that agree give 0. H = 1 has no disagreement to measure and
    gives 0 (the released code divides by H - 1 = 0). JS is symmetric, so
    each unordered pair is computed once. Source: docs/method.md, *Uncertainty
    modes*, mode ``epistemic``, which also explains why its values are small.
    """
    probs = _check(probs)
    n = probs.shape[0]
    total = torch.zeros_like(probs[0])
    for a in range(n):
        for b in range(a + 1, n):
            total = total + _js(probs[a], probs[b])
    return total * 2 / max(n * (n - 1), 1)


def epistemic_kl_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """Epistemic uncertainty as the mean pairwise KL divergence (bits).

    Same as :func:`epistemic_uncertainty` with ``KL2(p_h || p_h')`` instead of
    JS; range [0, about 33] (unbounded but for eps). H = 1 gives 0.
    Source: docs/method.md, *Uncertainty modes*, mode ``epistemic_kl``.

    The sum over ordered pairs is computed in closed form from each member's
    logarithms, ``sum_{a != b} KL(a || b) = sum_a [p_a (H la_a - La) +
    (1 - p_a)(H lb_a - Lb)]`` with ``la = log2(p + eps)``, ``lb = log2(1 - p + eps)``
    and ``La``, ``Lb`` their sums over members; the released code clamps each
    pair at 0, which only removes rounding error, so we clamp the total.
    """
    probs = _check(probs)
    n = probs.shape[0]
    if n == 1:
        return torch.zeros_like(probs[0])
    la, lb = torch.log2(probs + EPS), torch.log2(1 - probs + EPS)
    total = (probs * (n * la - la.sum(dim=0)) + (1 - probs) * (n * lb - lb.sum(dim=0))).sum(dim=0)
    return total.clamp_min(0) / (n * (n - 1))


def pcs_uncertainty(probs: torch.Tensor) -> torch.Tensor:
    """GMU (gated margin): ``u = 1 - (1 - exp(-SNR)) * |2 p_bar - 1|``.

    ``SNR = |2 p_bar - 1| / (2 sigma + eps)`` with ``sigma`` the unbiased
    standard deviation over members. Range [0, 1]. When the members agree
    (sigma = 0, including H = 1) the gate is 1 and ``u`` equals
    :func:`mean_uncertainty`. (The released code returns ``1 - p`` for H = 1,
    an artefact of its NaN handling; we use the sigma = 0 limit instead.)
    Source: docs/method.md, *Uncertainty modes*, mode ``pcs``; the binary case
    of the gated margin score (VGMU) of the authors' variance-gated distributions.
    """
    probs = _check(probs)
    n = probs.shape[0]
    p_bar = probs.mean(dim=0)
    margin = (2 * p_bar - 1).abs()
    # Unbiased variance written out: torch.std over the short member axis is slow.
    sigma = ((probs - p_bar) ** 2).sum(dim=0).div(max(n - 1, 1)).sqrt()
    snr = margin / (2 * sigma + EPS)
    return 1 - (1 - torch.exp(-snr)) * margin


UNCERTAINTY_MODES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = dict(zip(
    UNCERTAINTY_MODE_NAMES,
    (mean_uncertainty, predictive_entropy, aleatoric_uncertainty, epistemic_uncertainty, epistemic_kl_uncertainty,
     pcs_uncertainty),
    strict=True,
))
"""Mode name (:data:`~hmlc_core.config.UNCERTAINTY_MODE_NAMES`, in its order) -> function (H, B, C) -> (B, C)."""


def uncertainty(probs: torch.Tensor, mode: str, chunk_size: int = 64) -> torch.Tensor:
    """Dispatch to the uncertainty function named ``mode``, ``chunk_size`` samples at a time.

    Chunking gives the same numbers; on a whole test set (GO: 2 x 1278 x
    4126) it keeps the temporaries small and is several times faster than one
    pass.

    Parameters
    ----------
    probs : torch.Tensor, shape (H, B, C), values in [0, 1]
    mode : {"mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "pcs"}
    chunk_size : int, default 64
        Samples per chunk (>= 1).

    Returns
    -------
    torch.Tensor, shape (B, C)

    Raises
    ------
    ValueError
        If ``mode`` is unknown (the valid modes are listed).
    """
    try:
        fn = UNCERTAINTY_MODES[mode]
    except KeyError:
        raise ValueError(f"unknown uncertainty mode {mode!r}; choose one of {sorted(UNCERTAINTY_MODES)}") from None
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if _check(probs).shape[1] <= chunk_size:
        return fn(probs)
    return torch.cat([fn(part) for part in probs.split(chunk_size, dim=1)])
