"""The dense reference of bench/reference.py against the project's sparse, batched implementation.

Equal values and gradients validate the reference as a faithful statement of
METHOD.md B3/B4 (dense MCM, MCLoss), D5 (released weight indexing) and E1/E2
(focal factor), and check the project against it. Small sizes: runs in a few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.reference import (  # noqa: E402
    DenseReference,
    PairLoader,
    build_member,
    dense_mc_loss,
    dense_mcm,
    dense_peak_bytes,
    dense_R,
    members_from_ensemble,
    released_weights,
)
from hmlc_core.hierarchy import Hierarchy  # noqa: E402
from hmlc_core.losses import WeightedMCLoss, mc_loss, node_weights, select_weights  # noqa: E402
from hmlc_core.model import MCM, HMCEnsemble  # noqa: E402
from hmlc_core.synthetic import make_synthetic  # noqa: E402
from helpers import random_dag  # noqa: E402


def random_labels(h: Hierarchy, n: int, seed: int) -> torch.Tensor:
    """Coherent labels: random leaf-ish terms propagated to their ancestors."""
    rng = np.random.default_rng(seed)
    raw = (rng.random((n, h.n_nodes)) < 0.08).astype(np.uint8)
    return torch.from_numpy(h.propagate(raw)).double()


DAGS = [random_dag(30, 0), random_dag(45, 1)]


def test_dense_R_is_the_transposed_ancestor_matrix():
    h = DAGS[0]
    R = dense_R(h)
    assert R.shape == (1, h.n_nodes, h.n_nodes) and R.dtype == torch.float64
    for node in h.nodes[:10]:
        j = h.index[node]
        below = {j} | {h.index[d] for d in h.descendants(node)}
        assert set(torch.nonzero(R[0, j]).flatten().tolist()) == below


@pytest.mark.parametrize("h", DAGS, ids=["dag30", "dag45"])
def test_dense_mcm_equals_sparse_mcm_values_and_gradients(h):
    torch.manual_seed(0)
    x = (0.01 + 0.98 * torch.rand(6, h.n_nodes, dtype=torch.float64)).requires_grad_(True)
    w = torch.randn(6, h.n_nodes, dtype=torch.float64)
    dense = dense_mcm(x, dense_R(h))
    sparse = MCM(h)(x)
    torch.testing.assert_close(dense, sparse)
    g_dense, = torch.autograd.grad((dense * w).sum(), x)
    g_sparse, = torch.autograd.grad((sparse * w).sum(), x)
    torch.testing.assert_close(g_dense, g_sparse)
    # the ensemble form (H, B, C) of the project equals the per-member loop of the reference
    xs = torch.rand(3, 4, h.n_nodes, dtype=torch.float64)
    torch.testing.assert_close(MCM(h)(xs), torch.stack([dense_mcm(xs[k], dense_R(h)) for k in range(3)]))


@pytest.mark.parametrize("h", DAGS, ids=["dag30", "dag45"])
def test_dense_mc_loss_equals_project_mc_loss_values_and_gradients(h):
    torch.manual_seed(1)
    y = random_labels(h, 8, seed=2)
    probs = (0.02 + 0.96 * torch.rand(8, h.n_nodes, dtype=torch.float64)).requires_grad_(True)
    weight = torch.rand(8, h.n_nodes, dtype=torch.float64) + 0.5
    eval_mask = torch.from_numpy(h.eval_mask.copy())
    eval_idx = torch.from_numpy(np.flatnonzero(h.eval_mask))

    dense = dense_mc_loss(probs, y, dense_R(h), eval_idx) * weight[:, eval_idx]
    sparse = mc_loss(probs, y, MCM(h), eval_mask, weight, reduction="none")
    torch.testing.assert_close(dense, sparse)
    g_dense, = torch.autograd.grad(dense.sum(), probs)
    g_sparse, = torch.autograd.grad(sparse.sum(), probs)
    torch.testing.assert_close(g_dense, g_sparse)
    assert g_dense.abs().sum() > 0


def test_released_weights_match_project_select_weights():
    h = DAGS[1]
    y = random_labels(h, 10, seed=3)
    pos = torch.rand(h.n_nodes) + 1.0
    neg = torch.rand(h.n_nodes)
    eval_idx = torch.from_numpy(np.flatnonzero(h.eval_mask))
    ours = released_weights(y, torch.stack([pos, neg]), eval_idx)
    torch.testing.assert_close(ours, select_weights(y, pos, neg, "released")[:, eval_idx])
    # the literal D5 behaviour: a negative entry gets the positive weight
    b, j = np.argwhere(y[:, eval_idx].numpy() == 0)[0]
    assert ours[b, j] == pos[eval_idx[j]]


def test_reference_members_equal_the_project_ensemble():
    torch.manual_seed(0)
    ens = HMCEnsemble(7, 11, hidden=9, n_heads=3, n_layers=3, dropout=0.7).eval()
    members = members_from_ensemble(ens)
    assert [type(m) for m in members[0]] == [type(m) for m in build_member(7, 9, 11)]
    x = torch.randn(5, 7)
    out = ens(x)
    for k, member in enumerate(members):
        torch.testing.assert_close(member.eval()(x), out[k])


@pytest.fixture(scope="module")
def tiny_dataset():
    return make_synthetic(n_train=40, n_valid=12, n_test=10, n_features=6, depth=3, branching=3, seed=0)


def test_reference_loss_and_gradients_equal_project_weighted_loss(tiny_dataset):
    """End to end: same weights, same batch -> same focal/weighted loss and same parameter gradients."""
    ds = tiny_dataset
    h = ds.hierarchy
    torch.manual_seed(0)
    ens = HMCEnsemble(ds.n_features, h.n_nodes, hidden=8, n_heads=2, n_layers=3).eval()  # dropout off
    ref = DenseReference(ds, heads=2, batch_size=4, hidden=8)
    ref.members = members_from_ensemble(ens)
    for m in ref.members:
        m.eval()
    x = torch.from_numpy(ds.train.X[:6])
    y = torch.from_numpy(ds.train.Y[:6]).float()

    criterion = WeightedMCLoss(h, node_weights(ds.train.Y, h, "class-wise"), "released", "mean", 2.0, 0.25, "mean")
    project_loss = criterion(ens(x), y)
    ref_loss = ref.loss(x, y)
    torch.testing.assert_close(ref_loss.float(), project_loss, rtol=1e-5, atol=1e-7)

    project_loss.backward()
    ref_loss.backward()
    for layer, (w, b) in enumerate(zip(ens.weights, ens.biases)):
        for k, member in enumerate(ref.members):
            lin = member[3 * layer]
            torch.testing.assert_close(lin.weight.grad, w.grad[k].T, rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(lin.bias.grad, b.grad[k, 0], rtol=1e-4, atol=1e-7)


def test_pair_loader_shuffles_every_epoch_and_stacks(tiny_dataset):
    ds = tiny_dataset
    loader = PairLoader(ds.train.X, ds.train.Y, batch_size=16)
    batches = iter(loader)
    sizes, first_rows = [], []
    for _ in range(3):  # one epoch of 40 samples: 16, 16, 8
        x, y = next(batches)
        sizes.append(x.shape[0])
        first_rows.append(x[0].clone())
        assert x.dtype == torch.float32 and y.shape == (x.shape[0], ds.hierarchy.n_nodes)
    assert sizes == [16, 16, 8]
    x, _ = next(batches)  # a new epoch
    assert x.shape[0] == 16


def test_dense_reference_steps_with_finite_loss(tiny_dataset):
    torch.set_num_threads(1)
    ref = DenseReference(tiny_dataset, heads=2, batch_size=4, hidden=8)
    ref.train_mode()
    before = [p.detach().clone() for p in ref.members[0].parameters()]
    losses = [ref.step() for _ in range(3)]
    assert all(np.isfinite(losses)) and isinstance(losses[0], float)
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.members[0].parameters()))
    assert ref.optimizer.defaults["foreach"] is False


def test_dense_memory_estimate_flags_go_batch_64():
    assert dense_peak_bytes(4126, 4) < 2 * 2**30  # GO at batch 4: runs (about 1.7 GB)
    assert dense_peak_bytes(4126, 64) > 24 * 2**30  # GO at batch 64: does not fit a 24 GB machine


def test_bench_project_clock_drives_the_real_train(tiny_dataset):
    """The benchmark's should_stop clock bounds the real ``train`` and counts partial batches exactly."""
    from bench.bench_train import time_project

    out = time_project(tiny_dataset, heads=2, batch=16, steps=5, warmup=2, budget_s=30.0, threads=1)
    assert out["steps"] == 5 and out["warmup_steps"] == 2 and out["interrupted"]
    # 52 train+valid samples at batch 16 -> batches 16, 16, 16, 4 per epoch; warm-up = steps 0-1,
    # timed = steps 2-6: 16, 4 (end of epoch 1), 16, 16, 16
    assert out["samples"] == 16 + 4 + 16 + 16 + 16
