"""Exports of a run's test predictions: a long-format CSV and a CAFA submission file.

:func:`predictions_csv`
    One row per (test sample, node): the ensemble-mean probability and the decision (0/1) of a
    :class:`hmlc_core.decision.DecisionRule`, for spreadsheets and pandas.
:func:`cafa_submission`
    The scores in the prediction format of the CAFA 2 and CAFA 3 challenges (Critical Assessment of
    Functional Annotation; Jiang et al., Genome Biology 17:184, 2016; Zhou et al., Genome Biology 20:244,
    2019) as checked by the organisers' format checker (``cafa_go_format_checker.py`` of
    github.com/idoerg/cafa-format-check): an ``AUTHOR`` line, a ``MODEL`` line (one digit), a ``KEYWORDS``
    line (words of :data:`CAFA_KEYWORDS`), one ``target<TAB>term<TAB>score`` line per prediction with the
    score written with two decimals in (0.00, 1.00], and ``END``. The CAFA evaluator (``cafaeval``) reads
    it as it is.

Which rows
----------
Both exports hold the *evaluated* nodes only (``Hierarchy.eval_mask``): the roots that evaluation skips
(``root`` and, for GO, the three aspect roots) are always predicted and carry no information.

Samples and targets
-------------------
A run keeps its test predictions in the order of the test split (``predictions.npz``), not the samples'
own ids, so samples are named by their 0-based row in the test split: ``sample`` in the CSV, and CAFA
target ``T`` followed by the row number zero-padded to at least 5 digits (``T00000``, ``T00001``, ...;
CAFA target ids are ``T`` and 5-20 digits).

Terms
-----
CLUS writes GO ids without the colon (``GO0005575``); the CAFA file writes them as GO does
(``GO:0005575``, :func:`cafa_term`). Other node ids (FunCat ``01/01``, your own) are written as they are,
which ``cafaeval`` accepts with an ontology file of the same ids; the organisers' checker accepted GO
ids only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from hmlc_core.decision import DecisionRule
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.runs import Run
from hmlc_core.safe_text import csv_safe_frame

__all__ = ["DEFAULT_MIN_PROBABILITY", "CAFA_KEYWORDS", "predictions_frame", "predictions_csv", "cafa_term",
           "cafa_target", "format_cafa", "cafa_submission"]

DEFAULT_MIN_PROBABILITY = 0.01
"""Rows of :func:`predictions_csv` below this probability are left out unless the rule predicts the node.

0.01 is the lowest threshold of CAFA's Fmax grid; without a floor a GO run's test set (1,300 samples x
4,000 nodes) would be over 5 million rows. Pass 0 to keep every (sample, evaluated node) pair."""

CAFA_KEYWORDS = (
    "sequence alignment", "sequence-profile alignment", "profile-profile alignment", "phylogeny",
    "sequence properties", "physicochemical properties", "predicted properties", "protein interactions",
    "gene expression", "mass spectrometry", "genetic interactions", "protein structure", "literature",
    "genomic context", "synteny", "structure alignment", "comparative model", "predicted protein structure",
    "de novo prediction", "machine learning", "genome environment", "operon", "ortholog", "paralog", "homolog",
    "hidden Markov model", "clinical data", "genetic data", "natural language processing",
    "other functional information",
)
"""The words a CAFA 3 ``KEYWORDS`` line may hold (the organisers' format checker)."""

_CLUS_GO = re.compile(r"GO(\d{7})")


def _check_probs(probs: np.ndarray, hierarchy: Hierarchy) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"probs must have shape (N, {hierarchy.n_nodes}), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError("probs must be finite probabilities in [0, 1]")
    return p


def predictions_frame(hierarchy: Hierarchy, probs: np.ndarray, rule: DecisionRule,
                      min_probability: float = DEFAULT_MIN_PROBABILITY) -> pd.DataFrame:
    """The long-format table of :func:`predictions_csv`, before its text cells are neutralised.

    Parameters
    ----------
    hierarchy : Hierarchy
        The columns of ``probs`` (C nodes).
    probs : array-like of float in [0, 1], shape (N, C)
        Test probabilities (``Run.predictions()["mean_probs"]``).
    rule : DecisionRule
        Its :meth:`~hmlc_core.decision.DecisionRule.predict` gives ``decision``.
    min_probability : float in [0, 1], default :data:`DEFAULT_MIN_PROBABILITY`
        Rows with a probability below it are left out, unless ``decision`` is 1.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` (int64, the test row), ``node`` (str), ``probability`` (float64),
        ``decision`` (uint8, 0 or 1); evaluated nodes only; by sample, then in the hierarchy's column order.

    Raises
    ------
    ValueError
        On a shape mismatch, probabilities outside [0, 1], a ``min_probability`` outside [0, 1] or a
        rule of another hierarchy.
    """
    p = _check_probs(probs, hierarchy)
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must be in [0, 1], got {min_probability}")
    if rule.hierarchy.nodes != hierarchy.nodes:
        raise ValueError("the decision rule was fitted on another hierarchy")
    decision = rule.predict(p)
    keep = ((p >= min_probability) | (decision == 1)) & hierarchy.eval_mask[None, :]
    rows, cols = np.nonzero(keep)
    return pd.DataFrame({
        "sample": rows.astype(np.int64),
        "node": np.asarray(hierarchy.nodes, dtype=object)[cols],
        "probability": p[rows, cols],
        "decision": decision[rows, cols].astype(np.uint8),
    })


def predictions_csv(run: Run, rule: DecisionRule, min_probability: float = DEFAULT_MIN_PROBABILITY) -> bytes:
    """A run's test predictions as UTF-8 CSV: ``sample,node,probability,decision``, one row per pair.

    Node ids that a spreadsheet would read as a formula get a leading ``'``
    (:func:`hmlc_core.safe_text.csv_safe_frame`). Which rows: :func:`predictions_frame`.

    Parameters
    ----------
    run : Run
    rule : DecisionRule
        For example ``run.decision_rule("per-node")``.
    min_probability : float in [0, 1], default :data:`DEFAULT_MIN_PROBABILITY`

    Returns
    -------
    bytes
        With a header line; probabilities with 6 decimals.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read.
    ValueError
        As :func:`predictions_frame`.
    """
    table = predictions_frame(run.hierarchy, run.predictions()["mean_probs"], rule, min_probability)
    return csv_safe_frame(table).to_csv(index=False, float_format="%.6f").encode("utf-8")


def cafa_term(node: str) -> str:
    """A node id as a CAFA term: CLUS's ``GO0005575`` becomes ``GO:0005575``; other ids are kept.

    Raises
    ------
    ValueError
        If the id is empty or holds whitespace (the format splits fields on it).
    """
    if not node or any(c.isspace() for c in node):
        raise ValueError(f"node id {node!r} cannot be a CAFA term: it is empty or holds whitespace")
    match = _CLUS_GO.fullmatch(node)
    return f"GO:{match.group(1)}" if match else node


def cafa_target(row: int, n_samples: int) -> str:
    """The CAFA target id of test row ``row`` of ``n_samples``: ``T`` and the row, zero-padded (>= 5 digits)."""
    return f"T{row:0{max(5, len(str(max(n_samples - 1, 0))))}d}"


def format_cafa(hierarchy: Hierarchy, probs: np.ndarray, author: str = "hmlc-lab", model: int = 1,
                keywords: Sequence[str] = ("machine learning",)) -> str:
    """Probabilities as a CAFA 2/3 prediction file (module docstring).

    Parameters
    ----------
    hierarchy : Hierarchy
        The columns of ``probs``; its evaluated nodes are the terms (``eval_mask``).
    probs : array-like of float in [0, 1], shape (N, C)
    author : str
        The team name: one word without whitespace.
    model : int in 1..3
        CAFA took up to three models per team.
    keywords : sequence of str
        Non-empty, each from :data:`CAFA_KEYWORDS`.

    Returns
    -------
    str
        ``AUTHOR``, ``MODEL``, ``KEYWORDS`` lines, then ``target<TAB>term<TAB>score`` for every
        (sample, evaluated node) whose score rounds to at least 0.01, by target and then by descending
        score (ties in column order), then ``END``; ``\\n`` line ends.

    Raises
    ------
    ValueError
        On a bad author, model or keyword, a node id with whitespace, a shape mismatch or probabilities
        outside [0, 1].
    """
    if not author or any(c.isspace() for c in author):
        raise ValueError(f"author {author!r} must be one word without whitespace")
    if isinstance(model, bool) or not isinstance(model, int) or not 1 <= model <= 3:
        raise ValueError(f"model must be 1, 2 or 3, got {model!r}")
    unknown = [k for k in keywords if k not in CAFA_KEYWORDS]
    if not keywords or unknown:
        raise ValueError(f"keywords must be a non-empty selection of CAFA_KEYWORDS; not allowed: {unknown}")
    p = _check_probs(probs, hierarchy)
    cols = np.flatnonzero(hierarchy.eval_mask)
    terms = [cafa_term(hierarchy.nodes[j]) for j in cols]
    cents = np.rint(p[:, cols] * 100).astype(np.int64)  # two decimals; 0.00 is not a CAFA score
    lines = [f"AUTHOR {author}", f"MODEL {model}", f"KEYWORDS {', '.join(keywords)}."]
    for row in range(p.shape[0]):
        target = cafa_target(row, p.shape[0])
        order = np.argsort(-cents[row], kind="stable")
        lines += [f"{target}\t{terms[k]}\t{cents[row, k] / 100:.2f}" for k in order if cents[row, k] > 0]
    lines.append("END")
    return "\n".join(lines) + "\n"


def cafa_submission(run: Run, author: str = "hmlc-lab", model: int = 1,
                    keywords: Sequence[str] = ("machine learning",)) -> str:
    """A run's test ensemble-mean probabilities as a CAFA 2/3 prediction file (:func:`format_cafa`).

    No decision rule: CAFA thresholds the scores itself (Fmax over thresholds 0.01, ..., 0.99). Targets
    are the test rows (``T00000`` = row 0), not the samples' own ids, which runs do not keep.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read.
    ValueError
        As :func:`format_cafa`.
    """
    return format_cafa(run.hierarchy, run.predictions()["mean_probs"], author, model, keywords)
