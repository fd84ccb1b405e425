"""The C-HMCNN ``HMC_data`` download layout: finding, listing and loading every dataset, and its presets.

The layout and file names are those of the C-HMCNN repository (github.com/EGiunchiglia/C-HMCNN, folder
``HMC_data/`` at commit 06d35feab7067756e288c3b0f3e570a8fb7c99d5; its ``utils/__init__.py`` maps each
dataset name to these files)::

    HMC_data/datasets_FUN/<x>_FUN/<x>_FUN.{train,valid,test}.arff   (10 feature sets)
    HMC_data/datasets_GO/<x>_GO/<x>_GO.{train,valid,test}.arff      (9 feature sets, no church_GO)
    HMC_data/others/Diatoms_{train,test}.arff
    HMC_data/others/Enron_corr_{trainvalid,test}.arff               (train split named trainvalid)
    HMC_data/others/ImCLEF07{A,D}_{Train,Test}.arff                 (capitalised)

The fixtures are small synthetic ARFF files written into tmp folders with those names; each split has
its own row count, so a test can tell which file became which split.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hmlc_core.config import TrainConfig
from hmlc_core.data import DatasetNotFoundError, find_dataset_files, list_datasets, load_dataset
from hmlc_core.jobs import check_launchable, has_valid_split
from hmlc_core.presets import DEFAULT_PRESET, Preset, preset_for

# Row counts per split file: distinct, so the split a file became can be read off the loaded dataset.
ROWS = {"train": 5, "valid": 3, "trainvalid": 8, "test": 4}

_FUN_ITEMS = "01,01/01,01/02,02,02/01"
_FUN_LABELS = ("01/01", "01/02@02", "02/01", "01")
_GO_ITEMS = "root/GO0003674,root/GO0008150,GO0003674/GO1,GO0008150/GO1,GO1/GO2"
_GO_LABELS = ("GO2", "GO1", "GO0003674", "GO2@GO0008150")


def _arff(rows: int, dag: bool = False) -> str:
    items, labels = (_GO_ITEMS, _GO_LABELS) if dag else (_FUN_ITEMS, _FUN_LABELS)
    lines = ["@RELATION synthetic", "@ATTRIBUTE f1 numeric", "@ATTRIBUTE f2 {a,b}",
             f"@ATTRIBUTE class hierarchical {items}", "@DATA"]
    lines += [f"{i * 0.5},{'ab'[i % 2]},{labels[i % len(labels)]}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def _put(root: Path, rel: str, split: str, dag: bool = False) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_arff(ROWS[split], dag))
    return path


# The C-HMCNN HMC_data file list (commit 06d35fe, see the module docstring): dataset name as listed by
# list_datasets -> {split: path below HMC_data}.
_FUN = ("cellcycle", "church", "derisi", "eisen", "expr", "gasch1", "gasch2", "pheno", "seq", "spo")
_GO = ("cellcycle", "derisi", "eisen", "expr", "gasch1", "gasch2", "pheno", "seq", "spo")
CHMCNN_LAYOUT: dict[str, dict[str, str]] = {
    **{f"{x}_FUN": {s: f"datasets_FUN/{x}_FUN/{x}_FUN.{s}.arff" for s in ("train", "valid", "test")} for x in _FUN},
    **{f"{x}_GO": {s: f"datasets_GO/{x}_GO/{x}_GO.{s}.arff" for s in ("train", "valid", "test")} for x in _GO},
    "Diatoms": {"train": "others/Diatoms_train.arff", "test": "others/Diatoms_test.arff"},
    "Enron_corr": {"trainvalid": "others/Enron_corr_trainvalid.arff", "test": "others/Enron_corr_test.arff"},
    "ImCLEF07A": {"train": "others/ImCLEF07A_Train.arff", "test": "others/ImCLEF07A_Test.arff"},
    "ImCLEF07D": {"train": "others/ImCLEF07D_Train.arff", "test": "others/ImCLEF07D_Test.arff"},
}


def _hmc_data(root: Path) -> Path:
    """Write the whole C-HMCNN layout below ``root/HMC_data`` and return that folder."""
    folder = root / "HMC_data"
    for name, files in CHMCNN_LAYOUT.items():
        for split, rel in files.items():
            _put(folder, rel, split, dag=name.endswith("_GO"))
    return folder


@pytest.fixture()
def hmc_data(tmp_path: Path) -> Path:
    return _hmc_data(tmp_path)


# =====================================================================
# finding and listing
# =====================================================================
def test_every_chmcnn_dataset_is_listed(hmc_data):
    assert list_datasets(hmc_data) == sorted(CHMCNN_LAYOUT, key=lambda s: (s.lower(), s))


def test_repository_root_holding_hmc_data_is_searched(hmc_data):
    # a clone of C-HMCNN: HMLC_DATA_DIR may name the clone, which holds HMC_data/
    assert list_datasets(hmc_data.parent) == list_datasets(hmc_data)
    assert find_dataset_files("cellcycle_FUN", hmc_data.parent)["train"] == (
        hmc_data / "datasets_FUN/cellcycle_FUN/cellcycle_FUN.train.arff")


@pytest.mark.parametrize("name", sorted(CHMCNN_LAYOUT))
def test_find_dataset_files_gives_the_layouts_splits(hmc_data, name):
    expected = {("train" if s == "trainvalid" else s): hmc_data / rel for s, rel in CHMCNN_LAYOUT[name].items()}
    assert find_dataset_files(name, hmc_data) == expected
    assert find_dataset_files(name.lower(), hmc_data) == expected


def test_trainvalid_only_is_the_train_split_without_valid(hmc_data):
    ds = load_dataset("enron_corr", hmc_data)
    assert ds.name == "Enron_corr"
    assert ds.valid is None
    assert (ds.train.n_samples, ds.test.n_samples) == (ROWS["trainvalid"], ROWS["test"])
    assert ds.source == {"train": str(hmc_data / "others/Enron_corr_trainvalid.arff"),
                         "test": str(hmc_data / "others/Enron_corr_test.arff")}


def test_trainvalid_only_needs_fit_on_train_valid_and_fixed_decision(hmc_data):
    assert not has_valid_split("Enron_corr", hmc_data)
    with pytest.raises(ValueError, match="no valid split"):
        check_launchable(TrainConfig(dataset="Enron_corr", data_dir=str(hmc_data), fit_on="train"))
    with pytest.raises(ValueError, match="tuned on the valid split"):
        check_launchable(TrainConfig(dataset="Enron_corr", data_dir=str(hmc_data), decision="per-node"))
    check_launchable(TrainConfig(dataset="Enron_corr", data_dir=str(hmc_data)))


def test_dotted_trainvalid_in_a_dataset_folder(tmp_path):
    # the CLUS dotted spelling (C-HMCNN's utils/__init__.py names D0_yeast_GO.trainvalid.arff)
    _put(tmp_path, "datasets_GO/yeast_GO/yeast_GO.trainvalid.arff", "trainvalid", dag=True)
    _put(tmp_path, "datasets_GO/yeast_GO/yeast_GO.test.arff", "test", dag=True)
    _put(tmp_path, "others/D0_yeast_GO.trainvalid.arff", "trainvalid", dag=True)
    _put(tmp_path, "others/D0_yeast_GO.test.arff", "test", dag=True)
    assert list_datasets(tmp_path) == ["D0_yeast_GO", "yeast_GO"]
    ds = load_dataset("yeast_GO", tmp_path)
    assert ds.valid is None and ds.train.n_samples == ROWS["trainvalid"]
    assert not ds.hierarchy.is_tree


def test_separate_train_and_valid_win_over_trainvalid(tmp_path, caplog):
    for split in ("train", "valid", "trainvalid", "test"):
        _put(tmp_path, f"datasets_FUN/x_FUN/x_FUN.{split}.arff", split)
    _put(tmp_path, "others/Y_Train.arff", "train")
    _put(tmp_path, "others/Y_trainvalid.arff", "trainvalid")
    _put(tmp_path, "others/Y_Test.arff", "test")
    with caplog.at_level(logging.INFO, logger="hmlc_core.data"):
        files = find_dataset_files("x_FUN", tmp_path)
    assert files == {s: tmp_path / f"datasets_FUN/x_FUN/x_FUN.{s}.arff" for s in ("train", "valid", "test")}
    assert "x_FUN.trainvalid.arff" in caplog.text
    ds = load_dataset("x_FUN", tmp_path)
    assert (ds.train.n_samples, ds.valid.n_samples) == (ROWS["train"], ROWS["valid"])
    assert find_dataset_files("Y", tmp_path) == {"train": tmp_path / "others/Y_Train.arff",
                                                 "test": tmp_path / "others/Y_Test.arff"}
    assert list_datasets(tmp_path) == ["x_FUN", "Y"]


def test_valid_beside_trainvalid_without_train_is_dropped(tmp_path, caplog):
    # the valid rows are inside trainvalid: keeping them as a valid split would tune on training data
    for split in ("trainvalid", "valid", "test"):
        _put(tmp_path, f"datasets_FUN/z_FUN/z_FUN.{split}.arff", split)
    with caplog.at_level(logging.WARNING, logger="hmlc_core.data"):
        files = find_dataset_files("z_FUN", tmp_path)
    assert files == {"train": tmp_path / "datasets_FUN/z_FUN/z_FUN.trainvalid.arff",
                     "test": tmp_path / "datasets_FUN/z_FUN/z_FUN.test.arff"}
    assert "z_FUN.valid.arff" in caplog.text
    assert load_dataset("z_FUN", tmp_path).valid is None


def test_trainvalid_without_test_is_incomplete(tmp_path):
    _put(tmp_path, "others/Lonely_trainvalid.arff", "trainvalid")
    assert list_datasets(tmp_path) == []
    with pytest.raises(DatasetNotFoundError, match="lacks its test"):
        find_dataset_files("Lonely", tmp_path)


# =====================================================================
# presets: C-HMCNN's main.py (github.com/EGiunchiglia/C-HMCNN, commit 2d1712644fcdb3d4156bf0ad643a9091bd482f87,
# dicts hidden_dims_*, epochss_*, lrs_*): every name of the layout above, as list_datasets spells it
# =====================================================================
CHMCNN_PRESETS: dict[str, tuple[int, int, float]] = {
    "cellcycle_FUN": (500, 106, 1e-4), "derisi_FUN": (500, 67, 1e-4), "eisen_FUN": (500, 110, 1e-4),
    "expr_FUN": (1250, 20, 1e-4), "gasch1_FUN": (1000, 42, 1e-4), "gasch2_FUN": (500, 123, 1e-4),
    "seq_FUN": (2000, 13, 1e-4), "spo_FUN": (250, 115, 1e-4),
    "cellcycle_GO": (1000, 62, 1e-4), "derisi_GO": (500, 91, 1e-4), "eisen_GO": (500, 123, 1e-4),
    "expr_GO": (4000, 70, 1e-4), "gasch1_GO": (500, 122, 1e-4), "gasch2_GO": (500, 177, 1e-4),
    "seq_GO": (9000, 45, 1e-4), "spo_GO": (500, 103, 1e-4),
    "Diatoms": (2000, 474, 1e-5), "Enron_corr": (1000, 133, 1e-5),
    "ImCLEF07A": (1000, 592, 1e-5), "ImCLEF07D": (1000, 588, 1e-5),
}
# In HMC_data but absent from main.py's tables (not in the C-HMCNN paper): the documented default.
UNTUNED = ("church_FUN", "pheno_FUN", "pheno_GO")


def test_preset_table_covers_the_layout():
    assert set(CHMCNN_PRESETS) | set(UNTUNED) == set(CHMCNN_LAYOUT)


@pytest.mark.parametrize(("name", "expected"), sorted(CHMCNN_PRESETS.items()))
def test_chmcnn_preset(name, expected):
    hidden, epochs, lr = expected
    assert preset_for(name) == Preset(hidden, epochs, lr)
    assert preset_for(name.lower()) == preset_for(name.upper()) == preset_for(name)


@pytest.mark.parametrize("name", UNTUNED)
def test_untuned_layout_names_get_the_default(name):
    assert preset_for(name) == DEFAULT_PRESET


@pytest.mark.parametrize(("chmcnn_name", "listed"), [("diatoms_others", "Diatoms"), ("enron_others", "Enron_corr"),
                                                     ("imclef07a_others", "ImCLEF07A"),
                                                     ("imclef07d_others", "ImCLEF07D")])
def test_chmcnn_command_line_names(chmcnn_name, listed):
    # C-HMCNN's main.py --dataset names for the others sets end in "_others"
    assert preset_for(chmcnn_name) == preset_for(listed) != DEFAULT_PRESET


def test_listed_names_resolve_to_their_presets(hmc_data):
    for name in list_datasets(hmc_data):
        expected = CHMCNN_PRESETS.get(name)
        assert preset_for(name) == (DEFAULT_PRESET if expected is None else Preset(*expected)), name
