"""A scikit-learn estimator around the project's training code: :class:`HMCClassifier`.

``HMCClassifier(hierarchy=...).fit(X, Y)`` trains the same coherent ensemble as
``python -m hmlc_core train`` (:func:`hmlc_core.train.train`, every option of
:class:`hmlc_core.config.TrainConfig` is a parameter), ``predict_proba`` returns the
ensemble's mean coherent probabilities (:func:`hmlc_core.train.predict_members`) and
``predict`` applies the decision rule (:mod:`hmlc_core.decision`; docs/method.md,
*Decision rules*). ``save`` writes a normal run directory (:func:`hmlc_core.runs.save_run`),
which the dashboard opens, and :meth:`HMCClassifier.load` reads one back.

The estimator follows scikit-learn's conventions (``__init__`` stores the parameters,
``fit`` validates them, fitted attributes end with ``_``), so ``clone``,
``get_params``/``set_params``, ``Pipeline`` and ``GridSearchCV`` work. It does not
standardise the features: put a :class:`sklearn.preprocessing.StandardScaler` in front
of it, as the project's data loader does for ARFF files (docs/method.md, *Data and hierarchy*).

This module imports torch; :mod:`hmlc_core` exports :class:`HMCClassifier` lazily, so
``import hmlc_core`` alone does not.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from hmlc_core.config import TrainConfig
from hmlc_core.data import HMCDataset, Split
from hmlc_core.decision import fit_decision_rule, micro_f1
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import is_binary
from hmlc_core.model import MCM
from hmlc_core.runs import load_run, save_run
from hmlc_core.train import TrainResult, predict_members, train

__all__ = ["HMCClassifier", "DATASET_NAME", "CONFIG_PARAMS"]

log = logging.getLogger(__name__)

DATASET_NAME = "estimator"
"""The dataset name a fitted :class:`HMCClassifier` records in its config (its preset is
:data:`hmlc_core.presets.DEFAULT_PRESET`, that of a user's own data)."""

CONFIG_PARAMS: tuple[str, ...] = (
    "epochs", "heads", "ensemble", "hidden", "n_layers", "dropout", "lr", "weight_decay", "batch_size", "profile",
    "weighting", "omega", "counting", "weight_indexing", "focal", "focal_k", "focal_min", "reduction", "loss",
    "label_smoothing", "schedule", "schedule_k", "mixed_lambda", "lpros", "cb_beta", "asl_gamma_pos",
    "asl_gamma_neg", "asl_clip", "logit_adjust", "patience", "threads", "kernel", "eval_batch_size", "decision",
    "decision_threshold", "decision_shrinkage", "shortlist", "shortlist_cycle", "shortlist_proxy_epochs",
    "shortlist_ann", "shortlist_uniform", "shortlist_full_epochs",
)
"""The estimator parameters that are :class:`TrainConfig` fields of the same name. The other fields are
set by the estimator: ``dataset`` (:data:`DATASET_NAME`), ``data_dir`` (None), ``seed`` (from
``random_state``) and ``fit_on`` (``"train"`` with a ``validation_fraction``, else ``"train+valid"``); the image
encoder fields keep their defaults (the estimator takes feature tables, so ``encoder="auto"`` becomes ``"none"``), and
``valid_fraction`` stays 0 (the estimator holds ``validation_fraction`` out itself, drawn with ``random_state``)."""


def _as_hierarchy(hierarchy: Any) -> Hierarchy:
    """The :class:`Hierarchy` of the ``hierarchy`` parameter.

    Raises
    ------
    ValueError
        If it is None, not one of the accepted forms, or not a valid hierarchy (a cycle, a self-loop).
    """
    if isinstance(hierarchy, Hierarchy):
        return hierarchy
    if hierarchy is None:
        raise ValueError("HMCClassifier needs a hierarchy: pass hierarchy= a Hierarchy, a networkx DiGraph "
                         "(parent -> child edges) or a list of (parent, child) pairs")
    if isinstance(hierarchy, nx.DiGraph):
        return Hierarchy(hierarchy.edges, nodes=hierarchy.nodes)
    if isinstance(hierarchy, (str, bytes)) or not isinstance(hierarchy, Iterable):
        raise ValueError("parameter 'hierarchy' must be a Hierarchy, a networkx DiGraph or a list of "
                         f"(parent, child) pairs, got {type(hierarchy).__name__}")
    edges = []
    for i, edge in enumerate(hierarchy):
        if isinstance(edge, (str, bytes)) or not isinstance(edge, Sequence) or len(edge) != 2:
            raise ValueError(f"parameter 'hierarchy': edge {i} must be a (parent, child) pair, got {edge!r}")
        edges.append((str(edge[0]), str(edge[1])))
    return Hierarchy(edges)


def _is_label_sets(Y: Any) -> bool:
    """True when ``Y`` is a sequence of per-sample collections of node ids (not a 2-D numeric matrix)."""
    if isinstance(Y, np.ndarray) or hasattr(Y, "shape") and len(getattr(Y, "shape")) == 2:
        return False
    if not isinstance(Y, Sequence) and not hasattr(Y, "tolist"):
        return False
    rows = Y.tolist() if hasattr(Y, "tolist") else list(Y)
    if not rows or not all(isinstance(r, (list, tuple, set, frozenset)) for r in rows):
        return False
    return all(isinstance(term, str) for r in rows for term in r)


def _label_matrix(hierarchy: Hierarchy, Y: Any, n_samples: int, name: str = "y") -> np.ndarray:
    """``Y`` as a propagated (coherent) uint8 indicator matrix of shape (n_samples, C).

    Raises
    ------
    ValueError
        On a missing ``Y``, a wrong number of rows or columns, values other than 0/1, floats that are
        not whole numbers in a 1-D ``Y``, or a node id that is not in the hierarchy (the sample and the
        id are named).
    """
    if Y is None:
        raise ValueError(f"HMCClassifier requires y to be passed, but the target {name} is None")
    if _is_label_sets(Y):
        rows = Y.tolist() if hasattr(Y, "tolist") else list(Y)
        try:
            matrix = hierarchy.label_matrix(rows)
        except KeyError as exc:
            raise ValueError(f"{name}: {exc.args[0]}") from exc
    else:
        array = np.asarray(Y)
        if array.ndim == 1:
            if array.dtype.kind in "fc":
                if not (np.isfinite(array) & (array == np.round(array.real))).all():
                    raise ValueError(f"{name}: a 1-D {name} holds one node id per sample (a string or an "
                                     "integer id), got floats that are not whole numbers; pass a (n_samples, "
                                     f"{hierarchy.n_nodes}) indicator matrix or lists of node ids")
                array = array.real.astype(np.int64)
            try:
                matrix = hierarchy.label_matrix([[str(v)] for v in array.tolist()])
            except KeyError as exc:
                raise ValueError(f"{name}: {exc.args[0]}") from exc
        elif array.ndim == 2:
            if array.shape[1] != hierarchy.n_nodes:
                raise ValueError(f"{name} has {array.shape[1]} columns but the hierarchy has {hierarchy.n_nodes} "
                                 "nodes: its columns must follow Hierarchy.nodes (classes_)")
            if not is_binary(array):
                raise ValueError(f"{name} must hold only 0 and 1 (a binary indicator matrix over the hierarchy's "
                                 "nodes), or be lists of node ids")
            matrix = hierarchy.propagate(array.astype(np.uint8))
        else:
            raise ValueError(f"{name} must be a 2-D indicator matrix, a 1-D array of node ids or lists of node "
                             f"ids, got an array of {array.ndim} dimensions")
    if matrix.shape[0] != n_samples:
        raise ValueError(f"X has {n_samples} samples but {name} has {matrix.shape[0]}")
    return matrix


class HMCClassifier(ClassifierMixin, BaseEstimator):
    """Coherent hierarchical multi-label classifier: the project's ensemble as a scikit-learn estimator.

    Trains :func:`hmlc_core.train.train` (C-HMCNN's MCM outputs, the weighted uncertainty-focused
    MCLoss or ZLPR/ASL; docs/method.md, *MCM and MCLoss*, *Ensembles*) on the given data. Every
    training option of :class:`hmlc_core.config.TrainConfig` is a parameter with the same name,
    meaning and default (:data:`CONFIG_PARAMS`); they are checked in :meth:`fit`, not here.

    Parameters
    ----------
    hierarchy : Hierarchy, networkx.DiGraph or iterable of (str, str)
        The label hierarchy: a :class:`hmlc_core.Hierarchy`, a DiGraph with parent -> child edges, or
        ``(parent, child)`` pairs. Node ids are strings (others are converted with ``str``). Required
        by :meth:`fit`; None (the default, so the class is default-constructible) makes ``fit`` raise.
    epochs, heads, ensemble, hidden, n_layers, dropout, lr, weight_decay, batch_size, profile
        As :class:`TrainConfig`. ``None`` for ``epochs``, ``hidden``, ``lr`` and ``batch_size`` takes the
        default preset (:data:`hmlc_core.presets.DEFAULT_PRESET`: hidden 500, 100 epochs) under
        ``profile`` ("paper": batch 4; "quick": batch 64, 20x learning rate, 40% of the epochs).
    weighting, omega, counting, weight_indexing, focal, focal_k, focal_min, reduction, loss
        As :class:`TrainConfig` (docs/method.md, *Node weights*, *Focal weighting*).
    label_smoothing, schedule, schedule_k, mixed_lambda, lpros, cb_beta, asl_gamma_pos, asl_gamma_neg,
    asl_clip, logit_adjust, patience, threads, kernel, eval_batch_size
        As :class:`TrainConfig`. ``patience`` (early stopping) needs ``validation_fraction``.
    decision : {"fixed", "global", "per-node"}, default "fixed"
        The decision rule of :meth:`predict` (docs/method.md, *Decision rules*). The tuned rules
        ("global", "per-node") are fitted on held-out data, so they need ``validation_fraction``.
    decision_threshold : float in [0, 1], default 0.5
        ``T`` of the fixed rule.
    decision_shrinkage : float >= 0 or None, default None
        ``m`` of the per-node rule; None: :data:`hmlc_core.decision.DEFAULT_SHRINKAGE`.
    shortlist, shortlist_cycle, shortlist_proxy_epochs, shortlist_ann, shortlist_uniform, shortlist_full_epochs
        As :class:`TrainConfig`: shortlist training for very large hierarchies (:mod:`hmlc_core.shortlists`),
        off by default (``shortlist=None``); it needs ``weighting="none"`` and ``focal="none"``. The fitted
        model is the dense ensemble, so prediction is as for full training.
    validation_fraction : float in (0, 1) or None, default None
        Hold out this fraction of the samples given to :meth:`fit` (at least one sample, drawn with
        ``random_state``) and train on the rest (``fit_on="train"``): the tuned decision rules and early
        stopping use it. None trains on every sample (``fit_on="train+valid"``, C-HMCNN's final protocol).
    random_state : int, numpy.random.RandomState or None, default 0
        Seed of the weights' initialisation, the batch order and the validation split (``seed`` of
        :class:`TrainConfig`). An int is used as it is (0 <= seed < 2**32); None or a RandomState draws
        a seed from it (:func:`sklearn.utils.check_random_state`).

    Attributes
    ----------
    classes_ : numpy.ndarray of object (str), shape (C,)
        The node ids, in the column order of ``Y``, :meth:`predict_proba` and :meth:`predict`
        (``Hierarchy.nodes``: sorted by depth, then id).
    hierarchy_ : Hierarchy
        The hierarchy built from ``hierarchy``.
    n_features_in_ : int
        Number of features seen in :meth:`fit`.
    feature_names_in_ : numpy.ndarray of object (str), shape (n_features_in_,)
        Only when ``X`` had string column names (a pandas DataFrame).
    config_ : TrainConfig
        The resolved configuration that was trained.
    model_ : hmlc_core.model.HMCEnsemble
        The trained ensemble, in eval mode.
    decision_rule_ : DecisionRule
        The fitted decision rule of :meth:`predict`.
    train_result_ : TrainResult
        What :func:`hmlc_core.train.train` returned (history, training frequencies, timing).

    Examples
    --------
    >>> from hmlc_core import HMCClassifier
    >>> clf = HMCClassifier(hierarchy=[("root", "a"), ("root", "b"), ("a", "a1")], epochs=5, hidden=16)
    >>> clf.fit(X, [["a1"], ["b"], ["a"]])  # doctest: +SKIP
    >>> clf.predict_proba(X).shape  # doctest: +SKIP
    (3, 4)
    """

    def __init__(
        self,
        hierarchy: Hierarchy | nx.DiGraph | Iterable[tuple[str, str]] | None = None,
        *,
        epochs: int | None = None,
        heads: int = 2,
        ensemble: str = "heads",
        hidden: int | None = None,
        n_layers: int = 3,
        dropout: float = 0.7,
        lr: float | None = None,
        weight_decay: float = 1e-5,
        batch_size: int | None = None,
        profile: str = "paper",
        weighting: str = "class-wise",
        omega: float = 0.25,
        counting: str = "descendant-sum",
        weight_indexing: str = "released",
        focal: str = "mean",
        focal_k: float = 2.0,
        focal_min: float = 0.25,
        reduction: str = "mean",
        loss: str = "mcloss",
        label_smoothing: float = 0.0,
        schedule: str = "none",
        schedule_k: float = 3.0,
        mixed_lambda: float | None = None,
        lpros: float | None = None,
        cb_beta: float = 0.999,
        asl_gamma_pos: float = 0.0,
        asl_gamma_neg: float = 4.0,
        asl_clip: float = 0.05,
        logit_adjust: float | None = None,
        patience: int | None = None,
        threads: int = 1,
        kernel: str = "auto",
        eval_batch_size: int = 512,
        decision: str = "fixed",
        decision_threshold: float = 0.5,
        decision_shrinkage: float | None = None,
        shortlist: int | None = None,
        shortlist_cycle: int = 5,
        shortlist_proxy_epochs: int = 1,
        shortlist_ann: str = "auto",
        shortlist_uniform: int = 0,
        shortlist_full_epochs: int = 0,
        validation_fraction: float | None = None,
        random_state: int | np.random.RandomState | None = 0,
    ) -> None:
        self.hierarchy = hierarchy
        self.epochs = epochs
        self.heads = heads
        self.ensemble = ensemble
        self.hidden = hidden
        self.n_layers = n_layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.profile = profile
        self.weighting = weighting
        self.omega = omega
        self.counting = counting
        self.weight_indexing = weight_indexing
        self.focal = focal
        self.focal_k = focal_k
        self.focal_min = focal_min
        self.reduction = reduction
        self.loss = loss
        self.label_smoothing = label_smoothing
        self.schedule = schedule
        self.schedule_k = schedule_k
        self.mixed_lambda = mixed_lambda
        self.lpros = lpros
        self.cb_beta = cb_beta
        self.asl_gamma_pos = asl_gamma_pos
        self.asl_gamma_neg = asl_gamma_neg
        self.asl_clip = asl_clip
        self.logit_adjust = logit_adjust
        self.patience = patience
        self.threads = threads
        self.kernel = kernel
        self.eval_batch_size = eval_batch_size
        self.decision = decision
        self.decision_threshold = decision_threshold
        self.decision_shrinkage = decision_shrinkage
        self.shortlist = shortlist
        self.shortlist_cycle = shortlist_cycle
        self.shortlist_proxy_epochs = shortlist_proxy_epochs
        self.shortlist_ann = shortlist_ann
        self.shortlist_uniform = shortlist_uniform
        self.shortlist_full_epochs = shortlist_full_epochs
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        """scikit-learn tags: multi-label over the hierarchy's nodes, ``y`` required, no NaN in ``X``."""
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ fitting
    def _seed(self) -> int:
        """The training seed of ``random_state`` (see the class docstring)."""
        if isinstance(self.random_state, numbers.Integral) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _config(self, seed: int) -> TrainConfig:
        """The :class:`TrainConfig` of the parameters, validated.

        Raises
        ------
        ValueError
            On an invalid option (named), or a tuned decision rule or early stopping without a
            ``validation_fraction``.
        """
        if self.validation_fraction is None:
            if self.decision != "fixed":
                raise ValueError(f"decision={self.decision!r} is tuned on held-out data: set validation_fraction "
                                 "(for example 0.2) to hold out part of the training samples, or use "
                                 "decision='fixed'")
            if self.patience is not None:
                raise ValueError("patience (early stopping) watches held-out data: set validation_fraction "
                                 "(for example 0.2), or patience=None")
        else:
            fraction = self.validation_fraction
            if not isinstance(fraction, numbers.Real) or isinstance(fraction, bool) or not 0 < fraction < 1:
                raise ValueError(f"parameter 'validation_fraction' must be a number in (0, 1) or None, "
                                 f"got {fraction!r}")
        config = TrainConfig(dataset=DATASET_NAME, seed=seed,
                             fit_on="train+valid" if self.validation_fraction is None else "train",
                             **{name: getattr(self, name) for name in CONFIG_PARAMS})
        config.resolved().validate()
        return config

    def fit(self, X: Any, y: Any) -> HMCClassifier:
        """Train the ensemble on ``X`` and ``Y``.

        Parameters
        ----------
        X : array-like of float, shape (n_samples, n_features)
            Features, finite (no NaN or infinity); converted to float32. Standardise them first (a
            ``StandardScaler`` in a ``Pipeline``).
        y : array-like
            The labels ``Y``, one of: a binary indicator matrix of {0, 1} (or bool), shape (n_samples, C), columns in
            ``Hierarchy.nodes`` order (propagated to ancestors, so the most specific labels suffice); a
            sequence of n_samples lists (or tuples, sets) of node ids; or a 1-D array of one node id per
            sample (an integer id ``k``, or a whole float, means node ``str(k)``). Labels are propagated to every ancestor
            (:meth:`Hierarchy.propagate`).

        Returns
        -------
        HMCClassifier
            ``self``, fitted.

        Raises
        ------
        ValueError
            On a missing or invalid hierarchy, an invalid option (named), a tuned decision rule or
            ``patience`` without ``validation_fraction``, non-finite or non-numeric ``X``, a ``Y`` of
            the wrong shape or values, an unknown node id (sample and id named), or too few samples
            for the validation split.
        hmlc_core.train.TrainingDiverged
            When training diverges (lower ``lr``).
        """
        hierarchy = _as_hierarchy(self.hierarchy)
        seed = self._seed()
        config = self._config(seed)
        x = validate_data(self, X, reset=True, dtype=[np.float32, np.float64]).astype(np.float32, copy=False)
        labels = _label_matrix(hierarchy, y, x.shape[0])
        n = x.shape[0]
        valid = None
        rows = np.arange(n)
        if self.validation_fraction is not None:
            n_valid = max(1, int(round(self.validation_fraction * n)))
            if n - n_valid < 1:
                raise ValueError(f"validation_fraction={self.validation_fraction} of {n} samples leaves none to "
                                 "train on")
            order = np.random.default_rng(seed).permutation(n)
            rows, held = np.sort(order[n_valid:]), np.sort(order[:n_valid])
            valid = Split(x[held], labels[held])
        feature_names = ([str(f) for f in self.feature_names_in_] if hasattr(self, "feature_names_in_")
                         else [f"x{i}" for i in range(x.shape[1])])
        dataset = HMCDataset(name=DATASET_NAME, hierarchy=hierarchy, feature_names=feature_names,
                             train=Split(x[rows], labels[rows]), valid=valid, test=Split(x[:0], labels[:0]),
                             source={"train": "HMCClassifier.fit"})
        result = train(config, dataset)
        self.hierarchy_ = hierarchy
        self.classes_ = np.array(hierarchy.nodes, dtype=object)
        self.train_result_ = result
        self.config_ = result.config
        self.model_ = result.model
        self._train_labels = dataset.train.Y
        self._valid = valid
        held_out = (valid.Y, self._mean_probs(valid.X)) if valid is not None else (None, None)
        self.decision_rule_ = fit_decision_rule(
            config.decision, hierarchy, *held_out, threshold=config.decision_threshold,
            shrinkage=config.decision_shrinkage,
            prevalence=result.train_frequency.astype(np.float64) / dataset.train.n_samples)
        return self

    # --------------------------------------------------------------- inference
    def _mean_probs(self, x: np.ndarray) -> np.ndarray:
        """Mean coherent member probabilities of float32 features ``x`` (N, D) -> (N, C) float32.

        An ``mc-dropout`` ensemble's passes are drawn from torch's generator seeded with the run's seed
        (restored afterwards), so repeated calls agree.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config_.seed)
            members = predict_members(self.model_, MCM(self.hierarchy_), x, self.config_.eval_batch_size)
        return members.mean(dim=0).numpy().astype(np.float32)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Coherent probability of every node (the ensemble mean of ``MCM(sigmoid(logits))``).

        Parameters
        ----------
        X : array-like of float, shape (n_samples, n_features_in_)

        Returns
        -------
        numpy.ndarray of float32, shape (n_samples, C)
            Values in [0, 1], columns as :attr:`classes_`; a child never exceeds its parent
            (``Hierarchy.coherence_violations`` is 0).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            If ``X`` has another number of features than in ``fit`` or holds NaN or infinities.
        """
        check_is_fitted(self, "model_")
        x = validate_data(self, X, reset=False, dtype=[np.float32, np.float64]).astype(np.float32, copy=False)
        return self._mean_probs(x)

    def predict(self, X: Any) -> np.ndarray:
        """0/1 predictions under the fitted decision rule (:attr:`decision_rule_`), closed upwards.

        Parameters
        ----------
        X : array-like of float, shape (n_samples, n_features_in_)

        Returns
        -------
        numpy.ndarray of uint8, shape (n_samples, C)
            Columns as :attr:`classes_`; every predicted node's ancestors are predicted
            (:meth:`DecisionRule.predict`). The roots (not evaluated) are always 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            As :meth:`predict_proba`.
        """
        probs = self.predict_proba(X)
        return self.decision_rule_.predict(probs)

    def score(self, X: Any, y: Any, sample_weight: None = None) -> float:
        """Micro F1 of :meth:`predict` over the evaluated nodes (:func:`hmlc_core.decision.micro_f1`).

        Parameters
        ----------
        X : array-like of float, shape (n_samples, n_features_in_)
        y : array-like
            Labels in any form :meth:`fit` accepts.
        sample_weight : None
            Not supported (must be None).

        Returns
        -------
        float in [0, 1]

        Raises
        ------
        ValueError
            As :meth:`fit` for ``y``, :meth:`predict_proba` for ``X``, or a ``sample_weight``.
        """
        if sample_weight is not None:
            raise ValueError("HMCClassifier.score does not support sample_weight")
        pred = self.predict(X)
        labels = _label_matrix(self.hierarchy_, y, pred.shape[0])
        return micro_f1(labels, pred, self.hierarchy_.eval_mask)

    # ------------------------------------------------------------- persistence
    def save(self, path: str | Path, X_test: Any, y_test: Any, *, overwrite: bool = False) -> Path:
        """Write a run directory (:func:`hmlc_core.runs.save_run`) that the dashboard opens.

        A run directory holds test predictions and metrics, so the test data must be given: labelled
        samples not used in :meth:`fit`, in the same feature space (already transformed by the steps
        before this estimator in a ``Pipeline``; only this estimator is saved). The decision rule is
        refitted on the same held-out split as in :meth:`fit`, giving the same thresholds.

        Parameters
        ----------
        path : str or pathlib.Path
            The run directory to create.
        X_test : array-like of float, shape (n_test, n_features_in_)
        y_test : array-like
            Labels in any form :meth:`fit` accepts.
        overwrite : bool, default False
            Replace an existing run at ``path``.

        Returns
        -------
        pathlib.Path
            ``path``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            For an estimator made by :meth:`load` (its training labels are not stored in the run: copy
            the run directory instead), or bad ``X_test``/``y_test`` (as :meth:`fit`).
        FileExistsError
            If ``path`` exists, is not empty and ``overwrite`` is False.
        """
        check_is_fitted(self, "model_")
        if self._train_labels is None:
            raise ValueError("this HMCClassifier was loaded from a run directory, which does not store its "
                             "training labels: it cannot be saved again (copy the run directory instead)")
        x = validate_data(self, X_test, reset=False, dtype=[np.float32, np.float64]).astype(np.float32, copy=False)
        labels = _label_matrix(self.hierarchy_, y_test, x.shape[0], name="y_test")
        n_train = self._train_labels.shape[0]
        feature_names = ([str(f) for f in self.feature_names_in_] if hasattr(self, "feature_names_in_")
                         else [f"x{i}" for i in range(self.n_features_in_)])
        dataset = HMCDataset(name=DATASET_NAME, hierarchy=self.hierarchy_, feature_names=feature_names,
                             train=Split(np.empty((n_train, 0), dtype=np.float32), self._train_labels),
                             valid=self._valid, test=Split(x, labels),
                             source={"train": "HMCClassifier.fit", "test": "HMCClassifier.save"})
        return save_run(path, self.train_result_, dataset, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path) -> HMCClassifier:
        """A fitted estimator from a run directory (one written by :meth:`save`, the CLI or the dashboard).

        The parameters are those of the run's config (``random_state`` its seed; ``validation_fraction``
        the run's held-out share, rounded to 4 digits, or None); the decision rule is the run's default,
        fitted on its saved held-out predictions (:meth:`hmlc_core.runs.Run.decision_rule`).
        ``feature_names_in_`` is not restored, and the estimator cannot be saved again.

        Parameters
        ----------
        path : str or pathlib.Path

        Returns
        -------
        HMCClassifier

        Raises
        ------
        hmlc_core.runs.RunError
            If the run directory or one of its files is missing or malformed, or its decision rule
            cannot be fitted.
        """
        run = load_run(path)
        config = run.config
        n_train, n_valid = int(run.summary.get("n_train") or 0), int(run.summary.get("n_valid") or 0)
        fraction = (round(n_valid / (n_train + n_valid), 4) if config.fit_on == "train" and n_valid > 0
                    else None)
        est = cls(hierarchy=run.hierarchy, validation_fraction=fraction, random_state=config.seed,
                  **{name: getattr(config, name) for name in CONFIG_PARAMS})
        model = run.load_model()
        est.hierarchy_ = run.hierarchy
        est.classes_ = np.array(run.hierarchy.nodes, dtype=object)
        est.n_features_in_ = model.n_features
        est.config_ = config
        est.model_ = model
        est.train_result_ = TrainResult(
            config=config, model=model,
            train_frequency=run.node_metrics["train_frequency"].to_numpy(dtype=np.int64),
            history=run.history.to_dict("records"), epochs_completed=int(run.summary.get("epochs_completed") or 0),
            train_seconds=float(run.summary.get("train_seconds") or 0.0))
        est._train_labels = None
        est._valid = None
        est.decision_rule_ = run.decision_rule()
        return est
