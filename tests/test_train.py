"""Training configuration (presets, profiles, validation), early stopping, objectives and schedules."""

import math

import numpy as np
import pytest
import torch

from hmlc_core.metrics import auprc_micro
from hmlc_core.model import MCM
from hmlc_core.presets import preset_for
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, predict_members, train


def test_paper_profile_uses_chmcnn_hyperparameters():
    c = TrainConfig(dataset="cellcycle_FUN").resolved()
    assert (c.hidden, c.epochs, c.lr, c.batch_size) == (500, 106, 1e-4, 4)  # docs/method.md, *Defaults and why*
    go = TrainConfig(dataset="cellcycle_GO").resolved()
    assert (go.hidden, go.epochs) == (1000, 62)
    assert TrainConfig(dataset="Diatoms").resolved().lr == 1e-5
    own = TrainConfig(dataset="my_taxonomy").resolved()
    assert (own.hidden, own.epochs) == (preset_for("anything").hidden, preset_for("anything").epochs)


def test_quick_profile_scales_batch_lr_and_epochs():
    c = TrainConfig(dataset="cellcycle_FUN", profile="quick").resolved()
    assert c.batch_size == 64
    assert c.lr == pytest.approx(20 * 1e-4)
    assert c.epochs == math.ceil(0.4 * 106)
    explicit = TrainConfig(dataset="cellcycle_FUN", profile="quick", epochs=7, batch_size=8, lr=0.01).resolved()
    assert (explicit.epochs, explicit.batch_size, explicit.lr) == (7, 8, 0.01)
    with pytest.raises(ValueError, match="profile"):
        TrainConfig(dataset="x", profile="turbo").resolved()


def test_a_preset_with_its_own_batch_keeps_it_under_paper_and_scales_the_quick_lr():
    c = TrainConfig(dataset="shapes").resolved()
    assert (c.batch_size, c.lr, c.epochs, c.kernel) == (32, 3e-3, 60, "numba")  # encoder 'auto' picks later
    assert TrainConfig(dataset="shapes", encoder="cnn").resolved().kernel == "torch"
    q = TrainConfig(dataset="shapes", profile="quick").resolved()
    # quick's 20x is relative to batch 4: at 64 from 32 it is 20 * 4 / 32 = 2.5x
    assert (q.batch_size, q.lr, q.epochs) == (64, pytest.approx(2.5 * 3e-3), math.ceil(0.4 * 60))
    assert TrainConfig(dataset="shapes", batch_size=8, lr=0.1).resolved().batch_size == 8


@pytest.mark.parametrize("field,value", [("weighting", "lots"), ("heads", 0), ("dropout", 1.0),
                                         ("batch_size", 0), ("fit_on", "test")])
def test_validate_names_the_bad_field(field, value):
    config = TrainConfig(dataset="synthetic", **{field: value})
    with pytest.raises(ValueError, match=field):
        config.resolved().validate()


def test_patience_needs_a_validation_split():
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(dataset="synthetic", patience=3).resolved().validate()


def test_early_stopping_keeps_the_best_epoch():
    ds = make_synthetic(n_train=200, n_valid=100, n_test=50, seed=4)
    config = TrainConfig(dataset="synthetic", epochs=40, hidden=32, heads=2, batch_size=32, lr=3e-3,
                         fit_on="train", patience=3, weighting="none", focal="none")
    result = train(config, ds)
    scores = [h["valid_auprc"] for h in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    stopped_early = result.epochs_completed < 40
    if stopped_early:
        assert result.epochs_completed == result.best_epoch + 3
    # The kept weights are the best epoch's: their validation AUPRC is the best one recorded.
    probs = predict_members(result.model, MCM(ds.hierarchy), ds.valid.X).mean(0).numpy()
    assert auprc_micro(ds.valid.Y, probs, ds.hierarchy.eval_mask) == pytest.approx(max(scores), abs=1e-6)


def test_training_is_deterministic_for_a_seed():
    ds = make_synthetic(n_train=100, n_valid=20, n_test=20, seed=5)
    config = TrainConfig(dataset="synthetic", epochs=2, hidden=16, heads=2, batch_size=16, seed=7)
    a, b = train(config, ds), train(config, ds)
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        np.testing.assert_array_equal(pa.detach().numpy(), pb.detach().numpy())


def test_zlpr_objective_trains_and_predicts_coherently():
    ds = make_synthetic(n_train=300, n_valid=60, n_test=100, seed=6)
    base = dict(dataset="synthetic", epochs=8, hidden=32, heads=2, batch_size=16, lr=3e-3, seed=0,
                weighting="class-wise", focal="mean")
    result = train(TrainConfig(loss="zlpr", label_smoothing=0.05, **base), ds)
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    probs = predict_members(result.model, MCM(ds.hierarchy), ds.test.X).mean(0).numpy()
    assert ds.hierarchy.is_coherent(probs)
    # Better than a random scorer by a wide margin.
    base_rate = ds.test.Y[:, ds.hierarchy.eval_mask].mean()
    assert auprc_micro(ds.test.Y, probs, ds.hierarchy.eval_mask) > 3 * base_rate
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(dataset="synthetic", label_smoothing=0.1).resolved().validate()


def test_lin_schedule_ends_every_epoch_at_omega(monkeypatch):
    from hmlc_core import losses

    seen = []
    original = losses.WeightedMCLoss.set_node_weights

    def record(self, positive, negative):
        seen.append((positive.clone(), negative.clone()))
        original(self, positive, negative)

    monkeypatch.setattr(losses.WeightedMCLoss, "set_node_weights", record)
    ds = make_synthetic(n_train=60, n_valid=20, n_test=20, seed=8)
    config = TrainConfig(dataset="synthetic", epochs=2, hidden=8, heads=2, batch_size=16, weighting="class-wise",
                         omega=0.3, schedule="lin")
    train(config, ds)
    steps = -(-80 // 16)  # train+valid samples / batch
    assert len(seen) == 2 * steps
    first_pos, first_neg = seen[0]
    last_pos, last_neg = seen[steps - 1]
    assert torch.allclose(last_pos, torch.full_like(last_pos, 0.3))
    assert torch.allclose(last_neg, torch.full_like(last_neg, 0.3))
    assert not torch.allclose(first_pos, last_pos) and torch.allclose(first_neg, torch.ones_like(first_neg))
    assert torch.equal(seen[steps][0], first_pos)  # the next epoch starts again from the weighted values
    with pytest.raises(ValueError, match="schedule"):
        TrainConfig(dataset="synthetic", schedule="lin", weighting="none").resolved().validate()
