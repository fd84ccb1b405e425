"""The command line: train, evaluate --json, errors, and a clean stop on Ctrl-C."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hmlc_core.cli import main
from hmlc_core.runs import load_run

ROOT = Path(__file__).resolve().parent.parent


def test_train_then_evaluate_json(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--epochs", "2", "--heads", "2", "--seed", "1",
                 "--weighting", "binary", "--focal", "epistemic", "--focal-k", "1", "--focal-min", "0.5",
                 "--out", str(out), "--quiet"])
    assert code == 0
    run = load_run(out)
    assert (run.config.weighting, run.config.focal, run.config.focal_k, run.config.focal_min) == (
        "binary", "epistemic", 1.0, 0.5)
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "n_eval_nodes", "recall_by_depth"):
        assert key in result
    assert result["n_eval_nodes"] == run.hierarchy.eval_mask.sum()
    assert result["macro_recall"] == pytest.approx(run.summary["macro_recall"])
    assert set(result["recall_by_depth"]) == {"1", "2", "3", "4"}


def test_user_errors_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HMLC_DATA_DIR", raising=False)
    assert main(["train", "--dataset", "cellcycle_FUN", "--out", str(tmp_path / "x")]) == 2
    assert "HMLC_DATA_DIR" in capsys.readouterr().err
    assert main(["train", "--dataset", "synthetic", "--heads", "1", "--focal", "epistemic"]) == 2
    assert "heads >= 2" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    assert main(["train", "--dataset", "synthetic", "--epochs", "1", "--out", str(existing)]) == 2
    assert (existing / "keep.txt").read_text() == "x"


def test_ctrl_c_saves_a_complete_interrupted_run(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hmlc_core", "train", "--dataset", "synthetic", "--epochs", "400", "--out", str(out)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stderr:  # wait for the first finished epoch
        if "epoch 2/400" in line or time.time() > deadline:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    run = load_run(out)
    assert run.summary["status"] == "interrupted"
    assert 2 <= run.summary["epochs_completed"] < 400
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_default_out_uses_the_first_runs_folder(tmp_path, monkeypatch) -> None:
    from hmlc_core.cli import _default_out
    from hmlc_core.runs import env_runs_dirs
    from hmlc_core.train import TrainConfig

    first, second = tmp_path / "first", tmp_path / "second"
    monkeypatch.setenv("HMLC_RUNS_DIR", f"{first}{os.pathsep}{os.pathsep}{second}")
    assert env_runs_dirs() == [first, second]
    assert _default_out(TrainConfig(dataset="synthetic")).parent == first
    monkeypatch.delenv("HMLC_RUNS_DIR")
    assert _default_out(TrainConfig(dataset="synthetic")).parent == Path("runs")
