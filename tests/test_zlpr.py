"""ZLPR (Su et al. 2022) against its definition and known identities: softplus for one label, at most the summed
BCE, stable limits, the soft loss's minimiser and minimum (docs/method.md, *ZLPR*)."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import (
    NodeWeights,
    WeightedZLPRLoss,
    hierarchical_scores,
    select_weights,
    zlpr_loss,
)
from hmlc_core.model import MCM


def naive_zlpr(s: torch.Tensor, t: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
    """log(1 + sum_i w_i t_i e^-s_i) + log(1 + sum_i w_i (1 - t_i) e^s_i), per row (moderate scores only)."""
    w = torch.ones_like(s) if w is None else w
    return torch.log1p((w * t * torch.exp(-s)).sum(-1)) + torch.log1p((w * (1 - t) * torch.exp(s)).sum(-1))


def test_single_label_is_softplus():
    s = torch.tensor([[-3.0], [0.0], [2.5]], dtype=torch.float64)
    torch.testing.assert_close(zlpr_loss(s, torch.ones(3, 1, dtype=torch.float64), reduction="none"),
                               F.softplus(-s[:, 0]))
    torch.testing.assert_close(zlpr_loss(s, torch.zeros(3, 1, dtype=torch.float64), reduction="none"),
                               F.softplus(s[:, 0]))


def test_hard_loss_matches_definition_and_is_below_summed_bce():
    torch.manual_seed(0)
    s = torch.randn(6, 9, dtype=torch.float64) * 3
    y = (torch.rand(6, 9) < 0.4).double()
    got = zlpr_loss(s, y, reduction="none")
    torch.testing.assert_close(got, naive_zlpr(s, y))
    bce = F.binary_cross_entropy_with_logits(s, y, reduction="none").sum(-1)
    assert (got <= bce + 1e-12).all() and (got >= 0).all()


def test_limits_and_stability():
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert zlpr_loss(torch.tensor([[60.0, 60.0, -60.0, -60.0]]), y).item() < 1e-20
    big = torch.tensor([[1e4, -1e4, 1e4, -1e4]], requires_grad=True)
    loss = zlpr_loss(big, y)
    grad, = torch.autograd.grad(loss, big)
    assert torch.isfinite(loss) and torch.isfinite(grad).all()
    assert loss.item() == pytest.approx(2e4, rel=1e-6)  # the wrong-side negative and positive dominate


def test_soft_targets_match_definition_and_have_the_known_minimiser():
    torch.manual_seed(1)
    s = torch.randn(3, 5, dtype=torch.float64)
    t = torch.tensor([[0.1, 0.3, 0.6, 0.9]], dtype=torch.float64)
    torch.testing.assert_close(zlpr_loss(s[:1, :4], t, reduction="none"), naive_zlpr(s[:1, :4], t))
    s_star = (0.5 * torch.log(t / (1 - t))).requires_grad_(True)
    value = zlpr_loss(s_star, t)
    grad, = torch.autograd.grad(value, s_star)
    assert grad.abs().max() < 1e-12
    assert value.item() == pytest.approx(2 * math.log(1 + torch.sqrt(t * (1 - t)).sum().item()))


def test_log_weight_scales_each_term():
    s = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([[2.0, 0.5, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(zlpr_loss(s, y, torch.log(w), reduction="none"), naive_zlpr(s, y, w))


def test_hierarchical_scores_by_hand():
    h = Hierarchy([("root", "a"), ("a", "b"), ("root", "c")])  # columns root, a, c, b
    z = torch.tensor([[0.5, -1.0, 0.2, 3.0]])
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # a positive, its child b negative
    scores = hierarchical_scores(z, y, MCM(h))
    # root (positive): max over positive descendants {root, a} = 0.5; a (positive): only a itself = -1.0;
    # c (negative): max over {c} = 0.2; b (negative): 3.0
    torch.testing.assert_close(scores, torch.tensor([[0.5, -1.0, 0.2, 3.0]]))
    y2 = torch.tensor([[1.0, 1.0, 0.0, 1.0]])
    torch.testing.assert_close(hierarchical_scores(z, y2, MCM(h)), torch.tensor([[3.0, 3.0, 0.2, 3.0]]))


def test_weighted_zlpr_combines_the_pieces():
    h = Hierarchy([("root", "a"), ("a", "b"), ("root", "c")])
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, dtype=torch.float32)
    y = torch.from_numpy(h.label_matrix([["b"], ["c"], []]).astype(np.float32))
    weights = NodeWeights(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    crit = WeightedZLPRLoss(h, weights, "released", focal="mean", focal_k=2.0, focal_min=0.25,
                            label_smoothing=0.1)
    probs = torch.sigmoid(logits)
    focal = 0.25 + (1 - (2 * probs.mean(0) - 1).abs()) ** 2
    w = select_weights(y, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.ones(4), "released") * focal
    evaluated = torch.tensor([1, 2, 3])
    soft = (y * 0.9 + (1 - y) * 0.1)[:, evaluated]
    want = zlpr_loss(hierarchical_scores(logits, y, MCM(h))[..., evaluated], soft, torch.log(w[:, evaluated]))
    torch.testing.assert_close(crit(logits, y), want)
    with pytest.raises(ValueError, match="label_smoothing"):
        WeightedZLPRLoss(h, label_smoothing=0.5)
