"""Own data as tables: CSV/Parquet tables with an edge-list or OBO hierarchy (hmlc_core.tables, issue 15 item 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hmlc_core.catalog import available_datasets, open_dataset
from hmlc_core.data import DatasetNotFoundError
from hmlc_core.tables import TableError, load_table_dataset, read_edge_list, read_hierarchy, read_table

OBO = """format-version: 1.2
ontology: go-mini

[Term]
id: GO:0008150
name: biological_process
namespace: biological_process

[Term]
id: GO:0009987
name: cellular process
is_a: GO:0008150 ! biological_process

[Term]
id: GO:0007049
name: cell cycle
is_a: GO:0009987 ! cellular process

[Term]
id: GO:0000278
name: mitotic cell cycle
is_a: GO:0007049 ! cell cycle

[Term]
id: GO:0051301
name: cell division
is_a: GO:0009987 ! cellular process
relationship: part_of GO:0007049 ! cell cycle

[Term]
id: GO:0000001
name: old term
is_obsolete: true

[Typedef]
id: part_of
name: part of
"""

EDGES = "parent,child\nroot,a\nroot,b\na,a1\na,a2\nb,b1\na,a1\n"


def _table(path: Path, rows: list[tuple[float, float, str]], header: str = "f1,f2,labels") -> Path:
    path.write_text(header + "\n" + "".join(f"{x},{y},{lab}\n" for x, y, lab in rows))
    return path


def _rows(n: int = 20) -> list[tuple[float, float, str]]:
    labels = ["a1", "a2@b1", "b", "a", "b1"]
    return [(i * 0.5, (i % 3) - 1.0, labels[i % len(labels)]) for i in range(n)]


def test_obo_is_a_drops_obsolete_and_part_of_is_optional(tmp_path: Path) -> None:
    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    h = read_hierarchy(obo)
    assert "GO:0000001" not in h.index
    assert h.parents("GO:0051301") == ["GO:0009987"]
    with_part_of = read_hierarchy(obo, relations=("is_a", "part_of"))
    assert sorted(with_part_of.parents("GO:0051301")) == ["GO:0007049", "GO:0009987"]
    assert with_part_of.roots == ["GO:0008150"]


def test_obo_relation_to_undefined_term_names_its_line(tmp_path: Path) -> None:
    obo = tmp_path / "bad.obo"
    obo.write_text(OBO.replace("is_a: GO:0007049 ! cell cycle", "is_a: GO:9999999"))
    with pytest.raises(TableError, match=r"bad\.obo: line 2\d: term 'GO:0000278' has is_a 'GO:9999999'"):
        read_hierarchy(obo)


def test_edge_list_duplicates_are_fine_and_labels_propagate(tmp_path: Path) -> None:
    edges = tmp_path / "h.csv"
    edges.write_text(EDGES)
    assert len(read_edge_list(edges)) == 5
    data = load_table_dataset(_table(tmp_path / "t.csv", _rows()), edges)
    h = data.hierarchy
    assert (data.train.n_samples, data.test.n_samples, data.valid) == (16, 4, None)
    y = np.vstack([data.train.Y, data.test.Y])
    # every a1/a2 sample is also an 'a' and a 'root' sample: the labels were propagated
    for child, parent in (("a1", "a"), ("a2", "a"), ("b1", "b"), ("a", "root")):
        assert np.all(y[:, h.index[parent]] >= y[:, h.index[child]])
    assert y[:, h.index["a"]].sum() > y[:, h.index["a1"]].sum()
    assert np.allclose(np.vstack([data.train.X]).mean(axis=0), 0, atol=1e-5)
    again = load_table_dataset(_table(tmp_path / "t.csv", _rows()), edges)
    assert np.array_equal(again.test.X, data.test.X)  # fixed split seed


def test_edge_list_cycle_names_the_line(tmp_path: Path) -> None:
    edges = tmp_path / "h.csv"
    edges.write_text("parent,child\nroot,a\na,b\nb,a\n")
    with pytest.raises(TableError, match=r"h\.csv: line \d: the hierarchy has a cycle"):
        read_edge_list(edges)
    edges.write_text("from,to\nroot,a\n")
    with pytest.raises(TableError, match=r"line 1: no 'parent' column"):
        read_edge_list(edges)


def test_unknown_label_names_file_line_and_column(tmp_path: Path) -> None:
    edges = tmp_path / "h.csv"
    edges.write_text(EDGES)
    rows = _rows()
    rows[6] = (1.0, 2.0, "a1@zz")
    with pytest.raises(TableError, match=r"t\.csv: line 8, column 'labels': label 'zz' is not a node"):
        load_table_dataset(_table(tmp_path / "t.csv", rows), edges)


@pytest.mark.parametrize(("content", "pattern"), [
    ("", r"line 1: the file is empty"),
    ("f1,f2,labels\n", r"no data rows"),
    ("f1,f2,tags\n1,2,a\n", r"line 1: no label column 'labels'"),
    ("f1,f2,labels\n1,2,a\n3,x7,b\n", r"line 3, column 'f2': 'x7' is not a number"),
    ("f1,f1,labels\n1,2,a\n", r"line 1: column 'f1' appears more than once"),
])
def test_bad_tables_get_located_errors(tmp_path: Path, content: str, pattern: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content)
    with pytest.raises(TableError, match=pattern):
        read_table(path)


def test_every_bad_feature_cell_is_located(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("f1,f2,labels\n1,2,a\nx,2,a\n3,4,b\n5,y,b\n6,z,b\n")
    with pytest.raises(TableError) as caught:
        read_table(path)
    message = str(caught.value)
    assert "line 3, column 'f1': 'x' is not a number" in message
    assert "2 more such cell(s): line 5, column 'f2'; line 6, column 'f2'" in message
    rows = "f1,labels\n" + "x,a\n" * 30
    path.write_text(rows)
    with pytest.raises(TableError, match=r"29 more such cell\(s\): line 3, column 'f1'.*line 21, column 'f1'; \.\.\."):
        read_table(path)


def test_missing_values_are_imputed_and_test_table_columns_checked(tmp_path: Path) -> None:
    edges = tmp_path / "h.csv"
    edges.write_text(EDGES)
    train = tmp_path / "train.csv"
    train.write_text("f1,f2,labels\n1,,a1\n3,4,b\n,6,a2@b1\n")
    test = tmp_path / "test.csv"
    test.write_text("f2,f1,labels\n4,1,a\n")
    data = load_table_dataset(train, edges, test_table=test)
    assert not np.isnan(data.train.X).any()
    assert data.feature_names == ["f1", "f2"]
    test.write_text("f1,g,labels\n1,2,a\n")
    with pytest.raises(TableError, match=r"test\.csv: lacks the feature column 'f2'"):
        load_table_dataset(train, edges, test_table=test)


def test_parquet_table_row_is_named(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    edges = tmp_path / "h.csv"
    edges.write_text(EDGES)
    frame = pd.DataFrame({"f1": [1.0, 2.0, 3.0], "labels": ["a1", "b", "nope"]})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(TableError, match=r"t\.parquet: row 3, column 'labels': label 'nope'"):
        load_table_dataset(tmp_path / "t.parquet", edges)
    frame.loc[2, "labels"] = "b1"
    frame.to_parquet(tmp_path / "t.parquet")
    assert load_table_dataset(tmp_path / "t.parquet", edges, test_fraction=0.34).test.n_samples == 2


def test_data_dir_scan_finds_table_datasets(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    _table(folder / "mine.csv", _rows())
    (folder / "mine.obo").write_text(OBO)
    assert available_datasets(tmp_path) == ["synthetic", "shapes", "mine"]
    with pytest.raises(TableError, match=r"mine\.csv: line 2, column 'labels': label 'a1' is not a node"):
        open_dataset("mine", tmp_path)  # the labels are not GO ids
    (folder / "mine.obo").unlink()
    (folder / "mine.edges.csv").write_text(EDGES)
    assert available_datasets(tmp_path) == ["synthetic", "shapes", "mine"]
    assert open_dataset("mine", tmp_path).hierarchy.n_nodes == 6
    with pytest.raises(DatasetNotFoundError):
        open_dataset("other", tmp_path)


def test_cli_trains_on_a_table_with_an_obo_hierarchy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hmlc_core.cli import main
    from hmlc_core.runs import load_run

    obo = tmp_path / "go.obo"
    obo.write_text(OBO)
    terms = ["GO:0000278", "GO:0051301", "GO:0009987@GO:0000278", "GO:0007049"]
    table = tmp_path / "cells.csv"
    table.write_text("expr,size,go\n" + "".join(f"{i % 7},{i * 0.1},{terms[i % 4]}\n" for i in range(24)))
    out = tmp_path / "run"
    code = main(["train", "--table", str(table), "--hierarchy", str(obo), "--label-column", "go", "--part-of",
                 "--epochs", "1", "--heads", "1", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.config.dataset == "cells"
    assert sorted(run.hierarchy.parents("GO:0051301")) == ["GO:0007049", "GO:0009987"]
    assert run.predictions()["mean_probs"].shape == (5, run.hierarchy.n_nodes)  # 24 rows, 20% held out
    capsys.readouterr()
    assert main(["train", "--table", str(table), "--hierarchy", str(obo), "--out", str(tmp_path / "r2"),
                 "--epochs", "1"]) == 2
    assert "no label column 'labels'" in capsys.readouterr().err
    assert main(["train", "--table", str(table), "--epochs", "1"]) == 2
    assert "--table needs --hierarchy" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()
