"""Run directories: round trip, atomic writes, clear errors."""

import json

import numpy as np
import pytest
import torch

from hmlc_core import runs as runs_module
from hmlc_core.metrics import summarize
from hmlc_core.model import MCM
from hmlc_core.runs import RunError, evaluate_run, find_runs, load_run, save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, predict_members, train


@pytest.fixture(scope="module")
def trained():
    ds = make_synthetic(n_train=120, n_valid=40, n_test=60, seed=3)
    config = TrainConfig(dataset="synthetic", epochs=2, hidden=16, heads=2, batch_size=16, lr=1e-3,
                         weighting="class-wise", focal="pcs")
    return train(config, ds), ds


def test_round_trip(trained, tmp_path):
    result, ds = trained
    path = save_run(tmp_path / "r1", result, ds)
    run = load_run(path)
    assert run.config == result.config
    assert run.hierarchy.nodes == ds.hierarchy.nodes
    assert list(run.node_metrics.index) == ds.hierarchy.nodes
    np.testing.assert_array_equal(run.node_metrics["train_frequency"].to_numpy(), ds.train.Y.sum(axis=0))
    assert len(run.history) == 2 and set(run.history.columns) >= {"epoch", "loss", "seconds"}
    preds = run.predictions()
    np.testing.assert_array_equal(preds["y_true"], ds.test.Y)
    assert preds["member_probs"].shape == (2, ds.test.n_samples, ds.hierarchy.n_nodes)
    # The reloaded weights reproduce the saved predictions.
    model = run.load_model()
    again = predict_members(model, MCM(run.hierarchy), ds.test.X).mean(0).numpy()
    np.testing.assert_allclose(again, preds["mean_probs"], atol=1e-6)
    # Headline metrics recomputed from predictions agree with the summary.
    s = summarize(ds.hierarchy, ds.test.Y, preds["mean_probs"])
    assert evaluate_run(run)["macro_recall"] == pytest.approx(s["macro_recall"])
    assert run.summary["auprc_micro"] == pytest.approx(s["auprc_micro"])
    assert run.summary["uncertainty_mode"] == "pcs"
    assert "uncertainty_epistemic" in run.node_metrics.columns
    assert find_runs([tmp_path]) == [path.resolve()]


def test_existing_run_is_kept_unless_overwrite(trained, tmp_path):
    result, ds = trained
    path = save_run(tmp_path / "r", result, ds)
    (path / "marker").write_text("old")
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_run(path, result, ds)
    assert (path / "marker").exists()
    save_run(path, result, ds, overwrite=True)
    assert not (path / "marker").exists()
    assert load_run(path).summary["status"] == "finished"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary folders left


def test_failed_save_leaves_old_run_intact(trained, tmp_path, monkeypatch):
    result, ds = trained
    path = save_run(tmp_path / "r", result, ds)
    before = (path / "summary.json").read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs_module.np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_run(path, result, ds, overwrite=True)
    assert (path / "summary.json").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r"]
    load_run(path)


def test_load_errors_name_the_file(trained, tmp_path):
    result, ds = trained
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "missing")
    path = save_run(tmp_path / "r", result, ds)
    (path / "summary.json").write_text("{broken")
    with pytest.raises(RunError, match=r"summary\.json: invalid JSON at line 1"):
        load_run(path)
    (path / "history.csv").unlink()
    with pytest.raises(RunError, match="missing history.csv"):
        load_run(path)


def test_model_file_is_a_plain_state_dict(trained, tmp_path):
    result, ds = trained
    path = save_run(tmp_path / "r", result, ds)
    state = torch.load(path / "model.pt", weights_only=True)
    assert set(state) == set(result.model.state_dict())
    config = json.loads((path / "config.json").read_text())
    assert config["model"]["n_heads"] == 2 and config["train"]["focal"] == "pcs"


def test_run_stopped_in_its_first_epoch_loads(tmp_path):
    ds = make_synthetic(n_train=120, n_valid=40, n_test=60, seed=3)
    calls = iter(range(1000))
    result = train(TrainConfig(dataset="synthetic", epochs=3, hidden=16, batch_size=8), ds,
                   should_stop=lambda: next(calls) >= 2)
    assert result.interrupted and result.epochs_completed == 0
    run = load_run(save_run(tmp_path / "r", result, ds))
    assert run.summary["status"] == "interrupted"
    assert len(run.history) == 0 and list(run.history.columns) == ["epoch", "loss", "seconds"]


@pytest.mark.parametrize("kind", ["shared", "mc-dropout"])
def test_ensemble_kinds_train_save_and_reload(kind, tmp_path):
    ds = make_synthetic(n_train=80, n_valid=20, n_test=30, seed=9)
    result = train(TrainConfig(dataset="synthetic", epochs=1, hidden=8, heads=3, batch_size=16, ensemble=kind), ds)
    run = load_run(save_run(tmp_path / kind, result, ds))
    assert run.config.ensemble == kind and run.model_spec["kind"] == kind
    model = run.load_model()
    for saved, loaded in zip(result.model.parameters(), model.parameters()):
        assert torch.equal(saved, loaded)
    assert run.predictions()["member_probs"].shape[0] == 3
