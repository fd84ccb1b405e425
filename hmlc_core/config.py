"""Training configuration and option names, importable without torch.

:class:`TrainConfig` and the tuples of allowed option values live here, apart
from the training loop (:mod:`hmlc_core.train`) and the torch modules that use
them, so the dashboard's read path (loading a run, its config and its
uncertainty names) never imports torch. Every name is re-exported where it
was defined before (``TrainConfig`` from :mod:`hmlc_core.train`, the loss
options from :mod:`hmlc_core.losses`, ``ENSEMBLE_KINDS`` from
:mod:`hmlc_core.model`, the uncertainty names from
:mod:`hmlc_core.uncertainty`, ``ANN_KINDS`` from :mod:`hmlc_core.shortlists.ann`); this module holds the
one definition of each.

Imports only the standard library and :mod:`hmlc_core.presets` (no numpy, no torch).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

from hmlc_core.presets import PROFILES, preset_for

__all__ = [
    "WEIGHTING_MODES",
    "FREQUENCY_COUNTINGS",
    "WEIGHT_INDEXINGS",
    "UNCERTAINTY_MODE_NAMES",
    "UNCERTAINTY_LABELS",
    "FOCAL_MODES",
    "LOSSES",
    "SCHEDULES",
    "ENSEMBLE_KINDS",
    "DECISION_RULES",
    "ENCODERS",
    "ANN_KINDS",
    "SHORTLIST_REQUIRES",
    "NumberRange",
    "NUMBER_RANGES",
    "TrainConfig",
]

WEIGHTING_MODES: tuple[str, ...] = ("none", "class-wise", "binary", "class-balanced")
"""Node-wise imbalance weights ``N / (K f)`` (docs/method.md, *Node weights*): off, ``K = C`` or ``K = 2``; or
``"class-balanced"``, Cui et al. 2019's inverse effective number (docs/method.md, *Tail-aware baselines*)."""

FREQUENCY_COUNTINGS: tuple[str, ...] = ("descendant-sum", "propagated")
"""How node frequencies are counted for the weights (docs/method.md, *Node weights*)."""

WEIGHT_INDEXINGS: tuple[str, ...] = ("released", "intended")
"""How a weight is picked for a (sample, node) pair (docs/method.md, *Node weights*)."""

UNCERTAINTY_MODE_NAMES: tuple[str, ...] = ("mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "pcs")
"""Uncertainty modes, as named in the authors' released code and our CLI (docs/method.md, *Uncertainty modes*).

The functions are :data:`hmlc_core.uncertainty.UNCERTAINTY_MODES` (same order)."""

UNCERTAINTY_LABELS: dict[str, str] = {
    "mean": "bBMA (mean confidence)",
    "predictive": "predictive entropy",
    "aleatoric": "aleatoric",
    "epistemic": "epistemic (JS)",
    "epistemic_kl": "epistemic (KL)",
    "pcs": "GMU (gated margin)",
}
"""Mode name -> the name shown to users (docs/method.md, *Uncertainty modes*)."""

FOCAL_MODES: tuple[str, ...] = ("none", *UNCERTAINTY_MODE_NAMES)
"""Uncertainty mode of the focal factor ``focal_min + u**k`` (docs/method.md, *Focal weighting*); ``"none"``: off."""

LOSSES: tuple[str, ...] = ("mcloss", "zlpr", "asl")
"""Training objective: C-HMCNN's MCLoss, ZLPR or the asymmetric loss (ASL) on the same constrained outputs
(docs/method.md, *MCM and MCLoss*, *ZLPR*, *Tail-aware baselines*)."""

SCHEDULES: tuple[str, ...] = ("none", "lin", "exp", "alt")
"""Weighted-to-unweighted schedule of the node weights within an epoch.

See docs/method.md, *LPROS, schedules and the mixed loss*."""

KERNELS: tuple[str, ...] = ("auto", "numba", "torch")
"""How a training step runs: ``numba``, streaming linear layers whose backward pass applies Adam
(:class:`hmlc_core.fused.FusedAdamEnsemble`); ``torch``, autograd and ``torch.optim.Adam(fused=True)``;
``auto``, numba up to :data:`FUSED_MAX_BATCH` samples per batch and torch above, and always torch for a CNN
encoder (the numba kernels train linear layers only). Both compute the same Adam update; they differ in float32
rounding only."""

FUSED_MAX_BATCH = 32
"""Largest batch for which ``kernel="auto"`` picks the numba step. Measured on the 2-core CI machine
(docs/performance.md): numba is 1.4-2.4x faster at batch 4, 1.1x at 16 and 1.02-1.07x at 32; at 64 the
two are even (0.96-1.0x), so larger batches keep BLAS's matmuls."""

ENSEMBLE_KINDS: tuple[str, ...] = ("heads", "shared", "mc-dropout")
"""``heads``: H independent networks (the paper's tabular ensemble); ``shared``: the first layer
shared, the rest per member (an encoder with H heads); ``mc-dropout``: one network run H times with
independent dropout masks, in training and at test (docs/method.md, *Ensembles*)."""

ENCODERS: tuple[str, ...] = ("auto", "none", "cnn", "frozen")
"""What turns an image into the features the ensemble's layers read (:mod:`hmlc_core.images.encoders`):
``cnn``, a small CNN trunk shared by the members and trained end to end with them; ``frozen``, the same
trunk randomly initialised from the seed (or loaded from ``encoder_checkpoint``) and never trained, its
features computed once and cached, the members trained on them as on a table; ``none``, the members read
the input rows directly (every tabular dataset; on an image dataset, an MLP on the pixels); ``auto``,
``cnn`` for an image dataset and ``none`` for a tabular one (:meth:`TrainConfig.for_dataset`)."""

ANN_KINDS: tuple[str, ...] = ("auto", "hnsw", "exact")
"""Nearest-neighbour index over the label embeddings of shortlist training (``TrainConfig.shortlist_ann``;
:class:`hmlc_core.shortlists.ann.LabelIndex`): ``"hnsw"`` (approximate, faiss ``IndexHNSWFlat``), ``"exact"``
(brute force, ``IndexFlatIP``), ``"auto"`` (exact up to :data:`hmlc_core.shortlists.ann.EXACT_MAX_NODES`
indexed nodes, HNSW above)."""

SHORTLIST_REQUIRES: dict[str, Any] = {
    "loss": "mcloss", "weighting": "none", "focal": "none", "schedule": "none", "mixed_lambda": None,
    "lpros": None, "logit_adjust": None, "ensemble": "heads", "patience": None, "encoder": "none",
    "encoder_checkpoint": None, "kernel": "torch",
}
"""The value each of these :class:`TrainConfig` fields must have with ``shortlist`` set.

Shortlist training (:func:`hmlc_core.shortlists.train_shortlist`) trains plain MCLoss (no node weights, focal
factor, schedule, mixed loss or logit adjustment) on ``heads`` ensembles of linear layers with autograd and
Adam / SparseAdam, without LPROS or early stopping; ``kernel`` ``"auto"`` resolves to ``"torch"``
(:meth:`TrainConfig.resolved`) and ``encoder`` ``"auto"`` to ``"none"`` on a table."""

DECISION_RULES: tuple[str, ...] = ("fixed", "global", "per-node")
"""How probabilities become predictions (:mod:`hmlc_core.decision`; docs/method.md, *Decision rules*): one
fixed threshold, one threshold tuned on held-out data for micro F1, or per-node thresholds tuned for each
node's F1 and shrunk towards the global one. The tuned rules need ``fit_on="train"``."""


@dataclass(frozen=True)
class NumberRange:
    """The allowed values of one numeric :class:`TrainConfig` field.

    Attributes
    ----------
    low, high : float
        Bounds; ``math.inf`` for none. Every value must be finite.
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Whole numbers only (an ``int`` or a numpy integer; not a float).
    optional : bool
        None is allowed (the preset's value, or the option switched off).
    """

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False

    def describe(self) -> str:
        """The range in words, e.g. ``"a finite number in [0, 1)"``."""
        kind = "a whole number" if self.integer else "a finite number"
        low, high = (f"{int(v)}" if self.integer and math.isfinite(v) else f"{v:g}" for v in (self.low, self.high))
        if self.high == math.inf:
            text = f"{kind} {'>' if self.low_open else '>='} {low}"
        else:
            text = f"{kind} in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        return text + (" or None" if self.optional else "")

    def check(self, name: str, value: Any) -> None:
        """Raise ValueError naming config field ``name`` unless ``value`` lies in this range.

        Raises
        ------
        ValueError
            On a non-number (a bool too), NaN, an infinity, a float for a whole-number field, or a value out of
            range.
        """
        if value is None and self.optional:
            return
        kind = numbers.Integral if self.integer else numbers.Real
        ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
        if ok:
            above = value > self.low if self.low_open else value >= self.low
            below = value < self.high if self.high_open else value <= self.high
            ok = above and below
        if not ok:
            raise ValueError(f"config field {name!r} must be {self.describe()}, got {value!r}")


_SEED_MAX = 2**32 - 1
"""Largest seed: numpy's legacy seeding and most tools take 32-bit seeds."""

NUMBER_RANGES: dict[str, NumberRange] = {
    "epochs": NumberRange(1, integer=True, optional=True),
    "heads": NumberRange(1, integer=True),
    "hidden": NumberRange(1, integer=True, optional=True),
    "n_layers": NumberRange(1, integer=True),
    "dropout": NumberRange(0, 1, high_open=True),
    "lr": NumberRange(0, low_open=True, optional=True),
    "weight_decay": NumberRange(0),
    "batch_size": NumberRange(1, integer=True, optional=True),
    "seed": NumberRange(0, _SEED_MAX, integer=True),
    "omega": NumberRange(0),
    "focal_k": NumberRange(0, low_open=True),
    "focal_min": NumberRange(0),
    "label_smoothing": NumberRange(0, 0.5, high_open=True),
    "schedule_k": NumberRange(0, low_open=True),
    "mixed_lambda": NumberRange(0, 1, optional=True),
    "lpros": NumberRange(0, 1, low_open=True, optional=True),
    "cb_beta": NumberRange(0, 1, high_open=True),
    "asl_gamma_pos": NumberRange(0),
    "asl_gamma_neg": NumberRange(0),
    "asl_clip": NumberRange(0, 1, high_open=True),
    "logit_adjust": NumberRange(0, optional=True),
    "patience": NumberRange(1, integer=True, optional=True),
    "threads": NumberRange(1, integer=True),
    "eval_batch_size": NumberRange(1, integer=True),
    "decision_threshold": NumberRange(0, 1),
    "decision_shrinkage": NumberRange(0, optional=True),
    "encoder_width": NumberRange(1, 1024, integer=True),
    "shortlist": NumberRange(1, integer=True, optional=True),
    "shortlist_cycle": NumberRange(1, integer=True),
    "shortlist_proxy_epochs": NumberRange(0, integer=True),
    "shortlist_uniform": NumberRange(0, integer=True),
    "shortlist_full_epochs": NumberRange(0, integer=True),
    "valid_fraction": NumberRange(0, 1, high_open=True),
}
"""Allowed values of every numeric :class:`TrainConfig` field (NaN and infinities are never allowed).

The ranges are those the training code needs (docs/method.md explains each option); an upper bound is set
only where the option is a fraction or probability. How large a job may grow (heads, hidden width) is
bounded separately, by the job memory budget of :mod:`hmlc_core.limits`."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved as ``config.json`` in the run directory).

    ``None`` for ``epochs``, ``hidden``, ``lr`` or ``batch_size`` means the
    dataset's C-HMCNN value (:func:`hmlc_core.presets.preset_for`) under the
    chosen ``profile``; :meth:`resolved` fills them in. Section names in
    italics below are those of docs/method.md, which explains every option.

    Attributes
    ----------
    dataset : str
        Dataset name (``cellcycle_FUN``, ``synthetic``, a folder in the data dir, ...).
    data_dir : str or None
        Folder with the ARFF files; None uses ``HMLC_DATA_DIR``.
    epochs, hidden, lr, batch_size : int, int, float, int or None
    profile : {"paper", "quick"}
        Training budget (:data:`hmlc_core.presets.PROFILES`): "paper" is
        C-HMCNN's batch 4; "quick" uses batch 64, a 20x learning rate and 40%
        of the epochs, for interactive retraining.
    heads : int
        Ensemble members H (default 2, the paper's tabular setting).
    ensemble : {"heads", "shared", "mc-dropout"}
        Independent networks, a shared first layer, or one network sampled
        with dropout (:data:`ENSEMBLE_KINDS`).
    n_layers, dropout, weight_decay : C-HMCNN's 3, 0.7, 1e-5.
    seed : int
    weighting : {"none", "class-wise", "binary", "class-balanced"}
        Node-wise imbalance weights (docs/method.md, *Node weights*), or the
        class-balanced weights of Cui et al. 2019 (*Tail-aware baselines*).
    omega : float
        Minimum weight ``min_weight_const``, default 0.25 (*Node weights*).
    counting : {"descendant-sum", "propagated"}
        Frequency counting for the weights (*Node weights*).
    weight_indexing : {"released", "intended"}
        How a weight is picked for a (sample, node) (*Node weights*).
    focal : {"none", "mean", "predictive", "aleatoric", "epistemic", "epistemic_kl", "pcs"}
        Uncertainty mode of the focal factor (*Uncertainty modes*); "none" switches it off.
    focal_k, focal_min : float
        Focal factor ``focal_min + u**k`` (*Focal weighting*): defaults 2 and 0.25.
    reduction : {"mean", "sum"}
        Loss reduction over members x samples x evaluated nodes (*MCM and MCLoss*).
    loss : {"mcloss", "zlpr", "asl"}
        Training objective: C-HMCNN's MCLoss (*MCM and MCLoss*), ZLPR on the
        same hierarchy-constrained scores (*ZLPR*) or the asymmetric loss on
        MCLoss's constrained outputs (*Tail-aware baselines*); weights and focal factor apply to all.
    label_smoothing : float
        ZLPR only: soft targets ``y (1 - a) + (1 - y) a``, ``a`` in [0, 0.5).
    schedule : {"none", "lin", "exp", "alt"}
        Weighted-to-unweighted schedule of the node weights within every
        epoch (docs/method.md, *LPROS, schedules and the mixed loss*;
        :func:`hmlc_core.losses.schedule_fraction`); needs
        weighting.
    schedule_k : float
        Exponent of the ``exp`` schedule (default 3).
    mixed_lambda : float or None
        Mixed loss ``lambda * weighted + (1 - lambda) * plain`` MCLoss
        (docs/method.md, *LPROS, schedules and the mixed loss*), in [0, 1]; MCLoss only.
    lpros : float or None
        Oversample minority label paths of the train split before training
        (:func:`hmlc_core.resample.lpros`; docs/method.md, *LPROS, schedules and the
        mixed loss*) with this fraction
        ``S`` (the released default is 0.1); None switches it off. Works alone
        or with the weighted loss.
    cb_beta : float
        ``beta`` of the class-balanced weights ``(1 - beta) / (1 - beta**n)``, in
        [0, 1); default 0.999; used with ``weighting="class-balanced"`` only
        (docs/method.md, *Tail-aware baselines*).
    asl_gamma_pos, asl_gamma_neg, asl_clip : float
        Asymmetric loss (``loss="asl"`` only): focusing exponents ``gamma+``,
        ``gamma-`` (>= 0; defaults 0 and 4) and probability margin ``m`` of the
        negatives, in [0, 1) (default 0.05), Ridnik et al. 2021's defaults.
    logit_adjust : float or None
        Logit adjustment (Menon et al. 2021, our binary adaptation): train on
        logits shifted by ``tau * log(pi / (1 - pi))``, ``pi`` each node's training
        prior, and predict with the unshifted ones; the value is ``tau`` (>= 0;
        1 is the paper's choice); None switches it off.
    fit_on : {"train+valid", "train"}
        "train+valid" is C-HMCNN's final protocol; "train" keeps valid aside
        and reports its micro AUPRC after every epoch.
    valid_fraction : float
        For a dataset without a valid split of its own (Diatoms and the ImageCLEF sets, a table): the share of
        its training rows held out as one, in [0, 1), the same rows in every run
        (:func:`hmlc_core.data.hold_out_valid`); with ``fit_on="train"`` the run then tunes its decision rules
        and stops early on them. 0 (the default) holds out nothing; a dataset with its own valid split ignores it.
    patience : int or None
        Early stopping (needs ``fit_on="train"``): stop when the validation
        micro AUPRC has not improved for this many epochs, and keep the
        weights of the best epoch (C-HMCNN's model selection; docs/method.md, *Data and hierarchy*).
    threads : int
        torch intra-op threads (1 is robust on 2 shared cores).
    kernel : {"auto", "numba", "torch"}
        Training-step implementation (:data:`KERNELS`): the fused numba
        kernels (1.4-2.4x faster at batch 4, docs/performance.md), plain
        autograd with torch's Adam, or ``auto`` (numba up to
        :data:`FUSED_MAX_BATCH` samples per batch); :meth:`resolved` turns
        ``auto`` into the one used. Same update up to float32 rounding.
    eval_batch_size : int
        Batch size for inference.
    decision : {"fixed", "global", "per-node"}
        The run's default decision rule (docs/method.md, *Decision rules*); the tuned rules are fitted
        on the valid split, so they need ``fit_on="train"``.
    decision_threshold : float
        ``T`` of the ``fixed`` rule, in [0, 1] (default 0.5).
    decision_shrinkage : float or None
        ``m`` of the ``per-node`` rule, >= 0; None means :data:`hmlc_core.decision.DEFAULT_SHRINKAGE`.
    encoder : {"auto", "none", "cnn", "frozen"}
        Image encoder (:data:`ENCODERS`); a CNN needs ``kernel`` "torch" (``auto`` picks it), the frozen
        encoder's members train on cached features with either kernel. ``auto`` is resolved by
        :meth:`for_dataset` in :func:`hmlc_core.train.train` and the saved run records the encoder used;
        a run saved before encoders existed reads back as ``auto`` (a tabular run: ``none``).
    encoder_checkpoint : str or None
        A local state-dict file (``torch.save(trunk.state_dict())``, or a CNN run's ``model.pt``) that
        initialises the trunk: the frozen encoder's weights, or the trained CNN's starting point. None:
        random initialisation from ``seed``. Loaded with ``torch.load(..., weights_only=True)``
        (:func:`hmlc_core.images.encoders.load_encoder_checkpoint`).
    encoder_width : int
        Channels of the trunk's first convolution, in [1, 1024]; the trunk's feature width is four times
        this (:class:`hmlc_core.images.encoders.SmallCNN`). Default 16 (64 features).
    shortlist : int or None
        ``K`` of shortlist training (:mod:`hmlc_core.shortlists`; LightDXML, Mishra et al., IJCNN 2023): MCLoss
        on each sample's positives and its ``K`` nearest negative nodes by label embedding, instead of on every
        node, for very large hierarchies. None (the default): full training. Plain MCLoss only: the fields of
        :data:`SHORTLIST_REQUIRES` must hold their listed values. ``epochs`` counts every epoch, the
        proxy and full epochs included; the saved model is the equal dense ensemble, scored on every node.
    shortlist_cycle : int
        Epochs between rebuilds of the label embeddings, ANN index and shortlists, >= 1 (default 5).
    shortlist_proxy_epochs : int
        Epochs of the surrogate task (MCLoss on the shallow nodes) before the first shortlist, >= 0 and at
        most ``epochs`` (default 1).
    shortlist_ann : {"auto", "hnsw", "exact"}
        Nearest-neighbour index over the label embeddings (:data:`ANN_KINDS`). With ``threads`` 1 (or
        ``"exact"``) a seed fixes the run.
    shortlist_uniform : int
        Negatives per sample drawn uniformly from the evaluated nodes at every step, beside the ``K`` hard ones,
        weighted so that the loss estimates MCLoss over every node (:mod:`hmlc_core.shortlists.scored`), >= 0
        (default 0: hard negatives only).
    shortlist_full_epochs : int
        Last epochs of shortlist training spent on the full MCLoss over every node (each costs an epoch of
        full training; they put the nodes' scores on one scale, docs/method.md *Shortlist training*), >= 0;
        its sum with ``shortlist_proxy_epochs`` is at most ``epochs`` (default 0).
    """

    dataset: str
    data_dir: str | None = None
    epochs: int | None = None
    heads: int = 2
    ensemble: str = "heads"
    hidden: int | None = None
    n_layers: int = 3
    dropout: float = 0.7
    lr: float | None = None
    weight_decay: float = 1e-5
    batch_size: int | None = None
    profile: str = "paper"
    seed: int = 0
    weighting: str = "class-wise"
    omega: float = 0.25
    counting: str = "descendant-sum"
    weight_indexing: str = "released"
    focal: str = "mean"
    focal_k: float = 2.0
    focal_min: float = 0.25
    reduction: str = "mean"
    loss: str = "mcloss"
    label_smoothing: float = 0.0
    schedule: str = "none"
    schedule_k: float = 3.0
    mixed_lambda: float | None = None
    lpros: float | None = None
    cb_beta: float = 0.999
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 4.0
    asl_clip: float = 0.05
    logit_adjust: float | None = None
    fit_on: str = "train+valid"
    valid_fraction: float = 0.0
    patience: int | None = None
    threads: int = 1
    kernel: str = "auto"
    eval_batch_size: int = 512
    decision: str = "fixed"
    decision_threshold: float = 0.5
    decision_shrinkage: float | None = None
    encoder: str = "auto"
    encoder_checkpoint: str | None = None
    encoder_width: int = 16
    shortlist: int | None = None
    shortlist_cycle: int = 5
    shortlist_proxy_epochs: int = 1
    shortlist_ann: str = "auto"
    shortlist_uniform: int = 0
    shortlist_full_epochs: int = 0

    def for_dataset(self, images: bool, name: str | None = None) -> TrainConfig:
        """A copy with ``encoder="auto"`` resolved for a dataset: ``cnn`` for images, ``none`` for a table.

        With ``encoder="cnn"`` and ``kernel="auto"`` the kernel becomes ``torch`` (the numba kernels
        train the members' linear layers only, not a CNN).

        Parameters
        ----------
        images : bool
            Whether the dataset holds images (:attr:`hmlc_core.data.HMCDataset.images` is set).
        name : str, optional
            The dataset's name, for the error message (default ``self.dataset``).

        Raises
        ------
        ValueError
            On an unknown encoder, or ``cnn`` / ``frozen`` (or an ``encoder_checkpoint``) for a tabular
            dataset, naming the field.
        """
        if self.encoder not in ENCODERS:
            raise ValueError(f"config field 'encoder' must be one of {list(ENCODERS)}, got {self.encoder!r}")
        encoder = self.encoder
        if encoder == "auto":
            encoder = "cnn" if images else "none"
        if not images and encoder != "none":
            raise ValueError(f"config field 'encoder' = {encoder!r} needs an image dataset; dataset "
                             f"{name or self.dataset!r} is a table (use encoder 'none' or 'auto')")
        if not images and self.encoder_checkpoint is not None:
            raise ValueError(f"config field 'encoder_checkpoint' needs an image dataset; dataset "
                             f"{name or self.dataset!r} is a table")
        kernel = "torch" if encoder == "cnn" and self.kernel == "auto" else self.kernel
        return dataclasses.replace(self, encoder=encoder, kernel=kernel)

    def resolved(self) -> TrainConfig:
        """A copy with ``epochs``, ``hidden``, ``lr`` and ``batch_size`` filled in from preset and profile,
        and ``kernel="auto"`` replaced by the kernel for that batch size (``torch`` with ``encoder="cnn"`` or
        ``shortlist`` set; ``encoder="auto"`` is left for :meth:`for_dataset`).

        Raises
        ------
        ValueError
            On an unknown profile, or a ``batch_size`` that is not a whole number >= 1 (it picks the kernel).
        """
        if self.profile not in PROFILES:
            raise ValueError(f"config field 'profile' must be one of {list(PROFILES)}, got {self.profile!r}")
        preset, profile = preset_for(self.dataset), PROFILES[self.profile]
        batch_size = profile.batch(preset) if self.batch_size is None else self.batch_size
        NUMBER_RANGES["batch_size"].check("batch_size", self.batch_size)
        kernel = self.kernel
        if kernel == "auto" and (self.encoder == "cnn" or self.shortlist is not None):
            kernel = "torch"
        elif kernel == "auto":
            kernel = "numba" if int(batch_size) <= FUSED_MAX_BATCH else "torch"
        return dataclasses.replace(
            self,
            epochs=profile.epochs(preset) if self.epochs is None else self.epochs,
            hidden=preset.hidden if self.hidden is None else self.hidden,
            lr=profile.lr(preset) if self.lr is None else self.lr,
            batch_size=batch_size,
            kernel=kernel,
        )

    def validate(self) -> None:
        """Check every field.

        Raises
        ------
        ValueError
            Naming the first invalid field and its allowed values.
        """
        choices = {"weighting": WEIGHTING_MODES, "counting": FREQUENCY_COUNTINGS,
                   "weight_indexing": WEIGHT_INDEXINGS, "focal": FOCAL_MODES,
                   "reduction": ("mean", "sum"), "fit_on": ("train+valid", "train"), "loss": LOSSES,
                   "schedule": SCHEDULES, "ensemble": ENSEMBLE_KINDS, "kernel": KERNELS,
                   "decision": DECISION_RULES, "encoder": ENCODERS, "shortlist_ann": ANN_KINDS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config field {name!r} must be one of {list(allowed)}, got {getattr(self, name)!r}")
        self.check_numbers()
        if self.ensemble == "mc-dropout" and (self.dropout == 0 or self.n_layers < 2):
            raise ValueError("config field 'ensemble' = 'mc-dropout' needs dropout > 0 and n_layers >= 2")
        if self.label_smoothing and self.loss != "zlpr":
            raise ValueError("config field 'label_smoothing' must be 0 unless loss='zlpr'")
        if self.schedule != "none" and self.weighting == "none":
            raise ValueError("config field 'schedule' needs weighting other than 'none'")
        if self.mixed_lambda is not None and self.loss != "mcloss":
            raise ValueError("config field 'mixed_lambda' needs loss='mcloss'")
        if self.patience is not None and self.fit_on != "train":
            raise ValueError("config field 'patience' needs fit_on='train' (a validation split)")
        if self.decision != "fixed" and self.fit_on != "train":
            raise ValueError(f"the decision rule {self.decision!r} is tuned on the valid split, which "
                             "fit_on='train+valid' trains on: use fit_on='train' (--fit-on train) or decision='fixed'")
        if self.encoder == "cnn" and self.kernel == "numba":
            raise ValueError("config field 'kernel' = 'numba' cannot train a CNN (its kernels train the members' "
                             "linear layers only): use kernel 'torch' or 'auto' with encoder 'cnn', or encoder "
                             "'frozen'")
        if self.encoder_checkpoint is not None and self.encoder == "none":
            raise ValueError("config field 'encoder_checkpoint' needs encoder 'frozen', 'cnn' or 'auto', not 'none'")
        if self.encoder_checkpoint is not None and (not isinstance(self.encoder_checkpoint, str)
                                                    or not self.encoder_checkpoint.strip()):
            raise ValueError(f"config field 'encoder_checkpoint' must be a file path, got {self.encoder_checkpoint!r}")
        if self.focal in ("epistemic", "epistemic_kl") and self.heads < 2:
            raise ValueError(f"focal mode {self.focal!r} measures disagreement between members: it needs heads >= 2")
        if self.shortlist is not None:
            self.check_shortlist()

    def check_shortlist(self) -> None:
        """With ``shortlist`` set, refuse what shortlist training does not support (:data:`SHORTLIST_REQUIRES`).

        ``kernel`` and ``encoder`` ``"auto"`` pass (they resolve to ``"torch"`` and, on a table, ``"none"``).

        Raises
        ------
        ValueError
            Naming every field whose value shortlist training cannot train and the value it needs, or if
            ``shortlist_proxy_epochs`` plus ``shortlist_full_epochs`` exceeds ``epochs`` or ``n_layers`` is
            below 2.
        """
        wrong = [f"{name!r} = {value!r} (needs {needed!r})" for name, needed in SHORTLIST_REQUIRES.items()
                 if (value := getattr(self, name)) != needed
                 and not (name in ("kernel", "encoder") and value == "auto")]
        if wrong:
            raise ValueError(f"config field 'shortlist' = {self.shortlist!r}: shortlist training trains plain MCLoss "
                             f"on linear layers only; change config field(s) {', '.join(wrong)}, or leave "
                             "'shortlist' unset for full training")
        if self.n_layers < 2:
            raise ValueError(f"config field 'n_layers' = {self.n_layers!r}: shortlist training needs n_layers >= 2 "
                             "(a trunk and a classifier layer)")
        if self.epochs is not None and self.shortlist_proxy_epochs > self.epochs:
            raise ValueError(f"config field 'shortlist_proxy_epochs' = {self.shortlist_proxy_epochs!r} exceeds "
                             f"'epochs' = {self.epochs!r} (epochs counts the proxy epochs too)")
        if self.epochs is not None and self.shortlist_proxy_epochs + self.shortlist_full_epochs > self.epochs:
            raise ValueError(f"config field 'shortlist_full_epochs' = {self.shortlist_full_epochs!r} plus "
                             f"'shortlist_proxy_epochs' = {self.shortlist_proxy_epochs!r} exceeds 'epochs' = "
                             f"{self.epochs!r} (epochs counts the proxy and full epochs too)")

    def check_numbers(self) -> None:
        """Check every numeric field against :data:`NUMBER_RANGES`, alone (no cross-field rules).

        Raises
        ------
        ValueError
            Naming the first field whose value is not a number, is NaN or infinite, is a float where a whole
            number is needed, or lies outside its range.
        """
        for name, allowed in NUMBER_RANGES.items():
            allowed.check(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config fields: {unknown}")
        return cls(**data)
