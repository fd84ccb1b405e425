"""The state of a sweep's cells on disk: which run folders are finished, which are still to train.

A cell is *done* when its run folder ``OUT/<Cell.folder>`` holds every file of
:data:`hmlc_core.runs.RUN_FILES` and its ``config.json`` records the cell's training settings.
:func:`hmlc_core.runs.save_run` writes a folder under a hidden temporary name and renames it into place, so
a folder that exists is complete; a worker killed while saving leaves only a hidden ``.NAME.tmp-*`` folder,
which the sweep, the registry and the dashboard ignore. A folder that exists with other settings (trained by
another sweep with another budget) is a *conflict*: the sweep refuses to start rather than mix the two.

``resources.json`` beside a run's files records how long it took and its peak memory (:func:`write_resources`).
Importing this module does not import torch or Dask.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hmlc_core.runs import RUN_FILES, RunError, read_config
from hmlc_core.sweeps.grid import Cell

__all__ = ["RESOURCES_FILE", "IGNORED_FIELDS", "Plan", "cell_state", "plan", "write_resources", "read_resources"]

RESOURCES_FILE = "resources.json"
"""Written into a run folder after it is saved: wall, train and CPU seconds, peak memory, worker."""

IGNORED_FIELDS = ("data_dir", "threads", "kernel")
"""TrainConfig fields that do not decide whether a finished run matches its cell (where the data was read,
torch threads and the training kernel, which computes the same update)."""


@dataclass
class Plan:
    """The cells of a sweep split by state.

    Attributes
    ----------
    todo : list of Cell
        Not trained yet (no run folder).
    done : list of Cell
        A complete run folder with the cell's settings: skipped.
    conflicts : dict of str to str
        Run folder name -> why it does not match its cell.
    """

    todo: list[Cell] = field(default_factory=list)
    done: list[Cell] = field(default_factory=list)
    conflicts: dict[str, str] = field(default_factory=dict)


AUTO_ENCODERS = ("auto", "none", "cnn")
"""What ``encoder="auto"`` may have been saved as (:meth:`hmlc_core.config.TrainConfig.for_dataset`)."""


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in IGNORED_FIELDS}


def cell_state(out: str | Path, cell: Cell) -> tuple[str, str | None]:
    """Whether ``cell`` is trained in the sweep folder ``out``.

    Returns
    -------
    (state, reason)
        ``("done", None)``, ``("todo", None)``, or ``("conflict", reason)`` when the folder exists but is
        incomplete, unreadable, or trained with other settings (the reason names the first differing field).
    """
    path = Path(out) / cell.folder
    if not path.exists():
        return "todo", None
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        return "conflict", f"{path} exists but lacks {', '.join(missing)} (not written by save_run)"
    try:
        saved = _comparable(read_config(path).resolved().to_dict())
    except (RunError, ValueError) as exc:
        return "conflict", f"cannot read its config: {exc}"
    wanted = _comparable(cell.train_config().resolved().to_dict())
    if wanted.get("encoder") == "auto" and saved.get("encoder") in AUTO_ENCODERS:
        wanted["encoder"] = saved["encoder"]  # "auto" is resolved against the dataset when training starts
    for key in sorted(set(saved) | set(wanted)):
        if saved.get(key) != wanted.get(key):
            return "conflict", (f"{path} was trained with {key} = {saved.get(key)!r}, this sweep asks for "
                                f"{wanted.get(key)!r}; choose another --out")
    return "done", None


def plan(cells: Sequence[Cell], out: str | Path) -> Plan:
    """Split ``cells`` into to-do, done and conflicting (:func:`cell_state`), keeping their order.

    Raises
    ------
    ValueError
        If two cells share a run folder.
    """
    folders = [c.folder for c in cells]
    if len(set(folders)) != len(folders):
        raise ValueError("two cells of the sweep share a run folder; check the configuration names")
    result = Plan()
    for cell in cells:
        state, reason = cell_state(out, cell)
        if state == "done":
            result.done.append(cell)
        elif state == "todo":
            result.todo.append(cell)
        else:
            result.conflicts[cell.folder] = str(reason)
    return result


def write_resources(run_dir: str | Path, resources: dict[str, Any]) -> None:
    """Write ``resources`` as ``run_dir/resources.json`` (temporary file, then rename: never half written)."""
    run_dir = Path(run_dir)
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=f".{RESOURCES_FILE}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(resources, fh, indent=1, sort_keys=True)
        os.replace(tmp, run_dir / RESOURCES_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_resources(run_dir: str | Path) -> dict[str, Any]:
    """``run_dir/resources.json`` as a dict; empty when there is none or it cannot be read."""
    try:
        data = json.loads((Path(run_dir) / RESOURCES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
