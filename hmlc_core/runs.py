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
========================  =====================================================

The directory is written under a temporary name next to its destination and
renamed into place, so an interrupted save never leaves a half-written run, and
an existing run is replaced only once the new one is complete.

Loading a run (:func:`load_run`, :class:`Run`, :meth:`Run.predictions`) does
not import torch; :func:`save_run` and :meth:`Run.load_model` import it (and
the model and training modules) when called.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
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

__all__ = ["Run", "RunError", "save_run", "load_run", "read_config", "find_runs", "evaluate_run",
           "display_uncertainty_mode", "RUNS_DIR_ENV", "env_runs_dirs"]

log = logging.getLogger(__name__)

RUN_FILES = ("config.json", "hierarchy.json", "model.pt", "node_metrics.csv", "summary.json",
             "history.csv", "predictions.npz")


RUNS_DIR_ENV = "HMLC_RUNS_DIR"
"""Environment variable naming the runs folder(s), separated by ``os.pathsep``; the first receives new runs."""


def env_runs_dirs() -> list[Path]:
    """The folders named by ``$HMLC_RUNS_DIR`` (``~`` expanded, empty entries dropped), in order."""
    return [Path(p).expanduser() for p in os.environ.get(RUNS_DIR_ENV, "").split(os.pathsep) if p.strip()]


class RunError(ValueError):
    """A run directory is missing, incomplete or corrupt; the message names the file."""


def display_uncertainty_mode(config: TrainConfig) -> str:
    """The uncertainty shown for a run: its focal mode, else epistemic (JS) for H >= 2, else bBMA."""
    if config.focal != "none":
        return config.focal
    return "epistemic" if config.heads >= 2 else "mean"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n", encoding="utf-8")


def save_run(run_dir: str | Path, result: TrainResult, dataset: HMCDataset, overwrite: bool = False) -> Path:
    """Evaluate ``result`` on the test split and write a complete run directory.

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
        after the new one is in place.

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

    from hmlc_core.model import MCM
    from hmlc_core.tail_metrics import information_content
    from hmlc_core.train import predict_members
    from hmlc_core.uncertainty import UNCERTAINTY_MODES, uncertainty

    run_dir = Path(run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"run directory {run_dir} already exists; choose another --out or pass --overwrite")
    hierarchy = dataset.hierarchy
    config = result.config
    mcm = MCM(hierarchy)
    members = predict_members(result.model, mcm, dataset.test.X, config.eval_batch_size)
    mean_probs = members.mean(dim=0)
    mode = display_uncertainty_mode(config)
    u_by_mode = {m: uncertainty(members, m) for m in UNCERTAINTY_MODES}
    y_test = dataset.test.Y
    held_out: dict[str, np.ndarray] = {}
    if config.fit_on == "train" and dataset.valid is not None:
        valid_probs = predict_members(result.model, mcm, dataset.valid.X, config.eval_batch_size).mean(dim=0)
        held_out = {"valid_y_true": dataset.valid.Y.astype(np.uint8),
                    "valid_mean_probs": valid_probs.numpy().astype(np.float32)}
    rule = fit_decision_rule(config.decision, hierarchy, held_out.get("valid_y_true"),
                             held_out.get("valid_mean_probs"), threshold=config.decision_threshold,
                             shrinkage=config.decision_shrinkage,
                             prevalence=np.asarray(result.train_frequency, dtype=np.float64) / dataset.train.n_samples)
    test_pred = rule.predict(mean_probs.numpy())
    table = node_metrics_table(hierarchy, y_test, mean_probs.numpy(), result.train_frequency,
                               u_by_mode[mode].numpy(), threshold=rule.thresholds, predictions=test_pred)
    for m, u in u_by_mode.items():
        table[f"uncertainty_{m}"] = u.mean(dim=0).numpy().astype(np.float64)
    table["information_content"] = information_content(dataset.train.Y, hierarchy)

    summary = summarize(hierarchy, y_test, mean_probs.numpy(), threshold=rule.thresholds, predictions=test_pred)
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
        "n_valid": dataset.valid.n_samples if dataset.valid is not None else 0,
        "heads": config.heads,
        "uncertainty_mode": mode,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    config_doc = {
        "train": config.to_dict(),
        "model": result.model.spec(),
        "dataset": {"name": dataset.name, "n_features": len(dataset.feature_names),
                    "source": {k: str(v) for k, v in dataset.source.items()}},
    }

    run_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.tmp-", dir=run_dir.parent))
    try:
        tmp.chmod(0o755)
        _write_json(tmp / "config.json", config_doc)
        _write_json(tmp / "hierarchy.json", hierarchy.to_dict())
        _write_json(tmp / "summary.json", summary)
        torch.save(result.model.state_dict(), tmp / "model.pt")
        table.to_csv(tmp / "node_metrics.csv")
        columns = ["epoch", "loss", "seconds"] + (["valid_auprc"] if config.fit_on == "train" else [])
        pd.DataFrame(result.history, columns=columns).to_csv(tmp / "history.csv", index=False)
        np.savez(
            tmp / "predictions.npz",
            y_true=y_test.astype(np.uint8),
            mean_probs=mean_probs.numpy().astype(np.float32),
            member_probs=members.numpy().astype(np.float16),
            uncertainty=u_by_mode[mode].numpy().astype(np.float16),
            **held_out,
        )
        _write_json(tmp / "decision.json", rule.to_dict())
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

        Raises
        ------
        RunError
            If the file is missing or its arrays do not match the hierarchy.
        """
        path = self.path / "predictions.npz"
        try:
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: cannot read predictions ({exc})") from exc
        for key in ("y_true", "mean_probs", "member_probs", "uncertainty"):
            if key not in arrays:
                raise RunError(f"{path}: array {key!r} is missing")
        if arrays["mean_probs"].shape[-1] != self.hierarchy.n_nodes:
            raise RunError(f"{path}: predictions have {arrays['mean_probs'].shape[-1]} nodes, "
                           f"the hierarchy has {self.hierarchy.n_nodes}")
        return arrays

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

    def load_model(self) -> HMCEnsemble:
        """Rebuild the ensemble and load ``model.pt`` with ``weights_only=True``; returned in eval mode."""
        import torch

        from hmlc_core.model import HMCEnsemble

        path = self.path / "model.pt"
        model = HMCEnsemble(**self.model_spec)
        try:
            state = torch.load(path, weights_only=True, map_location="cpu")
            model.load_state_dict(state)
        except (OSError, RuntimeError, ValueError) as exc:
            raise RunError(f"{path}: cannot load the model weights ({exc})") from exc
        return model.eval()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunError(f"{path}: invalid JSON at line {exc.lineno} ({exc.msg})") from exc


def load_run(run_dir: str | Path) -> Run:
    """Load a run directory written by :func:`save_run`.

    Raises
    ------
    RunError
        If the directory or one of its files is missing or unreadable (the
        file is named).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"run directory {path} does not exist")
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise RunError(f"run directory {path} is incomplete: missing {', '.join(missing)}")
    config_doc = _read_json(path / "config.json")
    try:
        config = TrainConfig.from_dict(config_doc["train"])
        model_spec, dataset_info = config_doc["model"], config_doc["dataset"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path / 'config.json'}: {exc}") from exc
    try:
        hierarchy = Hierarchy.from_dict(_read_json(path / "hierarchy.json"))
    except ValueError as exc:
        raise RunError(f"{path / 'hierarchy.json'}: {exc}") from exc
    node_metrics = pd.read_csv(path / "node_metrics.csv", index_col="node", dtype={"node": str, "parent": str},
                               keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in
                                                                 ("average_precision", "uncertainty")})
    node_metrics["parent"] = node_metrics["parent"].astype(str)
    if list(node_metrics.index) != hierarchy.nodes:
        raise RunError(f"{path / 'node_metrics.csv'}: its nodes do not match hierarchy.json")
    history = pd.read_csv(path / "history.csv")
    return Run(path=path, config=config, model_spec=model_spec, dataset_info=dataset_info,
               hierarchy=hierarchy, summary=_read_json(path / "summary.json"),
               node_metrics=node_metrics, history=history)


def read_config(run_dir: str | Path) -> TrainConfig:
    """The training config of a run directory, read from its ``config.json`` alone (cheaper than :func:`load_run`).

    Raises
    ------
    RunError
        If ``config.json`` is missing, not JSON, or its ``train`` part is not
        a valid :class:`TrainConfig` (unknown or missing fields).
    """
    path = Path(run_dir) / "config.json"
    try:
        doc = _read_json(path)
    except OSError as exc:
        raise RunError(f"{path}: cannot read it ({exc})") from exc
    try:
        return TrainConfig.from_dict(doc["train"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path}: {exc}") from exc


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
    ``config.json``; hidden folders (temporary saves) are skipped. Missing
    roots are ignored. Sorted by path, duplicates removed.
    """
    found: set[Path] = set()
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        candidates = [root] + [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        for c in candidates:
            if (c / "summary.json").is_file() and (c / "config.json").is_file():
                found.add(c.resolve())
    return sorted(found)
