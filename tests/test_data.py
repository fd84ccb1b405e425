"""Tests for hmlc_core.data: ARFF parsing, dataset resolution, loading and preprocessing.

Expected values are worked out by hand from the fixture files in tests/fixtures/
(see the comments next to each expectation). The real-data tests at the end
need HMLC_DATA_DIR pointing at the CLUS HMC folder and are skipped otherwise.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from hmlc_core.data import (
    ArffTable,
    DatasetNotFoundError,
    HMCDataset,
    find_dataset_files,
    list_datasets,
    load_arff_files,
    load_dataset,
    parse_arff,
    resolve_data_dir,
)

FIX = Path(__file__).parent / "fixtures"
FUN = FIX / "fun_tiny.arff"
FUN_VALID = FIX / "fun_tiny_valid.arff"
FUN_TEST = FIX / "fun_tiny_test.arff"
GO = FIX / "go_tiny.arff"


def _labels(hierarchy, rows: list[set[str]]) -> np.ndarray:
    """Hand-written expected label matrix: rows given as sets of node names."""
    y = np.zeros((len(rows), hierarchy.n_nodes), dtype=np.uint8)
    for i, names in enumerate(rows):
        for name in names:
            y[i, hierarchy.index[name]] = 1
    return y


# =====================================================================
# parse_arff: tree style
# =====================================================================
def test_fun_style_and_edges():
    t = parse_arff(FUN)
    assert isinstance(t, ArffTable)
    assert t.style == "tree"
    assert t.relation == "tiny fun"
    # items 01, 01/01/03, 02, 02/05, 01 (duplicate): 01/01/03 implies 01.01
    assert set(t.edges) == {
        ("root", "01"),
        ("01", "01.01"),
        ("01.01", "01.01.03"),
        ("root", "02"),
        ("02", "02.05"),
    }
    assert len(t.edges) == 5  # the duplicate item 01 adds nothing
    assert set(t.nodes) == {"root", "01", "01.01", "01.01.03", "02", "02.05"}


def test_fun_features_one_hot_and_missing():
    t = parse_arff(FUN)
    assert t.feature_names == ["expr1", "expr 2", "chromosome=1", "chromosome=2", "chromosome=mit"]
    assert t.X.dtype == np.float64
    nan = np.nan
    expected = np.array(
        [
            [1.0, 2.0, 1, 0, 0],  # line 10: chromosome=1
            [nan, 4.0, 0, 0, 1],  # line 12: expr1 '?', chromosome=mit
            [3.0, nan, 0, 0, 0],  # line 13: 'expr 2' '?', chromosome '?' -> zero block
            [5.0, 6.0, 0, 0, 0],  # line 14: chromosome '9' is undeclared -> zero block
        ]
    )
    np.testing.assert_array_equal(t.X, expected)  # assert_array_equal treats NaN == NaN


def test_fun_label_terms_are_node_ids():
    t = parse_arff(FUN)
    assert t.label_terms == [["01.01.03"], ["02.05", "01"], ["02"], ["01.01", "02"]]


def test_fun_propagated_labels_match_hand_matrix():
    ds = load_arff_files(FUN, FUN_TEST)
    h = ds.hierarchy
    expected = _labels(
        h,
        [
            {"root", "01", "01.01", "01.01.03"},
            {"root", "01", "02", "02.05"},
            {"root", "02"},
            {"root", "01", "01.01", "02"},
        ],
    )
    np.testing.assert_array_equal(ds.train.Y, expected)
    assert ds.train.Y.dtype == np.uint8
    assert h.parents("01") == ["root"]
    assert h.parents("01.01.03") == ["01.01"]
    assert h.eval_mask.sum() == h.n_nodes - 1
    assert not h.eval_mask[h.index["root"]]


# =====================================================================
# parse_arff: DAG style
# =====================================================================
def test_go_style_edges_parent_first():
    t = parse_arff(GO)
    assert t.style == "dag"
    assert t.feature_names == ["a", "b"]
    # 'GO1/GO3' makes GO3 a child of GO1
    assert t.edges == [
        ("root", "GO1"),
        ("root", "GO2"),
        ("GO1", "GO3"),
        ("GO2", "GO3"),
        ("GO3", "GO4"),
        ("GO1", "GO5"),
    ]
    np.testing.assert_array_equal(t.X, [[0.5, 1.0], [1.0, 2.0], [-1.0, 0.0]])
    assert t.label_terms == [["GO4"], ["GO5", "GO2"], ["GO3"]]  # repeated GO3 deduplicated


def test_go_dag_propagation_through_both_parents():
    ds = load_arff_files(GO, GO)
    h = ds.hierarchy
    assert h.parents("GO3") == ["GO1", "GO2"]
    assert not h.is_tree
    expected = _labels(
        h,
        [
            {"GO4", "GO3", "GO1", "GO2", "root"},
            {"GO5", "GO1", "GO2", "root"},
            {"GO3", "GO1", "GO2", "root"},
        ],
    )
    np.testing.assert_array_equal(ds.train.Y, expected)
    assert h.is_coherent(ds.train.Y)


def test_explicit_styles():
    assert parse_arff(GO, hierarchy_style="dag").edges == parse_arff(GO).edges
    # forced to a tree, 'GO1/GO3' is the path GO1 -> GO1.GO3, so the bare term GO4 (line 7) is unknown
    with pytest.raises(ValueError, match=r"go_tiny\.arff:7\b.*'GO4'"):
        parse_arff(GO, hierarchy_style="tree")
    with pytest.raises(ValueError, match="parent/child"):
        parse_arff(FUN, hierarchy_style="dag")  # item '01' has no '/'
    with pytest.raises(ValueError, match="hierarchy_style"):
        parse_arff(FUN, hierarchy_style="graph")


# =====================================================================
# parse_arff: errors
# =====================================================================
def test_wrong_field_count_names_file_and_line():
    with pytest.raises(ValueError, match=r"bad_fieldcount\.arff:7\b.*expected 3 .*found 2"):
        parse_arff(FIX / "bad_fieldcount.arff")


def test_unknown_label_term_names_file_line_and_term():
    with pytest.raises(ValueError, match=r"bad_label\.arff:7\b.*'01/03'"):
        parse_arff(FIX / "bad_label.arff")


def test_sparse_rows_rejected():
    with pytest.raises(ValueError, match=r"sparse\.arff:5\b.*sparse ARFF is not supported"):
        parse_arff(FIX / "sparse.arff")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_non_numeric_value_names_line_and_attribute(tmp_path):
    p = _write(
        tmp_path,
        "badnum.arff",
        "@RELATION r\n@ATTRIBUTE x numeric\n@ATTRIBUTE y numeric\n@ATTRIBUTE class hierarchical 01\n"
        "@DATA\n1,2,01\n3,abc,01\n",
    )
    with pytest.raises(ValueError, match=r"badnum\.arff:7\b.*'abc'.*'y'"):
        parse_arff(p)


@pytest.mark.parametrize("kind", ["string", "DATE \"yyyy-MM-dd\"", "relational"])
def test_unsupported_attribute_types(tmp_path, kind):
    p = _write(
        tmp_path,
        "strattr.arff",
        f"@RELATION r\n@ATTRIBUTE x numeric\n@ATTRIBUTE s {kind}\n@ATTRIBUTE class hierarchical 01\n@DATA\n",
    )
    with pytest.raises(ValueError, match=r"strattr\.arff:3\b.*unsupported type"):
        parse_arff(p)


def test_missing_class_attribute(tmp_path):
    p = _write(tmp_path, "noclass.arff", "@RELATION r\n@ATTRIBUTE x numeric\n@DATA\n1\n")
    with pytest.raises(ValueError, match=r"noclass\.arff.*hierarchical"):
        parse_arff(p)


def test_class_attribute_found_by_type_and_crlf(tmp_path):
    # class attribute in the middle, odd keyword case, CRLF line ends, spaces around values
    text = (
        "@Relation r\r\n@Attribute 'my x' Numeric\r\n@ATTRIBUTE labels HIERARCHICAL a,a/b\r\n"
        "@attribute z {u,v}\r\n@data\r\n 1.5 , a/b , v \r\n?,a,u\r\n"
    )
    p = tmp_path / "mid.arff"
    p.write_bytes(text.encode())
    t = parse_arff(p)
    assert t.feature_names == ["my x", "z=u", "z=v"]
    np.testing.assert_array_equal(t.X, [[1.5, 0, 1], [np.nan, 1, 0]])
    assert t.label_terms == [["a.b"], ["a"]]


def test_mismatched_features_name_both_files(tmp_path):
    other = _write(
        tmp_path,
        "other.arff",
        "@RELATION r\n@ATTRIBUTE expr1 numeric\n@ATTRIBUTE class hierarchical 01\n@DATA\n1,01\n",
    )
    with pytest.raises(ValueError, match=r"fun_tiny\.arff.*other\.arff"):
        load_arff_files(FUN, other)


# =====================================================================
# preprocessing: mean imputation and scaling fitted on train+valid (docs/method.md, *Data and hierarchy*)
# =====================================================================
def test_imputation_and_scaling_fit_on_train_and_valid():
    ds = load_arff_files(FUN, FUN_TEST, valid=FUN_VALID, name="tiny")
    assert ds.name == "tiny"
    assert ds.train.X.dtype == np.float32
    # expr1: observed train 1, 3, 5 and valid 2, 7 -> mean 18/5 = 3.6 (fills the train '?').
    # imputed train+valid column 1, 3.6, 3, 5, 2, 7: mean 3.6, squared deviations
    # 6.76 + 0 + 0.36 + 1.96 + 2.56 + 11.56 = 23.2 -> population std sqrt(23.2 / 6)
    mean, std = 3.6, math.sqrt(23.2 / 6)
    np.testing.assert_allclose(ds.train.X[:, 0], (np.array([1, 3.6, 3, 5]) - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(ds.valid.X[:, 0], (np.array([2, 7]) - mean) / std, rtol=1e-6)
    # test expr1: 9 and '?' (imputed with the train+valid mean -> 0 after centring)
    np.testing.assert_allclose(ds.test.X[:, 0], [(9 - mean) / std, 0.0], rtol=1e-6, atol=1e-7)
    # 'expr 2': observed 2, 4, 6 (train), 8 (valid) -> mean 5; imputed 2, 4, 5, 6, 5, 8
    # squared deviations 9 + 1 + 0 + 1 + 0 + 9 = 20 -> std sqrt(20 / 6); test value 0.0
    np.testing.assert_allclose(ds.test.X[1, 1], (0.0 - 5.0) / math.sqrt(20 / 6), rtol=1e-6)
    # chromosome=1 over train+valid: 1, 0, 0, 0, 0, 0 -> mean 1/6, std sqrt(5)/6
    np.testing.assert_allclose(ds.train.X[0, 2], (1 - 1 / 6) / (math.sqrt(5) / 6), rtol=1e-6)


def test_scaling_without_valid_uses_train_only():
    ds = load_arff_files(FUN, FUN_TEST)
    assert ds.valid is None
    assert ds.name == "fun_tiny"  # default name: the training file's stem
    # expr1 on train only: observed 1, 3, 5 -> mean 3; imputed 1, 3, 3, 5 -> std sqrt(8 / 4)
    np.testing.assert_allclose(ds.train.X[:, 0], (np.array([1, 3, 3, 5]) - 3) / math.sqrt(2), rtol=1e-6)


def test_hierarchy_is_union_of_splits_and_labels_of_every_split():
    ds = load_arff_files(FUN, FUN_TEST, valid=FUN_VALID)
    h = ds.hierarchy
    # only the valid file declares '03'
    assert set(h.nodes) == {"root", "01", "01.01", "01.01.03", "02", "02.05", "03"}
    np.testing.assert_array_equal(ds.valid.Y, _labels(h, [{"root", "03"}, {"root", "01"}]))
    np.testing.assert_array_equal(
        ds.test.Y, _labels(h, [{"root", "02", "02.05"}, {"root", "01", "01.01", "01.01.03"}])
    )
    assert ds.source == {"train": str(FUN), "valid": str(FUN_VALID), "test": str(FUN_TEST)}
    assert ds.train.n_samples == 4 and ds.valid.n_samples == 2 and ds.test.n_samples == 2


# =====================================================================
# dataset resolution
# =====================================================================
@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    def put(rel: str, src: Path) -> None:
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)

    for split, src in (("train", FUN), ("valid", FUN_VALID), ("test", FUN_TEST)):
        put(f"datasets_FUN/aaa_FUN/aaa_FUN.{split}.arff", src)
        put(f"mine/mine.{split}.arff", src)
    put("datasets_GO/bbb_GO/bbb_GO.train.arff", GO)
    put("datasets_GO/bbb_GO/bbb_GO.valid.arff", GO)
    put("datasets_GO/bbb_GO/bbb_GO.test.arff", GO)
    put("others/Ccc_Train.arff", FUN)
    put("others/Ccc_Test.arff", FUN_TEST)
    put("others/ddd_train.arff", FUN)
    put("others/ddd_test.arff", FUN_TEST)
    put("flat.train.arff", FUN)
    put("flat.test.arff", FUN_TEST)
    # incomplete (no train) and unrelated files are not datasets
    put("datasets_FUN/zzz_FUN/zzz_FUN.valid.arff", FUN_VALID)
    put("datasets_FUN/zzz_FUN/zzz_FUN.test.arff", FUN_TEST)
    (tmp_path / "others" / "notes.txt").write_text("not data")
    return tmp_path


def test_list_datasets_all_layouts(layout):
    assert list_datasets(layout) == ["aaa_FUN", "bbb_GO", "Ccc", "ddd", "flat", "mine"]


def test_find_dataset_files(layout):
    files = find_dataset_files("aaa_FUN", layout)
    assert files == {
        "train": layout / "datasets_FUN/aaa_FUN/aaa_FUN.train.arff",
        "valid": layout / "datasets_FUN/aaa_FUN/aaa_FUN.valid.arff",
        "test": layout / "datasets_FUN/aaa_FUN/aaa_FUN.test.arff",
    }
    others = find_dataset_files("Ccc", layout)
    assert others == {"train": layout / "others/Ccc_Train.arff", "test": layout / "others/Ccc_Test.arff"}
    assert find_dataset_files("ccc", layout) == others  # case-insensitive fallback
    assert set(find_dataset_files("flat", layout)) == {"train", "test"}


def test_unknown_dataset_lists_found_names(layout):
    with pytest.raises(DatasetNotFoundError) as info:
        find_dataset_files("nope", layout)
    msg = str(info.value)
    assert "'nope'" in msg and str(layout) in msg
    for name in ("aaa_FUN", "bbb_GO", "Ccc", "ddd", "flat", "mine"):
        assert name in msg
    assert isinstance(info.value, FileNotFoundError)


def test_incomplete_dataset_error(layout):
    with pytest.raises(DatasetNotFoundError, match="zzz_FUN.*train"):
        find_dataset_files("zzz_FUN", layout)


def test_load_dataset_from_layout(layout):
    ds = load_dataset("ccc", layout)
    assert isinstance(ds, HMCDataset)
    assert ds.name == "Ccc"
    assert ds.valid is None
    assert ds.source["train"].endswith("Ccc_Train.arff")
    go = load_dataset("bbb_GO", layout)
    assert go.valid is not None and not go.hierarchy.is_tree


def test_resolve_data_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("HMLC_DATA_DIR", raising=False)
    with pytest.raises(DatasetNotFoundError, match="HMLC_DATA_DIR"):
        resolve_data_dir(None)
    with pytest.raises(DatasetNotFoundError, match="HMLC_DATA_DIR"):
        list_datasets()
    monkeypatch.setenv("HMLC_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    missing = tmp_path / "does-not-exist"
    monkeypatch.setenv("HMLC_DATA_DIR", str(missing))
    with pytest.raises(DatasetNotFoundError, match="does-not-exist"):
        resolve_data_dir(None)
    # an explicit argument wins over the environment variable
    assert resolve_data_dir(tmp_path) == tmp_path
    with pytest.raises(DatasetNotFoundError, match="does-not-exist"):
        load_dataset("x", missing)


# =====================================================================
# real CLUS data: node, evaluated-node and split counts, propagated and coherent labels
# (docs/method.md, *Data and hierarchy*); skipped without HMLC_DATA_DIR
# =====================================================================
@pytest.fixture(scope="module")
def real_dir() -> Path:
    env = os.environ.get("HMLC_DATA_DIR")
    if not env:
        pytest.skip("real-data test: set HMLC_DATA_DIR to the CLUS HMC folder (datasets_FUN/, datasets_GO/, others/)")
    if not Path(env).is_dir():
        pytest.skip(f"real-data test: HMLC_DATA_DIR={env!r} is not a directory")
    return Path(env)


def _load_or_skip(name: str, data_dir: Path) -> HMCDataset:
    try:
        find_dataset_files(name, data_dir)
    except DatasetNotFoundError:
        pytest.skip(f"real-data test: dataset {name} not found under HMLC_DATA_DIR={data_dir}")
    return load_dataset(name, data_dir)


@pytest.fixture(scope="module")
def cellcycle_fun(real_dir) -> HMCDataset:
    return _load_or_skip("cellcycle_FUN", real_dir)


@pytest.fixture(scope="module")
def cellcycle_go(real_dir) -> HMCDataset:
    return _load_or_skip("cellcycle_GO", real_dir)


def _check_common(ds: HMCDataset, n_features: int) -> None:
    h = ds.hierarchy
    for split in ds.splits.values():
        assert split.X.dtype == np.float32 and split.X.shape[1] == n_features
        assert split.Y.dtype == np.uint8 and split.Y.shape[1] == h.n_nodes
        assert np.isfinite(split.X).all()
        assert split.Y[:, h.index["root"]].all()
        assert h.is_coherent(split.Y)
    fit = np.vstack([ds.train.X, ds.valid.X]) if ds.valid is not None else ds.train.X
    np.testing.assert_allclose(fit.mean(axis=0), 0.0, atol=1e-4)


def test_real_cellcycle_fun(cellcycle_fun):
    ds = cellcycle_fun
    h = ds.hierarchy
    assert ds.name == "cellcycle_FUN"
    assert h.n_nodes == 500 and int(h.eval_mask.sum()) == 499
    assert h.is_tree and h.roots == ["root"]
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (1628, 848, 1281)
    assert ds.n_features == 77
    _check_common(ds, 77)


def test_real_cellcycle_go(cellcycle_go):
    ds = cellcycle_go
    h = ds.hierarchy
    assert h.n_nodes == 4126 and int(h.eval_mask.sum()) == 4122
    assert not h.is_tree
    assert set(h.skipped) == {"root", "GO0003674", "GO0005575", "GO0008150"}
    assert (ds.train.n_samples, ds.valid.n_samples, ds.test.n_samples) == (1625, 848, 1278)
    assert ds.n_features == 77
    _check_common(ds, 77)
    # propagation makes the three GO ontology roots positive for every training sample (docs/method.md,
    # *Data and hierarchy*)
    for go_root in ("GO0003674", "GO0005575", "GO0008150"):
        assert ds.train.Y[:, h.index[go_root]].all()


def test_real_diatoms_has_no_valid(real_dir):
    ds = _load_or_skip("Diatoms", real_dir)
    assert ds.valid is None
    assert (ds.train.n_samples, ds.test.n_samples) == (2065, 1054)
    _check_common(ds, ds.n_features)


def test_real_listing(real_dir):
    names = list_datasets(real_dir)
    for name in ("cellcycle_FUN", "cellcycle_GO", "Diatoms"):
        if name not in names:
            pytest.skip(f"real-data test: {name} not present under {real_dir}")
    assert names == sorted(names, key=lambda s: (s.lower(), s))
