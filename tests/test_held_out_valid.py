"""A valid split held out of the training rows of a dataset shipped without one (``TrainConfig.valid_fraction``).

Diatoms, ImCLEF07A and ImCLEF07D come with train and test files only, so a run could neither keep data aside
(``fit_on="train"``) nor tune a decision rule on them. The held-out rows are checked against scikit-learn's
``train_test_split`` called directly, against the table loader's own valid split, and end to end through
``train_and_save`` and the CLI on a small ARFF dataset laid out like ``HMC_data/others``.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from hmlc_core.catalog import open_dataset
from hmlc_core.config import TrainConfig
from hmlc_core.data import SPLIT_SEED, held_out_rows, hold_out_valid
from hmlc_core.jobs import check_launchable, train_and_save
from hmlc_core.synthetic import make_synthetic
from hmlc_core.tables import load_table_dataset

N_TRAIN, N_TEST = 60, 20
_ITEMS = "01,01/01,01/02,02,02/01"
_LABELS = ("01/01", "01/02@02", "02/01", "01", "02")


def _arff(rows: int, offset: int) -> str:
    lines = ["@RELATION others", "@ATTRIBUTE f1 numeric", "@ATTRIBUTE f2 numeric",
             f"@ATTRIBUTE class hierarchical {_ITEMS}", "@DATA"]
    lines += [f"{(i + offset) * 0.25},{((i + offset) * 7) % 5},{_LABELS[(i + offset) % len(_LABELS)]}"
              for i in range(rows)]
    return "\n".join(lines) + "\n"


@pytest.fixture()
def others(tmp_path: Path) -> Path:
    """``others/Tiny_{train,test}.arff``: a dataset without a valid split, as Diatoms is shipped."""
    folder = tmp_path / "others"
    folder.mkdir()
    (folder / "Tiny_train.arff").write_text(_arff(N_TRAIN, 0))
    (folder / "Tiny_test.arff").write_text(_arff(N_TEST, 1000))
    return tmp_path


@pytest.fixture(scope="module")
def no_valid():
    return replace(make_synthetic(seed=0), valid=None)


def test_held_out_rows_are_train_test_splits(no_valid):
    n = no_valid.train.n_samples
    kept, held = held_out_rows(n, 0.34)
    ref_kept, ref_held = train_test_split(np.arange(n), test_size=0.34, random_state=SPLIT_SEED)
    np.testing.assert_array_equal(kept, np.sort(ref_kept))
    np.testing.assert_array_equal(held, np.sort(ref_held))
    assert len(held) == math.ceil(0.34 * n)
    assert np.array_equal(np.sort(np.concatenate([kept, held])), np.arange(n))


def test_hold_out_valid_moves_those_rows(no_valid):
    ds = hold_out_valid(no_valid, 0.25)
    kept, held = held_out_rows(no_valid.train.n_samples, 0.25)
    np.testing.assert_array_equal(ds.valid.X, no_valid.train.X[held])
    np.testing.assert_array_equal(ds.valid.Y, no_valid.train.Y[held])
    np.testing.assert_array_equal(ds.train.X, no_valid.train.X[kept])
    np.testing.assert_array_equal(ds.train.Y, no_valid.train.Y[kept])
    assert ds.test is no_valid.test and ds.hierarchy is no_valid.hierarchy
    assert no_valid.valid is None  # the input is not changed
    again = hold_out_valid(no_valid, 0.25)
    np.testing.assert_array_equal(again.valid.X, ds.valid.X)  # the same rows in every run
    assert "0.25 of the training rows" in ds.source["valid"]


def test_a_dataset_with_its_own_valid_split_keeps_it(caplog):
    ds = make_synthetic(seed=0)
    with caplog.at_level("INFO", logger="hmlc_core.data"):
        assert hold_out_valid(ds, 0.3) is ds
    assert "has its own valid split" in caplog.text
    assert hold_out_valid(replace(ds, valid=None), 0.0).valid is None


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_fraction_out_of_range_is_refused(no_valid, fraction):
    with pytest.raises(ValueError, match="valid_fraction must be in"):
        hold_out_valid(no_valid, fraction)
    with pytest.raises(ValueError, match="valid_fraction"):
        TrainConfig(dataset="x", valid_fraction=fraction).validate()


def test_too_few_training_rows_names_the_dataset(no_valid):
    one = replace(no_valid, train=replace(no_valid.train, X=no_valid.train.X[:1], Y=no_valid.train.Y[:1]))
    with pytest.raises(ValueError, match=r"dataset 'synthetic'.*1 row\(s\) are too few"):
        hold_out_valid(one, 0.3)


def test_table_loader_holds_out_the_same_rows(tmp_path):
    rng = np.random.default_rng(3)
    rows = ["f1,f2,labels"] + [f"{rng.normal():.4f},{rng.normal():.4f},{'a@b' if i % 3 else 'c'}" for i in range(50)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "t.edges.csv").write_text("parent,child\na,b\nroot,a\nroot,c\n")
    direct = load_table_dataset(tmp_path / "t.csv", tmp_path / "t.edges.csv", valid_fraction=0.3)
    later = hold_out_valid(load_table_dataset(tmp_path / "t.csv", tmp_path / "t.edges.csv"), 0.3)
    for split in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(direct, split).X, getattr(later, split).X)
        np.testing.assert_array_equal(getattr(direct, split).Y, getattr(later, split).Y)


def test_open_dataset_holds_out_a_valid_split(others):
    plain = open_dataset("Tiny", others)
    assert plain.valid is None
    ds = open_dataset("Tiny", others, valid_fraction=0.25)
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (45, 15, N_TEST)
    _, held = held_out_rows(N_TRAIN, 0.25)
    np.testing.assert_array_equal(ds.valid.X, plain.train.X[held])


def test_launch_needs_a_valid_fraction_on_such_a_dataset(others):
    config = TrainConfig(dataset="Tiny", data_dir=str(others), fit_on="train", decision="per-node")
    with pytest.raises(ValueError, match="has no valid split: set fit_on to 'train\\+valid', or hold one out"):
        check_launchable(config)
    check_launchable(replace(config, valid_fraction=0.25))


def test_a_run_tunes_its_rule_on_the_held_out_rows(others, tmp_path):
    config = TrainConfig(dataset="Tiny", data_dir=str(others), fit_on="train", valid_fraction=0.25,
                         decision="per-node", epochs=2, profile="quick", hidden=8)
    run = train_and_save(config, tmp_path / "run")
    assert run.config.valid_fraction == 0.25
    assert (run.summary["n_train"], run.summary["n_valid"]) == (45, 15)
    y_valid, probs = run.held_out()
    plain = open_dataset("Tiny", others)
    _, held = held_out_rows(N_TRAIN, 0.25)
    np.testing.assert_array_equal(y_valid, plain.train.Y[held])
    assert probs.shape == y_valid.shape
    rule = run.decision_rule("per-node")
    assert rule.thresholds.shape == (plain.hierarchy.n_nodes,)


def test_cli_valid_fraction(others, tmp_path, monkeypatch):
    from hmlc_core.cli import main

    monkeypatch.setenv("HMLC_DATA_DIR", str(others))
    out = tmp_path / "cli-run"
    assert main(["train", "--dataset", "Tiny", "--fit-on", "train", "--valid-fraction", "0.2", "--epochs", "1",
                 "--profile", "quick", "--decision", "global", "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["valid_fraction"] == 0.2
    assert json.loads((out / "summary.json").read_text())["n_valid"] == math.ceil(0.2 * N_TRAIN)
