"""Training a coherent ensemble with the weighted, uncertainty-focused MCLoss.

The recipe is C-HMCNN's (docs/method.md, *Defaults and why*): Adam, batch 4, learning rate 1e-4,
weight decay 1e-5, dropout 0.7, per-dataset hidden width and epochs, final
models trained on train+valid. The loss is :class:`~hmlc_core.losses.WeightedMCLoss`
(Xu et al. 2026; docs/method.md, *Node weights*, *Focal weighting*); node frequencies come from the train split only.
Up to batch 32 a step runs on the fused kernels of :mod:`hmlc_core.fused` (Adam applied
inside the backward pass), above on autograd and ``torch.optim.Adam`` (``TrainConfig.kernel``).
The label rows stay in the dataset's arrays (uint8) and are read as float32 one batch at a time.
With ``TrainConfig.shortlist`` set, :func:`train` runs LightDXML-style shortlist training instead
(:func:`hmlc_core.shortlists.train_shortlist`) and returns its model as the equal dense ensemble.

:class:`TrainConfig` is defined in the torch-free :mod:`hmlc_core.config` and
re-exported here.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hmlc_core.checkpoint import CHECKPOINT_SECONDS, checkpoint_key, load_checkpoint, save_checkpoint
from hmlc_core.config import TrainConfig
from hmlc_core.data import HMCDataset
from hmlc_core.fused import FusedAdamEnsemble
from hmlc_core.losses import WeightedASLLoss, WeightedMCLoss, WeightedZLPRLoss, node_weights, schedule_fraction
from hmlc_core.metrics import auprc_micro
from hmlc_core.model import MCM, HMCEnsemble
from hmlc_core.resample import lpros
from hmlc_core.weighting import log_prior_odds

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "DIVERGENCE_FACTOR", "DIVERGENCE_WEIGHT", "train",
           "predict_members", "training_outputs", "Progress"]

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]
"""Callback type: receives one dict per finished epoch (see :func:`train`)."""

DIVERGENCE_FACTOR = 3.0
"""An epoch whose mean training loss exceeds this many times the untrained model's loss counts as diverged.

The untrained model predicts about 0.5 everywhere, the loss of knowing nothing, and training lowers the
loss from there. Measured on the synthetic data, cellcycle_FUN and Diatoms (quick and paper profiles,
MCLoss, ZLPR, ASL and the weighting options): sound runs
stay at 0.02-0.72 times the untrained loss after their first epoch (ZLPR highest); ``lr=1e10`` gives
10-86 times, ``lr=1`` at batch 4 7.6 times. A loss explosion relative to the first epoch (say 1000x) would
miss these: MCLoss and ASL are bounded (torch clamps the log of the binary cross-entropy at -100), and a
run diverges within its first epoch, so the loss stays finite and flat at a high level."""

DIVERGENCE_WEIGHT = 1e4
"""Largest absolute weight or bias a sound run may hold after an epoch.

Weights start within ``1/sqrt(fan_in)`` and Adam moves each by about ``lr`` per step; measured, sound runs
stay below 1 and ``lr=1e10`` reaches about 1e9 after one epoch."""

DIVERGENCE_ROWS = 512
"""Training rows (the first ones) on which the untrained model's reference loss is measured."""


class _LabelRows:
    """The training label rows as the arrays they are stored in, read as float32 one batch at a time.

    Training reads rows of several arrays (train, LPROS rows, valid) as if stacked in that order, without
    building the stacked (N, C) array or a float32 copy of it: a (B, C) float32 batch at a time, the same
    values as ``torch.as_tensor(np.concatenate(parts), dtype=torch.float32)[rows]``.

    Parameters
    ----------
    parts : list of numpy.ndarray, shape (N_k, C)
        Label arrays ({0, 1}, any numeric or bool dtype), all with C columns.
    """

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = [np.asarray(p) for p in parts]
        self.starts = np.cumsum([0] + [p.shape[0] for p in self.parts])
        self.dtype = np.result_type(*self.parts)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, rows: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Rows ``rows`` (int64 indices into the stacked rows) as a (B, C) float32 tensor."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.parts) == 1:
            return torch.from_numpy(self.parts[0][rows]).float()
        out = np.empty((rows.size, self.parts[0].shape[1]), dtype=self.dtype)
        part = np.searchsorted(self.starts, rows, side="right") - 1
        for k, labels in enumerate(self.parts):
            pick = part == k
            if pick.any():
                out[pick] = labels[rows[pick] - self.starts[k]]
        return torch.from_numpy(out).float()


class TrainingDiverged(RuntimeError):
    """Training stopped because it diverged: a non-finite loss, or a loss or weights that ran away.

    Raised by :func:`train` after the epoch where it happened (:data:`DIVERGENCE_FACTOR`,
    :data:`DIVERGENCE_WEIGHT`); nothing is saved. The message names the epoch, what was seen and the
    learning rate.
    """


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes
    ----------
    config : TrainConfig
        The resolved configuration that was run.
    model : HMCEnsemble
        The trained ensemble (in eval mode); for an image encoder a
        :class:`~hmlc_core.images.encoders.CNNEnsemble`, which reads pixel rows.
    train_frequency : numpy.ndarray of int64, shape (C,)
        Propagated positive counts per node on the train split.
    history : list of dict
        One entry per finished epoch: ``epoch``, ``loss`` (mean training loss),
        ``seconds`` (wall time of the epoch) and, with ``fit_on="train"``,
        ``valid_auprc``.
    epochs_completed : int
    interrupted : bool
        True when ``should_stop`` ended training early.
    best_epoch : int or None
        With early stopping, the epoch whose weights were kept.
    n_resampled : int
        Training rows added by LPROS.
    train_seconds : float
        Training wall time in seconds, the earlier processes' included when resumed from a checkpoint.
    logit_shift : numpy.ndarray of float32, shape (C,), or None
        With logit adjustment, the constant ``tau * log(pi / (1 - pi))`` added
        to every member's logits in training only (:func:`training_outputs`).
    resumed_epochs : int
        Epochs restored from a checkpoint (0 when training started from the first epoch).
    resumed_seconds : float
        The training seconds of those epochs, spent by the earlier processes (part of ``train_seconds``).
    """

    config: TrainConfig
    model: HMCEnsemble
    train_frequency: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_completed: int = 0
    interrupted: bool = False
    best_epoch: int | None = None
    n_resampled: int = 0
    train_seconds: float = 0.0
    logit_shift: np.ndarray | None = None
    resumed_epochs: int = 0
    resumed_seconds: float = 0.0


@torch.no_grad()
def predict_members(model: HMCEnsemble, mcm: MCM, x: np.ndarray | torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Coherent member probabilities ``MCM(sigmoid(logits))`` in eval mode (docs/method.md, *Ensembles*).

    Dropout is off, except for an ``mc-dropout`` ensemble, whose members are
    its stochastic passes (so the result depends on torch's random state).

    Parameters
    ----------
    model : HMCEnsemble
    mcm : MCM
    x : array or tensor, shape (N, D), float32
    batch_size : int

    Returns
    -------
    torch.Tensor, shape (H, N, C), float32, values in (0, 1), coherent per member.
    """
    was_training = model.training
    model.eval()
    xt = torch.as_tensor(x, dtype=torch.float32)
    parts = [mcm(model(xt[i:i + batch_size])) for i in range(0, xt.shape[0], batch_size)]
    model.train(was_training)
    if not parts:
        return torch.empty(model.n_heads, 0, model.n_nodes)
    return torch.cat(parts, dim=1)


def training_outputs(
    logits: Callable[[torch.Tensor], torch.Tensor], loss: str, shift: torch.Tensor | None = None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """What the loss sees in a training step: member logits, shifted, then squashed for the MCM-based losses.

    ZLPR trains on the logits, MCLoss and ASL on the raw member probabilities
    ``sigmoid(logits)`` (the loss applies the MCM). With logit adjustment
    (Menon et al. 2021, our binary adaptation; docs/method.md, *Tail-aware
    baselines*) the constant ``shift`` is added to the logits before the
    sigmoid and the MCM, in training only: :func:`predict_members`, the saved
    predictions and every metric use the unshifted logits.

    Parameters
    ----------
    logits : callable
        The training forward pass, ``x (B, D) -> (H, B, C)`` logits
        (``model.logits`` or :meth:`FusedAdamEnsemble.logits`).
    loss : {"mcloss", "zlpr", "asl"}
    shift : torch.Tensor, shape (C,), float32, optional
        ``tau * log(pi / (1 - pi))`` (:func:`hmlc_core.weighting.log_prior_odds`).

    Returns
    -------
    callable
        ``x -> (H, B, C)`` logits (ZLPR) or probabilities in (0, 1).
    """
    def outputs(x: torch.Tensor) -> torch.Tensor:
        z = logits(x)
        if shift is not None:
            z = z + shift
        return z if loss == "zlpr" else torch.sigmoid(z)

    return outputs


def _adam(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Adam:
    """Adam with C-HMCNN's settings, as one fused kernel where this torch build has it.

    Fused Adam updates every parameter in one pass over memory; at batch 4 the
    optimizer otherwise dominates a GO step (the weights are 10M floats).
    """
    try:
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, foreach=True)


@torch.no_grad()
def _reference_loss(criterion: WeightedMCLoss, outputs: Callable[[torch.Tensor], torch.Tensor],
                    model: HMCEnsemble, x: torch.Tensor, y: _LabelRows, batch_size: int) -> float:
    """Mean loss of the untrained model over the first :data:`DIVERGENCE_ROWS` rows, batched as in training.

    Evaluated without dropout (except an ``mc-dropout`` ensemble's) and with torch's random state restored
    afterwards, so the training that follows is the same as without this measurement.
    """
    rows = min(x.shape[0], DIVERGENCE_ROWS)
    total = 0.0
    with torch.random.fork_rng(devices=[]):
        model.eval()
        for first in range(0, rows, batch_size):
            last = min(first + batch_size, rows)
            total += float(criterion(outputs(x[first:last]), y[np.arange(first, last)])) * (last - first)
        model.train()
    return total / max(rows, 1)


def _divergence(loss: float, reference: float, model: torch.nn.Module) -> str | None:
    """Why an epoch with mean training loss ``loss`` counts as diverged, or None if it does not."""
    if not math.isfinite(loss):
        return f"the mean training loss is {loss} (not finite)"
    with torch.no_grad():
        largest = max(float(p.abs().max()) for p in model.parameters())
    if not largest <= DIVERGENCE_WEIGHT:  # also NaN
        return f"a weight reached {largest:.3g} (the limit is {DIVERGENCE_WEIGHT:g}; sound runs stay below 1)"
    if math.isfinite(reference) and reference > 0 and loss > DIVERGENCE_FACTOR * reference:
        return (f"the mean training loss {loss:.4g} is more than {DIVERGENCE_FACTOR:g} times that of the "
                f"untrained model ({reference:.4g})")
    return None


def _train_shortlist(config: TrainConfig, dataset: HMCDataset, progress: Progress | None,
                     should_stop: Callable[[], bool] | None) -> TrainResult:
    """:func:`train` for a resolved, validated config with ``shortlist`` set (see :func:`train`, *Notes*).

    Raises
    ------
    TrainingDiverged
        After an epoch whose mean training loss is not finite or after which a weight is not finite or
        above :data:`DIVERGENCE_WEIGHT` in absolute value.
    """
    from hmlc_core.shortlists import train_shortlist

    def check(model: torch.nn.Module, entry: dict[str, Any]) -> None:
        reason = _divergence(entry["loss"], math.nan, model)
        if reason is not None:
            raise TrainingDiverged(f"training diverged in epoch {entry['epoch']}: {reason}; lower the learning "
                                   f"rate (lr = {config.lr:g})")

    proxy, full = config.shortlist_proxy_epochs, config.shortlist_full_epochs
    found = train_shortlist(
        dataset, k=config.shortlist, hidden=config.hidden, epochs=config.epochs - proxy - full,
        batch_size=config.batch_size, lr=config.lr, cycle=config.shortlist_cycle, seed=config.seed,
        heads=config.heads, n_layers=config.n_layers, dropout=config.dropout, weight_decay=config.weight_decay,
        proxy_epochs=proxy, ann=config.shortlist_ann, ann_threads=config.threads, uniform=config.shortlist_uniform,
        full_epochs=full, fit_on=config.fit_on,
        reduction=config.reduction, progress=progress, should_stop=should_stop, check=check)
    done = len(found.history)
    return TrainResult(config=config, model=found.model.to_ensemble(), train_frequency=found.train_frequency,
                       history=found.history, epochs_completed=done, interrupted=done < config.epochs,
                       train_seconds=found.train_seconds)


def train(
    config: TrainConfig,
    dataset: HMCDataset,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    cache_dir: str | Path | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> TrainResult:
    """Train an ensemble on ``dataset`` as ``config`` says.

    Image encoders (``config.encoder``, resolved for the dataset by :meth:`TrainConfig.for_dataset`):
    with ``cnn`` a :class:`~hmlc_core.images.encoders.CNNEnsemble` trains trunk and members together
    (torch kernel); with ``frozen`` the trunk (:func:`~hmlc_core.images.encoders.build_trunk`) encodes
    every split once (:func:`~hmlc_core.images.features.frozen_dataset`, cached), the members train on
    those features like on any table (numba or torch kernel, LPROS, early stopping alike), and the result's
    model is packed with the trunk (:meth:`~hmlc_core.images.encoders.CNNEnsemble.with_frozen_trunk`), so
    it reads pixel rows like the ``cnn`` one.

    Parameters
    ----------
    config : TrainConfig
        Resolved against the dataset (encoder) and its preset, and validated first.
    dataset : HMCDataset
        Preprocessed splits and the hierarchy.
    progress : callable, optional
        Called after every epoch with ``{"epoch", "epochs", "loss", "seconds"}``
        (plus ``"valid_auprc"`` with ``fit_on="train"``).
    should_stop : callable, optional
        Polled between steps; when it returns True training stops after the
        current step and the result is marked ``interrupted``.
    cache_dir : path, optional
        Feature cache folder of a frozen encoder (default
        :func:`hmlc_core.images.features.default_cache_dir`).
    checkpoint : path, optional
        A checkpoint file (:mod:`hmlc_core.checkpoint`): training resumes from it when it holds a
        checkpoint of this configuration and data, and writes it at the end of an epoch once at least
        ``checkpoint_seconds`` have passed since the last one. The resumed run is the same, bit for bit, as
        an uninterrupted one; the caller removes the file once the run is saved. Not for shortlist
        training.
    checkpoint_seconds : float, default :data:`hmlc_core.checkpoint.CHECKPOINT_SECONDS`
        Least wall time between two checkpoints, in seconds (0: after every epoch).

    Returns
    -------
    TrainResult

    Raises
    ------
    ValueError
        On an invalid config, an image encoder for a tabular dataset, ``fit_on="train"`` for a dataset
        without a valid split, an encoder checkpoint that is missing, unreadable or does not fit
        (:class:`~hmlc_core.images.encoders.EncoderCheckpointError`), or a training ``checkpoint`` with
        shortlist training.
    TrainingDiverged
        After an epoch whose mean training loss is not finite or above :data:`DIVERGENCE_FACTOR` times
        the untrained model's loss, or after which a weight is not finite or above
        :data:`DIVERGENCE_WEIGHT` in absolute value (checked after every epoch). Shortlist training
        checks the loss and the weights after every epoch too, without the untrained model's loss.

    Notes
    -----
    With ``config.shortlist`` set, :func:`hmlc_core.shortlists.train_shortlist` trains instead (LightDXML's
    cycle of label embeddings, ANN shortlists and MCLoss restricted to positives and shortlisted
    negatives; Mishra et al., IJCNN 2023): ``shortlist_proxy_epochs`` proxy epochs, then ``epochs`` minus
    those and ``shortlist_full_epochs`` in shortlist phase, the shortlists rebuilt every ``shortlist_cycle``
    epochs with index ``shortlist_ann`` (``threads`` faiss threads) and ``shortlist_uniform`` uniform
    negatives per sample, then ``shortlist_full_epochs`` epochs of the full MCLoss on every node. The
    result's model is the equal dense ensemble (:meth:`~hmlc_core.shortlists.ShortlistNetwork.to_ensemble`),
    so saving, loading and every view treat the run like any other; its history entries also hold
    ``phase``, ``shortlist_seconds`` and ``scored_per_sample``, and no ``valid_auprc``.
    """
    config = config.for_dataset(dataset.images is not None, dataset.name).resolved()
    config.validate()
    if config.fit_on == "train" and dataset.valid is None:
        raise ValueError(f"dataset {dataset.name!r} has no valid split: hold one out of its training rows "
                         "(config field 'valid_fraction' > 0, applied when the dataset is opened) or use "
                         "fit_on='train+valid'")
    torch.set_num_threads(config.threads)
    if config.shortlist is not None:
        if checkpoint is not None:
            raise ValueError("shortlist training writes no checkpoint: pass checkpoint=None")
        return _train_shortlist(config, dataset, progress, should_stop)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    image_shape = None if dataset.images is None else dataset.images.shape
    frozen = None
    if config.encoder == "frozen":
        from hmlc_core.images.encoders import build_trunk
        from hmlc_core.images.features import frozen_dataset

        trunk = build_trunk(image_shape, config.encoder_width, config.seed, config.encoder_checkpoint)
        dataset, feature_mean, feature_std = frozen_dataset(trunk, dataset, cache_dir, config.eval_batch_size)
        frozen = (trunk, feature_mean, feature_std)
    hierarchy = dataset.hierarchy

    train_freq = dataset.train.Y.sum(axis=0).astype(np.int64)
    weights = None
    if config.weighting != "none":
        weights = node_weights(dataset.train.Y, hierarchy, config.weighting, config.omega, config.counting,
                               beta=config.cb_beta)
    loss_args = (hierarchy, weights, config.weight_indexing, config.focal, config.focal_k, config.focal_min,
                 config.reduction)
    if config.loss == "zlpr":
        criterion: WeightedMCLoss = WeightedZLPRLoss(*loss_args, label_smoothing=config.label_smoothing)
    elif config.loss == "asl":
        criterion = WeightedASLLoss(*loss_args, gamma_pos=config.asl_gamma_pos, gamma_neg=config.asl_gamma_neg,
                                    clip=config.asl_clip)
    else:
        criterion = WeightedMCLoss(*loss_args, mixed_lambda=config.mixed_lambda)
    if config.schedule != "none":
        start_pos, start_neg = criterion.w_pos.clone(), criterion.w_neg.clone()

    x_parts, y_parts = [dataset.train.X], [dataset.train.Y]
    n_resampled = 0
    if config.lpros is not None:
        extra = lpros(dataset.train.Y, hierarchy, config.lpros, config.seed)
        x_parts.append(dataset.train.X[extra.rows])
        y_parts.append(extra.labels)
        n_resampled = len(extra.rows)
        log.info("LPROS added %d rows for %d minority label paths", n_resampled, extra.minority_keys)
    if config.fit_on == "train+valid" and dataset.valid is not None:
        x_parts.append(dataset.valid.X)
        y_parts.append(dataset.valid.Y)
    x_all = torch.as_tensor(np.concatenate(x_parts) if len(x_parts) > 1 else x_parts[0], dtype=torch.float32)
    y_all = _LabelRows(y_parts)
    n = x_all.shape[0]

    if config.encoder == "cnn":
        from hmlc_core.images.encoders import CNNEnsemble, load_encoder_checkpoint

        cnn = CNNEnsemble(image_shape, hierarchy.n_nodes, config.hidden, config.heads, config.n_layers,
                          config.dropout, generator=gen, kind=config.ensemble, encoder="cnn",
                          encoder_width=config.encoder_width)
        if config.encoder_checkpoint is not None:
            load_encoder_checkpoint(config.encoder_checkpoint, cnn.trunk)
        model: HMCEnsemble = cnn
    else:
        model = HMCEnsemble(x_all.shape[1], hierarchy.n_nodes, config.hidden, config.heads,
                            config.n_layers, config.dropout, generator=gen, kind=config.ensemble)
    shift = None
    if config.logit_adjust is not None:
        shift = torch.as_tensor(config.logit_adjust * log_prior_odds(train_freq, dataset.train.Y.shape[0]),
                                dtype=torch.float32)
    optimizer: torch.optim.Adam | None = None
    if config.kernel == "numba":
        fused = FusedAdamEnsemble(model, config.lr, config.weight_decay)
        outputs = training_outputs(fused.logits, config.loss, shift)
    else:
        optimizer = _adam(model, config)
        outputs = training_outputs(model.logits, config.loss, shift)
    steps_per_epoch = -(-n // config.batch_size)
    result = TrainResult(config=config, model=model, train_frequency=train_freq, n_resampled=n_resampled,
                         logit_shift=None if shift is None else shift.numpy())
    log.info("training %s: %d samples, %d features, %d nodes, %d members, %d epochs",
             dataset.name, n, x_all.shape[1], hierarchy.n_nodes, config.heads, config.epochs)

    reference = _reference_loss(criterion, outputs, model, x_all, y_all, config.batch_size)
    best_auprc, best_state = float("-inf"), None
    start = time.perf_counter()
    first_epoch = 1
    key = checkpoint_key(config.to_dict(), dataset.name, n, x_all.shape[1], hierarchy.n_nodes)
    saved = load_checkpoint(checkpoint, key) if checkpoint is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        (fused if optimizer is None else optimizer).load_state_dict(saved["optimizer"])
        gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        result.history = list(saved["history"])
        result.epochs_completed = result.resumed_epochs = int(saved["epoch"])
        first_epoch = result.epochs_completed + 1
        best_auprc, result.best_epoch, best_state = saved["best_auprc"], saved["best_epoch"], saved["best_state"]
        result.resumed_seconds = float(saved["train_seconds"])
        start -= result.resumed_seconds
        log.info("resumed from %s after epoch %d of %d", checkpoint, result.epochs_completed, config.epochs)
    last_checkpoint = time.perf_counter()
    stop = False
    for epoch in range(first_epoch, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        running = torch.zeros(())
        for step, first in enumerate(range(0, n, config.batch_size)):
            if config.schedule != "none":
                f = schedule_fraction(config.schedule, step, steps_per_epoch, config.schedule_k)
                criterion.set_node_weights(start_pos + (config.omega - start_pos) * f,
                                           start_neg + (config.omega - start_neg) * f)
            idx = order[first:first + config.batch_size]
            loss = criterion(outputs(x_all[idx]), y_all[idx])
            if optimizer is None:
                loss.backward()  # the fused kernels apply Adam inside the backward pass
            else:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            running += loss.detach() * idx.shape[0]
            if should_stop is not None and should_stop():
                stop = True
                break
        if stop:
            result.interrupted = True
            log.info("training stopped during epoch %d, after %d full epochs", epoch, epoch - 1)
            break
        entry: dict[str, Any] = {"epoch": epoch, "loss": float(running) / n,
                                 "seconds": time.perf_counter() - epoch_start}
        reason = _divergence(entry["loss"], reference, model)
        if reason is not None:
            raise TrainingDiverged(f"training diverged in epoch {epoch}: {reason}; lower the learning rate "
                                   f"(lr = {config.lr:g})")
        if config.fit_on == "train":
            probs = predict_members(model, criterion.mcm, dataset.valid.X, config.eval_batch_size).mean(0).numpy()
            entry["valid_auprc"] = auprc_micro(dataset.valid.Y, probs, hierarchy.eval_mask)
        result.history.append(entry)
        result.epochs_completed = epoch
        if progress is not None:
            progress({**entry, "epochs": config.epochs})
        if config.patience is not None:
            if entry["valid_auprc"] > best_auprc:
                best_auprc, result.best_epoch = entry["valid_auprc"], epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - result.best_epoch >= config.patience:
                log.info("early stop after epoch %d: best valid AUPRC %.4f at epoch %d", epoch, best_auprc,
                         result.best_epoch)
                break
        due = time.perf_counter() - last_checkpoint >= checkpoint_seconds
        if checkpoint is not None and epoch < config.epochs and due:
            save_checkpoint(checkpoint, key, {
                "epoch": epoch, "history": result.history, "train_seconds": time.perf_counter() - start,
                "model": model.state_dict(), "optimizer": (fused if optimizer is None else optimizer).state_dict(),
                "generator": gen.get_state(), "torch_rng": torch.get_rng_state(), "best_auprc": best_auprc,
                "best_epoch": result.best_epoch, "best_state": best_state})
            last_checkpoint = time.perf_counter()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.train_seconds = time.perf_counter() - start
    model.eval()
    if frozen is not None:
        from hmlc_core.images.encoders import CNNEnsemble

        trunk, feature_mean, feature_std = frozen
        result.model = CNNEnsemble.with_frozen_trunk(trunk, model, feature_mean, feature_std)
    return result
