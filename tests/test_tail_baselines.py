"""The tail-aware baselines (docs/method.md, *Tail-aware baselines*): class-balanced weights, the asymmetric loss
and logit adjustment, against hand-computed values and plain reference implementations written here."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hmlc_core.cli import main
from hmlc_core.config import TrainConfig
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.losses import (WeightedASLLoss, asymmetric_loss, mc_loss, node_weights, select_weights)
from hmlc_core.metrics import auprc_micro
from hmlc_core.model import MCM, HMCEnsemble
from hmlc_core.runs import load_run, save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import predict_members, train, training_outputs
from hmlc_core.weighting import class_balanced_weights, log_prior_odds

# root -> a -> b ; root -> c.  Column order: root, a, c, b (root is not evaluated).
H = Hierarchy([("root", "a"), ("a", "b"), ("root", "c")])


# ------------------------------------------------------------------ class-balanced weights
def test_class_balanced_weights_by_hand():
    beta = 0.9
    counts = np.array([0, 1, 2, 10, 1000])
    # (1 - beta) / (1 - beta^n), a node without positives counted as n = 1:
    raw = [1.0, 1.0, 0.1 / 0.19, 0.1 / (1 - 0.9 ** 10), 0.1 / (1 - 0.9 ** 1000)]
    assert raw[3] == pytest.approx(0.1 / 0.6513215599, rel=1e-9)  # 0.9^10 = 0.3486784401
    mask = np.array([False, True, True, True, True])
    mean = sum(raw[1:]) / 4
    np.testing.assert_allclose(class_balanced_weights(counts, beta, mask), np.array(raw) / mean, rtol=1e-12)
    assert class_balanced_weights(counts, beta, mask)[mask].mean() == pytest.approx(1.0)
    # without a mask the weights average 1 over every node
    assert class_balanced_weights(counts, beta).mean() == pytest.approx(1.0)
    # beta = 0: no re-weighting; beta -> 1: inverse frequency
    np.testing.assert_array_equal(class_balanced_weights(counts, 0.0), np.ones(5))
    near_one = class_balanced_weights(np.array([1, 10, 100]), 1 - 1e-9)
    np.testing.assert_allclose(near_one / near_one[2], [100, 10, 1], rtol=1e-6)


@pytest.mark.parametrize("beta", [1.0, -0.1, float("nan"), float("inf")])
def test_class_balanced_weights_refuse_a_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        class_balanced_weights(np.array([1, 2]), beta)


def test_class_balanced_node_weights_land_on_both_targets():
    y = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0]])  # root, a, c, b (propagated)
    w = node_weights(y, H, "class-balanced", beta=0.5)
    # n = (4, 3, 1, 1): (1 - 0.5) / (1 - 0.5^n), averaged to 1 over a, c, b
    raw = np.array([0.5 / (1 - 0.5 ** 4), 0.5 / (1 - 0.5 ** 3), 1.0, 1.0])
    np.testing.assert_allclose(w.positive, raw / raw[1:].mean())
    np.testing.assert_array_equal(w.positive, w.negative)
    targets = torch.as_tensor(y, dtype=torch.float32)
    pos, neg = torch.as_tensor(w.positive), torch.as_tensor(w.negative)
    # the weight multiplies the node's whole binary loss, so the indexing makes no difference
    torch.testing.assert_close(select_weights(targets, pos, neg, "released"), select_weights(targets, pos, neg,
                                                                                             "intended"))


# ------------------------------------------------------------------ asymmetric loss
def _asl_reference(p: float, y: int, gamma_pos: float, gamma_neg: float, clip: float) -> float:
    """Ridnik et al. 2021: L+ = -(1-p)^g+ log p, L- = -p_m^g- log(1-p_m), p_m = max(p - m, 0)."""
    if y == 1:
        return -((1 - p) ** gamma_pos) * math.log(p)
    p_m = max(p - clip, 0.0)
    return -(p_m ** gamma_neg) * math.log(1 - p_m)


@pytest.mark.parametrize("gamma_pos,gamma_neg,clip", [(0.0, 4.0, 0.05), (1.0, 2.0, 0.2), (0.0, 0.0, 0.0)])
def test_asymmetric_loss_matches_the_formula(gamma_pos, gamma_neg, clip):
    ps = [0.01, 0.04, 0.05, 0.1, 0.3, 0.5, 0.8, 0.99]
    p = torch.tensor(ps * 2, dtype=torch.float64)
    y = torch.tensor([1] * len(ps) + [0] * len(ps), dtype=torch.float64)
    got = asymmetric_loss(p, y, gamma_pos, gamma_neg, clip)
    expected = [_asl_reference(pi, int(yi), gamma_pos, gamma_neg, clip) for pi, yi in zip(p.tolist(), y.tolist())]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)
    if (gamma_pos, gamma_neg, clip) == (0.0, 0.0, 0.0):  # no focusing, no margin: binary cross-entropy
        bce = torch.nn.functional.binary_cross_entropy(p, y, reduction="none")
        torch.testing.assert_close(got, bce)


def test_asymmetric_loss_clip_discards_easy_negatives_and_focusing_is_a_constant():
    p = torch.tensor([0.03, 0.05, 0.45], dtype=torch.float64, requires_grad=True)
    loss = asymmetric_loss(p, torch.zeros(3, dtype=torch.float64), 0.0, 4.0, 0.05)
    assert loss[0].item() == 0.0 and loss[1].item() == 0.0  # p <= m: out of the loss
    loss.sum().backward()
    # d/dp of -c log(1 - (p - m)) with c = p_m^4 held constant: c / (1 - p_m)
    p_m = 0.4
    assert p.grad[:2].tolist() == [0.0, 0.0]
    assert p.grad[2].item() == pytest.approx(p_m ** 4 / (1 - p_m), rel=1e-12)
    with pytest.raises(ValueError, match="margin"):
        asymmetric_loss(p, p, clip=1.0)
    with pytest.raises(ValueError, match="exponents"):
        asymmetric_loss(p, p, gamma_neg=float("nan"))


def test_weighted_asl_uses_mclosss_mcm_paths_by_hand():
    h = torch.tensor([[0.9, 0.3, 0.2, 0.6], [0.9, 0.3, 0.2, 0.6]], dtype=torch.float64)  # root, a, c, b
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    # row 0: a positive -> max over its positive descendants {a} = 0.3; c -> 0.2; b -> 0.6
    # row 1: a negative -> max over a and all its descendants = 0.6; c -> 0.2; b -> 0.6
    def neg(p):
        return _asl_reference(p, 0, 0.0, 4.0, 0.05)

    elements = [[_asl_reference(0.3, 1, 0.0, 4.0, 0.05), neg(0.2), neg(0.6)], [neg(0.6), neg(0.2), neg(0.6)]]
    loss = WeightedASLLoss(H, focal="none")
    assert loss(h, y).item() == pytest.approx(np.mean(elements), rel=1e-12)
    # node weights multiply the element-wise loss, as they do MCLoss's
    w = node_weights(np.array([[1, 1, 0, 1], [1, 0, 1, 0]]), H, "class-balanced", beta=0.9)
    weighted = WeightedASLLoss(H, w, focal="none", reduction="sum")
    expected = sum(w.positive[j] * e for row in elements for j, e in zip((1, 2, 3), row))
    assert weighted(h, y).item() == pytest.approx(expected, rel=1e-12)
    # no focusing and no margin: exactly MCLoss
    plain = WeightedASLLoss(H, focal="none", gamma_pos=0.0, gamma_neg=0.0, clip=0.0)
    mask = torch.tensor(H.eval_mask)
    assert plain(h, y).item() == pytest.approx(mc_loss(h, y, MCM(H), mask).item(), rel=1e-12)


# ------------------------------------------------------------------ logit adjustment
def test_log_prior_odds_by_hand():
    got = log_prior_odds(np.array([0, 1, 5, 10]), 10)
    # counts clipped to [0.5, 9.5]: log(pi / (1 - pi)) with pi = n / N
    expected = [math.log(0.05 / 0.95), math.log(0.1 / 0.9), 0.0, math.log(0.95 / 0.05)]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="training sample"):
        log_prior_odds(np.array([0]), 0)
    with pytest.raises(ValueError, match="counts"):
        log_prior_odds(np.array([11]), 10)


def test_training_outputs_shift_the_logits_before_the_sigmoid():
    model = HMCEnsemble(6, 4, 8, 2, 3, 0.5, generator=torch.Generator().manual_seed(0))
    model.train()
    x = torch.randn(5, 6)
    shift = torch.tensor([0.0, -2.0, -4.0, 1.5])
    torch.manual_seed(3)
    logits = model.logits(x)
    for loss, expected in (("mcloss", torch.sigmoid(logits + shift)), ("asl", torch.sigmoid(logits + shift)),
                           ("zlpr", logits + shift)):
        torch.manual_seed(3)  # the same dropout masks
        torch.testing.assert_close(training_outputs(model.logits, loss, shift)(x), expected)
    torch.manual_seed(3)
    torch.testing.assert_close(training_outputs(model.logits, "mcloss")(x), torch.sigmoid(logits))


def _small_config(**kw) -> TrainConfig:
    base = dict(dataset="synthetic", epochs=3, hidden=32, heads=2, batch_size=16, lr=3e-3, seed=1,
                weighting="none", focal="none")
    return TrainConfig(**{**base, **kw})


def test_logit_adjustment_trains_shifted_and_saves_unshifted_predictions(tmp_path, monkeypatch):
    ds = make_synthetic(n_train=150, n_valid=40, n_test=60, seed=2)
    from hmlc_core import train as train_module

    seen = []
    original = train_module.training_outputs

    def spy(logits, loss, shift=None):
        seen.append(None if shift is None else shift.clone())
        return original(logits, loss, shift)

    monkeypatch.setattr(train_module, "training_outputs", spy)
    result = train(_small_config(logit_adjust=0.5), ds)
    y = ds.train.Y
    pi = np.clip(y.sum(axis=0), 0.5, len(y) - 0.5) / len(y)
    expected_shift = 0.5 * np.log(pi / (1 - pi))
    (shift,) = seen
    np.testing.assert_allclose(shift.numpy(), expected_shift, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.logit_shift, expected_shift, rtol=1e-5, atol=1e-6)
    assert (expected_shift < -1).any()  # the shift is not a no-op on this data

    # Predictions: MCM(sigmoid(logits)) of the unshifted logits, in numpy on the hierarchy (not the MCM module).
    save_run(tmp_path / "run", result, ds)
    run = load_run(tmp_path / "run")
    assert run.config.logit_adjust == 0.5
    saved = np.load(tmp_path / "run" / "predictions.npz")["mean_probs"]
    result.model.eval()
    with torch.no_grad():
        logits = result.model.logits(torch.as_tensor(ds.test.X, dtype=torch.float32)).numpy()
    unshifted = np.mean([ds.hierarchy.max_constraint(1 / (1 + np.exp(-z))) for z in logits], axis=0)
    shifted = np.mean([ds.hierarchy.max_constraint(1 / (1 + np.exp(-(z + expected_shift)))) for z in logits], axis=0)
    np.testing.assert_allclose(saved, unshifted, rtol=1e-5, atol=1e-6)
    assert np.abs(saved - shifted).max() > 0.05
    members = predict_members(result.model, MCM(ds.hierarchy), ds.test.X).mean(0).numpy()
    np.testing.assert_allclose(members, unshifted, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernel", ["numba", "torch"])
def test_logit_adjustment_with_tau_zero_trains_exactly_as_plain(kernel):
    ds = make_synthetic(n_train=80, n_valid=20, n_test=20, seed=3)
    plain = train(_small_config(kernel=kernel, batch_size=8, epochs=2), ds)
    zero = train(_small_config(kernel=kernel, batch_size=8, epochs=2, logit_adjust=0.0), ds)
    assert [e["loss"] for e in zero.history] == [e["loss"] for e in plain.history]
    for a, b in zip(zero.model.parameters(), plain.model.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    one = train(_small_config(kernel=kernel, batch_size=8, epochs=2, logit_adjust=1.0), ds)
    assert one.history[0]["loss"] != plain.history[0]["loss"]


# ------------------------------------------------------------------ training runs
@pytest.mark.parametrize("options", [
    dict(weighting="class-balanced", cb_beta=0.999),
    dict(loss="asl"),
    dict(logit_adjust=1.0),
    dict(loss="zlpr", logit_adjust=1.0),
])
def test_each_baseline_trains_to_finite_loss_and_coherent_predictions(options):
    ds = make_synthetic(n_train=300, n_valid=60, n_test=100, seed=6)
    result = train(_small_config(epochs=6, **options), ds)
    losses = [h["loss"] for h in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    probs = predict_members(result.model, MCM(ds.hierarchy), ds.test.X).mean(0).numpy()
    assert np.isfinite(probs).all() and ds.hierarchy.is_coherent(probs)
    base_rate = ds.test.Y[:, ds.hierarchy.eval_mask].mean()
    assert auprc_micro(ds.test.Y, probs, ds.hierarchy.eval_mask) > 2 * base_rate


# ------------------------------------------------------------------ config and command line
@pytest.mark.parametrize("field,value", [
    ("cb_beta", 1.0), ("cb_beta", -0.5), ("cb_beta", float("nan")),
    ("asl_gamma_pos", -1.0), ("asl_gamma_pos", float("inf")), ("asl_gamma_neg", float("nan")),
    ("asl_clip", 1.0), ("asl_clip", float("nan")), ("asl_clip", -0.01),
    ("logit_adjust", -1.0), ("logit_adjust", float("inf")), ("logit_adjust", float("nan")),
])
def test_validation_names_the_bad_baseline_field(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(dataset="synthetic", **{field: value}).resolved().validate()


def test_defaults_and_old_configs():
    c = TrainConfig(dataset="synthetic")
    assert (c.cb_beta, c.asl_gamma_pos, c.asl_gamma_neg, c.asl_clip, c.logit_adjust) == (0.999, 0.0, 4.0, 0.05, None)
    old = c.to_dict()
    for key in ("cb_beta", "asl_gamma_pos", "asl_gamma_neg", "asl_clip", "logit_adjust"):
        old.pop(key)
    assert TrainConfig.from_dict(old) == c  # a run saved before the baselines still loads


def test_cli_train_with_the_baselines(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--weighting", "class-balanced",
                 "--cb-beta", "0.99", "--focal", "none", "--loss", "asl", "--asl-gamma-pos", "1",
                 "--asl-gamma-neg", "2", "--asl-clip", "0.1", "--logit-adjust", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    c = load_run(out).config
    assert (c.weighting, c.cb_beta, c.loss, c.asl_gamma_pos, c.asl_gamma_neg, c.asl_clip, c.logit_adjust) == (
        "class-balanced", 0.99, "asl", 1.0, 2.0, 0.1, 1.0)
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--logit-adjust", "0.5", "--out",
                 str(tmp_path / "run2"), "--quiet"])
    assert code == 0 and load_run(tmp_path / "run2").config.logit_adjust == 0.5
    capsys.readouterr()
    for flag, value, field in (("--cb-beta", "1", "cb_beta"), ("--asl-clip", "nan", "asl_clip"),
                               ("--logit-adjust", "-1", "logit_adjust")):
        assert main(["train", "--dataset", "synthetic", "--epochs", "1", flag, value,
                     "--out", str(tmp_path / "bad")]) == 2
        assert field in capsys.readouterr().err
        assert not (tmp_path / "bad").exists()


def test_run_names_and_headlines_say_which_baseline():
    from types import SimpleNamespace

    from hmlc_core.registry import default_run_name
    from hmlc_core.views.diagnose import config_headline

    config = TrainConfig(dataset="synthetic", weighting="class-balanced", cb_beta=0.99, focal="none", loss="asl",
                         logit_adjust=0.5)
    assert default_run_name(config) == "synthetic · ASL, class-balanced weights, logit adjustment 0.5 · seed 0"
    headline = config_headline(SimpleNamespace(config=config))
    assert headline.startswith("ASL (γ+ 0, γ- 4, clip 0.05) · class-balanced node weights (β 0.99)")
    assert "logit adjustment τ 0.5" in headline and "ω" not in headline
