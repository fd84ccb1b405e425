"""The command line: train, evaluate --json, errors, and a clean stop on Ctrl-C."""

import json
import os
import re
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


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["demo"], ["seeds"], ["wilcoxon"], ["datasets"],
                                     ["worker"]])
def test_help_is_plain_text(command, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for markup in ("``", ":func:", ":mod:", ":class:", ":data:"):
        assert markup not in text, f"{command}: {markup!r} in --help"
    # a description in words, between the usage and the option list
    description = text.split("\n\n")[1]
    assert len(description) > 30 and not description.lstrip().startswith(("-", "positional", "options")), text


def _screen_lines(raw: str) -> list[str]:
    """What a terminal shows of ``raw``: a carriage return moves to column 0 and later text overwrites."""
    raw = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)  # colour and cursor sequences
    lines = []
    for line in raw.replace("\r\n", "\n").split("\n"):
        cells: list[str] = []
        for segment in line.split("\r"):
            cells[:len(segment)] = segment
        lines.append("".join(cells).rstrip())
    return lines


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_log_lines_keep_their_own_lines_next_to_the_progress_bar(tmp_path) -> None:
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # tqdm draws nothing at width 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "hmlc_core", "train", "--dataset", "synthetic", "--epochs", "2",
         "--out", str(tmp_path / "run")],
        cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    lines = _screen_lines(b"".join(chunks).decode("utf-8", errors="replace"))
    # tqdm's rate, digits then the unit (1.43s/epoch when an epoch takes over a second, on a loaded machine; the
    # log's summary line writes "0.7 s/epoch" with a space)
    rate = re.compile(r"\d(epoch/s|s/epoch)")
    assert any(rate.search(line) for line in lines), lines  # the bar was drawn
    logged = [line for line in lines if re.search(r"\b(INFO|WARNING)\b", line)]
    assert any("training synthetic" in line for line in logged) and any("saved" in line for line in logged)
    for line in logged:
        assert re.match(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line) and not rate.search(line), lines


def test_default_out_is_readable_and_a_taken_name_is_warned_about(synthetic_run, tmp_path, monkeypatch,
                                                                 caplog) -> None:
    import shutil

    from hmlc_core.cli import _default_out, _warn_if_name_taken
    from hmlc_core.registry import Registry
    from hmlc_core.train import TrainConfig

    monkeypatch.setenv("HMLC_RUNS_DIR", str(tmp_path / "runs"))
    config = TrainConfig(dataset="synthetic", weighting="none", focal="none", seed=3)
    out = _default_out(config)
    assert out.parent == tmp_path / "runs"
    assert out.name.startswith("synthetic-plain-s3-") and len(out.name) == len("synthetic-plain-s3-") + 15

    # a first run of that configuration, imported by the dashboard's registry under its readable name
    shutil.copytree(synthetic_run, tmp_path / "runs" / "synthetic-plain-s3-20261129-034916")
    doc = json.loads((synthetic_run / "config.json").read_text())
    doc["train"].update(weighting="none", focal="none", seed=3)
    (tmp_path / "runs" / "synthetic-plain-s3-20261129-034916" / "config.json").write_text(json.dumps(doc))
    (first,) = Registry(tmp_path / "runs").sync()
    assert first.name == "synthetic · plain · seed 3"
    with caplog.at_level("WARNING", logger="hmlc_core.cli"):
        _warn_if_name_taken(config, out)
    assert any(first.id in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="hmlc_core.cli"):
        _warn_if_name_taken(config, tmp_path / "runs" / "my-own-name")
        _warn_if_name_taken(config, tmp_path / "elsewhere" / "x")  # no registry there
    assert not caplog.records


def test_a_killed_training_with_checkpoint_goes_on_when_run_again(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "hmlc_core", "train", "--dataset", "synthetic", "--epochs", "6", "--heads", "1",
               "--weighting", "none", "--focal", "none", "--out", str(out), "--checkpoint", "--checkpoint-every", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command + ["--quiet"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / ".run.checkpoint.pt"
    deadline = time.time() + 120
    for line in proc.stderr:  # killed outright (no Ctrl-C handler runs) once epoch 3 has finished
        if "checkpoint after epoch 3" in line or time.time() > deadline:
            break
    proc.kill()
    proc.communicate(timeout=60)
    assert checkpoint.is_file() and not out.exists()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stderr and "after epoch 3 of 6" in proc.stderr
    run = load_run(out)
    assert run.summary["status"] == "finished" and run.summary["resumed_epochs"] == 3
    assert run.summary["epochs_completed"] == 6 and len(run.history) == 6
    assert not checkpoint.exists()
