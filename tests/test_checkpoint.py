"""Training checkpoints: a run killed mid-way and resumed equals the uninterrupted run, bit for bit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainConfig, train


@pytest.fixture(scope="module")
def dataset():
    return make_synthetic(seed=0)


def _killed_after(epochs: int):
    """progress and should_stop callbacks that stop training at the first step after ``epochs`` epochs."""
    finished: list[int] = []
    return finished.append, lambda: len(finished) >= epochs


def _same_training(a, b) -> None:
    state_a, state_b = a.model.state_dict(), b.model.state_dict()
    assert state_a.keys() == state_b.keys()
    for name, tensor in state_a.items():
        assert torch.equal(tensor, state_b[name]), name
    strip = [{k: v for k, v in entry.items() if k != "seconds"} for entry in a.history]
    assert strip == [{k: v for k, v in entry.items() if k != "seconds"} for entry in b.history]
    assert a.best_epoch == b.best_epoch and a.epochs_completed == b.epochs_completed


@pytest.mark.parametrize("options", [
    {"batch_size": 4},  # the fused numba kernels (Adam inside the backward pass)
    {"batch_size": 64, "patience": 10},  # torch.optim.Adam, with the early-stopping state
    {"batch_size": 4, "ensemble": "mc-dropout"},  # dropout masks at prediction time too
])
def test_a_resumed_run_equals_the_uninterrupted_one(dataset, tmp_path: Path, options: dict) -> None:
    config = TrainConfig(dataset="synthetic", epochs=4, seed=3, fit_on="train", **options)
    whole = train(config, dataset)
    path = tmp_path / "run.checkpoint.pt"
    progress, stop = _killed_after(2)
    first = train(config, dataset, progress=lambda e: progress(e["epoch"]), should_stop=stop, checkpoint=path,
                  checkpoint_seconds=0)
    assert first.interrupted and first.epochs_completed == 2 and path.is_file()
    assert not path.with_name(path.name + ".partial").exists()
    resumed = train(config, dataset, checkpoint=path, checkpoint_seconds=0)
    assert resumed.resumed_epochs == 2 and not resumed.interrupted
    _same_training(whole, resumed)
    assert resumed.train_seconds >= sum(e["seconds"] for e in resumed.history[:2])


def test_a_checkpoint_of_another_run_or_an_unreadable_one_is_not_used(dataset, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "run.checkpoint.pt"
    progress, stop = _killed_after(2)
    other = TrainConfig(dataset="synthetic", epochs=3, seed=3, lr=2e-4)
    train(other, dataset, progress=lambda e: progress(e["epoch"]), should_stop=stop, checkpoint=path,
          checkpoint_seconds=0)
    assert path.is_file()
    config = TrainConfig(dataset="synthetic", epochs=3, seed=3)
    whole = train(config, dataset)
    with caplog.at_level(logging.WARNING, logger="hmlc_core.checkpoint"):
        fresh = train(config, dataset, checkpoint=path, checkpoint_seconds=0)
    assert fresh.resumed_epochs == 0
    _same_training(whole, fresh)
    assert "belongs to another run" in caplog.text and "lr" in caplog.text and str(path) in caplog.text
    caplog.clear()
    path.write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="hmlc_core.checkpoint"):
        again = train(config, dataset, checkpoint=path)
    assert again.resumed_epochs == 0 and "cannot be read" in caplog.text
    _same_training(whole, again)


def test_no_checkpoint_after_the_last_epoch_and_none_for_shortlist_training(dataset, tmp_path: Path) -> None:
    path = tmp_path / "run.checkpoint.pt"
    train(TrainConfig(dataset="synthetic", epochs=1, seed=0), dataset, checkpoint=path, checkpoint_seconds=0)
    assert not path.exists()  # nothing left to resume: the caller saves the run
    with pytest.raises(ValueError, match="checkpoint"):
        train(TrainConfig(dataset="synthetic", epochs=1, shortlist=5, weighting="none", focal="none"), dataset,
              checkpoint=path)


def test_a_checkpoint_written_before_a_config_field_existed_resumes_if_the_field_is_at_its_default(
        dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Upgrading the package mid-run must not discard hours of training: a field the saved key lacks counts as
    its default; a field this run sets away from its default still refuses the checkpoint."""
    config = TrainConfig(dataset="synthetic", epochs=3, seed=3, fit_on="train", batch_size=4)
    whole = train(config, dataset)
    path = tmp_path / "run.checkpoint.pt"
    progress, stop = _killed_after(1)
    train(config, dataset, progress=lambda e: progress(e["epoch"]), should_stop=stop, checkpoint=path,
          checkpoint_seconds=0)
    saved = torch.load(path, weights_only=True)
    del saved["key"]["config"]["shortlist_cycle"]  # as if written before the field was added
    torch.save(saved, path)
    resumed = train(config, dataset, checkpoint=path, checkpoint_seconds=0)
    assert resumed.resumed_epochs == 1
    _same_training(whole, resumed)
    progress, stop = _killed_after(1)
    train(config, dataset, progress=lambda e: progress(e["epoch"]), should_stop=stop, checkpoint=path,
          checkpoint_seconds=0)
    saved = torch.load(path, weights_only=True)
    del saved["key"]["config"]["shortlist_cycle"]
    torch.save(saved, path)
    with caplog.at_level(logging.WARNING, logger="hmlc_core.checkpoint"):
        fresh = train(TrainConfig(**{**config.to_dict(), "shortlist_cycle": 7}), dataset, checkpoint=path)
    assert fresh.resumed_epochs == 0 and "shortlist_cycle" in caplog.text
