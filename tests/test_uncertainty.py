"""Uncertainty modes against independent reference values, end points and identities (docs/method.md,
*Uncertainty modes*; the focal factor is tested in test_losses.py)."""

import pytest
import torch

from hmlc_core.uncertainty import (
    UNCERTAINTY_MODES,
    binary_entropy,
    epistemic_uncertainty,
    mean_uncertainty,
    pcs_uncertainty,
    predictive_entropy,
    aleatoric_uncertainty,
    uncertainty,
)

ORDER = ["mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "pcs"]
# The worked examples of docs/method.md, *Uncertainty modes*: members -> expected values in ORDER.
REFERENCE = [
    ([0.2, 0.8], [1.0, 1.0, 0.7219, 0.2781, 1.2000, 1.0]),
    ([0.9, 0.7], [0.4, 0.7219, 0.6751, 0.0468, 0.1948, 0.4719]),
    ([0.1, 0.3, 0.2, 0.4], [0.5, 0.8113, 0.7608, 0.0342, 0.1422, 0.5721]),
]


def members(values):
    return torch.tensor(values, dtype=torch.float64).view(-1, 1, 1)


@pytest.mark.parametrize("values,expected", REFERENCE)
def test_reference_values(values, expected):
    p = members(values)
    for mode, want in zip(ORDER, expected):
        got = uncertainty(p, mode)
        assert got.shape == (1, 1)
        assert got.item() == pytest.approx(want, abs=1e-4), mode


def test_binary_entropy_points():
    h = binary_entropy(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
    assert h.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-9)
    p = torch.rand(100, dtype=torch.float64)
    torch.testing.assert_close(binary_entropy(p), binary_entropy(1 - p))


def test_mean_is_triangle():
    got = mean_uncertainty(members([0.5, 0.5]))
    assert got.item() == pytest.approx(1.0)
    for p, want in [(0.0, 0.0), (1.0, 0.0), (0.75, 0.5)]:
        assert mean_uncertainty(members([p])).item() == pytest.approx(want)


def test_family_identities():
    torch.manual_seed(0)
    two = torch.rand(2, 7, 5, dtype=torch.float64)
    # JS(0, 1) = 1 bit.
    assert epistemic_uncertainty(members([0.0, 1.0])).item() == pytest.approx(1.0, abs=1e-6)
    # H = 2: epistemic = predictive - aleatoric.
    torch.testing.assert_close(epistemic_uncertainty(two), predictive_entropy(two) - aleatoric_uncertainty(two))
    many = torch.rand(5, 7, 5, dtype=torch.float64)
    assert (predictive_entropy(many) >= aleatoric_uncertainty(many) - 1e-12).all()
    e = epistemic_uncertainty(many)
    assert ((e >= 0) & (e <= 1)).all()


def test_identical_members_and_single_member():
    p = torch.rand(1, 4, 3, dtype=torch.float64)
    same = p.expand(3, -1, -1)
    assert epistemic_uncertainty(same).abs().max() < 1e-9
    torch.testing.assert_close(pcs_uncertainty(same), mean_uncertainty(same))
    # H = 1: no disagreement; GMU falls back to bBMA.
    assert epistemic_uncertainty(p).abs().max() == 0
    torch.testing.assert_close(pcs_uncertainty(p), mean_uncertainty(p))


def test_shapes_and_errors():
    p = torch.rand(3, 4, 5)
    for mode in UNCERTAINTY_MODES:
        out = uncertainty(p, mode)
        assert out.shape == (4, 5) and out.dtype == p.dtype
    with pytest.raises(ValueError, match="unknown uncertainty mode"):
        uncertainty(p, "nope")
    with pytest.raises(ValueError, match=r"\(H, B, C\)"):
        mean_uncertainty(torch.rand(4, 5))


def naive_pairwise(probs, divergence):
    """Direct definition (docs/method.md, *Uncertainty modes*): mean over ordered pairs h != h'."""
    n = probs.shape[0]
    pairs = [divergence(probs[a], probs[b]) for a in range(n) for b in range(n) if a != b]
    return torch.stack(pairs).mean(dim=0)


def test_pairwise_modes_match_the_naive_definition():
    eps = 1e-10

    def kl(p, q):
        return (p * (torch.log2(p + eps) - torch.log2(q + eps))
                + (1 - p) * (torch.log2(1 - p + eps) - torch.log2(1 - q + eps))).clamp_min(0)

    def js(p, q):
        m = (p + q) / 2
        return 0.5 * kl(p, m) + 0.5 * kl(q, m)

    torch.manual_seed(1)
    probs = torch.rand(5, 6, 7, dtype=torch.float64)
    probs[:, 0, 0] = torch.tensor([0.0, 1.0, 0.5, 1.0, 0.0])  # extremes
    torch.testing.assert_close(uncertainty(probs, "epistemic"), naive_pairwise(probs, js))
    torch.testing.assert_close(uncertainty(probs, "epistemic_kl"), naive_pairwise(probs, kl))


def test_chunked_dispatch_equals_one_pass():
    probs = torch.rand(3, 50, 4)
    for mode, fn in UNCERTAINTY_MODES.items():
        torch.testing.assert_close(uncertainty(probs, mode, chunk_size=7), fn(probs), rtol=0, atol=0)
    with pytest.raises(ValueError, match="chunk_size"):
        uncertainty(probs, "mean", chunk_size=0)
