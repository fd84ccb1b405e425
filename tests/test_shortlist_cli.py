"""Shortlist training through the command line, ``train`` and saved runs (issue 17, item 4).

References are independent of the wiring under test: a direct call of
:func:`hmlc_core.shortlists.train_shortlist` with the numbers the command line was given (its losses and
weights), the dense ensemble's own predictions, and ``np.concatenate`` + ``torch.as_tensor`` for the label
batches of full training.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hmlc_core.catalog import open_dataset
from hmlc_core.cli import DEMO_RUN_DIR, main
from hmlc_core.config import TrainConfig
from hmlc_core.estimator import HMCClassifier
from hmlc_core.model import MCM
from hmlc_core.runs import load_run, read_config
from hmlc_core.shortlists import train_shortlist
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import TrainingDiverged, _LabelRows, predict_members, train

SHORTLIST_FIELDS = {"shortlist": 8, "shortlist_cycle": 2, "shortlist_proxy_epochs": 1, "shortlist_ann": "exact",
                    "shortlist_uniform": 3, "shortlist_full_epochs": 1}
CLI = ["train", "--dataset", "synthetic", "--epochs", "4", "--hidden", "16", "--heads", "2", "--batch-size", "32",
       "--lr", "0.003", "--seed", "3", "--weighting", "none", "--focal", "none", "--shortlist", "8",
       "--shortlist-cycle", "2", "--shortlist-proxy-epochs", "1", "--shortlist-ann", "exact",
       "--shortlist-uniform", "3", "--shortlist-full-epochs", "1", "--quiet"]
PLAIN = dict(dataset="synthetic", weighting="none", focal="none", shortlist=4, epochs=2, hidden=8, batch_size=64)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shortlist") / "run"
    assert main(CLI + ["--out", str(out)]) == 0
    return out


def test_cli_trains_what_train_shortlist_trains_and_the_run_loads(cli_run: Path) -> None:
    run = load_run(cli_run)
    assert {name: getattr(run.config, name) for name in SHORTLIST_FIELDS} == SHORTLIST_FIELDS
    saved = json.loads((cli_run / "config.json").read_text())["train"]
    assert {name: saved[name] for name in SHORTLIST_FIELDS} == SHORTLIST_FIELDS
    assert run.summary["status"] == "finished"
    assert (run.summary["epochs_completed"], run.summary["epochs_planned"]) == (4, 4)
    # --epochs 4 with one proxy and one full epoch: 1 proxy + 2 shortlist + 1 full, as a direct call with those numbers
    direct = train_shortlist(open_dataset("synthetic"), k=8, hidden=16, epochs=2, batch_size=32, lr=0.003,
                             cycle=2, seed=3, heads=2, proxy_epochs=1, ann="exact", ann_threads=1, uniform=3,
                             full_epochs=1)
    assert [e["phase"] for e in direct.history] == ["proxy", "shortlist", "shortlist", "full"]
    assert list(pd.read_csv(cli_run / "history.csv").columns) == ["epoch", "loss", "seconds"]
    assert run.history["epoch"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(run.history["loss"], [e["loss"] for e in direct.history], rtol=1e-12)
    model = run.load_model()
    reference = direct.model.to_ensemble()
    for (name, saved_w), ref_w in zip(model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(saved_w, ref_w), name
    data = open_dataset("synthetic")
    probs = predict_members(reference, MCM(data.hierarchy), data.test.X).mean(0).numpy()
    np.testing.assert_allclose(run.predictions()["mean_probs"], probs, rtol=1e-6, atol=1e-7)


def test_runs_without_the_shortlist_fields_load_as_full_training(cli_run: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for f in cli_run.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    doc = json.loads((old / "config.json").read_text())
    for name in SHORTLIST_FIELDS:
        del doc["train"][name]
    (old / "config.json").write_text(json.dumps(doc))
    config = load_run(old).config
    assert config.shortlist is None and read_config(old).shortlist is None
    assert (config.shortlist_cycle, config.shortlist_proxy_epochs, config.shortlist_ann) == (5, 1, "auto")
    assert (config.shortlist_uniform, config.shortlist_full_epochs) == (0, 0)
    bundled = json.loads((DEMO_RUN_DIR / "config.json").read_text())["train"]
    assert "shortlist" not in bundled and load_run(DEMO_RUN_DIR).config.shortlist is None


@pytest.mark.parametrize("field, value", [
    ("loss", "zlpr"), ("weighting", "class-wise"), ("focal", "mean"), ("schedule", "lin"), ("lpros", 0.1),
    ("logit_adjust", 1.0), ("mixed_lambda", 0.5), ("ensemble", "shared"), ("ensemble", "mc-dropout"),
    ("patience", 2), ("encoder", "cnn"), ("encoder", "frozen"), ("kernel", "numba"), ("n_layers", 1),
    ("shortlist_proxy_epochs", 3), ("shortlist_cycle", 0), ("shortlist", 0), ("shortlist_ann", "annoy"),
    ("shortlist_uniform", -1), ("shortlist_full_epochs", -1), ("shortlist_full_epochs", 2),
])
def test_what_shortlist_training_cannot_do_is_refused_naming_the_field(field: str, value: object) -> None:
    extra = {"fit_on": "train"} if field == "patience" else {}
    config = TrainConfig(**{**PLAIN, **extra, field: value})
    with pytest.raises(ValueError, match=re.escape(f"'{field}'")):
        config.resolved().validate()
    with pytest.raises(ValueError, match=re.escape(f"'{field}'")):
        train(config, make_synthetic(n_train=20, n_valid=5, n_test=5, seed=0))


def test_the_same_options_without_shortlist_are_accepted() -> None:
    TrainConfig(**{**PLAIN, "shortlist": None, "lpros": 0.1, "kernel": "numba"}).resolved().validate()
    resolved = TrainConfig(**{**PLAIN, "batch_size": 4}).resolved()
    assert resolved.kernel == "torch"  # auto: shortlist training runs on autograd, whatever the batch size
    resolved.validate()


def test_cli_refusal_names_every_field_to_change(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [a for a in CLI if a not in ("--weighting", "--focal", "none")]
    assert main(args + ["--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "'shortlist' = 8" in err and "'weighting' = 'class-wise'" in err and "'focal' = 'mean'" in err
    assert not (tmp_path / "run").exists()


def test_cli_help_lists_the_shortlist_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for option in ("--shortlist K", "--shortlist-cycle N", "--shortlist-proxy-epochs N",
                   "--shortlist-ann {auto,hnsw,exact}", "--shortlist-uniform M", "--shortlist-full-epochs N"):
        assert option in text
    assert "'synthetic'" in text and "'shapes'" in text


def test_stopping_early_marks_the_result_interrupted() -> None:
    data = make_synthetic(n_train=60, n_valid=10, n_test=10, seed=0)
    result = train(TrainConfig(**{**PLAIN, "epochs": 3}), data, should_stop=lambda: True)
    assert (result.epochs_completed, result.interrupted) == (0, True)


@pytest.mark.parametrize("proxy_epochs", [0, 1])
def test_a_stop_request_is_honoured_after_the_current_step_not_at_the_end_of_the_epoch(proxy_epochs: int) -> None:
    """An epoch of a 100k-node hierarchy takes minutes; a stop (Retrain page, a sweep's shutdown) must not wait."""
    data = make_synthetic(n_train=120, n_valid=10, n_test=10, seed=0)  # 130 rows: 5 steps of 32 per epoch
    polls: list[int] = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) >= 3

    progress: list[dict] = []
    result = train(TrainConfig(**{**PLAIN, "epochs": 3, "batch_size": 32, "shortlist_proxy_epochs": proxy_epochs}),
                   data, progress=progress.append, should_stop=stop)
    assert len(polls) == 3 and progress == [] and result.history == []
    assert (result.epochs_completed, result.interrupted) == (0, True)


def test_divergence_is_reported() -> None:
    data = make_synthetic(n_train=60, n_valid=10, n_test=10, seed=0)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1: a weight.*lr = 1e\\+10"):
        train(TrainConfig(**{**PLAIN, "lr": 1e10, "batch_size": 8}), data)


def test_the_estimator_passes_the_shortlist_options_through() -> None:
    data = make_synthetic(n_train=80, n_valid=10, n_test=20, seed=1)
    clf = HMCClassifier(hierarchy=data.hierarchy, shortlist=4, shortlist_cycle=1, shortlist_proxy_epochs=0,
                        shortlist_uniform=2, shortlist_full_epochs=1, weighting="none", focal="none", epochs=2, hidden=8, batch_size=32)
    clf.fit(data.train.X, data.train.Y)
    assert (clf.config_.shortlist, clf.config_.shortlist_cycle, clf.config_.shortlist_proxy_epochs) == (4, 1, 0)
    assert (clf.config_.shortlist_uniform, clf.config_.shortlist_full_epochs) == (2, 1)
    assert [e["phase"] for e in clf.train_result_.history] == ["shortlist", "full"]
    assert clf.predict_proba(data.test.X).shape == (20, data.hierarchy.n_nodes)


def test_label_batches_equal_the_stacked_float_labels() -> None:
    rng = np.random.default_rng(0)
    parts = [rng.random((n, 7)) < 0.3 for n in (5, 3, 4)]
    parts = [parts[0].astype(np.uint8), parts[1], parts[2].astype(np.uint8)]
    stacked = torch.as_tensor(np.concatenate(parts), dtype=torch.float32)
    labels = _LabelRows(parts)
    assert len(labels) == 12
    for rows in (torch.randperm(12, generator=torch.Generator().manual_seed(1))[:6], np.arange(3, 9),
                 np.array([11, 0, 11])):
        batch = labels[rows]
        assert batch.dtype == torch.float32
        assert torch.equal(batch, stacked[torch.as_tensor(rows)])
    assert torch.equal(_LabelRows(parts[:1])[np.array([4, 1])], stacked[[4, 1]])
