"""Bounded jobs and clear errors: config ranges, divergence, job caps, disk checks, the server's bind address.

The tests run as root on CI, where ``chmod`` does not stop writes: the read-only test then also makes
``os.access`` report the folder unwritable (monkeypatched), and the full-disk test always fakes
``shutil.disk_usage``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import namedtuple
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_page_retrain import _page, runs_dir  # noqa: F401 (runs_dir is a fixture)

from hmlc_core import jobs, limits
from hmlc_core.cli import main
from hmlc_core.config import TrainConfig
from hmlc_core.registry import Registry
from hmlc_core.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(dataset="synthetic", hidden=8, heads=2, profile="quick", fit_on="train", epochs=1)

# The documented range of every numeric field (docs/method.md; TrainConfig's docstring), written out
# independently of hmlc_core.config: (low, low included, high, high included, whole number, None allowed).
INF = math.inf
RANGES = {
    "encoder_width": (1, True, 1024, True, True, False),
    "epochs": (1, True, INF, False, True, True), "heads": (1, True, INF, False, True, False),
    "hidden": (1, True, INF, False, True, True), "n_layers": (1, True, INF, False, True, False),
    "dropout": (0, True, 1, False, False, False), "lr": (0, False, INF, False, False, True),
    "weight_decay": (0, True, INF, False, False, False), "batch_size": (1, True, INF, False, True, True),
    "seed": (0, True, 2**32 - 1, True, True, False), "omega": (0, True, INF, False, False, False),
    "focal_k": (0, False, INF, False, False, False), "focal_min": (0, True, INF, False, False, False),
    "label_smoothing": (0, True, 0.5, False, False, False), "schedule_k": (0, False, INF, False, False, False),
    "mixed_lambda": (0, True, 1, True, False, True), "lpros": (0, False, 1, True, False, True),
    "cb_beta": (0, True, 1, False, False, False), "asl_gamma_pos": (0, True, INF, False, False, False),
    "asl_gamma_neg": (0, True, INF, False, False, False), "asl_clip": (0, True, 1, False, False, False),
    "logit_adjust": (0, True, INF, False, False, True), "patience": (1, True, INF, False, True, True),
    "threads": (1, True, INF, False, True, False), "eval_batch_size": (1, True, INF, False, True, False),
    "decision_threshold": (0, True, 1, True, False, False), "decision_shrinkage": (0, True, INF, False, False, True),
    "shortlist": (1, True, INF, False, True, True), "shortlist_cycle": (1, True, INF, False, True, False),
    "shortlist_proxy_epochs": (0, True, INF, False, True, False),
    "shortlist_uniform": (0, True, INF, False, True, False),
    "shortlist_full_epochs": (0, True, INF, False, True, False),
    "valid_fraction": (0, True, 1, False, False, False),
}
# Fields whose non-default values need another field set (label smoothing needs ZLPR, patience needs
# fit_on="train", mixed_lambda needs MCLoss, which is the default).
CONTEXT = {"label_smoothing": dict(loss="zlpr"), "patience": dict(fit_on="train"),
           "shortlist": dict(weighting="none", focal="none")}


def _in_range(name: str, value: float) -> bool:
    low, low_in, high, high_in, whole, _ = RANGES[name]
    if not math.isfinite(value) or (whole and not float(value).is_integer()):
        return False
    return (value >= low if low_in else value > low) and (value <= high if high_in else value < high)


def _config(name: str, value: object) -> TrainConfig:
    return TrainConfig(dataset="synthetic", **{**CONTEXT.get(name, {}), name: value})


def test_every_numeric_field_has_a_documented_range() -> None:
    numeric = {f.name for f in fields(TrainConfig)
               if any(t in str(f.type) for t in ("int", "float"))}
    assert numeric == set(RANGES)


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused_naming_the_field(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{name}'")):
        _config(name, bad).resolved().validate()


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(RANGES)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                       st.integers(min_value=-2**40, max_value=2**40)))
def test_a_value_passes_exactly_when_it_lies_in_the_documented_range(name: str, value: float) -> None:
    whole = RANGES[name][4]
    if whole and isinstance(value, float):
        value_ok = False  # whole-number fields take ints only
    else:
        value_ok = _in_range(name, value)
    config = _config(name, value)
    if value_ok:
        config.resolved().validate()
    else:
        with pytest.raises(ValueError, match=re.escape(f"'{name}'")):
            config.resolved().validate()


def test_lr_1e10_ends_failed_with_the_divergence_reason(tmp_path: Path) -> None:
    from hmlc_core.train import TrainingDiverged, train

    with pytest.raises(TrainingDiverged, match="diverged in epoch 1") as caught:
        train(TrainConfig(lr=1e10, **TINY), make_synthetic(seed=0))
    assert "lr = 1e+10" in str(caught.value)
    # the job worker marks the run failed with that reason and saves nothing
    registry = Registry(tmp_path / "runs")
    record = registry.submit(TrainConfig(lr=1e10, **TINY), "diverging")
    assert jobs.run_worker(registry.runs_dir, record.id) == 1
    failed = registry.get(record.id)
    assert failed.status == "failed", failed.status
    assert failed.error.startswith("TrainingDiverged: training diverged in epoch 1")
    assert not failed.path.exists()


def test_cli_train_reports_divergence_and_exits_non_zero(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--dataset", "synthetic", "--epochs", "2", "--hidden", "8", "--lr", "1e10",
                 "--profile", "quick", "--out", str(tmp_path / "run"), "--quiet"])
    assert code == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "nothing was saved" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_sound_training_is_not_flagged() -> None:
    from hmlc_core.train import train

    result = train(TrainConfig(**{**TINY, "epochs": 3}), make_synthetic(seed=0))
    assert result.epochs_completed == 3 and not result.interrupted


def test_model_parameters_match_the_real_ensemble() -> None:
    from hmlc_core.model import HMCEnsemble

    for kind in ("heads", "shared", "mc-dropout"):
        config = TrainConfig(dataset="synthetic", hidden=16, heads=3, n_layers=3, ensemble=kind).resolved()
        model = HMCEnsemble(24, 121, 16, 3, 3, 0.7, kind=kind)
        assert limits.model_parameters(config, 24, 121) == sum(p.numel() for p in model.parameters())


# Peak memory of whole jobs (load, train, save_run) measured above the imports, in MiB (VmHWM reset between
# stages through /proc/self/clear_refs; 2-core machine; hmlc_core.limits.estimate_job_memory's table), measured
# again on 2026-11-29 once save_run predicted the test rows in chunks (issue 17); the largest of repeated
# measurements where repeated. The 111,111-node data are make_synthetic(depth=5, branching=10, n_features=64,
# p_continue=0.9, zipf_exponent=0.5) with these rows; runs/large is the saved 100k-node benchmark run
# (bench/explorer_large.py).
GO_SHAPE = (77, 4126, 1625, 848, 1278)
SHORTLIST_100 = dict(shortlist=100, shortlist_proxy_epochs=0, weighting="none", focal="none")
MEASURED_JOBS = [
    ("runs/large", dict(dataset="synthetic100k", heads=2, hidden=500, epochs=1, **SHORTLIST_100),
     (64, 111_111, 10_000, 1_000, 500), 3_793),
    ("shortlist, 1,000 test rows", dict(dataset="synthetic100k", heads=2, hidden=500, epochs=1, **SHORTLIST_100),
     (64, 111_111, 400, 100, 1_000), 3_777),
    ("shortlist, 1 full epoch", dict(dataset="synthetic100k", heads=2, hidden=500, epochs=2, shortlist_full_epochs=1,
                                     **SHORTLIST_100), (64, 111_111, 200, 40, 300), 4_219),
    ("shortlist, rebuilt each epoch", dict(dataset="synthetic100k", heads=2, hidden=500, epochs=2, shortlist_cycle=1,
                                           **SHORTLIST_100), (64, 111_111, 2_000, 200, 500), 2_999),
    ("full, numba kernel", dict(dataset="synthetic100k", heads=2, hidden=500, batch_size=4, epochs=1),
     (64, 111_111, 400, 100, 500), 3_179),
    ("full, quick, fit on train", dict(dataset="synthetic100k", heads=2, hidden=500, profile="quick", epochs=1,
                                       fit_on="train"), (64, 111_111, 640, 300, 300), 3_355),
    ("cellcycle_GO quick, 1 head", dict(dataset="cellcycle_GO", heads=1, profile="quick", epochs=1), GO_SHAPE, 307),
    ("cellcycle_GO quick, 4 heads", dict(dataset="cellcycle_GO", heads=4, profile="quick", epochs=1), GO_SHAPE, 572),
    ("cellcycle_GO paper, numba", dict(dataset="cellcycle_GO", heads=2, epochs=1), GO_SHAPE, 301),
    ("cellcycle_GO shortlist, 400 uniform", dict(dataset="cellcycle_GO", heads=2, profile="quick", epochs=1,
                                                 shortlist_uniform=400, **SHORTLIST_100), GO_SHAPE, 1_348),
]


@pytest.mark.parametrize("config_fields, shape, measured", [m[1:] for m in MEASURED_JOBS],
                         ids=[m[0] for m in MEASURED_JOBS])
def test_memory_estimate_is_within_2x_above_measured_peaks(config_fields: dict, shape: tuple[int, ...],
                                                           measured: int) -> None:
    config = TrainConfig(**config_fields).resolved()
    config.validate()
    estimate = limits.estimate_job_memory(config, limits.DatasetShape(*shape)) / limits.MB
    assert measured <= estimate <= 2 * measured


def test_the_100k_node_benchmark_fits_in_24_gb_with_its_5000_test_rows() -> None:
    """Issue 17: save_run predicts the test rows in chunks, so each holds about what is saved for it."""
    from hmlc_core.synthetic import LARGE_SYNTHETIC

    config = TrainConfig(dataset="synthetic100k", heads=2, hidden=500, epochs=1, **SHORTLIST_100).resolved()
    run = limits.DatasetShape(64, 111_111, 10_000, 1_000, 500)  # runs/large: 3,793 MiB measured
    assert limits.check_job_memory(config, run, 24 * 1024) < 2 * 3_793 * limits.MB
    # all 40,000 / 5,000 / 5,000 rows: 5.6 GB of labels, and save_run's (2 H + 12) bytes a test cell (8.9 GB) beside
    # one chunk of predictions; 42 GB while it evaluated the whole test split at once
    full = limits.DatasetShape(LARGE_SYNTHETIC["n_features"], 111_111, LARGE_SYNTHETIC["n_train"],
                               LARGE_SYNTHETIC["n_valid"], LARGE_SYNTHETIC["n_test"])
    assert limits.check_job_memory(config, full, 24 * 1024) < 20 * 2**30
    with pytest.raises(limits.LimitError, match="the largest stage is saving the predictions of 20,000 test rows"):
        limits.check_job_memory(config, replace(full, n_test=20_000), 24 * 1024)


def test_memory_estimate_per_row_counts_the_arrays_a_row_adds() -> None:
    config = TrainConfig(dataset="synthetic100k", heads=2, hidden=500, epochs=1, **SHORTLIST_100).resolved()
    base = limits.DatasetShape(64, 111_111, 10_000, 1_000, 500)
    nodes, rows = base.n_nodes, 10_000

    def added(**more: int) -> int:
        return limits.estimate_job_memory(config, replace(base, **more)) - limits.estimate_job_memory(config, base)

    # a training row: its uint8 labels and float32 features (the earlier estimate charged 32 bytes a cell)
    assert rows * nodes <= added(n_train=base.n_train + rows) < 1.1 * rows * nodes
    # a test row: its labels plus what save_run holds for it, the arrays it saves and its decisions (2 H + 7
    # bytes a cell: member probabilities and uncertainty float16, mean float32, decisions uint8), within 2x
    per_cell = added(n_test=base.n_test + rows) / (rows * nodes)
    assert 2 * config.heads + 7 < per_cell < 2 * (2 * config.heads + 7)


_MEASURE_JOB = """
import json, sys
import sklearn.impute, sklearn.preprocessing  # noqa: F401 (the job imports them; part of the baseline)
from hmlc_core import limits
from hmlc_core.config import TrainConfig
from hmlc_core.jobs import dataset_shape
from hmlc_core.runs import save_run
from hmlc_core.synthetic import make_synthetic
from hmlc_core.train import train

def status(key):
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key + ":"))

base = status("VmRSS")
with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
    f.write("5")  # the peak from here on
dataset = make_synthetic(n_train=400, n_valid=200, n_test=400, n_features=32, depth=4, branching=8)
config = TrainConfig(dataset="synthetic", heads=2, hidden=64, profile="quick", epochs=1, fit_on="train")
save_run(sys.argv[1], train(config, dataset), dataset)
print(json.dumps({"peak": status("VmHWM") - base,
                  "estimate": limits.estimate_job_memory(config.resolved(), dataset_shape(dataset))}))
"""


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's /proc/self/clear_refs")
def test_memory_estimate_bounds_a_measured_job(tmp_path: Path) -> None:
    """A 4,680-node job (about 5 s): load, train and save_run in a child, its peak RSS above its imports."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _MEASURE_JOB, str(tmp_path / "run")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["peak"] <= found["estimate"] <= 2 * found["peak"]  # measured 228 MiB, estimated 300


def test_job_limits_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert limits.JobLimits.from_env() == limits.JobLimits(4, 20, 8192)
    monkeypatch.setenv("HMLC_MAX_CONCURRENT_JOBS", "2")
    monkeypatch.setenv("HMLC_MAX_QUEUED_JOBS", "3")
    monkeypatch.setenv("HMLC_MAX_JOB_MEMORY_MB", "100")
    assert limits.JobLimits.from_env() == limits.JobLimits(2, 3, 100)
    monkeypatch.setenv("HMLC_MAX_QUEUED_JOBS", "lots")
    with pytest.raises(limits.LimitError, match="HMLC_MAX_QUEUED_JOBS"):
        limits.JobLimits.from_env()


def test_launching_beyond_the_caps_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "runs")
    caps = limits.JobLimits(max_concurrent=2, max_queued=2, max_job_memory_mb=256)
    shape = jobs.load_dataset_shape("synthetic")
    config = TrainConfig(**TINY)
    for i in range(2):
        jobs.submit(registry, config, f"job {i}", shape, caps)
    with pytest.raises(limits.LimitError, match=r"queue is full: 2 jobs .*HMLC_MAX_QUEUED_JOBS"):
        jobs.submit(registry, config, "one too many", shape, caps)
    assert len(registry.runs(["queued"])) == 2
    # memory: GO-sized (cellcycle_GO: 77 features, 4,126 nodes) with 50 heads of width 1000
    go = limits.DatasetShape(n_features=77, n_nodes=4126, n_train=1625, n_valid=848, n_test=1278)
    big = replace(config, dataset="cellcycle_GO", heads=50, hidden=1000)
    per_head = (limits.estimate_job_memory(big.resolved(), go)
                - limits.estimate_job_memory(replace(big, heads=25).resolved(), go)) / 25 / limits.MB
    assert 97 < per_head < 250  # the adversarial probe measured about 97 MB per head; the estimate bounds it
    with pytest.raises(limits.LimitError, match=r"'heads' \(50\).*HMLC_MAX_JOB_MEMORY_MB"):
        jobs.check_capacity(Registry(tmp_path / "other"), big, go, replace(caps, max_job_memory_mb=4096))
    jobs.check_capacity(Registry(tmp_path / "other"), replace(big, heads=2), go,
                        replace(caps, max_job_memory_mb=4096))
    # concurrency: above the cap is refused, and a stored value above it is lowered at dispatch
    with pytest.raises(limits.LimitError, match="at most 2"):
        jobs.set_concurrency(registry, 50, caps)
    jobs.set_concurrency(registry, 2, caps)
    assert registry.max_concurrent == 2


def test_dispatch_lowers_a_stored_concurrency_above_the_cap(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(tmp_path / "runs")
    registry.set_max_concurrent(50)
    monkeypatch.setenv("HMLC_MAX_CONCURRENT_JOBS", "3")
    assert jobs.dispatch(registry) == []
    assert registry.max_concurrent == 3


def test_worker_refuses_a_job_over_the_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(tmp_path / "runs")
    record = registry.submit(replace(TrainConfig(**TINY), hidden=4000, heads=8), "huge")
    monkeypatch.setenv("HMLC_MAX_JOB_MEMORY_MB", "64")
    assert jobs.run_worker(registry.runs_dir, record.id) == 1
    failed = registry.get(record.id)
    assert failed.status == "failed" and "HMLC_MAX_JOB_MEMORY_MB" in failed.error and "'heads' (8)" in failed.error


def test_read_only_output_folder_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root: chmod does not stop writes, so simulate the read-only folder
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder else real_access(p, mode,
                                                                                                             **kw))
    trained = []
    monkeypatch.setattr("hmlc_core.train.train", lambda *a, **k: trained.append(1))
    with pytest.raises(limits.LimitError, match=f"{re.escape(str(folder))} is not writable"):
        jobs.train_and_save(TrainConfig(**TINY), folder / "run")
    code = main(["train", "--dataset", "synthetic", "--epochs", "1", "--hidden", "8", "--out",
                 str(folder / "sub" / "run"), "--quiet"])
    assert code == 2 and "is not writable" in capsys.readouterr().err
    assert trained == []  # refused before training
    folder.chmod(0o755)


def test_full_disk_is_refused_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    trained = []
    monkeypatch.setattr("hmlc_core.train.train", lambda *a, **k: trained.append(1))
    with pytest.raises(limits.LimitError, match="not enough disk space.*MB free"):
        jobs.train_and_save(TrainConfig(**TINY), tmp_path / "run")
    assert trained == []
    registry = Registry(tmp_path / "runs")
    with pytest.raises(limits.LimitError, match="not enough disk space"):
        jobs.submit(registry, TrainConfig(**TINY), "x", jobs.load_dataset_shape("synthetic"))
    assert registry.runs() == []


def test_run_size_estimate_covers_a_saved_run(synthetic_run: Path) -> None:
    config = TrainConfig(dataset="synthetic", epochs=3, heads=2, seed=0).resolved()
    size = sum(p.stat().st_size for p in synthetic_run.rglob("*") if p.is_file())
    estimate = limits.estimate_run_size(config, jobs.load_dataset_shape("synthetic"))
    assert size <= estimate < 20 * size + limits.MB


def test_the_server_binds_to_localhost_only() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    browser_test = (ROOT / "tests" / "test_e2e_browser.py").read_text(encoding="utf-8")
    assert re.search(r'"--server\.address",\s*"127\.0\.0\.1"', browser_test)
    assert "--server.address 0.0.0.0" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_retrain_page_shows_the_limits_and_refuses_a_job_over_them(runs_dir: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HMLC_MAX_CONCURRENT_JOBS", "2")
    monkeypatch.setenv("HMLC_MAX_JOB_MEMORY_MB", "160")
    at = _page()
    assert any("at most 2 concurrent runs (HMLC_MAX_CONCURRENT_JOBS)" in c.value for c in at.caption)
    assert at.number_input(key="rt_max_concurrent").proto.max == 2
    assert not at.error and not at.button(key="rt_launch").disabled  # 2 synthetic heads fit in 160 MB (131)
    at.number_input(key="rt_heads").set_value(40).run()
    (error,) = at.error
    from app_pages.common import md_text

    assert md_text("'heads' (40)") in error.value and md_text("HMLC_MAX_JOB_MEMORY_MB") in error.value  # as text
    assert at.button(key="rt_launch").disabled
    assert [r.folder for r in Registry(runs_dir).runs()] == ["old_run"]  # nothing was queued
