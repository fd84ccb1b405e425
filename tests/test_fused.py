"""The fused numba training step against autograd and torch.optim.Adam (the independent reference)."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hmlc_core.fused import FusedAdamEnsemble
from hmlc_core.losses import WeightedMCLoss, node_weights
from hmlc_core.model import ENSEMBLE_KINDS, HMCEnsemble
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train


def _twins(kind: str, n_features: int = 12, n_nodes: int = 9, hidden: int = 24, heads: int = 3,
           dropout: float = 0.5) -> tuple[HMCEnsemble, HMCEnsemble]:
    a = HMCEnsemble(n_features, n_nodes, hidden, heads, 3, dropout, generator=torch.Generator().manual_seed(0),
                    kind=kind)
    b = HMCEnsemble(n_features, n_nodes, hidden, heads, 3, dropout, kind=kind)
    b.load_state_dict(a.state_dict())
    return a, b


@pytest.mark.parametrize("kind", ENSEMBLE_KINDS)
def test_forward_equals_the_models_batched_matmuls(kind):
    model, _ = _twins(kind)
    fused = FusedAdamEnsemble(model, lr=1e-3)
    x = torch.randn(5, 12)
    x[:, :4] = 0.0  # whole input columns of zeros: rows of W the kernel skips
    for seed in (0, 1):
        torch.manual_seed(seed)
        expected = model.logits(x)
        torch.manual_seed(seed)
        got = fused.logits(x)
        assert got.shape == expected.shape == (3, 5, 9)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    torch.manual_seed(2)
    probs = fused(x).detach()
    torch.manual_seed(2)
    torch.testing.assert_close(probs, torch.sigmoid(fused.logits(x)).detach())


@pytest.mark.parametrize("kind", ENSEMBLE_KINDS)
def test_training_steps_match_autograd_and_torch_adam(kind):
    reference, model = _twins(kind)
    reference.train()
    model.train()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-2, weight_decay=1e-3, foreach=False)
    fused = FusedAdamEnsemble(model, lr=1e-2, weight_decay=1e-3)
    gen = torch.Generator().manual_seed(1)
    for step in range(6):
        x = torch.randn(4, 12, generator=gen)
        y = (torch.rand(3, 4, 9, generator=gen) < 0.4).float()
        torch.manual_seed(step)  # the same dropout masks on both sides
        loss_ref = F.binary_cross_entropy(reference(x), y)
        optimizer.zero_grad()
        loss_ref.backward()
        optimizer.step()
        torch.manual_seed(step)
        loss = F.binary_cross_entropy(fused(x), y)
        loss.backward()
        torch.testing.assert_close(loss, loss_ref, rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())  # Adam ran inside the backward pass
    assert [s.step for s in fused.layers] == [6, 6, 6]
    for name, p in model.state_dict().items():
        moved = (reference.state_dict()[name] - start[name]).abs().max().item()
        assert moved > 1e-2, f"{name} barely moved ({moved}): the comparison would say nothing"
        torch.testing.assert_close(p, reference.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("kind", ENSEMBLE_KINDS)
def test_input_gradient_equals_autograd_for_every_layer_shape(kind):
    # Layer 0 of "heads" sums the input gradient over the members' weights; "shared"
    # and "mc-dropout" run one weight copy over every member's rows.
    model, _ = _twins(kind, heads=2)
    fused = FusedAdamEnsemble(model, lr=1e-3)
    hidden = torch.randn(2, 4, 24)
    hidden[:, :, 5] = 0.0
    for layer, h in ((0, torch.randn(4, 12)), (1, hidden), (2, hidden)):
        dy = torch.randn(2, 4, 24 if layer < 2 else 9)
        h_ref = h.clone().requires_grad_(True)
        (model.affine(layer, h_ref).expand(2, -1, -1) * dy).sum().backward()
        h_fused = h.clone().requires_grad_(True)
        (fused.affine(layer, h_fused).expand(2, -1, -1) * dy).sum().backward()
        torch.testing.assert_close(h_fused.grad, h_ref.grad, rtol=1e-5, atol=1e-6, msg=f"layer {layer}")


def test_weighted_mcloss_step_on_a_dag_matches_torch_adam():
    ds = make_synthetic(n_train=40, n_valid=8, n_test=8, seed=3)
    h = ds.hierarchy
    criterion = WeightedMCLoss(h, node_weights(ds.train.Y, h), focal="mean")
    reference, model = _twins("heads", n_features=ds.train.X.shape[1], n_nodes=h.n_nodes, heads=2)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3, weight_decay=1e-5, foreach=False)
    fused = FusedAdamEnsemble(model, lr=1e-3, weight_decay=1e-5)
    x, y = torch.as_tensor(ds.train.X, dtype=torch.float32), torch.as_tensor(ds.train.Y, dtype=torch.float32)
    for first in range(0, 40, 4):
        torch.manual_seed(first)
        loss_ref = criterion(reference(x[first:first + 4]), y[first:first + 4])
        optimizer.zero_grad()
        loss_ref.backward()
        optimizer.step()
        torch.manual_seed(first)
        criterion(fused(x[first:first + 4]), y[first:first + 4]).backward()
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_bad_hyperparameters_and_dtypes_are_refused():
    model, _ = _twins("heads")
    with pytest.raises(ValueError, match="lr"):
        FusedAdamEnsemble(model, lr=0.0)
    with pytest.raises(ValueError, match="betas"):
        FusedAdamEnsemble(model, lr=1e-3, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="float32 inputs"):
        FusedAdamEnsemble(model, lr=1e-3).logits(torch.randn(2, 12, dtype=torch.float64))
    with pytest.raises(TypeError, match="float32 CPU weight"):
        FusedAdamEnsemble(model.double(), lr=1e-3)


def test_train_with_either_kernel_gives_the_same_run():
    ds = make_synthetic(n_train=120, n_valid=30, n_test=30, seed=8)
    base = dict(dataset="synthetic", epochs=3, hidden=32, heads=2, batch_size=4, lr=1e-3, seed=2,
                weighting="class-wise", focal="mean")
    fused, plain = (train(TrainConfig(kernel=k, **base), ds) for k in ("numba", "torch"))
    np.testing.assert_allclose([e["loss"] for e in fused.history], [e["loss"] for e in plain.history], rtol=1e-4)
    for a, b in zip(fused.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-5)
    zlpr = train(TrainConfig(kernel="numba", loss="zlpr", **base), ds)
    assert zlpr.history[-1]["loss"] < zlpr.history[0]["loss"]
    with pytest.raises(ValueError, match="kernel"):
        TrainConfig(dataset="synthetic", kernel="cuda").resolved().validate()


def test_auto_kernel_is_numba_up_to_the_largest_fused_batch():
    from hmlc_core.config import FUSED_MAX_BATCH

    assert TrainConfig(dataset="cellcycle_FUN").resolved().kernel == "numba"  # the paper's batch 4
    assert TrainConfig(dataset="cellcycle_FUN", profile="quick").resolved().kernel == "torch"  # batch 64
    assert TrainConfig(dataset="x", batch_size=FUSED_MAX_BATCH).resolved().kernel == "numba"
    assert TrainConfig(dataset="x", batch_size=FUSED_MAX_BATCH + 1).resolved().kernel == "torch"
    assert TrainConfig(dataset="x", batch_size=4, kernel="torch").resolved().kernel == "torch"


@pytest.mark.parametrize("options", [dict(loss="asl"), dict(weighting="class-balanced"), dict(logit_adjust=1.0),
                                     dict(loss="zlpr", logit_adjust=0.5)])
def test_tail_baselines_give_the_same_run_with_either_kernel(options):
    # docs/method.md, *Tail-aware baselines*: the new losses and the training-only logit shift sit outside the
    # kernels, so the fused step must still be torch's Adam step on them.
    ds = make_synthetic(n_train=120, n_valid=30, n_test=30, seed=8)
    base = dict(dataset="synthetic", epochs=3, hidden=32, heads=2, batch_size=4, lr=1e-3, seed=2, focal="mean",
                weighting="none")
    fused, plain = (train(TrainConfig(kernel=k, **{**base, **options}), ds) for k in ("numba", "torch"))
    np.testing.assert_allclose([e["loss"] for e in fused.history], [e["loss"] for e in plain.history], rtol=1e-4)
    for a, b in zip(fused.model.parameters(), plain.model.parameters()):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-5)


def test_asl_step_with_a_logit_shift_on_a_dag_matches_torch_adam():
    from hmlc_core.losses import WeightedASLLoss
    from hmlc_core.train import training_outputs
    from hmlc_core.weighting import log_prior_odds

    ds = make_synthetic(n_train=40, n_valid=8, n_test=8, seed=3)
    h = ds.hierarchy
    criterion = WeightedASLLoss(h, node_weights(ds.train.Y, h, "class-balanced"), focal="mean")
    shift = torch.as_tensor(log_prior_odds(ds.train.Y.sum(axis=0), 40), dtype=torch.float32)
    reference, model = _twins("heads", n_features=ds.train.X.shape[1], n_nodes=h.n_nodes, heads=2)
    optimizer = torch.optim.Adam(reference.parameters(), lr=1e-3, weight_decay=1e-5, foreach=False)
    fused = FusedAdamEnsemble(model, lr=1e-3, weight_decay=1e-5)
    ref_out, fused_out = training_outputs(reference.logits, "asl", shift), training_outputs(fused.logits, "asl", shift)
    x, y = torch.as_tensor(ds.train.X, dtype=torch.float32), torch.as_tensor(ds.train.Y, dtype=torch.float32)
    start = [p.detach().clone() for p in model.parameters()]
    for first in range(0, 40, 4):
        torch.manual_seed(first)
        loss_ref = criterion(ref_out(x[first:first + 4]), y[first:first + 4])
        optimizer.zero_grad()
        loss_ref.backward()
        optimizer.step()
        torch.manual_seed(first)
        criterion(fused_out(x[first:first + 4]), y[first:first + 4]).backward()
    for a, b, s in zip(model.parameters(), reference.parameters(), start):
        assert (b.detach() - s).abs().max() > 1e-3  # the comparison says something
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
