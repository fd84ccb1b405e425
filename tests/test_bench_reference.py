"""The dense reference of bench/reference.py against the project's sparse, batched implementation.

Equal values and gradients validate the reference as a faithful statement of the
dense MCM and MCLoss, the released weight indexing and the focal factor (docs/method.md,
*MCM and MCLoss*, *Node weights*, *Focal weighting*), and check the project against it.
Small sizes: runs in a few seconds.
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
    ReleasedLoopReference,
    build_member,
    dense_mc_loss,
    dense_mcm,
    dense_peak_bytes,
    dense_R,
    members_from_ensemble,
    released_weights,
    stacked_dense_mcm,
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
def test_stacked_dense_mcm_equals_sparse_mcm_values_and_gradients(h):
    torch.manual_seed(3)
    x = (0.01 + 0.98 * torch.rand(3, 4, h.n_nodes)).requires_grad_(True)  # float32 members, as released
    w = torch.randn(3, 4, h.n_nodes, dtype=torch.float64)
    stacked = stacked_dense_mcm(x, dense_R(h))
    assert stacked.shape == (3, 4, h.n_nodes) and stacked.dtype == torch.float64
    sparse = MCM(h)(x)
    torch.testing.assert_close(stacked, sparse.double())
    g_stacked, = torch.autograd.grad((stacked * w).sum(), x)
    g_sparse, = torch.autograd.grad((sparse.double() * w).sum(), x)
    torch.testing.assert_close(g_stacked, g_sparse)


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


def assert_member_grads_equal(ens: HMCEnsemble, members: list) -> None:
    """Every weight and bias gradient of the reference members equals the ensemble's for that member."""
    for layer, (w, b) in enumerate(zip(ens.weights, ens.biases)):
        for k, member in enumerate(members):
            lin = member[3 * layer]
            torch.testing.assert_close(lin.weight.grad, w.grad[k].T, rtol=1e-4, atol=1e-7)
            torch.testing.assert_close(lin.bias.grad, b.grad[k, 0], rtol=1e-4, atol=1e-7)


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
    assert_member_grads_equal(ens, ref.members)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_released_loop_loss_and_gradients_equal_project_weighted_loss(tiny_dataset, reduction):
    """The released loop's stacked, boolean-masked loss is the same objective as the project's."""
    ds = tiny_dataset
    h = ds.hierarchy
    torch.manual_seed(1)
    ens = HMCEnsemble(ds.n_features, h.n_nodes, hidden=8, n_heads=3, n_layers=3).eval()
    ref = ReleasedLoopReference(ds, heads=3, batch_size=4, hidden=8, reduction=reduction)
    ref.members = members_from_ensemble(ens)
    for m in ref.members:
        m.eval()
    x = torch.from_numpy(ds.train.X[:5]).double()  # the released loop keeps features in float64
    y = torch.from_numpy(ds.train.Y[:5]).double()

    criterion = WeightedMCLoss(h, node_weights(ds.train.Y, h, "class-wise"), "released", "mean", 2.0, 0.25, reduction)
    project_loss = criterion(ens(x.float()), y.float())
    ref_loss = ref.loss(x, y)
    assert ref_loss.dtype == torch.float64
    torch.testing.assert_close(ref_loss.float(), project_loss, rtol=1e-5, atol=1e-7)
    project_loss.backward()
    ref_loss.backward()
    assert_member_grads_equal(ens, ref.members)


def test_released_loop_gathers_the_epoch_and_fast_forwards(tiny_dataset):
    """52 train+valid samples at batch 16: batches 16, 16, 16, 4; the gathered tensors restart each epoch."""
    torch.set_num_threads(1)
    ref = ReleasedLoopReference(tiny_dataset, heads=2, batch_size=16, hidden=8)
    ref.train_mode()
    n_nodes = tiny_dataset.hierarchy.n_nodes
    assert ref.optimizer.defaults["foreach"] is False and ref.n_samples == 52
    before = [p.detach().clone() for p in ref.members[1].parameters()]
    assert np.isfinite([ref.step(), ref.step()]).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, ref.members[1].parameters()))
    assert ref.position == 2 and ref.epoch_probs.shape == (32, n_nodes)
    assert (ref.epoch_predicted.dtype, ref.epoch_probs.dtype, ref.epoch_labels.dtype) == (
        torch.bool, torch.float64, torch.float64)
    assert ((ref.epoch_probs >= 0) & (ref.epoch_probs <= 1)).all()
    ref.fast_forward(1)
    assert ref.position == 3 and ref.epoch_labels.shape == (48, n_nodes)
    ref.step()  # the epoch's last, short batch
    assert ref.last_batch_size == 4 and ref.epoch_predicted.shape == (52, n_nodes)
    ref.step()  # a new epoch
    assert ref.position == 1 and ref.epoch_probs.shape == (16, n_nodes)


def test_bench_centres_the_released_window_on_mid_epoch(tiny_dataset):
    from bench.bench_train import time_reference

    out = time_reference(tiny_dataset, heads=2, batch=4, steps=4, warmup=2, budget_s=60.0, threads=1,
                         loop="released")
    # 13 steps per epoch, a window of 4: it starts at step 13 // 2 - 4 // 2 = 4 of the epoch
    assert out["loop"] == "released" and out["window_start_step_in_epoch"] == 4 and out["steps"] == 4
    lean = time_reference(tiny_dataset, heads=2, batch=4, steps=3, warmup=1, budget_s=60.0, threads=1, loop="lean")
    assert lean["window_start_step_in_epoch"] is None and lean["steps"] == 3


def test_bench_train_reports_medians_over_rounds(tiny_dataset, monkeypatch):
    """Rates are medians over rounds and the ratio the median of the rounds' own ratios."""
    import bench.bench_train as bt

    rates = {"released": iter([10.0, 20.0, 40.0]), "lean": iter([30.0, 30.0, 30.0]),
             "project": iter([100.0, 400.0, 200.0, 50.0])}

    def fake_child(fn_name, **kwargs):
        key = kwargs.get("loop", "project") if fn_name == "time_reference" else "project"
        part = {"samples_per_s": next(rates[key]), "peak_rss_mb": 100.0 + len(key), "steps": 1}
        if fn_name == "time_project":
            part["kernel"] = {"auto": "numba"}.get(kwargs["kernel"], kwargs["kernel"])
        return part

    monkeypatch.setattr(bt, "run_in_child", fake_child)
    rec = bt.bench_train(tiny_dataset, heads=2, batch=4, steps=None, ref_steps=None, warmup=1, budget_s=1.0,
                         threads=1, mem_fraction=0.6, rounds=3)
    assert rec["kernel"] == "numba"
    assert rec["reference_samples_per_s"] == 20.0 and rec["lean_reference_samples_per_s"] == 30.0
    assert rec["project_samples_per_s"] == 200.0
    assert rec["ratio"] == 10.0  # rounds: 100/10, 400/20, 200/40
    assert rec["ratio_lean"] == pytest.approx(200 / 30)
    assert rec["per_round"][1] == {"released": 20.0, "lean": 30.0, "project": 400.0}
    assert rec["reference_skipped_reason"] is None and rec["reference_peak_rss_mb"] == 108.0
    alone = bt.bench_train(tiny_dataset, heads=2, batch=4, steps=None, ref_steps=None, warmup=1, budget_s=1.0,
                           threads=1, mem_fraction=0.6, loops=(), rounds=1, kernel="torch")
    assert alone["reference_samples_per_s"] is None and alone["ratio"] is None and alone["kernel"] == "torch"
    assert alone["project_samples_per_s"] == 50.0
    assert alone["reference_skipped_reason"].startswith("not asked") and "per_round" not in alone


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
    # the released loop stacks the members: 3 x 2 x 4 x C^2 x 8 bytes + R, about 3.4 GB for GO at H = 2
    assert 3 * 2**30 < dense_peak_bytes(4126, 4, stacked_heads=2) < 4 * 2**30


def test_bench_project_clock_drives_the_real_train(tiny_dataset):
    """The benchmark's should_stop clock bounds the real ``train`` and counts partial batches exactly."""
    from bench.bench_train import time_project

    out = time_project(tiny_dataset, heads=2, batch=16, steps=5, warmup=2, budget_s=30.0, threads=1)
    assert out["steps"] == 5 and out["warmup_steps"] == 2 and out["interrupted"]
    # 52 train+valid samples at batch 16 -> batches 16, 16, 16, 4 per epoch; warm-up = steps 0-1,
    # timed = steps 2-6: 16, 4 (end of epoch 1), 16, 16, 16
    assert out["samples"] == 16 + 4 + 16 + 16 + 16
