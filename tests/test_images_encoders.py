"""Image encoders (issue 16, item 2): the CNN trained end to end, the frozen encoder and its feature cache.

The data are tiny generated images: a coloured square (one colour per leaf of a two-level taxonomy) on a
dark noisy background, 16 x 16 pixels, built straight with ``image_dataset``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hmlc_core.cli import _config_from_args, build_parser, main
from hmlc_core.config import TrainConfig
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.images.encoders import (
    CNNEnsemble,
    EncoderCheckpointError,
    SmallCNN,
    build_trunk,
    load_encoder_checkpoint,
)
from hmlc_core.images import features as feat
from hmlc_core.images.sets import features_to_pixels, image_dataset, pixels_to_features
from hmlc_core.metrics import auprc_micro
from hmlc_core.model import MCM, HMCEnsemble
from hmlc_core.runs import load_run, save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import predict_members, train

REPO = Path(__file__).resolve().parent.parent
HIERARCHY = Hierarchy([("root", "warm"), ("root", "cool"), ("warm", "warm/red"), ("warm", "warm/yellow"),
                       ("cool", "cool/blue"), ("cool", "cool/green")])
COLOURS = {"warm/red": (230, 30, 30), "warm/yellow": (235, 215, 40), "cool/blue": (30, 60, 230),
           "cool/green": (40, 200, 60)}
SIZE = 16


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N, 16, 16, 3) uint8 and their propagated labels (N, C)."""
    rng = np.random.default_rng(seed)
    leaves = list(COLOURS)
    kinds = np.arange(n) % len(leaves)
    pixels = rng.integers(0, 60, (n, SIZE, SIZE, 3)).astype(np.uint8)
    for i, k in enumerate(kinds):
        side = int(rng.integers(6, 10))
        r, c = rng.integers(0, SIZE - side, 2)
        pixels[i, r:r + side, c:c + side] = COLOURS[leaves[k]]
    return pixels, HIERARCHY.label_matrix([[leaves[k]] for k in kinds])


def squares_dataset(n_train: int = 96, n_test: int = 48, n_valid: int = 0):
    sizes = {"train": n_train, "test": n_test, **({"valid": n_valid} if n_valid else {})}
    made = {split: squares(n, seed) for seed, (split, n) in enumerate(sizes.items())}
    return image_dataset("squares", HIERARCHY, {s: p for s, (p, _) in made.items()},
                         {s: y for s, (_, y) in made.items()},
                         {s: [f"{s}/{i}.png" for i in range(n)] for s, n in sizes.items()}, root="generated:squares")


def fast_config(**overrides) -> TrainConfig:
    base = dict(dataset="squares", epochs=10, hidden=32, lr=3e-3, batch_size=16, heads=2, encoder_width=8,
                threads=1, weighting="none", focal="none")
    return TrainConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def data():
    return squares_dataset()


@pytest.fixture(scope="module")
def cnn_result(data):
    return train(fast_config(encoder="cnn"), data)


@pytest.fixture(scope="module")
def frozen_result(data, tmp_path_factory):
    return train(fast_config(encoder="frozen", epochs=30), data, cache_dir=tmp_path_factory.mktemp("cache"))


def test_small_cnn_output_width_for_any_image_size() -> None:
    for shape in ((3, 16, 16), (3, 32, 32), (3, 24, 40), (3, 1, 3)):
        cnn = SmallCNN(shape, width=5)
        out = cnn(torch.rand(4, *shape))
        assert out.shape == (4, 20) and cnn.out_features == 20
        assert (out >= 0).all()
    with pytest.raises(ValueError, match="image_shape"):
        SmallCNN((1, 16, 16))


def test_cnn_ensemble_shares_one_trunk_and_runs_the_members_on_its_features() -> None:
    model = CNNEnsemble((3, SIZE, SIZE), HIERARCHY.n_nodes, hidden=12, n_heads=3, encoder_width=4,
                        generator=torch.Generator().manual_seed(0)).eval()
    conv_weights = [name for name, _ in model.named_parameters() if name.startswith("trunk.")]
    assert conv_weights == ["trunk.convs.0.weight", "trunk.convs.0.bias", "trunk.convs.1.weight",
                            "trunk.convs.1.bias", "trunk.convs.2.weight", "trunk.convs.2.bias"]
    assert model.trunk.convs[0].weight.shape == (4, 3, 3, 3)  # no member axis: one set for all members
    assert model.n_features == 3 * SIZE * SIZE and model.feature_width == 16
    x = torch.randn(5, 3 * SIZE * SIZE)
    logits = model.logits(x)
    assert logits.shape == (3, 5, HIERARCHY.n_nodes)
    # Reference: the trunk on the (B, 3, H, W) view, then each member as a standalone nn.Sequential.
    trunk_features = model.trunk(torch.from_numpy(features_to_pixels(x.numpy(), (3, SIZE, SIZE))))
    for member in range(3):
        expected = model.member_network(member).eval()(trunk_features)
        torch.testing.assert_close(torch.sigmoid(logits[member]), expected)
    # Every member's loss reaches the same conv weights.
    model.train()
    for member in (0, 2):
        model.zero_grad()
        model.logits(x)[member].sum().backward()
        assert model.trunk.convs[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(B, 768\)"):
        model.logits(torch.zeros(2, 10))


def test_cnn_ensemble_learns_the_coloured_squares(cnn_result, data) -> None:
    assert cnn_result.config.encoder == "cnn" and cnn_result.config.kernel == "torch"
    model = cnn_result.model
    assert isinstance(model, CNNEnsemble) and model.encoder == "cnn"
    members = predict_members(model, MCM(HIERARCHY), data.test.X)
    assert MCM(HIERARCHY).is_coherent(members)
    mask = HIERARCHY.eval_mask
    chance = data.test.Y[:, mask].mean()  # a constant score's micro AUPRC
    auprc = auprc_micro(data.test.Y, members.mean(0).numpy(), mask)
    assert chance < 0.4 and auprc > 0.9, (auprc, chance)
    assert cnn_result.history[-1]["loss"] < cnn_result.history[0]["loss"]


def test_cnn_trunk_starts_from_the_seed_and_trains(cnn_result, data) -> None:
    untrained = build_trunk((3, SIZE, SIZE), 8, seed=0)
    start = CNNEnsemble((3, SIZE, SIZE), HIERARCHY.n_nodes, 32, 2, encoder_width=8,
                        generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(start.trunk.state_dict(), untrained.state_dict())
    moved = (cnn_result.model.trunk.convs[0].weight - untrained.convs[0].weight).abs().max()
    assert moved > 1e-3


def test_cnn_run_round_trip_gives_the_same_predictions(cnn_result, data, tmp_path: Path) -> None:
    before = predict_members(cnn_result.model, MCM(HIERARCHY), data.test.X).mean(0).numpy()
    run = load_run(save_run(tmp_path / "run", cnn_result, data))
    assert run.config.encoder == "cnn" and run.config.encoder_width == 8
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["model"]["encoder"] == "cnn" and doc["model"]["image_shape"] == [3, SIZE, SIZE]
    model = run.load_model()
    assert isinstance(model, CNNEnsemble) and not model.training
    after = predict_members(model, MCM(HIERARCHY), data.test.X).mean(0).numpy()
    np.testing.assert_array_equal(after, before)
    np.testing.assert_allclose(run.predictions()["mean_probs"], before, rtol=0, atol=1e-7)


def test_numba_kernel_cannot_train_a_cnn(data) -> None:
    with pytest.raises(ValueError, match="'kernel' = 'numba' cannot train a CNN"):
        train(fast_config(encoder="cnn", kernel="numba", epochs=1), data)
    with pytest.raises(ValueError, match="'kernel' = 'numba' cannot train a CNN"):
        train(fast_config(encoder="auto", kernel="numba", epochs=1), data)


def test_encoder_resolution_and_validation() -> None:
    base = TrainConfig(dataset="x")
    assert base.encoder == "auto"
    assert base.for_dataset(True).encoder == "cnn" and base.for_dataset(True).kernel == "torch"
    assert base.for_dataset(False).encoder == "none" and base.for_dataset(False).kernel == "auto"
    assert base.for_dataset(False).resolved().kernel == "numba"  # batch 4: unchanged for tables
    assert TrainConfig(dataset="x", encoder="frozen").for_dataset(True).resolved().kernel == "numba"
    with pytest.raises(ValueError, match="'encoder' = 'cnn' needs an image dataset; dataset 'x' is a table"):
        TrainConfig(dataset="x", encoder="cnn").for_dataset(False)
    with pytest.raises(ValueError, match="'encoder_checkpoint' needs an image dataset"):
        TrainConfig(dataset="x", encoder_checkpoint="w.pt").for_dataset(False)
    bad = {"encoder": ("bogus", "'encoder' must be one of"), "encoder_width": (0, "'encoder_width' must be"),
           "encoder_checkpoint": ("", "'encoder_checkpoint' must be a file path")}
    for name, (value, message) in bad.items():
        with pytest.raises(ValueError, match=message):
            TrainConfig(**{"dataset": "x", "encoder": "frozen", name: value}).resolved().validate()
    with pytest.raises(ValueError, match="'encoder_checkpoint' needs encoder"):
        TrainConfig(dataset="x", encoder="none", encoder_checkpoint="w.pt").resolved().validate()
    with pytest.raises(ValueError, match="'encoder_width' must be a whole number"):
        TrainConfig(dataset="x", encoder_width=2.0).resolved().validate()


def test_an_image_encoder_on_a_table_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config field 'encoder' = 'frozen' needs an image dataset"):
        train(TrainConfig(dataset="synthetic", encoder="frozen", epochs=1), make_synthetic(seed=0))
    code = main(["train", "--dataset", "synthetic", "--encoder", "cnn", "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "run")])
    assert code == 2 and not (tmp_path / "run").exists()


def test_cli_encoder_options_reach_the_config() -> None:
    args = build_parser().parse_args(["train", "--dataset", "d", "--encoder", "frozen", "--encoder-checkpoint",
                                      "w.pt", "--encoder-width", "8"])
    config = _config_from_args(args)
    assert (config.encoder, config.encoder_checkpoint, config.encoder_width) == ("frozen", "w.pt", 8)
    assert _config_from_args(build_parser().parse_args(["train", "--dataset", "d"])).encoder == "auto"


def test_runs_saved_before_encoders_still_load(tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    shutil.copytree(REPO / "assets" / "demo_run", run_dir)
    doc = json.loads((run_dir / "config.json").read_text())
    for name in ("encoder", "encoder_checkpoint", "encoder_width"):
        doc["train"].pop(name, None)
    (run_dir / "config.json").write_text(json.dumps(doc))
    run = load_run(run_dir)
    assert run.config.encoder == "auto" and run.config.for_dataset(False).encoder == "none"
    model = run.load_model()
    assert type(model) is HMCEnsemble


# ------------------------------------------------------------------ frozen encoder and its cache
def test_cached_features_equal_a_fresh_pass_and_are_read_back(data, tmp_path: Path) -> None:
    trunk = build_trunk((3, SIZE, SIZE), 8, seed=3)
    fresh = feat.encode(trunk, data.train.X, batch_size=7)
    reference = trunk(torch.from_numpy(features_to_pixels(data.train.X, (3, SIZE, SIZE)))).detach().numpy()
    np.testing.assert_allclose(fresh, reference, rtol=1e-5, atol=1e-6)
    first = feat.cached_features(trunk, data.train.X, tmp_path)
    files = list((tmp_path / "features").iterdir())
    assert [f.name for f in files] == [f"{feat.feature_key(trunk, data.train.X)}.npy"]
    np.testing.assert_allclose(first, fresh, rtol=1e-5, atol=1e-6)
    calls = []
    hook = trunk.register_forward_hook(lambda *args: calls.append(1))
    second = feat.cached_features(trunk, data.train.X, tmp_path)
    hook.remove()
    assert calls == [] and np.array_equal(second, first)
    feat.cached_features(trunk, data.test.X, tmp_path)
    assert len(list((tmp_path / "features").iterdir())) == 2  # other pixels, another file


def test_feature_key_follows_weights_architecture_and_pixels(data) -> None:
    x = data.train.X
    key = feat.feature_key(build_trunk((3, SIZE, SIZE), 8, seed=0), x)
    assert feat.feature_key(build_trunk((3, SIZE, SIZE), 8, seed=0), x.copy()) == key
    assert feat.feature_key(build_trunk((3, SIZE, SIZE), 8, seed=1), x) != key
    assert feat.feature_key(build_trunk((3, SIZE, SIZE), 4, seed=0), x) != key
    nudged = x.copy()
    nudged[5, 17] += 1e-3
    assert feat.feature_key(build_trunk((3, SIZE, SIZE), 8, seed=0), nudged) != key
    trunk = build_trunk((3, SIZE, SIZE), 8, seed=0)
    with torch.no_grad():
        trunk.convs[2].bias[0] += 1e-6
    assert feat.feature_key(trunk, x) != key


def test_a_damaged_cache_file_is_recomputed(data, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    trunk = build_trunk((3, SIZE, SIZE), 8, seed=0)
    expected = feat.encode(trunk, data.test.X)
    path = tmp_path / "features" / f"{feat.feature_key(trunk, data.test.X)}.npy"
    path.parent.mkdir()
    path.write_bytes(b"not an npy file")
    got = feat.cached_features(trunk, data.test.X, tmp_path)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert "unreadable" in caplog.text
    np.save(path, np.zeros((3, 2), dtype=np.float32))
    np.testing.assert_allclose(feat.cached_features(trunk, data.test.X, tmp_path), expected, rtol=1e-5, atol=1e-6)
    assert np.load(path).shape == expected.shape  # replaced by the right array


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HMLC_CACHE_DIR", str(tmp_path / "mine"))
    assert feat.default_cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("HMLC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert feat.default_cache_dir() == tmp_path / "xdg" / "hmlc-lab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert feat.default_cache_dir() == Path.home() / ".cache" / "hmlc-lab"


def test_frozen_encoder_run_is_self_contained(frozen_result, data, tmp_path: Path) -> None:
    config = frozen_result.config
    assert config.encoder == "frozen" and config.kernel == "numba"  # the fast tabular step
    model = frozen_result.model
    assert isinstance(model, CNNEnsemble) and model.encoder == "frozen"
    assert not any(p.requires_grad for p in model.trunk.parameters())
    torch.testing.assert_close(model.trunk.state_dict(), build_trunk((3, SIZE, SIZE), 8, seed=0).state_dict())
    # The members were trained on the standardised cached features: the same logits by hand.
    table, mean, std = feat.frozen_dataset(build_trunk((3, SIZE, SIZE), 8, seed=0), data, tmp_path)
    assert np.abs(table.train.X.mean(axis=0)).max() < 1e-4
    members = HMCEnsemble(model.feature_width, HIERARCHY.n_nodes, 32, 2).eval()
    members.load_state_dict({k: v for k, v in model.state_dict().items() if k.startswith(("weights", "biases"))})
    with torch.no_grad():
        by_hand = members.logits(torch.from_numpy(table.test.X))
        torch.testing.assert_close(model.logits(torch.from_numpy(data.test.X)), by_hand, rtol=1e-4, atol=1e-4)
    probs = predict_members(model, MCM(HIERARCHY), data.test.X).mean(0).numpy()
    chance = data.test.Y[:, HIERARCHY.eval_mask].mean()
    assert auprc_micro(data.test.Y, probs, HIERARCHY.eval_mask) > chance + 0.3
    run = load_run(save_run(tmp_path / "run", frozen_result, data))
    assert run.config.encoder == "frozen" and run.dataset_info["n_features"] == 3 * SIZE * SIZE
    loaded = run.load_model()
    assert isinstance(loaded, CNNEnsemble) and loaded.encoder == "frozen"
    new_rows = squares(8, seed=99)
    x_new = pixels_to_features(new_rows[0], run.dataset_info["images"]["mean"], run.dataset_info["images"]["std"])
    np.testing.assert_array_equal(predict_members(loaded, MCM(HIERARCHY), x_new).numpy(),
                                  predict_members(model, MCM(HIERARCHY), x_new).numpy())
    np.testing.assert_allclose(run.predictions()["mean_probs"], probs, rtol=0, atol=1e-7)


def test_frozen_training_reads_the_cache_on_a_second_run(data, tmp_path: Path, monkeypatch) -> None:
    calls = []
    real = feat.encode
    monkeypatch.setattr(feat, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    config = fast_config(encoder="frozen", epochs=1)
    first = train(config, data, cache_dir=tmp_path)
    assert len(calls) == 2  # train and test
    second = train(config, data, cache_dir=tmp_path)
    assert len(calls) == 2
    torch.testing.assert_close(first.model.state_dict(), second.model.state_dict())


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip_and_a_cnn_run_as_checkpoint(cnn_result, data, tmp_path: Path) -> None:
    source = build_trunk((3, SIZE, SIZE), 8, seed=5)
    path = tmp_path / "trunk.pt"
    torch.save(source.state_dict(), path)
    target = SmallCNN((3, SIZE, SIZE), 8)
    load_encoder_checkpoint(path, target)
    torch.testing.assert_close(target.state_dict(), source.state_dict())
    tuned = train(fast_config(encoder="cnn", epochs=1, lr=1e-9, encoder_checkpoint=str(path)), data)
    torch.testing.assert_close(tuned.model.trunk.state_dict(), source.state_dict(), rtol=0, atol=1e-6)
    run_dir = save_run(tmp_path / "cnn-run", cnn_result, data)
    result = train(fast_config(encoder="frozen", epochs=1, encoder_checkpoint=str(run_dir / "model.pt")), data,
                   cache_dir=tmp_path / "cache")
    torch.testing.assert_close(result.model.trunk.state_dict(), cnn_result.model.trunk.state_dict())
    assert load_run(save_run(tmp_path / "frozen-run", result, data)).config.encoder_checkpoint == str(
        run_dir / "model.pt")


def test_checkpoint_errors_name_the_file(tmp_path: Path) -> None:
    trunk = SmallCNN((3, SIZE, SIZE), 8)
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    missing = tmp_path / "nope.pt"
    with pytest.raises(EncoderCheckpointError, match=re.escape(f"encoder checkpoint {missing}: no such file")):
        load_encoder_checkpoint(missing, trunk)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EncoderCheckpointError, match=re.escape(f"{corrupt}: not a readable torch state dict")):
        load_encoder_checkpoint(corrupt, trunk)
    other_width = tmp_path / "w4.pt"
    torch.save(SmallCNN((3, SIZE, SIZE), 4).state_dict(), other_width)
    with pytest.raises(EncoderCheckpointError,
                       match=re.escape(f"{other_width}: entry 'convs.0.weight' has shape (4, 3, 3, 3)")):
        load_encoder_checkpoint(other_width, trunk)
    wrong_names = tmp_path / "names.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong_names)
    with pytest.raises(EncoderCheckpointError, match=re.escape(f"{wrong_names}: does not fit the encoder")):
        load_encoder_checkpoint(wrong_names, trunk)
    not_a_dict = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), not_a_dict)
    with pytest.raises(EncoderCheckpointError, match=re.escape(f"{not_a_dict}: not a state dict")):
        load_encoder_checkpoint(not_a_dict, trunk)
    pickled = tmp_path / "pickled.pt"
    torch.save({"convs": SmallCNN((3, SIZE, SIZE), 8)}, pickled)  # a whole module: refused by weights_only
    with pytest.raises(EncoderCheckpointError, match=re.escape(f"{pickled}: not a readable torch state dict")):
        load_encoder_checkpoint(pickled, trunk)
    torch.testing.assert_close(trunk.state_dict(), before)  # failed loads left the trunk as it was


def test_a_bad_checkpoint_stops_training_before_it_starts(data, tmp_path: Path) -> None:
    with pytest.raises(EncoderCheckpointError, match="no such file"):
        train(fast_config(encoder="cnn", encoder_checkpoint=str(tmp_path / "missing.pt")), data)
    with pytest.raises(EncoderCheckpointError, match="no such file"):
        train(fast_config(encoder="frozen", encoder_checkpoint=str(tmp_path / "missing.pt")), data)


def test_cli_trains_a_cnn_on_a_folder_of_images(tmp_path: Path) -> None:
    folder = tmp_path / "pictures"
    pixels, labels = squares(40, seed=7)
    leaves = list(COLOURS)
    for i, (image, row) in enumerate(zip(pixels, labels)):
        leaf = next(node for node in leaves if row[HIERARCHY.index[node]])
        target = folder / leaf
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(target / f"{i}.png")
    out = tmp_path / "run"
    code = main(["train", "--images", str(folder), "--image-size", "16", "--epochs", "2", "--batch-size", "16",
                 "--hidden", "16", "--encoder-width", "4", "--quiet", "--out", str(out)])
    assert code == 0
    run = load_run(out)
    assert run.config.encoder == "cnn" and run.config.kernel == "torch" and run.config.dataset == "pictures"
    assert run.model_spec["image_shape"] == [3, 16, 16]
    assert run.images() is not None and len(run.images().names) == run.summary["n_test"]
    images_mean = run.dataset_info["images"]["mean"]
    assert len(images_mean) == 3 and isinstance(run.load_model(), CNNEnsemble)
    # without --valid-fraction, 15% of the images are held out, so the tuned rules work out of the box
    tuned = tmp_path / "tuned"
    assert main(["train", "--images", str(folder), "--image-size", "16", "--epochs", "1", "--batch-size", "16",
                 "--hidden", "16", "--encoder-width", "4", "--fit-on", "train", "--decision", "per-node", "--quiet",
                 "--out", str(tuned)]) == 0
    assert load_run(tuned).summary["n_valid"] > 0 and load_run(tuned).held_out() is not None


def test_the_images_package_serves_the_encoders_without_importing_torch_first() -> None:
    code = ("import sys, hmlc_core.images as images; before = 'torch' in sys.modules; "
            "cls = images.CNNEnsemble; print(before, 'torch' in sys.modules, cls.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "True", "CNNEnsemble"]
