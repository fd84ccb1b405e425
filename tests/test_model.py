"""MCM against a naive dense reference, and the batched ensemble against separate networks."""

import os

import pytest
import torch

from hmlc_core.hierarchy import Hierarchy
from hmlc_core.model import MCM, HMCEnsemble
from helpers import random_dag


def dense_mcm(x: torch.Tensor, hierarchy: Hierarchy) -> torch.Tensor:
    """Naive reference (docs/method.md, *MCM and MCLoss*): build (..., C, C) and mask non-descendants with -inf."""
    r = torch.as_tensor(hierarchy.ancestor_matrix().T)  # R[j, i]: i is j or a descendant of j
    masked = torch.where(r, x.unsqueeze(-2), torch.tensor(float("-inf"), dtype=x.dtype))
    return masked.max(dim=-1).values


def assert_matches_dense(hierarchy: Hierarchy, x: torch.Tensor) -> None:
    """Both sparse MCM strategies equal the dense reference in values and in gradients of a weighted sum,
    and without autograd (the values-only path used for inference) give exactly the same values."""
    weights = torch.randn(x.shape, dtype=x.dtype)
    x = x.detach().requires_grad_(True)
    dense = dense_mcm(x, hierarchy)
    g_dense, = torch.autograd.grad((dense * weights).sum(), x)
    for strategy, limit in (("pairs", 10**12), ("levels", 0)):
        mcm = MCM(hierarchy)
        mcm.PAIRS_MAX_WORK = limit
        sparse = mcm(x)
        torch.testing.assert_close(sparse, dense, msg=strategy)
        g_sparse, = torch.autograd.grad((sparse * weights).sum(), x)
        torch.testing.assert_close(g_sparse, g_dense, msg=strategy)
        with torch.no_grad():
            inference = mcm(x)
        assert not inference.requires_grad
        assert torch.equal(inference, sparse.detach()), strategy
        assert torch.equal(mcm.values(x), dense.detach()), strategy


TREE = Hierarchy([("root", "1"), ("root", "2"), ("1", "1.1"), ("1", "1.2"), ("1.1", "1.1.1"), ("2", "2.1")])


@pytest.mark.parametrize("hierarchy", [TREE, random_dag(40, 0), random_dag(60, 1)], ids=["tree", "dag40", "dag60"])
def test_mcm_equals_dense_values_and_gradients(hierarchy):
    torch.manual_seed(0)
    assert_matches_dense(hierarchy, torch.randn(3, 5, hierarchy.n_nodes, dtype=torch.float64))


def test_mcm_properties():
    h = random_dag(50, 2)
    mcm = MCM(h)
    z = torch.randn(8, h.n_nodes, dtype=torch.float64)
    out = mcm(z)
    assert h.is_coherent(out.numpy())
    torch.testing.assert_close(mcm(out), out)  # idempotent
    leaves = [h.index[n] for n in h.leaves]
    torch.testing.assert_close(out[:, leaves], z[:, leaves])  # leaves unchanged
    torch.testing.assert_close(torch.sigmoid(out), mcm(torch.sigmoid(z)))  # sigma o MCM = MCM o sigma
    # Masked max, not multiplication by R: all-negative logits stay negative (docs/method.md, *MCM and MCLoss*).
    assert (mcm(-torch.ones(2, h.n_nodes)) == -1).all()


@pytest.mark.parametrize("limit", [10**12, 0], ids=["pairs", "levels"])
def test_mcm_ties_send_the_gradient_to_one_input(limit):
    h = random_dag(30, 3)
    mcm = MCM(h)
    mcm.PAIRS_MAX_WORK = limit
    x = torch.full((2, h.n_nodes), 0.5, requires_grad=True)  # every node ties with every descendant
    out = mcm(x)
    grad, = torch.autograd.grad(out.sum(), x)
    # Each output takes its gradient from exactly one input, and on a tie that input is the node itself.
    torch.testing.assert_close(grad, torch.ones_like(grad))
    assert torch.equal(mcm.argmax(x), torch.arange(h.n_nodes).expand(2, -1))


def test_mcm_rejects_wrong_width():
    with pytest.raises(ValueError, match="nodes"):
        MCM(TREE)(torch.zeros(2, 3))


def test_batched_ensemble_equals_separate_networks():
    torch.manual_seed(0)
    model = HMCEnsemble(n_features=6, n_nodes=9, hidden=7, n_heads=3).eval()
    x = torch.randn(10, 6)
    out = model(x)
    assert out.shape == (3, 10, 9)
    grads_batched = torch.autograd.grad(out.sum(), list(model.parameters()))
    for h in range(3):
        net = model.member_network(h).eval()
        torch.testing.assert_close(out[h], net(x), rtol=1e-5, atol=1e-6)
        grads = torch.autograd.grad(net(x).sum(), list(net.parameters()))
        linear_grads = [g for g in grads]  # weight, bias per linear layer, in order
        for layer in range(3):
            torch.testing.assert_close(grads_batched[layer][h], linear_grads[2 * layer].T, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(grads_batched[3 + layer][h, 0], linear_grads[2 * layer + 1],
                                       rtol=1e-5, atol=1e-6)


def test_ensemble_dropout_and_validation():
    torch.manual_seed(0)
    model = HMCEnsemble(4, 5, hidden=16, n_heads=2, dropout=0.7)
    x = torch.randn(3, 4)
    model.train()
    assert not torch.equal(model(x), model(x))  # dropout active
    model.eval()
    assert torch.equal(model(x), model(x))
    with pytest.raises(ValueError, match="n_heads"):
        HMCEnsemble(4, 5, n_heads=0)
    with pytest.raises(ValueError, match="dropout"):
        HMCEnsemble(4, 5, dropout=1.0)
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(3, 5))


@pytest.mark.parametrize("name", ["cellcycle_FUN", "cellcycle_GO"])
def test_mcm_on_real_hierarchies(name):
    data_dir = os.environ.get("HMLC_DATA_DIR")
    if not data_dir:
        pytest.skip("HMLC_DATA_DIR is not set: the CLUS HMC benchmark data is needed for this test")
    from hmlc_core.data import DatasetNotFoundError, load_dataset

    try:
        h = load_dataset(name, data_dir).hierarchy
    except DatasetNotFoundError as exc:
        pytest.skip(f"{name} not found in HMLC_DATA_DIR: {exc}")
    torch.manual_seed(0)
    assert_matches_dense(h, torch.rand(2, h.n_nodes, dtype=torch.float64))


def test_shared_and_mc_dropout_ensembles():
    torch.manual_seed(0)
    x = torch.randn(6, 5)
    shared = HMCEnsemble(5, 7, hidden=8, n_heads=3, kind="shared").eval()
    assert shared.weights[0].shape[0] == 1 and shared.weights[1].shape[0] == 3
    out = shared(x)
    assert out.shape == (3, 6, 7) and not torch.allclose(out[0], out[1])
    for h in range(3):
        torch.testing.assert_close(out[h], shared.member_network(h).eval()(x))
    mc = HMCEnsemble(5, 7, hidden=8, n_heads=4, kind="mc-dropout", dropout=0.5).eval()
    assert all(w.shape[0] == 1 for w in mc.weights)
    n_params = sum(p.numel() for p in mc.parameters())
    assert n_params * 4 == sum(p.numel() for p in HMCEnsemble(5, 7, hidden=8, n_heads=4).parameters())
    members = mc(x)
    assert members.shape == (4, 6, 7)
    assert not torch.allclose(members[0], members[1])  # dropout stays on at test time
    with pytest.raises(ValueError, match="mc-dropout"):
        HMCEnsemble(5, 7, kind="mc-dropout", dropout=0.0)
    with pytest.raises(ValueError, match="kind"):
        HMCEnsemble(5, 7, kind="forest")
