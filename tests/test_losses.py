"""MCLoss, node weights, weight indexing and the focal factor on hand-computed cases."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import (
    NodeWeights,
    WeightedMCLoss,
    focal_weight,
    mc_loss,
    node_frequencies,
    node_weights,
    schedule_fraction,
    select_weights,
)
from hmlc_core.model import MCM

# root -> a -> b ; root -> c.  Column order: root, a, c, b.
H = Hierarchy([("root", "a"), ("a", "b"), ("root", "c")])


def bce(p, y):
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_mc_loss_hand_computed():
    assert H.nodes == ["root", "a", "c", "b"]
    h = torch.tensor([[0.9, 0.3, 0.2, 0.6]], dtype=torch.float64)  # root, a, c, b
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)  # a positive, b negative
    # a (positive): max over positive descendants {a} -> 0.3 (b is negative, so not 0.6)
    # c (negative): max over {c} -> 0.2 ; b (negative): max over {b} -> 0.6
    expected = (bce(0.3, 1) + bce(0.2, 0) + bce(0.6, 0)) / 3
    mask = torch.tensor(H.eval_mask)
    got = mc_loss(h, y, MCM(H), mask)
    assert got.item() == pytest.approx(expected)
    # Now b is positive too: a's score becomes max(0.3, 0.6) = 0.6.
    y2 = torch.tensor([[1.0, 1.0, 0.0, 1.0]], dtype=torch.float64)
    expected2 = (bce(0.6, 1) + bce(0.2, 0) + bce(0.6, 1)) / 3
    assert mc_loss(h, y2, MCM(H), mask).item() == pytest.approx(expected2)
    assert mc_loss(h, y2, MCM(H), mask, reduction="sum").item() == pytest.approx(3 * expected2)


def _two_pass_mc_loss(h, y, mcm, eval_idx):
    """MCLoss as docs/method.md, *MCM and MCLoss*, writes it: two MCM passes, ``o = (1 - y) MCM(h) + y MCM(y h)``."""
    constrained, constrained_pos = mcm(h), mcm(y * h)
    out = ((1 - y) * constrained + y * constrained_pos)[..., eval_idx]
    return F.binary_cross_entropy(out, y[:, eval_idx].expand_as(out), reduction="none")


def _assert_bitwise_equal_to_formula(probs, y, mcm, eval_idx, reference_mcm=None):
    """mc_loss equals the two-pass formula on the same MCM bit for bit, values and gradients; returns the gradient.

    With ``reference_mcm`` (another arg-max strategy) the values must also equal the formula's on it;
    gradients are not compared there, since the strategies may send an exact tie's gradient to
    different descendants.
    """
    ours = mc_loss(probs, y, mcm, eval_idx, reduction="none")
    want = _two_pass_mc_loss(probs, y, mcm, eval_idx)
    assert torch.equal(ours, want)
    if reference_mcm is not None:
        assert torch.equal(ours, _two_pass_mc_loss(probs, y, reference_mcm, eval_idx))
    g_ours, = torch.autograd.grad(ours.sum(), probs)
    g_want, = torch.autograd.grad(want.sum(), probs)
    assert torch.equal(g_ours, g_want)
    return g_ours


@pytest.mark.parametrize("strategy", ["pairs", "levels"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mc_loss_single_pass_equals_the_two_pass_formula(seed, strategy):
    """With coherent labels mc_loss takes one arg-max pass; values and gradients equal the formula's, ties included.

    Both arg-max strategies see the integer keys: pairs (small batches) and levels (large batches, GO).
    """
    from helpers import random_dag

    h = random_dag(60, seed)
    mcm = MCM(h)
    mcm.PAIRS_MAX_WORK = 10**9 if strategy == "pairs" else 0
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(h.propagate((rng.random((7, h.n_nodes)) < 0.1).astype(np.uint8))).double()
    assert mcm.is_coherent(y)
    probs = torch.from_numpy(rng.random((3, 7, h.n_nodes)))
    if seed == 2:  # many exact ties between a node and its descendants
        probs = (probs * 4).round().clamp(1, 3) / 4
    probs.requires_grad_(True)
    pairs_only = MCM(h)
    pairs_only.PAIRS_MAX_WORK = 10**9
    _assert_bitwise_equal_to_formula(probs, y, mcm, torch.from_numpy(np.flatnonzero(h.eval_mask)), pairs_only)


def test_mc_loss_single_pass_is_exact_in_float32():
    """Two negative descendants one float32 ulp apart: the single pass must still pick the larger one.

    (Shifting the negatives by an arithmetic offset, e.g. ``h - 2``, rounds both to the same float32
    and lets the tie-break pick the smaller one.)
    """
    h4 = Hierarchy([("root", "a"), ("a", "b"), ("a", "d")])
    mcm = MCM(h4)
    col = h4.index
    low, high = sorted((col["b"], col["d"]))
    probs = torch.zeros(1, 4)
    probs[0, col["root"]], probs[0, col["a"]] = 0.9, 0.1
    # float32 spacing is 2**-25 in [0.25, 0.5) and 2**-23 in [1, 2): these two differ by one ulp
    probs[0, high] = 0.25 + 2.0**-23
    probs[0, low] = 0.25 + 2.0**-23 + 2.0**-25  # the larger value on the lower index
    assert probs[0, low] > probs[0, high]
    assert (probs[0, low] - 2) == (probs[0, high] - 2)  # what an arithmetic shift would tie
    probs.requires_grad_(True)
    y = torch.zeros(1, 4)
    y[0, col["root"]] = 1.0
    grad = _assert_bitwise_equal_to_formula(probs, y, mcm, torch.from_numpy(np.flatnonzero(h4.eval_mask)))
    assert grad[0, low] != 0 and grad[0, col["a"]] == 0


def test_mc_loss_incoherent_labels_fall_back_to_the_formula():
    # root -> a -> {b, d}; b positive under a negative a. The formula scores a by the max over all its
    # descendants (d: 0.7); one pass with the negatives ranked below the positives would pick b (0.2).
    h4 = Hierarchy([("root", "a"), ("a", "b"), ("a", "d")])
    mcm = MCM(h4)
    col = h4.index
    probs = torch.zeros(1, 4, dtype=torch.float64)
    for node, value in (("root", 0.9), ("a", 0.3), ("b", 0.2), ("d", 0.7)):
        probs[0, col[node]] = value
    probs.requires_grad_(True)
    y = torch.zeros(1, 4, dtype=torch.float64)
    y[0, col["root"]] = y[0, col["b"]] = 1.0
    assert not mcm.is_coherent(y)
    eval_idx = torch.from_numpy(np.flatnonzero(h4.eval_mask))
    ours = mc_loss(probs, y, mcm, eval_idx, reduction="none")
    torch.testing.assert_close(ours, _two_pass_mc_loss(probs, y, mcm, eval_idx))
    a = int(np.flatnonzero(eval_idx.numpy() == col["a"])[0])
    assert ours[0, a].item() == pytest.approx(bce(0.7, 0))


def test_mc_loss_all_negative_is_bce_of_constrained():
    torch.manual_seed(0)
    mcm = MCM(H)
    h = torch.rand(2, 5, 4, dtype=torch.float64)
    y = torch.zeros(5, 4, dtype=torch.float64)
    want = F.binary_cross_entropy(mcm(h), y.expand(2, 5, 4))
    torch.testing.assert_close(mc_loss(h, y, mcm), want)


def test_mc_loss_weight_and_errors():
    mcm = MCM(H)
    h = torch.full((1, 4), 0.4, dtype=torch.float64)
    y = torch.zeros(1, 4, dtype=torch.float64)
    w = torch.tensor([[5.0, 2.0, 2.0, 2.0]], dtype=torch.float64)
    mask = torch.tensor(H.eval_mask)
    # every evaluated entry is bce(0.4, 0) times 2; root (weight 5) is not evaluated
    assert mc_loss(h, y, mcm, mask, w).item() == pytest.approx(2 * bce(0.4, 0))
    with pytest.raises(ValueError, match="do not match"):
        mc_loss(h, torch.zeros(1, 3), mcm)
    with pytest.raises(ValueError, match="reduction"):
        mc_loss(h, y, mcm, reduction="max")


def test_node_frequencies_by_hand():
    # samples: {b} -> root,a,b ; {c} -> root,c ; {a} -> root,a
    y = H.label_matrix([["b"], ["c"], ["a"]])
    prop = node_frequencies(y, H, "propagated")
    np.testing.assert_array_equal(prop, [3, 2, 1, 1])  # root, a, c, b
    # descendant-sum: root = 3+2+1+1, a = 2+1, c = 1, b = 1
    np.testing.assert_array_equal(node_frequencies(y, H, "descendant-sum"), [7, 3, 1, 1])
    with pytest.raises(ValueError, match="counting"):
        node_frequencies(y, H, "bogus")


def test_node_weights_class_wise_by_hand():
    y = H.label_matrix([["b"], ["c"], ["a"]])
    w = node_weights(y, H, "class-wise", omega=0.25, counting="propagated")
    # N = 3, K = C = 4; f = [3, 2, 1, 1]: root has f = N -> raw 1; others N/(K f).
    raw = np.array([1.0, 3 / 8, 3 / 4, 3 / 4])
    lo, hi = raw.min(), raw.max()
    np.testing.assert_allclose(w.positive, 0.25 + hi * (raw - lo) / (hi - lo))
    assert w.positive.min() == pytest.approx(0.25)  # the smallest raw weight gets omega
    np.testing.assert_array_equal(w.negative, np.ones(4))  # negative weights stay 1 by default
    # binary: K = 2
    wb = node_weights(y, H, "binary", omega=0.25, counting="propagated")
    raw_b = np.array([1.0, 3 / 4, 3 / 2, 3 / 2])
    np.testing.assert_allclose(wb.positive, 0.25 + 1.5 * (raw_b - 0.75) / 0.75)
    # a zero-frequency node (b) and an always-positive node (root) get raw weight 1
    y0 = H.label_matrix([["a"], ["c"], ["a"]])
    w0 = node_weights(y0, H, "class-wise", omega=0.25, counting="propagated")
    raw0 = np.array([1.0, 3 / 8, 3 / 4, 1.0])  # root f=3=N, a f=2, c f=1, b f=0
    np.testing.assert_allclose(w0.positive, 0.25 + 1.0 * (raw0 - 3 / 8) / (1 - 3 / 8))
    np.testing.assert_array_equal(node_weights(y, H, "none").positive, np.ones(4))
    common = node_weights(y, H, "class-wise", common=True)
    np.testing.assert_array_equal(common.negative, common.positive)
    with pytest.raises(ValueError, match="omega"):
        node_weights(y, H, omega=-1)


def test_select_weights_indexing_example():
    # The worked example of docs/method.md, *Node weights*: released indexing swaps the two weights.
    pos = torch.tensor([10.0, 20.0, 30.0])
    neg = torch.ones(3)
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    released = select_weights(y, pos, neg, "released")
    intended = select_weights(y, pos, neg, "intended")
    assert released.tolist() == [[1, 20, 1], [10, 1, 30]]
    assert intended.tolist() == [[10, 1, 30], [1, 20, 1]]
    with pytest.raises(ValueError, match="indexing"):
        select_weights(y, pos, neg, "other")


def test_focal_weight_range_and_no_gradient():
    u = torch.linspace(0, 1, 11, requires_grad=True)
    f = focal_weight(u, k=2, focal_min=0.25)
    assert f.min().item() == pytest.approx(0.25) and f.max().item() == pytest.approx(1.25)
    assert f[5].item() == pytest.approx(0.25 + 0.25)
    assert not f.requires_grad
    with pytest.raises(ValueError, match="k"):
        focal_weight(u, k=0)


def test_weighted_mc_loss_combines_weights_and_focal():
    torch.manual_seed(0)
    probs = torch.rand(2, 3, 4)
    y = H.label_matrix([["b"], ["c"], []]).astype(np.float32)
    y = torch.from_numpy(y)
    mask = torch.tensor(H.eval_mask)
    plain = WeightedMCLoss(H)
    torch.testing.assert_close(plain(probs, y), mc_loss(probs, y, MCM(H), mask))
    weights = NodeWeights(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    full = WeightedMCLoss(H, weights, "intended", focal="mean", focal_k=1.0, focal_min=0.5)
    p_bar = probs.mean(0)
    focal = 0.5 + (1 - (2 * p_bar - 1).abs())
    w = torch.where(y > 0.5, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.ones(4)) * focal
    torch.testing.assert_close(full(probs, y), mc_loss(probs, y, MCM(H), mask, w))
    with pytest.raises(ValueError, match="focal"):
        WeightedMCLoss(H, focal="bogus")


def test_schedule_end_points():
    # docs/method.md, *LPROS, schedules and the mixed loss*: lin gives w0 at batch 0 and omega at batch n-1;
    # alt puts every weight at omega on odd batches.
    n = 7
    assert schedule_fraction("lin", 0, n) == 0.0 and schedule_fraction("lin", n - 1, n) == 1.0
    assert schedule_fraction("lin", 3, n) == pytest.approx(0.5)
    assert schedule_fraction("exp", 0, n) == 0.0 and schedule_fraction("exp", n - 1, n) == 1.0
    assert schedule_fraction("exp", 3, n, k=3) == pytest.approx(0.125)
    assert [schedule_fraction("alt", i, n) for i in range(4)] == [0.0, 1.0, 0.0, 1.0]
    assert schedule_fraction("none", 5, n) == 0.0
    with pytest.raises(ValueError, match="schedule"):
        schedule_fraction("cosine", 0, n)
    with pytest.raises(ValueError, match="step"):
        schedule_fraction("lin", 7, n)


def test_mixed_loss_interpolates_weighted_and_plain():
    torch.manual_seed(3)
    probs = torch.rand(2, 3, 4, dtype=torch.float64)
    y = torch.from_numpy(H.label_matrix([["b"], ["c"], []]).astype(np.float64))
    weights = NodeWeights(np.array([1.0, 2.0, 3.0, 4.0]), np.ones(4))
    weighted = WeightedMCLoss(H, weights, "intended", focal="mean")(probs, y)
    plain = WeightedMCLoss(H)(probs, y)
    for lam in (0.0, 0.3, 1.0):
        mixed = WeightedMCLoss(H, weights, "intended", focal="mean", mixed_lambda=lam)(probs, y)
        torch.testing.assert_close(mixed, lam * weighted + (1 - lam) * plain)
    with pytest.raises(ValueError, match="mixed_lambda"):
        WeightedMCLoss(H, weights, mixed_lambda=1.5)
