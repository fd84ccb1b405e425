"""Upload your own data on the Retrain page (app_pages/retrain.py; issue 15, item 3), with AppTest.

A valid table and hierarchy are summarised and saved as a table dataset in ``$HMLC_DATA_DIR`` that the
Dataset list then offers; a malformed file, a file over the limit and a hierarchy with a cycle each get
a message naming the file and write nothing.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from helpers import APP

ROOT = Path(__file__).resolve().parent.parent
EDGES = b"parent,child\nr,a\nr,b\na,a1\na,a2\n"
TABLE = b"f0,f1,labels\n1,2,a1\n3,4,b\n5,6,\n7,8,a1@b\n2,1,a2\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("HMLC_RUNS_DIR", str(tmp_path / "runs"))  # the page's registry goes here
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("HMLC_DATA_DIR", str(folder))
    return folder


def _page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("app_pages/retrain.py").run()
    assert not at.exception, at.exception
    return at


def _upload(at: AppTest, table: tuple[str, bytes], hierarchy: tuple[str, bytes]) -> AppTest:
    uploaders = {u.label: u for u in at.get("file_uploader")}
    uploaders["Table"].set_value((*table, "application/octet-stream"))
    uploaders["Hierarchy"].set_value((*hierarchy, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception
    return at


def _texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.error, *at.info, *at.success, *at.caption, *at.text))


def test_expander_shows_the_configured_limit_and_file_types(data_dir: Path) -> None:
    at = _page()
    assert "Upload your own data" in [e.label for e in at.get("expander")]
    limit = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    assert f"at most {limit} MB each" in _texts(at)
    uploaders = {u.label: u for u in at.get("file_uploader")}
    assert sorted(uploaders["Table"].allowed_type) == [".csv", ".parquet"]
    assert sorted(uploaders["Hierarchy"].allowed_type) == [".csv", ".obo"]


def test_valid_upload_is_summarised_saved_and_offered(data_dir: Path) -> None:
    at = _upload(_page(), ("mine.csv", TABLE), ("tax.csv", EDGES))
    texts = _texts(at)
    assert "5 samples, 2 features; 80% of the samples have a label" in texts
    assert "5 nodes, depth 2" in texts
    assert not at.error
    assert list(data_dir.iterdir()) == []  # nothing written before Save
    at.button(key="rt_upload_save").click().run()
    assert not at.exception, at.exception
    [folder] = list(data_dir.iterdir())
    assert folder.name.startswith("upload-")
    assert sorted(p.name for p in folder.iterdir()) == [f"{folder.name}.csv", f"{folder.name}.edges.csv"]
    assert (folder / f"{folder.name}.csv").read_bytes() == TABLE
    at.run()
    assert folder.name in at.selectbox(key="rt_dataset").options


@pytest.mark.parametrize("table, hierarchy, message", [
    (("bad.csv", b"f0,labels\n1,a1\nx,b\n"), ("tax.csv", EDGES), "bad.csv: line 3, column 'f0':"),
    (("mine.csv", TABLE), ("loop.csv", b"parent,child\nr,a\na,b\nb,a\n"), "loop.csv: line"),
    (("mine.csv", b"f0,labels\n1,zz\n"), ("tax.csv", EDGES), "mine.csv: line 2, column 'labels': label 'zz'"),
])
def test_bad_upload_gets_a_message_and_cannot_be_saved(data_dir: Path, table: tuple[str, bytes],
                                                       hierarchy: tuple[str, bytes], message: str) -> None:
    at = _upload(_page(), table, hierarchy)
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any(message in e for e in errors), errors
    assert at.button(key="rt_upload_save").disabled
    assert list(data_dir.iterdir()) == []


def test_file_over_the_limit_is_refused(data_dir: Path) -> None:
    previous = st_config.get_option("server.maxUploadSize")
    st_config.set_option("server.maxUploadSize", 1)
    try:
        big = TABLE + b"1,2,a1\n" * (2**20 // 7 + 10)
        at = _upload(_page(), ("big.csv", big), ("tax.csv", EDGES))
    finally:
        st_config.set_option("server.maxUploadSize", previous)
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any("big.csv: 1.0 MB is over the upload limit of 1 MB" in e for e in errors), errors
    assert at.button(key="rt_upload_save").disabled
    assert list(data_dir.iterdir()) == []
