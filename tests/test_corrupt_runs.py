"""One bad file never takes the dashboard down (issue 13, item 2).

Every file of a run folder is corrupted in turn (empty, truncated, invalid UTF-8, wrong JSON types, strings
where numbers belong, compressed or header-only npz members declaring giant arrays, pickled object arrays,
symbolic links out of the folder); loading the run must raise the one error type,
:class:`hmlc_core.runs.RunError`, naming that file. The registry imports the good folders past a bad one, decodes
damaged rows one by one and keeps a damaged ``registry.sqlite`` aside (reported, never silently replaced).
Finally the dashboard shows a good run next to a corrupt one, with an error naming the bad file.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hmlc_core.registry import REGISTRY_FILE, Registry, RegistryError, display_names
from hmlc_core.runs import RunError, find_runs, load_run, read_config

JSON_FILES = ("config.json", "summary.json", "hierarchy.json")
CSV_FILES = ("node_metrics.csv", "history.csv")
READ_FILES = (*JSON_FILES, *CSV_FILES, "predictions.npz", "model.pt")


def _load(run_dir: Path, name: str) -> None:
    """Everything that reads ``name``: the run, and its predictions or model when that is the file."""
    run = load_run(run_dir)
    if name == "predictions.npz":
        run.predictions()
    if name == "model.pt":
        run.load_model()


def _assert_names(exc: RunError, run_dir: Path, name: str) -> None:
    assert exc.path == run_dir / name
    assert name in str(exc)
    assert exc.reason and exc.reason in str(exc)


@pytest.fixture
def run_copy(synthetic_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synthetic_run, tmp_path / "runs" / "bad"))


# ----------------------------------------------------------------------------------- byte-level corruptions
def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _invalid_utf8(path: Path) -> None:
    path.write_bytes(b"\xff\xfe\xfa" + path.read_bytes()[3:])


def _symlink_outside(path: Path) -> None:
    """The same (valid) content, but through a link to a file outside the run folder."""
    outside = path.parent.parent.parent / f"outside-{path.name}"
    shutil.copyfile(path, outside)
    path.unlink()
    path.symlink_to(outside)


BYTE_CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "empty": _empty, "truncated": _truncated, "invalid-utf8": _invalid_utf8, "symlink-outside": _symlink_outside,
}


@pytest.mark.parametrize("kind", list(BYTE_CORRUPTIONS))
@pytest.mark.parametrize("name", READ_FILES)
def test_corrupt_file_raises_run_error_naming_it(run_copy: Path, name: str, kind: str) -> None:
    BYTE_CORRUPTIONS[kind](run_copy / name)
    with pytest.raises(RunError) as info:
        _load(run_copy, name)
    _assert_names(info.value, run_copy, name)


# ------------------------------------------------------------------------------------ wrong JSON/CSV types
def _edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    result = edit(doc)
    path.write_text(json.dumps(doc if result is None else result), encoding="utf-8")


def _set(keys: tuple[str, ...], value: object) -> Callable[[dict], None]:
    def edit(doc: dict) -> None:
        for key in keys[:-1]:
            doc = doc[key]
        doc[keys[-1]] = value
    return edit


TYPE_CORRUPTIONS = {
    "config-list": ("config.json", lambda d: [d]),
    "config-train-string": ("config.json", lambda d: {**d, "train": "epochs=3"}),
    "config-heads-string": ("config.json", _set(("train", "heads"), "two")),
    "config-model-list": ("config.json", _set(("model",), [1, 2])),
    "summary-list": ("summary.json", lambda d: list(d)),
    "summary-count-string": ("summary.json", _set(("n_train",), "many")),
    "summary-epochs-float-string": ("summary.json", _set(("epochs_completed",), "3.5")),
    "summary-recall-by-depth-list": ("summary.json", _set(("recall_by_depth",), ["a"])),
    "hierarchy-list": ("hierarchy.json", lambda d: [d]),
    "hierarchy-nodes-string": ("hierarchy.json", _set(("nodes",), "root")),
    "hierarchy-edges-number": ("hierarchy.json", _set(("edges",), 5)),
    "hierarchy-edge-number": ("hierarchy.json", lambda d: {**d, "edges": [7, *d["edges"]]}),
}


@pytest.mark.parametrize("case", list(TYPE_CORRUPTIONS))
def test_wrong_json_types_raise_run_error(run_copy: Path, case: str) -> None:
    name, edit = TYPE_CORRUPTIONS[case]
    _edit_json(run_copy / name, edit)
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    _assert_names(info.value, run_copy, name)


def test_read_config_raises_run_error_on_invalid_utf8(run_copy: Path) -> None:
    _invalid_utf8(run_copy / "config.json")
    with pytest.raises(RunError) as info:
        read_config(run_copy)
    _assert_names(info.value, run_copy, "config.json")


def _set_cell(text: str, row: int, column: str, value: str) -> str:
    """``text`` (a CSV without quoted cells) with the cell of data row ``row`` (1 = first) in ``column`` set."""
    lines = text.splitlines()
    cells = lines[row].split(",")
    cells[lines[0].split(",").index(column)] = value
    lines[row] = ",".join(cells)
    return "\n".join(lines) + "\n"


CSV_CORRUPTIONS = {
    "node-metrics-header-only": ("node_metrics.csv", lambda t: t.splitlines()[0] + "\n"),
    "node-metrics-no-node-column": ("node_metrics.csv", lambda t: t.replace("node,", "name,", 1)),
    "node-metrics-frequency-text": ("node_metrics.csv", lambda t: _set_cell(t, 1, "train_frequency", "lots")),
    "node-metrics-unbalanced-quote": ("node_metrics.csv", lambda t: t.replace("\n", '\n"', 2)),
    "history-text-epoch": ("history.csv", lambda t: t.replace("\n1,", "\none,", 1)),
    "history-no-loss": ("history.csv", lambda t: t.replace("loss", "lost", 1)),
}


@pytest.mark.parametrize("case", list(CSV_CORRUPTIONS))
def test_wrong_csv_content_raises_run_error(run_copy: Path, case: str) -> None:
    name, edit = CSV_CORRUPTIONS[case]
    path = run_copy / name
    text = path.read_text(encoding="utf-8")
    path.write_text(edit(text), encoding="utf-8")
    assert path.read_text(encoding="utf-8") != text
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    _assert_names(info.value, run_copy, name)


# ------------------------------------------------------------------------------------------ predictions.npz
def _rewrite_npz(path: Path, replace: dict[str, bytes]) -> None:
    """Rewrite ``path`` with the members named in ``replace`` (``<key>.npy``) given as raw bytes, deflated."""
    with zipfile.ZipFile(path) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members.update(replace)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for filename, data in members.items():
            zf.writestr(filename, data)


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def test_npz_member_declaring_a_giant_array_is_refused_before_reading(run_copy: Path) -> None:
    n_nodes = load_run(run_copy).hierarchy.n_nodes
    _rewrite_npz(run_copy / "predictions.npz", {"mean_probs.npy": _npy_header((10**12, n_nodes), "<f4") + b"\0" * 64})
    assert (run_copy / "predictions.npz").stat().st_size < 10**6
    run = load_run(run_copy)
    with pytest.raises(RunError) as info:
        run.predictions()
    _assert_names(info.value, run_copy, "predictions.npz")
    assert "mean_probs" in str(info.value)


def test_npz_bomb_is_refused_without_decompressing_it(run_copy: Path) -> None:
    """64 MB of zeros deflate to ~64 kB; its declared test size is not the run's, so it is never expanded."""
    n_nodes = load_run(run_copy).hierarchy.n_nodes
    rows = 64 * 2**20 // n_nodes
    _rewrite_npz(run_copy / "predictions.npz", {"y_true.npy": _npy(np.zeros((rows, n_nodes), np.uint8))})
    assert (run_copy / "predictions.npz").stat().st_size < 2**20
    run = load_run(run_copy)
    tracemalloc.start()
    try:
        with pytest.raises(RunError) as info:
            run.predictions()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    _assert_names(info.value, run_copy, "predictions.npz")
    assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MiB allocated while refusing the bomb"


def test_npz_object_array_is_refused(run_copy: Path) -> None:
    n_test = len(load_run(run_copy).predictions()["y_true"])
    _rewrite_npz(run_copy / "predictions.npz", {"uncertainty.npy": _npy(np.array([{"a": 1}] * n_test, dtype=object))})
    with pytest.raises(RunError) as info:
        load_run(run_copy).predictions()
    _assert_names(info.value, run_copy, "predictions.npz")


def test_npz_shape_not_matching_the_run_is_refused(run_copy: Path) -> None:
    preds = load_run(run_copy).predictions()
    _rewrite_npz(run_copy / "predictions.npz", {"y_true.npy": _npy(preds["y_true"][:-1])})
    with pytest.raises(RunError) as info:
        load_run(run_copy).predictions()
    _assert_names(info.value, run_copy, "predictions.npz")
    assert "y_true" in str(info.value)


def test_intact_predictions_still_load(run_copy: Path, synthetic_run: Path) -> None:
    preds = load_run(run_copy).predictions()
    with np.load(synthetic_run / "predictions.npz") as ref:
        assert set(preds) == set(ref.files)
        for key in ref.files:
            np.testing.assert_array_equal(preds[key], ref[key])
            assert preds[key].dtype == ref[key].dtype


# --------------------------------------------------------------------------------------- files not read
@pytest.mark.parametrize("name", ["decision.json", "resources.json"])
def test_files_the_loader_does_not_read_do_not_matter(run_copy: Path, name: str) -> None:
    (run_copy / name).write_bytes(b"\xff\x00 not json")
    run = load_run(run_copy)
    assert run.predictions()["y_true"].shape[1] == run.hierarchy.n_nodes


# ------------------------------------------------------------------------------------------------ folders
def test_run_folder_linked_from_outside_the_runs_folder_is_not_listed(synthetic_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(synthetic_run, runs / "inside")
    shutil.copytree(synthetic_run, tmp_path / "elsewhere")
    (runs / "linked").symlink_to(tmp_path / "elsewhere")
    assert find_runs([runs]) == [(runs / "inside").resolve()]


# -------------------------------------------------------------------------------------------------- registry
def _folder(runs: Path, synthetic_run: Path, name: str, **summary: object) -> Path:
    path = Path(shutil.copytree(synthetic_run, runs / name))
    if summary:
        _edit_json(path / "summary.json", lambda d: {**d, **summary})
    return path


@pytest.mark.parametrize("summary", [{"epochs_completed": "many"}, {"epochs_planned": [3]},
                                     {"epochs_completed": -3}, {"epochs_planned": 1.5}])
def test_import_of_a_bad_summary_count_fails_that_folder_only(synthetic_run: Path, tmp_path: Path,
                                                              summary: dict) -> None:
    runs = tmp_path / "runs"
    _folder(runs, synthetic_run, "a-bad", **summary)
    _folder(runs, synthetic_run, "b-good")
    added = {r.folder: r for r in Registry(runs).sync()}
    assert added["b-good"].status == "finished"
    assert added["a-bad"].status == "failed"
    assert "summary.json" in added["a-bad"].error and next(iter(summary)) in added["a-bad"].error


@pytest.mark.parametrize("folder", ["a\\back", " "])
def test_folder_failing_the_check_constraints_does_not_stop_the_import(synthetic_run: Path, tmp_path: Path,
                                                                        folder: str,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    runs = tmp_path / "runs"
    _folder(runs, synthetic_run, folder)
    _folder(runs, synthetic_run, "z-good")
    registry = Registry(runs)
    with caplog.at_level(logging.WARNING, logger="hmlc_core.registry"):
        added = registry.sync()
    assert [r.folder for r in added] == ["z-good"]
    assert any(repr(folder) in m or folder in m for m in caplog.messages if "cannot import" in m)
    assert registry.import_problems == {folder: registry.import_problems[folder]} and registry.import_problems[folder]
    assert registry.sync() == []  # nothing left to import, and no error


def test_row_with_invalid_config_json_is_shown_alone(tmp_path: Path) -> None:
    from hmlc_core.config import TrainConfig

    registry = Registry(tmp_path)
    good = registry.submit(TrainConfig(dataset="synthetic", epochs=1))
    bad = registry.submit(TrainConfig(dataset="synthetic", epochs=1))
    with sqlite3.connect(tmp_path / REGISTRY_FILE) as conn:
        conn.execute("PRAGMA ignore_check_constraints = ON")
        conn.execute("UPDATE runs SET config = '{not json', metrics = '[1, 2' WHERE id = ?", (bad.id,))
    records = {r.id: r for r in registry.runs()}
    assert records[good.id].config["dataset"] == "synthetic"
    assert records[bad.id].config == {} and records[bad.id].metrics == {}
    assert "config" in records[bad.id].error
    assert registry.get(bad.id).config == {}
    with pytest.raises(ValueError):
        records[bad.id].train_config()


def _malformed(path: Path) -> None:
    """A real registry whose pages after the header are overwritten: SQLite reads it as 'malformed'."""
    registry = Registry(path.parent)
    registry.close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    path.write_bytes(bytes(data))


REGISTRY_DAMAGE: dict[str, Callable[[Path], None]] = {
    "zero-bytes": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(b"this is not an SQLite database\n" * 200),
    "malformed": _malformed,
}


@pytest.mark.parametrize("kind", list(REGISTRY_DAMAGE))
def test_damaged_registry_is_kept_aside_and_reported(synthetic_run: Path, tmp_path: Path, kind: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    runs = tmp_path / "runs"
    _folder(runs, synthetic_run, "good")
    path = runs / REGISTRY_FILE
    REGISTRY_DAMAGE[kind](path)
    damaged_bytes = path.read_bytes()
    with pytest.raises(RegistryError, match=REGISTRY_FILE):
        Registry(runs, create=False)
    assert display_names([runs]) == {}  # read-only listing: skipped, no exception
    assert path.read_bytes() == damaged_bytes  # read-only uses never move it
    with caplog.at_level(logging.WARNING, logger="hmlc_core.registry"):
        registry = Registry(runs)
    aside = list(runs.glob(f"{REGISTRY_FILE}.damaged-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == damaged_bytes
    assert registry.damaged == aside[0]
    assert any(str(aside[0]) in m for m in caplog.messages)
    assert [r.folder for r in registry.sync()] == ["good"]
    assert Registry(runs).damaged is None  # the new registry is healthy


# ------------------------------------------------------------------------------------------------ dashboard
APP_CORRUPTIONS = {
    "summary.json": lambda p: _edit_json(p, _set(("epochs_completed",), "many")),
    "config.json": _invalid_utf8,
    "node_metrics.csv": _empty,
}


@pytest.mark.parametrize("name", list(APP_CORRUPTIONS))
def test_dashboard_shows_the_good_run_beside_a_corrupt_one(synthetic_run: Path, tmp_path: Path, name: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import only_runs_in, open_app

    runs = tmp_path / "runs_env"
    _folder(runs, synthetic_run, "good")
    bad = _folder(runs, synthetic_run, "bad")
    APP_CORRUPTIONS[name](bad / name)
    only_runs_in(runs, tmp_path, monkeypatch)

    at = open_app(run="bad")
    assert not at.exception
    errors = "\n".join(e.value for e in at.main.error).replace("\\", "")  # markdown escapes
    assert f"Cannot load this run: {bad / name}" in errors

    at = open_app(run="good")
    assert not at.exception and not at.main.error, [e.value for e in at.main.error]
    assert at.selectbox(key="run").value == "good"
    assert any(m.label == "micro AUPRC" for m in at.metric)


def test_retrain_page_works_next_to_a_folder_the_registry_refuses(synthetic_run: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers import only_runs_in, open_app

    runs = tmp_path / "runs_env"
    _folder(runs, synthetic_run, "a\\back")
    _folder(runs, synthetic_run, "good")
    only_runs_in(runs, tmp_path, monkeypatch)
    monkeypatch.delenv("HMLC_DATA_DIR", raising=False)
    at = open_app("app_pages/retrain.py")
    assert not at.exception
    assert not at.main.error, [e.value for e in at.main.error]
    warnings = "\n".join(w.value for w in at.main.warning).replace("\\", "")
    assert "'aback' was not imported" in warnings
    assert [r.folder for r in Registry(runs).runs()] == ["good"]


def test_folder_linking_outside_the_runs_folder_is_imported_as_failed(synthetic_run: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    shutil.copytree(synthetic_run, tmp_path / "elsewhere")
    runs.mkdir()
    (runs / "linked").symlink_to(tmp_path / "elsewhere")
    (record,) = Registry(runs).sync()
    assert record.status == "failed" and "links outside" in record.error and record.config == {}


def test_oversized_json_is_refused_without_reading_it(run_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from hmlc_core import runs as runs_module

    monkeypatch.setattr(runs_module, "MAX_JSON_BYTES", 100)
    with pytest.raises(RunError) as info:
        load_run(run_copy)
    _assert_names(info.value, run_copy, "config.json")
    assert "larger than" in info.value.reason
