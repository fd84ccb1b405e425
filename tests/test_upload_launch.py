"""An uploaded dataset can be launched from the Retrain page at once (issue 15, item 3).

:func:`hmlc_core.jobs.check_launchable` accepts a table dataset (it looked for ARFF files only, so the
page refused every upload: "dataset ... not found"), and asks for ``fit_on="train+valid"`` since a table
dataset has no valid split; the Retrain page's Dataset list offers a saved upload in the same rerun as
"Save as dataset" (it showed it only after the next one).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from helpers import APP
from hmlc_core import jobs
from hmlc_core.config import TrainConfig

EDGES = b"parent,child\nr,a\nr,b\na,a1\na,a2\n"
TABLE = b"f0,f1,labels\n1,2,a1\n3,4,b\n5,6,\n7,8,a1@b\n2,1,a2\n"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "runs").mkdir()
    monkeypatch.setenv("HMLC_RUNS_DIR", str(tmp_path / "runs"))
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("HMLC_DATA_DIR", str(folder))
    return folder


def test_table_dataset_is_launchable_on_train_plus_valid(data_dir: Path) -> None:
    (data_dir / "mine").mkdir()
    (data_dir / "mine" / "mine.csv").write_bytes(TABLE)
    (data_dir / "mine" / "mine.edges.csv").write_bytes(EDGES)
    jobs.check_launchable(TrainConfig(dataset="mine", data_dir=str(data_dir), fit_on="train+valid"))
    with pytest.raises(ValueError, match="'mine' has no valid split: set fit_on to 'train\\+valid'"):
        jobs.check_launchable(TrainConfig(dataset="mine", data_dir=str(data_dir), fit_on="train"))
    with pytest.raises(ValueError, match="'other' not found"):
        jobs.check_launchable(TrainConfig(dataset="other", data_dir=str(data_dir), fit_on="train+valid"))


def test_saved_upload_is_offered_in_the_same_rerun(data_dir: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page("app_pages/retrain.py").run()
    uploaders = {u.label: u for u in at.get("file_uploader")}
    uploaders["Table"].set_value(("mine.csv", TABLE, "text/csv"))
    uploaders["Hierarchy"].set_value(("tax.csv", EDGES, "text/csv"))
    at.run()
    at.button(key="rt_upload_save").click().run()
    assert not at.exception, at.exception
    [folder] = list(data_dir.iterdir())
    assert folder.name in at.selectbox(key="rt_dataset").options
    assert any(f"Saved as dataset {folder.name}" in s.value.replace("\\", "") for s in at.success)
