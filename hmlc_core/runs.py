"""Self-contained run directories: save a trained ensemble with its evaluation, load it back.

A run directory holds:

========================  =====================================================
``config.json``           the resolved :class:`~hmlc_core.train.TrainConfig`,
                          the model's constructor arguments and dataset facts
``hierarchy.json``        :meth:`Hierarchy.to_dict` (nodes in column order)
``model.pt``              the ensemble's ``state_dict`` (load with
                          ``torch.load(..., weights_only=True)``)
``node_metrics.csv``      one row per node (:func:`~hmlc_core.metrics.node_metrics_table`,
                          at the run's default decision rule)
                          plus ``uncertainty_<mode>`` columns for every mode and
                          ``information_content`` (bits, from the train split's
                          labels: :func:`~hmlc_core.tail_metrics.information_content`,
                          which Smin needs; absent in older runs)
``summary.json``          headline test metrics (at the default decision rule,
                          named by ``decision``) and run facts
``history.csv``           one row per epoch (loss, seconds, valid AUPRC)
``predictions.npz``       test ``y_true`` (N, C) uint8, ``mean_probs`` (N, C)
                          float32, ``member_probs`` (H, N, C) float16 (coherent
                          per member) and ``uncertainty`` (N, C) float16 of the
                          run's display mode; with ``fit_on="train"`` also the
                          held-out (valid) ``valid_y_true`` uint8 and
                          ``valid_mean_probs`` float32, which the tuned decision
                          rules are fitted on
``decision.json``         the run's default decision rule with its fitted
                          thresholds (:meth:`DecisionRule.to_dict`); absent in
                          runs saved before decision rules existed
``images.npz``            image datasets only: the test split's ``thumbnails``
                          (N, H, W, 3) uint8 and ``names`` (N,) unicode, the
                          display name of each test image (:meth:`Run.images`);
                          the dashboard shows images from here only
========================  =====================================================

The directory is written under a temporary name next to its destination and
renamed into place, so an interrupted save never leaves a half-written run, and
an existing run is replaced only once the new one is complete.

Loading a run (:func:`load_run`, :class:`Run`, :meth:`Run.predictions`) does
not import torch; :func:`save_run` and :meth:`Run.load_model` import it (and
the model and training modules) when called.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import shutil
import stat
import tempfile
import time
import typing
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hmlc_core.config import TrainConfig
from hmlc_core.data import HMCDataset
from hmlc_core.decision import DecisionRule, fit_decision_rule, micro_f1
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import node_metrics_table, precision_recall_f1, rare_node_recall, summarize

if TYPE_CHECKING:
    from hmlc_core.model import HMCEnsemble
    from hmlc_core.train import TrainResult

__all__ = ["Run", "RunError", "RunImages", "save_run", "load_run", "read_config", "read_summary", "find_runs", "evaluate_run",
           "display_uncertainty_mode", "RUNS_DIR_ENV", "env_runs_dirs"]

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "hierarchy.json", "model.pt", "node_metrics.csv", "summary.json",
             "history.csv", "predictions.npz")


RUNS_DIR_ENV = "HMLC_RUNS_DIR"
"""Environment variable naming the runs folder(s), separated by ``os.pathsep``; the first receives new runs."""


def env_runs_dirs() -> list[Path]:
    """The folders named by ``$HMLC_RUNS_DIR`` (``~`` expanded, empty entries dropped), in order."""
    return [Path(p).expanduser() for p in os.environ.get(RUNS_DIR_ENV, "").split(os.pathsep) if p.strip()]


MAX_JSON_BYTES = 64 * 2**20
"""Largest ``config.json``, ``summary.json`` or ``hierarchy.json`` read (bytes); a larger one is refused."""
MAX_CSV_BYTES = 256 * 2**20
"""Largest ``node_metrics.csv`` or ``history.csv`` read (bytes)."""
MAX_NPZ_EXPANSION = 64
"""The arrays of ``predictions.npz`` may declare at most this many times the file's size (plus
:data:`NPZ_EXPANSION_SLACK`): :func:`numpy.savez` stores them uncompressed, so only a crafted or broken
file declares more (a "zip bomb")."""
NPZ_EXPANSION_SLACK = 64 * 2**20


class RunError(ValueError):
    """A run directory is missing, incomplete or corrupt: the one error for "this run cannot be loaded".

    Parameters
    ----------
    message : str
        The whole message. When ``path`` is given and ``reason`` is not, ``message`` is the reason and the
        message becomes ``"<path>: <reason>"``.
    path : path, optional
        The file (or run directory) at fault.
    reason : str, optional
        What is wrong with it, in words.

    Attributes
    ----------
    path : pathlib.Path or None
        As given (None for older callers that pass a message only).
    reason : str
        ``reason``, else the message.
    """

    def __init__(self, message: str, path: str | Path | None = None, reason: str | None = None) -> None:
        if path is not None and reason is None:
            reason, message = message, f"{path}: {message}"
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.reason = message if reason is None else reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.path, self.reason)


def display_uncertainty_mode(config: TrainConfig) -> str:
    """The uncertainty shown for a run: its focal mode, else epistemic (JS) for H >= 2, else bBMA."""
    if config.focal != "none":
        return config.focal
    return "epistemic" if config.heads >= 2 else "mean"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8")


_DECISION_CELLS = 2**22
"""(test row, node) cells :func:`save_run` decides at once: the decision rule's upward closure takes up to 36
bytes a predicted positive (:meth:`Hierarchy.propagate`), 144 MiB at most for these."""


def _row_chunks(n_rows: int, size: int) -> Iterator[slice]:
    """Consecutive slices of ``size`` rows (the last one shorter) covering ``range(n_rows)``."""
    return (slice(start, start + size) for start in range(0, n_rows, size))


def _save_predictions(path: Path, result: TrainResult, dataset: HMCDataset,
                      mode: str) -> tuple[np.ndarray, DecisionRule, np.ndarray, dict[str, np.ndarray]]:
    """Predict the test split (and the held-out valid split), fit the decision rule and write ``predictions.npz``.

    The test rows are predicted ``eval_batch_size`` at a time, the batches :func:`~hmlc_core.train.predict_members`
    takes over the whole split (so the same numbers), and each chunk's mean, float16 copies and uncertainty
    maps go straight into arrays of the saved dtypes: a (test row, node) cell takes the ``2 H + 4 + 2`` bytes
    saved and the decision's byte, instead of the float32 members, the six float32 maps and the copies of the
    whole split at once. The test split is predicted before the valid one, the order in which an
    ``mc-dropout`` ensemble's stochastic passes have always been drawn. The arrays that are only saved are
    freed on return, before the metrics are computed.

    Parameters
    ----------
    path : pathlib.Path
        The ``predictions.npz`` to write.
    result : TrainResult
    dataset : HMCDataset
    mode : str
        The uncertainty mode stored in the file (:func:`display_uncertainty_mode`).

    Returns
    -------
    mean_probs : numpy.ndarray of float32, shape (T, C)
        The ensemble-mean test probabilities.
    rule : DecisionRule
        The run's decision rule, fitted on the held-out valid split when ``fit_on="train"``.
    predictions : numpy.ndarray of uint8, shape (T, C)
        ``rule.predict(mean_probs)``.
    uncertainty_means : dict of str to numpy.ndarray of float64, shape (C,)
        Every uncertainty mode's mean over the test rows, summed in float64.
    """
    import torch

    from hmlc_core.model import MCM
    from hmlc_core.train import predict_members
    from hmlc_core.uncertainty import UNCERTAINTY_MODES, uncertainty

    config, model, hierarchy = result.config, result.model, dataset.hierarchy
    mcm, size = MCM(hierarchy), config.eval_batch_size
    n_test, n_nodes = dataset.test.n_samples, hierarchy.n_nodes
    mean_probs = np.empty((n_test, n_nodes), dtype=np.float32)
    member_probs = np.empty((model.n_heads, n_test, n_nodes), dtype=np.float16)
    shown = np.empty((n_test, n_nodes), dtype=np.float16)
    sums = {m: np.zeros(n_nodes) for m in UNCERTAINTY_MODES}
    for rows in _row_chunks(n_test, size):
        members = predict_members(model, mcm, dataset.test.X[rows], size)
        mean_probs[rows] = members.mean(dim=0).numpy()
        member_probs[:, rows] = members.numpy()
        for m in UNCERTAINTY_MODES:
            u = uncertainty(members, m)
            sums[m] += u.sum(dim=0, dtype=torch.float64).numpy()
            if m == mode:
                shown[rows] = u.numpy()
        del members, u  # freed before the next chunk is predicted
    held_out: dict[str, np.ndarray] = {}
    if config.fit_on == "train" and dataset.valid is not None:
        valid_probs = np.empty((dataset.valid.n_samples, n_nodes), dtype=np.float32)
        for rows in _row_chunks(dataset.valid.n_samples, size):
            valid_probs[rows] = predict_members(model, mcm, dataset.valid.X[rows], size).mean(dim=0).numpy()
        held_out = {"valid_y_true": dataset.valid.Y.astype(np.uint8, copy=False), "valid_mean_probs": valid_probs}
    rule = fit_decision_rule(config.decision, hierarchy, held_out.get("valid_y_true"),
                             held_out.get("valid_mean_probs"), threshold=config.decision_threshold,
                             shrinkage=config.decision_shrinkage,
                             prevalence=np.asarray(result.train_frequency, dtype=np.float64) / dataset.train.n_samples)
    predictions = np.empty((n_test, n_nodes), dtype=np.uint8)
    for rows in _row_chunks(n_test, max(1, _DECISION_CELLS // n_nodes)):
        predictions[rows] = rule.predict(mean_probs[rows])
    np.savez(path, y_true=dataset.test.Y.astype(np.uint8, copy=False), mean_probs=mean_probs,
             member_probs=member_probs, uncertainty=shown, **held_out)
    return mean_probs, rule, predictions, {m: total / n_test for m, total in sums.items()}


def save_run(run_dir: str | Path, result: TrainResult, dataset: HMCDataset, overwrite: bool = False) -> Path:
    """Evaluate ``result`` on the test split and write a complete run directory.

    The test split is evaluated in chunks of ``eval_batch_size`` rows, so the memory this takes beyond the
    labels is about what ``predictions.npz`` holds (:func:`hmlc_core.limits.estimate_job_memory`).

    Parameters
    ----------
    run_dir : path
        Destination folder (created; its parent must be writable).
    result : TrainResult
        From :func:`hmlc_core.train.train`.
    dataset : HMCDataset
        The dataset it was trained on (the test split is evaluated here).
    overwrite : bool, default False
        Replace an existing run at ``run_dir``; the old one is removed only
        after the new one is in place. The new run is written to
        ``.<name>.tmp-<pid>-*`` and the old one moved to ``.<name>.old-<pid>``;
        :meth:`hmlc_core.registry.Registry.recover` finishes or undoes what a
        killed process left there.

    Returns
    -------
    pathlib.Path
        ``run_dir``.

    Raises
    ------
    FileExistsError
        If ``run_dir`` exists, is not empty, and ``overwrite`` is False.
    """
    import torch

    from hmlc_core.tail_metrics import information_content

    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"run directory {run_dir} already exists; choose another --out or pass --overwrite")
    hierarchy = dataset.hierarchy
    config = result.config
    mode = display_uncertainty_mode(config)
    y_test = dataset.test.Y
    # first, while no test array exists: it takes a copy of the training labels
    information = information_content(dataset.train.Y, hierarchy)
    config_doc = {
        "train": config.to_dict(),
        "model": result.model.spec(),
        "dataset": {"name": dataset.name, "n_features": len(dataset.feature_names),
                    "source": {k: str(v) for k, v in dataset.source.items()}},
    }
    if dataset.images is not None:
        config_doc["dataset"]["images"] = {"shape": list(dataset.images.shape), "root": dataset.images.root,
                                           "mean": list(dataset.images.mean), "std": list(dataset.images.std),
                                           "n_skipped": len(dataset.images.skipped)}

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.tmp-{os.getpid()}-", dir=run_dir.parent))
    try:
        tmp.chmod(0o755)
        mean_probs, rule, test_pred, u_means = _save_predictions(tmp / "predictions.npz", result, dataset, mode)
        table = node_metrics_table(hierarchy, y_test, mean_probs, result.train_frequency,
                                   threshold=rule.thresholds, predictions=test_pred)
        table["uncertainty"] = u_means[mode]
        for m, u in u_means.items():
            table[f"uncertainty_{m}"] = u
        table["information_content"] = information
        summary = summarize(hierarchy, y_test, mean_probs, threshold=rule.thresholds, predictions=test_pred)
        summary.update({
            "decision": rule.label(),
            "dataset": dataset.name,
            "status": "interrupted" if result.interrupted else "finished",
            "epochs_completed": result.epochs_completed,
            "epochs_planned": config.epochs,
            "train_seconds": result.train_seconds,
            "seconds_per_epoch": result.train_seconds / max(result.epochs_completed, 1),
            "n_train": dataset.train.n_samples,
            "n_resampled": result.n_resampled,
            "resumed_epochs": result.resumed_epochs,
            "resumed_seconds": result.resumed_seconds,
            "n_valid": dataset.valid.n_samples if dataset.valid is not None else 0,
            "heads": config.heads,
            "uncertainty_mode": mode,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        _write_json(tmp / "config.json", config_doc)
        _write_json(tmp / "hierarchy.json", hierarchy.to_dict())
        _write_json(tmp / "summary.json", summary)
        torch.save(result.model.state_dict(), tmp / "model.pt")
        table.to_csv(tmp / "node_metrics.csv")
        columns = ["epoch", "loss", "seconds"] + (["valid_auprc"] if config.fit_on == "train" else [])
        pd.DataFrame(result.history, columns=columns).to_csv(tmp / "history.csv", index=False)
        _write_json(tmp / "decision.json", rule.to_dict())
        if dataset.images is not None:
            np.savez_compressed(tmp / "images.npz", thumbnails=dataset.images.thumbnails["test"],
                                names=np.asarray(dataset.images.names["test"], dtype=str))
        old = None
        if run_dir.exists():
            old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
            run_dir.rename(old)
        tmp.rename(run_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved run to %s", run_dir)
    return run_dir


MAX_THUMBNAIL_SIDE = 1024
"""Largest thumbnail height or width :meth:`Run.images` accepts, in pixels."""
MAX_IMAGE_NAME = 4096
"""Longest display name :meth:`Run.images` accepts, in characters."""
MAX_THUMBNAIL_BYTES = 1024 * 2**20
"""Most bytes the thumbnails of :meth:`Run.images` may declare (they are stored compressed)."""


@dataclass
class RunImages:
    """The test images of an image run, as stored in its ``images.npz``.

    Attributes
    ----------
    thumbnails : numpy.ndarray of uint8, shape (N_test, H, W, 3)
        The test images in test-row order (the rows of ``predictions.npz``), RGB.
    names : list of str, length N_test
        The display name of each (a path relative to the dataset's root, or a generated name): user
        text, to be escaped wherever it is shown.
    """

    thumbnails: np.ndarray
    names: list[str]


@dataclass
class Run:
    """A loaded run directory (see the module docstring for the files).

    Attributes
    ----------
    path : pathlib.Path
    config : TrainConfig
    model_spec : dict
        :meth:`HMCEnsemble.spec` of the saved model.
    dataset_info : dict
        ``name``, ``n_features`` and ``source`` (split -> file).
    hierarchy : Hierarchy
    summary : dict
        Headline metrics (``auprc_micro``, ``macro_recall``, ...) and run facts.
    node_metrics : pandas.DataFrame
        Indexed by node id, in the hierarchy's column order.
    history : pandas.DataFrame
        One row per epoch.

    The fitted decision rules (:meth:`decision_rule`) are cached on the object, per arguments.
    """

    path: Path
    config: TrainConfig
    model_spec: dict[str, Any]
    dataset_info: dict[str, Any]
    hierarchy: Hierarchy
    summary: dict[str, Any]
    node_metrics: pd.DataFrame
    history: pd.DataFrame
    _decision_rules: dict[tuple[Any, ...], DecisionRule] = field(default_factory=dict, init=False, repr=False,
                                                                 compare=False)

    @property
    def name(self) -> str:
        """The directory name."""
        return self.path.name

    def rare_node_recall(self, quantile: float = 0.25) -> float:
        """:func:`hmlc_core.metrics.rare_node_recall` of this run's test recall, in [0, 1].

        NaN when no node is evaluated or a training frequency is unknown (-1).
        """
        nm = self.node_metrics
        freq = nm["train_frequency"].to_numpy(dtype=np.float64)
        evaluated = nm["evaluated"].to_numpy(dtype=bool)
        if not evaluated.any() or (freq[evaluated] < 0).any():
            return float("nan")
        return rare_node_recall(nm["recall"].to_numpy(dtype=np.float64), freq, evaluated, quantile)

    def predictions(self) -> dict[str, np.ndarray]:
        """Load ``predictions.npz`` (arrays as in the module docstring).

        Arrays are checked before they are read (:func:`_read_predictions`): every member's declared
        shape must fit the hierarchy, the test size (``n_test`` of the summary, else that of ``y_true``)
        and the held-out size; pickled (object) arrays are refused.

        Raises
        ------
        RunError
            If the file is missing, unreadable, a link out of the run folder, or its arrays do not
            match the run (the message names the file and the array).
        """
        path = _run_file(self.path, "predictions.npz")
        n_test, n_valid = self.summary.get("n_test"), self.summary.get("n_valid")
        return _read_predictions(path, self.hierarchy.n_nodes, n_test if isinstance(n_test, int) else None,
                                 n_valid if isinstance(n_valid, int) and n_valid > 0 else None)

    def held_out(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The held-out (valid) labels and mean probabilities the tuned decision rules are fitted on.

        Returns
        -------
        (y, probs) : numpy.ndarray of uint8 and of float32, both shape (N_valid, C), or None
            None for runs trained on train+valid (nothing held out) and runs saved before held-out
            predictions were kept.

        Raises
        ------
        RunError
            As :meth:`predictions`.
        """
        preds = self.predictions()
        if "valid_y_true" not in preds or "valid_mean_probs" not in preds:
            return None
        return preds["valid_y_true"], preds["valid_mean_probs"]

    def train_prevalence(self) -> np.ndarray | None:
        """Each node's training positives over the training samples (the per-node rule's floor).

        Returns
        -------
        numpy.ndarray of float64 in [0, 1], shape (C,), or None
            None when the run does not record its training frequencies and size.
        """
        freq = self.node_metrics["train_frequency"].to_numpy(dtype=np.float64)
        n_train = int(self.summary.get("n_train") or 0)
        if n_train <= 0 or (freq < 0).any() or (freq > n_train).any():
            return None
        return freq / n_train

    def decision_rule(self, rule: str | None = None, threshold: float | None = None,
                      shrinkage: float | None = None) -> DecisionRule:
        """A decision rule fitted on this run's held-out predictions (docs/method.md, *Decision rules*).

        Parameters
        ----------
        rule : {"fixed", "global", "per-node"} or None
            None: the run's default (``config.decision``).
        threshold : float or None
            ``T`` of the fixed rule; None: ``config.decision_threshold``.
        shrinkage : float or None
            ``m`` of the per-node rule; None: ``config.decision_shrinkage``, else
            :data:`hmlc_core.decision.DEFAULT_SHRINKAGE`.

        Returns
        -------
        DecisionRule
            Cached per arguments; the same thresholds as ``decision.json`` for the default rule.

        Raises
        ------
        RunError
            When a tuned rule is asked of a run without held-out predictions (trained on
            train+valid), or the held-out data cannot tune it; the message says what to do.
        ValueError
            On an unknown rule.
        """
        rule = self.config.decision if rule is None else rule
        threshold = self.config.decision_threshold if threshold is None else float(threshold)
        shrinkage = self.config.decision_shrinkage if shrinkage is None else float(shrinkage)
        key = (rule, threshold if rule == "fixed" else None, shrinkage if rule == "per-node" else None)
        if key not in self._decision_rules:
            held = self.held_out() if rule != "fixed" else None
            if rule != "fixed" and held is None:
                raise RunError(f"run {self.path} has no held-out predictions: the {rule!r} decision rule is tuned "
                               "on the valid split, which this run was trained on (fit_on="
                               f"{self.config.fit_on!r}). Retrain with --fit-on train, or use --decision fixed.")
            try:
                self._decision_rules[key] = fit_decision_rule(rule, self.hierarchy, *(held or (None, None)),
                                                              threshold=threshold, shrinkage=shrinkage,
                                                              prevalence=self.train_prevalence())
            except ValueError as exc:
                raise RunError(f"run {self.path}: cannot fit the {rule!r} decision rule ({exc})") from exc
        return self._decision_rules[key]

    def images(self) -> RunImages | None:
        """The test images of an image run (``images.npz``), or None for a tabular run.

        The file is checked before it is read: a regular file inside the run folder, two arrays,
        ``thumbnails`` uint8 of shape (N_test, H, W, 3) with H, W <= :data:`MAX_THUMBNAIL_SIDE` (at most
        :data:`MAX_THUMBNAIL_BYTES` in all) and ``names`` unicode of shape (N_test,) and at most :data:`MAX_IMAGE_NAME` characters; pickled data
        is refused.

        Raises
        ------
        RunError
            If ``images.npz`` exists but is unreadable, a link out of the run folder, or does not match
            the run (the message names the file and the array).
        """
        if not (self.path / "images.npz").exists() and not (self.path / "images.npz").is_symlink():
            return None
        path = _run_file(self.path, "images.npz")
        n_test = self.summary.get("n_test")
        try:
            with zipfile.ZipFile(path) as zf:
                declared = _declared_arrays(path, zf)
                for key in ("thumbnails", "names"):
                    if key not in declared:
                        raise RunError(f"array {key!r} is missing", path)
                _, shape, dtype = declared["thumbnails"]
                n = n_test if isinstance(n_test, int) else shape[0] if shape else -1
                if (dtype != np.uint8 or len(shape) != 4 or shape[0] != n or shape[3] != 3
                        or not 0 < shape[1] <= MAX_THUMBNAIL_SIDE or not 0 < shape[2] <= MAX_THUMBNAIL_SIDE):
                    raise RunError(f"array 'thumbnails' is {dtype} {shape}; the run needs uint8 ({n}, H, W, 3) "
                                   f"with H, W <= {MAX_THUMBNAIL_SIDE}", path)
                if math.prod(shape) > MAX_THUMBNAIL_BYTES:
                    raise RunError(f"array 'thumbnails' declares {math.prod(shape) / 2**20:.0f} MiB, more than the "
                                   f"{MAX_THUMBNAIL_BYTES / 2**20:.0f} MiB allowed", path)
                _, name_shape, name_dtype = declared["names"]
                if (name_dtype.kind != "U" or name_shape != (n,)
                        or name_dtype.itemsize // 4 > MAX_IMAGE_NAME):
                    raise RunError(f"array 'names' is {name_dtype} {name_shape}; the run needs ({n},) text of at "
                                   f"most {MAX_IMAGE_NAME} characters", path)
                arrays = {}
                for key in ("thumbnails", "names"):
                    with zf.open(declared[key][0]) as f:
                        arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
        except RunError:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise RunError(f"cannot read the images ({type(exc).__name__}: {exc})", path) from exc
        return RunImages(thumbnails=arrays["thumbnails"], names=[str(v) for v in arrays["names"]])

    def load_model(self) -> HMCEnsemble:
        """Rebuild the ensemble and load ``model.pt`` with ``weights_only=True``; returned in eval mode.

        The class comes from the saved spec (:func:`hmlc_core.model.model_from_spec`): an image run's
        :class:`~hmlc_core.images.encoders.CNNEnsemble` (trained CNN or frozen encoder, with its trunk and
        feature standardisation) reads the flattened, normalised pixel rows of its dataset
        (:func:`hmlc_core.images.sets.pixels_to_features` with the ``mean`` and ``std`` of
        ``dataset_info["images"]``); score them with :func:`hmlc_core.train.predict_members`.

        Raises
        ------
        RunError
            If ``model.pt`` is missing, a link out of the run folder or cannot be loaded, or the saved
            model arguments do not fit (the message names the file).
        """
        import torch

        from hmlc_core.model import model_from_spec

        path = _run_file(self.path, "model.pt")
        try:
            model = model_from_spec(self.model_spec)
        except (TypeError, ValueError) as exc:
            raise RunError(f"the model arguments do not fit ({exc})", self.path / "config.json") from exc
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds (pickle, zip, EOF) on a damaged file
            raise RunError(f"cannot load the model weights ({type(exc).__name__}: {exc})", path) from exc
        return model.eval()


def _run_file(run_dir: Path, name: str) -> Path:
    """``run_dir / name`` after checking it is a regular file inside the run folder (links may not leave it).

    Raises
    ------
    RunError
        If it is missing, not a regular file, or resolves outside ``run_dir``.
    """
    path = run_dir / name
    try:
        target = path.resolve(strict=True)
        mode = target.stat().st_mode
    except FileNotFoundError as exc:
        raise RunError("the file is missing", path) from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise RunError(f"cannot read it ({exc})", path) from exc
    if not target.is_relative_to(run_dir.resolve()):
        raise RunError(f"it links outside the run folder (to {target}); links out of a run are refused", path)
    if not stat.S_ISREG(mode):
        raise RunError("not a regular file", path)
    return path


def _read_bytes(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` (checked by :func:`_run_file`), refusing a file larger than ``limit`` bytes."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1) if os.fstat(f.fileno()).st_size <= limit else None
    except OSError as exc:
        raise RunError(f"cannot read it ({exc})", path) from exc
    if data is None or len(data) > limit:  # too large, or it grew while being read
        raise RunError(f"larger than {limit:,} bytes: not a file hmlc-lab wrote", path)
    return data


def _read_json(path: Path) -> Any:
    """The JSON document in ``path`` (at most :data:`MAX_JSON_BYTES`; NaN and infinities accepted).

    Raises
    ------
    RunError
        If the file is unreadable, too large, not UTF-8 or not JSON (naming the file and the line).
    """
    data = _read_bytes(path, MAX_JSON_BYTES)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RunError(f"not UTF-8 text (byte {exc.start})", path) from exc
    except json.JSONDecodeError as exc:
        raise RunError(f"invalid JSON at line {exc.lineno} ({exc.msg})", path) from exc
    except RecursionError as exc:
        raise RunError("JSON nested too deeply", path) from exc


def _json_object(path: Path) -> dict[str, Any]:
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise RunError(f"expected a JSON object, found {type(doc).__name__}", path)
    return doc


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a JSON ``value`` fits a field annotation (``int``, ``float``, ``str``, ``bool``, ``X | None``)."""
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    args = typing.get_args(hint)
    if args:
        return any(a is type(None) and value is None or a is not type(None) and _type_ok(value, a) for a in args)
    return True


def _parse_config(path: Path, doc: dict[str, Any]) -> TrainConfig:
    """The ``train`` part of a ``config.json`` document at ``path``, its field types checked."""
    train = doc.get("train")
    if not isinstance(train, dict):
        raise RunError("field 'train' is missing or not an object", path)
    hints = typing.get_type_hints(TrainConfig)
    for name, value in train.items():
        if name in hints and not _type_ok(value, hints[name]):
            raise RunError(f"field 'train.{name}' has the wrong type ({value!r})", path)
    try:
        return TrainConfig.from_dict(train)
    except (TypeError, ValueError) as exc:
        raise RunError(f"field 'train': {exc}", path) from exc


SUMMARY_COUNTS = ("coherence_violations", "epochs_completed", "epochs_planned", "heads", "n_eval_nodes",
                  "n_eval_nodes_with_positives", "n_resampled", "n_test", "n_train", "n_valid", "resumed_epochs")
"""Fields of ``summary.json`` that must be integers >= 0 when present."""
SUMMARY_NUMBERS = ("auprc_micro", "macro_precision", "macro_recall", "macro_f1", "train_seconds", "seconds_per_epoch",
                   "resumed_seconds")
"""Fields of ``summary.json`` that must be numbers (NaN allowed) or null when present."""
SUMMARY_TEXTS = ("created", "dataset", "decision", "status", "uncertainty_mode")
"""Fields of ``summary.json`` that must be strings when present."""


def _check_summary(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """``summary`` after checking the types of its known fields (:data:`SUMMARY_COUNTS`, ...)."""
    for key in SUMMARY_COUNTS:
        value = summary.get(key)
        if value is not None and not (_type_ok(value, int) and value >= 0):
            raise RunError(f"field {key!r} must be an integer >= 0, found {value!r}", path)
    for key in SUMMARY_NUMBERS:
        if not _type_ok(summary.get(key), float | None):
            raise RunError(f"field {key!r} must be a number, found {summary[key]!r}", path)
    for key in SUMMARY_TEXTS:
        if not _type_ok(summary.get(key), str | None):
            raise RunError(f"field {key!r} must be text, found {summary[key]!r}", path)
    by_depth = summary.get("recall_by_depth", {})
    if not (isinstance(by_depth, dict) and all(_type_ok(v, float | None) for v in by_depth.values())):
        raise RunError("field 'recall_by_depth' must map depths to numbers", path)
    return summary


NODE_METRICS_NUMBERS = ("depth", "n_parents", "n_children", "train_frequency", "support", "tp", "fp", "fn",
                        "precision", "recall", "f1", "average_precision", "mean_prob", "uncertainty")
"""Columns of ``node_metrics.csv`` that must be numeric (the first six also present)."""
HISTORY_NUMBERS = ("epoch", "loss", "seconds")
"""Columns of ``history.csv`` that must be present and numeric."""


def _read_csv(path: Path, numeric: Iterable[str], required: Iterable[str], **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` of a run's CSV file, its ``required`` columns present and ``numeric`` ones numbers.

    Raises
    ------
    RunError
        If the file is too large (:data:`MAX_CSV_BYTES`), truncated (pandas ends every file with a newline),
        not UTF-8, not parseable, or a column is missing
        or holds text where numbers belong.
    """
    data = _read_bytes(path, MAX_CSV_BYTES)
    if data and not data.endswith(b"\n"):
        raise RunError("truncated (its last line is incomplete)", path)
    try:
        table = pd.read_csv(io.BytesIO(data), encoding="utf-8", encoding_errors="strict", **kwargs)
    except UnicodeDecodeError as exc:
        raise RunError(f"not UTF-8 text (byte {exc.start})", path) from exc
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RunError(f"not a readable table ({exc})", path) from exc
    columns = set(table.columns) | {table.index.name}
    missing = [c for c in required if c not in columns]
    if missing:
        raise RunError(f"missing column(s) {', '.join(missing)}", path)
    for column in numeric:
        if column in table.columns and len(table) and not (pd.api.types.is_numeric_dtype(table[column])
                                           or pd.api.types.is_bool_dtype(table[column])):
            raise RunError(f"column {column!r} holds text where numbers belong", path)
    return table


def _declared_arrays(path: Path, zf: zipfile.ZipFile) -> dict[str, tuple[zipfile.ZipInfo, tuple[int, ...], np.dtype]]:
    """Each ``.npy`` member's (zip entry, shape, dtype), read from its header only."""
    declared = {}
    for info in zf.infolist():
        key = info.filename.removesuffix(".npy")
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise RunError(f"array {key!r}: unsupported .npy format version {version}", path)
        if dtype.hasobject:
            raise RunError(f"array {key!r} holds Python objects (pickled data is refused)", path)
        declared[key] = (info, tuple(int(n) for n in shape), dtype)
    return declared


def _expected_shapes(declared: dict[str, tuple[Any, tuple[int, ...], np.dtype]], n_nodes: int,
                     n_test: int | None, n_valid: int | None) -> dict[str, tuple[int | None, ...]]:
    """The shape each known array must have (None: any size; the member count of ``member_probs``)."""
    if n_test is None and "y_true" in declared and len(declared["y_true"][1]) == 2:
        n_test = declared["y_true"][1][0]
    if n_valid is None and "valid_y_true" in declared and len(declared["valid_y_true"][1]) == 2:
        n_valid = declared["valid_y_true"][1][0]
    return {"y_true": (n_test, n_nodes), "mean_probs": (n_test, n_nodes), "member_probs": (None, n_test, n_nodes),
            "uncertainty": (n_test, n_nodes), "valid_y_true": (n_valid, n_nodes),
            "valid_mean_probs": (n_valid, n_nodes)}


def _read_predictions(path: Path, n_nodes: int, n_test: int | None, n_valid: int | None) -> dict[str, np.ndarray]:
    """The arrays of a run's ``predictions.npz``, each checked from its header before it is read.

    Parameters
    ----------
    path : pathlib.Path
        The file (already checked by :func:`_run_file`).
    n_nodes : int
        The hierarchy's node count (every array's last axis).
    n_test, n_valid : int or None
        The test and held-out sizes from ``summary.json``; None: taken from ``y_true`` / ``valid_y_true``.

    Returns
    -------
    dict of str to numpy.ndarray
        The known arrays (module docstring); other members are left unread.

    Raises
    ------
    RunError
        If the file is not a readable zip of ``.npy`` members, a required array is missing, an array
        holds objects, has another shape than the run's, or the arrays declare more than
        :data:`MAX_NPZ_EXPANSION` times the file's size.
    """
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            declared = _declared_arrays(path, zf)
            expected = _expected_shapes(declared, n_nodes, n_test, n_valid)
            for key in ("y_true", "mean_probs", "member_probs", "uncertainty"):
                if key not in declared:
                    raise RunError(f"array {key!r} is missing", path)
            total = 0
            for key, (_, shape, dtype) in declared.items():
                if key not in expected:
                    continue
                want = expected[key]
                if len(shape) != len(want) or any(w is not None and w != n for w, n in zip(want, shape)):
                    raise RunError(f"array {key!r} has shape {shape}, the run needs "
                                   f"{tuple('H' if w is None else w for w in want)}", path)
                total += math.prod(shape) * dtype.itemsize
            if total > MAX_NPZ_EXPANSION * size + NPZ_EXPANSION_SLACK:
                raise RunError(f"its arrays declare {total / 2**20:.0f} MiB, far more than the file's "
                               f"{size / 2**20:.1f} MiB holds: a damaged or crafted file", path)
            arrays = {}
            for key, (info, _, _) in declared.items():
                if key in expected:
                    with zf.open(info) as f:
                        arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    except RunError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise RunError(f"cannot read the predictions ({type(exc).__name__}: {exc})", path) from exc
    return arrays


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory written by :func:`save_run`.

    Every file read is checked: a regular file inside the run folder (a link out of it is refused), of
    bounded size (:data:`MAX_JSON_BYTES`, :data:`MAX_CSV_BYTES`), UTF-8, and of the expected structure
    and field types (``config.json``'s ``train`` fields, ``summary.json``'s counts and metrics, the CSV
    columns). ``predictions.npz`` and ``model.pt`` are read later, by :meth:`Run.predictions` and
    :meth:`Run.load_model`.

    Raises
    ------
    RunError
        If the directory or one of its files is missing, unreadable or malformed; ``path`` is the file
        at fault and the message names it with the reason.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError("run directory does not exist", path)
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise RunError(f"run directory {path} is incomplete: missing {', '.join(missing)}",
                       path / missing[0], f"missing {', '.join(missing)}")
    config_path = _run_file(path, "config.json")
    config_doc = _json_object(config_path)
    config = _parse_config(config_path, config_doc)
    model_spec, dataset_info = config_doc.get("model"), config_doc.get("dataset")
    for field_name, value in (("model", model_spec), ("dataset", dataset_info)):
        if not isinstance(value, dict):
            raise RunError(f"field {field_name!r} is missing or not an object", config_path)
    hierarchy_path = _run_file(path, "hierarchy.json")
    doc = _json_object(hierarchy_path)
    try:
        hierarchy = Hierarchy.from_dict(doc)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise RunError(f"not a valid hierarchy ({type(exc).__name__}: {exc})", hierarchy_path) from exc
    metrics_path = _run_file(path, "node_metrics.csv")
    node_metrics = _read_csv(metrics_path, NODE_METRICS_NUMBERS,
                             ("node", "parent", "evaluated", *NODE_METRICS_NUMBERS[:6]), index_col="node",
                             dtype={"node": str, "parent": str}, keep_default_na=False,
                             na_values={c: ["", "nan", "NaN"] for c in ("average_precision", "uncertainty")})
    node_metrics["parent"] = node_metrics["parent"].astype(str)
    if node_metrics.index.tolist() != hierarchy.nodes:  # tolist: 7x faster than list() on pandas' arrow strings
        raise RunError("its nodes do not match hierarchy.json", metrics_path)
    history = _read_csv(_run_file(path, "history.csv"), HISTORY_NUMBERS, HISTORY_NUMBERS)
    summary = read_summary(path)
    return Run(path=path, config=config, model_spec=model_spec, dataset_info=dataset_info,
               hierarchy=hierarchy, summary=summary, node_metrics=node_metrics, history=history)


def read_config(run_dir: str | Path) -> TrainConfig:
    """The training config of a run directory, read from its ``config.json`` alone (cheaper than :func:`load_run`).

    Raises
    ------
    RunError
        If ``config.json`` is missing, a link out of the run folder, too large, not UTF-8, not JSON, or
        its ``train`` part is not a valid :class:`TrainConfig` (unknown or missing fields, wrong types).
    """
    path = _run_file(Path(run_dir), "config.json")
    return _parse_config(path, _json_object(path))


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """The ``summary.json`` of a run directory, its known fields' types checked (cheaper than :func:`load_run`).

    Returns
    -------
    dict
        Headline metrics and run facts; counts (:data:`SUMMARY_COUNTS`) are integers >= 0, metrics
        (:data:`SUMMARY_NUMBERS`) numbers or None, :data:`SUMMARY_TEXTS` strings, when present.

    Raises
    ------
    RunError
        If ``summary.json`` is missing, a link out of the run folder, too large, not UTF-8, not a JSON
        object, or a known field has the wrong type (the field is named).
    """
    path = _run_file(Path(run_dir), "summary.json")
    return _check_summary(path, _json_object(path))


def evaluate_run(run: Run, rule: str | None = None, threshold: float | None = None,
                 shrinkage: float | None = None) -> dict[str, Any]:
    """Recompute the headline metrics from the run's saved test predictions under a decision rule.

    Parameters
    ----------
    run : Run
    rule, threshold, shrinkage
        As :meth:`Run.decision_rule` (None: the run's default rule, ``fixed 0.5`` for runs saved
        before decision rules existed).

    Returns
    -------
    dict
        :func:`hmlc_core.metrics.summarize` output at the rule's thresholds (``macro_*``,
        ``recall_by_depth``, ``coherence_violations`` of the rule's predictions; ``auprc_micro`` is
        threshold-free), :func:`hmlc_core.tail_metrics.tail_summary` output (``macro_auprc``,
        ``fmax``, ...), plus ``decision`` (the rule's label), ``micro_f1`` and ``rare_node_recall``
        (over the evaluated nodes, at the rule), ``run``, ``dataset``, ``status``,
        ``epochs_completed`` and ``heads``.

    Raises
    ------
    RunError
        As :meth:`Run.decision_rule` (a tuned rule on a run without held-out predictions).
    """
    from hmlc_core.tail_metrics import tail_summary

    decision = run.decision_rule(rule, threshold, shrinkage)
    nm = run.node_metrics
    ic = nm["information_content"].to_numpy(dtype=np.float64) if "information_content" in nm.columns else None
    preds = run.predictions()
    y, probs = preds["y_true"], preds["mean_probs"]
    hierarchy = run.hierarchy
    pred = decision.predict(probs)
    freq = nm["train_frequency"].to_numpy(dtype=np.int64)
    mask = hierarchy.eval_mask
    n_train = int(run.summary.get("n_train") or 0)
    result: dict[str, Any] = {"macro_auprc": float("nan"), "fmax": float("nan")}
    rare = float("nan")
    if mask.any() and (freq[mask] >= 0).all() and n_train >= 3:  # training frequencies known
        result.update(tail_summary(hierarchy, y, probs, pred, freq, n_train, ic=ic))
        rare = rare_node_recall(precision_recall_f1(y, probs, predictions=pred)[1], freq, mask)
    result.update(summarize(hierarchy, y, probs, decision.thresholds, predictions=pred))
    result.update({"decision": decision.label(), "micro_f1": micro_f1(y, pred, mask), "rare_node_recall": rare,
                   "coherence_violations": hierarchy.coherence_violations(pred)})
    result.update({"run": str(run.path), "dataset": run.summary.get("dataset"),
                   "status": run.summary.get("status"), "epochs_completed": run.summary.get("epochs_completed"),
                   "heads": run.config.heads})
    return result


def find_runs(roots: Iterable[str | Path]) -> list[Path]:
    """Run directories directly inside (or equal to) each folder of ``roots``.

    A folder counts as a run when it holds ``summary.json`` and
    ``config.json``; hidden folders (temporary saves) are skipped, and so is
    a folder that links outside its root (logged). Missing or unreadable
    roots are ignored. Sorted by path, duplicates removed.
    """
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        try:
            if not root.is_dir():
                continue
            resolved_root = root.resolve()
            candidates = [root] + [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        except OSError as exc:
            log.warning("cannot list the runs folder %s: %s", root, exc)
            continue
        for c in candidates:
            try:
                if not ((c / "summary.json").is_file() and (c / "config.json").is_file()):
                    continue
                target = c.resolve()
            except (OSError, RuntimeError) as exc:
                log.warning("skipping run folder %s: %s", c, exc)
                continue
            if not target.is_relative_to(resolved_root):
                log.warning("skipping run folder %s: it links outside %s (to %s)", c, root, target)
                continue
            found.add(target)
    return sorted(found)
