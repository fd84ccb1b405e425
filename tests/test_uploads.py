"""Uploaded tables and hierarchies (hmlc_core.uploads; issue 15, item 3): the summary, the problems, the saving."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmlc_core.tables import find_table_dataset, load_table_dataset
from hmlc_core.uploads import save_upload, validate_upload

EDGES = b"parent,child\nr,a\nr,b\na,a1\na,a2\n"
TABLE = b"f0,f1,labels\n1,2,a1\n3,4,b\n5,6,\n7,8,a1@b\n"


def test_summary_of_a_valid_upload() -> None:
    s = validate_upload(TABLE, "mine.csv", EDGES, "tax.csv")
    assert s.ok and s.problems == []
    assert (s.n_samples, s.n_features, s.n_nodes, s.depth) == (4, 2, 5, 2)
    assert s.label_coverage == pytest.approx(0.75)
    assert s.nodes_without_positives == ["a2"]


def test_every_unknown_label_is_listed_with_its_line() -> None:
    s = validate_upload(b"f0,labels\n1,zz\n2,a1\n3,b@yy\n", "t.csv", EDGES, "h.csv")
    assert s.problems == ["t.csv: line 2, column 'labels': label 'zz' is not a node of the hierarchy",
                          "t.csv: line 4, column 'labels': label 'yy' is not a node of the hierarchy"]


def test_bad_cell_cycle_type_and_size_are_problems_naming_the_uploaded_file() -> None:
    bad_cell = validate_upload(b"f0,labels\n1,a\nx,b\n", "t.csv", EDGES, "h.csv")
    assert bad_cell.problems and bad_cell.problems[0].startswith("t.csv: line 3, column 'f0':")
    cycle = validate_upload(TABLE, "t.csv", b"parent,child\nr,a\na,b\nb,a\n", "h.csv")
    assert len(cycle.problems) == 1 and cycle.problems[0].startswith("h.csv:") and "cycle" in cycle.problems[0]
    assert cycle.n_samples == 4 and cycle.n_nodes is None
    wrong_type = validate_upload(TABLE, "t.xlsx", EDGES, "h.txt")
    assert [p.split(":")[0] for p in wrong_type.problems] == ["t.xlsx", "h.txt"]
    big = validate_upload(TABLE, "t.csv", EDGES, "h.csv", max_bytes=len(TABLE) - 1)
    assert big.problems == [f"t.csv: {len(TABLE) / 2**20:.1f} MB is over the upload limit of 0 MB"]


def test_save_writes_a_table_dataset_in_the_data_folder_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    folder = save_upload(data, TABLE, "../../evil.csv", EDGES, "/etc/passwd.csv")
    assert folder.parent == data.resolve() and folder.name.startswith("upload-")
    assert sorted(p.name for p in data.iterdir()) == [folder.name]
    assert sorted(p.name for p in folder.iterdir()) == [f"{folder.name}.csv", f"{folder.name}.edges.csv"]
    files = find_table_dataset(folder.name, data)
    assert files is not None
    dataset = load_table_dataset(**files)
    assert dataset.hierarchy.n_nodes == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_save_refuses_an_invalid_upload_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cycle"):
        save_upload(tmp_path, TABLE, "t.csv", b"parent,child\nr,a\na,b\nb,a\n", "h.csv")
    with pytest.raises(ValueError, match="upload limit"):
        save_upload(tmp_path, TABLE, "t.csv", EDGES, "h.csv", max_bytes=10)
    assert list(tmp_path.iterdir()) == []
