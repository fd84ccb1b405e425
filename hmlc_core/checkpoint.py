"""Training checkpoints: what a long run needs to go on after its process was killed.

:func:`hmlc_core.train.train` writes one (``checkpoint=PATH``) at the end of an epoch, at most every
``checkpoint_seconds``, and resumes from it when it finds one that fits the run. A C-HMCNN run on seq_GO
(hidden 9,000, batch 4) takes about 2.5 hours of one core and ImCLEF07A about 2; a sweep task killed with its
session or its worker then loses at most the time since the last checkpoint, not the run.

What a checkpoint holds (a ``torch.save`` dict, read back with ``weights_only=True``): the model's and the
optimizer's state (Adam's moments and step counts, fused or ``torch.optim.Adam``), the shuffling generator's
and torch's global random state (dropout), the finished epochs' history, the training seconds so far, and the
early-stopping state. Training resumed from it continues exactly as the uninterrupted run would have: the same
batches, dropout masks and updates (``tests/test_checkpoint.py`` compares the weights bit for bit).

A checkpoint is written to ``PATH.partial`` and renamed over ``PATH`` (``os.replace``), so a process killed
while writing leaves the previous checkpoint intact. Its ``key`` (the resolved training configuration and
the data's shape) must match the run that opens it (a configuration field that one side lacks, such as an
option added by a later version of the package, counts as its default value); one that does not, or that
cannot be read, is reported with a warning and training starts from the first epoch (a checkpoint is a cache
of an unfinished run, never its result).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from hmlc_core.config import TrainConfig

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_SECONDS", "checkpoint_beside", "checkpoint_key", "save_checkpoint",
           "load_checkpoint"]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint dict; another version is not resumed from."""

CHECKPOINT_SECONDS = 300.0
"""Default least wall time between two checkpoints of :func:`hmlc_core.train.train`, in seconds.

A seq_GO checkpoint (hidden 9,000: weights and both Adam moments) is about 1.5 GB; every 5 minutes it costs
a few seconds of a 200-second epoch."""


def checkpoint_beside(run_dir: str | Path) -> Path:
    """The checkpoint file of the run that will be saved at ``run_dir``: ``.<name>.checkpoint.pt`` beside it.

    Hidden (a leading dot), so run listings (:func:`hmlc_core.runs.find_runs`) skip it; used by the CLI's
    ``train --checkpoint`` and by sweep tasks.
    """
    run_dir = Path(run_dir)
    return run_dir.with_name(f".{run_dir.name}.checkpoint.pt")


def checkpoint_key(config: dict[str, Any], dataset: str, n_rows: int, n_features: int, n_nodes: int) -> dict[str, Any]:
    """What a checkpoint must match to be resumed from: the resolved config and the data's shape.

    Parameters
    ----------
    config : dict
        ``TrainConfig.to_dict()`` of the resolved configuration.
    dataset : str
        The dataset's name.
    n_rows, n_features, n_nodes : int
        Training rows (after LPROS and the train+valid concatenation), input features and hierarchy nodes.

    Returns
    -------
    dict
    """
    return {"config": dict(config), "dataset": str(dataset), "n_rows": int(n_rows), "n_features": int(n_features),
            "n_nodes": int(n_nodes)}


def save_checkpoint(path: str | Path, key: dict[str, Any], state: dict[str, Any]) -> None:
    """Write ``state`` under ``key`` to ``path`` atomically (``path.partial``, then ``os.replace``).

    Parameters
    ----------
    path : path
        The checkpoint file; its folder must exist.
    key : dict
        :func:`checkpoint_key` of the run.
    state : dict
        What :func:`hmlc_core.train.train` restores: ``epoch``, ``history``, ``train_seconds``, ``model``,
        ``optimizer``, ``generator``, ``torch_rng``, ``best_auprc``, ``best_epoch``, ``best_state``.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` then still holds the previous checkpoint.
    """
    import torch  # here, so that the torch-free modules (jobs, the CLI's parser) can read CHECKPOINT_SECONDS

    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, "key": key, **state}, partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    log.info("checkpoint after epoch %d: %s", state["epoch"], path)


def load_checkpoint(path: str | Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` if it exists, can be read and was written for ``key``; else None.

    A checkpoint that cannot be read or belongs to another run is logged (a warning naming the file and the
    first field that differs) and left in place; the caller's next :func:`save_checkpoint` replaces it.

    Parameters
    ----------
    path : path
    key : dict
        :func:`checkpoint_key` of the run that would resume.

    Returns
    -------
    dict or None
        The saved dict (``format``, ``key`` and the state of :func:`save_checkpoint`).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file: train from the start, say why
        log.warning("checkpoint %s cannot be read (%s: %s); training starts from the first epoch",
                    path, type(exc).__name__, exc)
        return None
    if not isinstance(saved, dict) or saved.get("format") != CHECKPOINT_FORMAT:
        log.warning("checkpoint %s is not a format-%d checkpoint; training starts from the first epoch",
                    path, CHECKPOINT_FORMAT)
        return None
    differs = _first_difference(saved.get("key"), key)
    if differs is not None:
        log.warning("checkpoint %s belongs to another run (%s); training starts from the first epoch", path, differs)
        return None
    return saved


def _first_difference(saved: Any, wanted: dict[str, Any]) -> str | None:
    if not isinstance(saved, dict):
        return "it has no key"
    for field in ("dataset", "n_rows", "n_features", "n_nodes"):
        if saved.get(field) != wanted[field]:
            return f"{field} {saved.get(field)!r}, this run {wanted[field]!r}"
    config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    # A field one side lacks (added or removed since the checkpoint was written) counts as its default.
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    for name in sorted(set(config) | set(wanted["config"])):
        old, new = config.get(name, defaults.get(name)), wanted["config"].get(name, defaults.get(name))
        if old != new:
            return f"config {name} = {old!r}, this run {new!r}"
    return None
