"""Run diagnosis for the dashboard's Overview and Missed-nodes pages: tables, scores and figures.

Everything here is pure and Streamlit-free (the pages only lay out widgets and
call these functions through thin ``st.cache_data`` wrappers in
``app_pages/common.py``), so it is unit-tested without Streamlit.

Missed nodes
------------
A node is *missed* when it is evaluated and its test recall (threshold 0.5 on
the ensemble-mean probabilities; docs/method.md, *Metrics*) is below a threshold, or is 0.
Nodes without a positive test sample have recall 0 by convention but nothing to
miss, so :func:`missed_nodes` keeps only nodes with test support >= 1 unless
told otherwise, and the recall charts draw only those nodes.

- :func:`filter_bounds`, :func:`missed_nodes`, :func:`table_csv`: the filtered
  table (with each node's first-parent path and mean uncertainty) and its CSV.
- :func:`recall_frequency_figure`: recall vs training frequency (log x),
  coloured by uncertainty; :func:`recall_depth_figure`: recall vs depth
  (boxes plus jittered points), coloured by uncertainty. Both outline the
  nodes of the table.
- :func:`score_predictions`, :func:`comparison_table`: hierarchical
  (Kiritchenko et al. 2005) vs flat micro and macro precision/recall/F1;
  :func:`deepest_level_counts`, :func:`deepest_level_stats`,
  :func:`deepest_level_figure`: the deepest correctly predicted level of each
  test example against its true depth.

Overview
--------
:func:`run_facts`, :func:`score_metrics`, :func:`config_headline`,
:func:`config_table` and :func:`training_curve_figure`.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hmlc_core.config import UNCERTAINTY_LABELS
from hmlc_core.views.explore import lineage, uncertainty_label
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import (
    confusion_counts,
    deepest_correct_level,
    hierarchical_precision_recall_f1,
    macro_precision_recall_f1,
)
from hmlc_core.runs import Run
from hmlc_core.safe_text import csv_safe_frame

__all__ = [
    "PREDICTION_THRESHOLD",
    "MISSED_COLUMNS",
    "PATH_SEPARATOR",
    "PredictionScores",
    "filter_bounds",
    "missed_nodes",
    "table_csv",
    "FAILURE_KINDS",
    "GOOD_RANKING_LIFT",
    "GOOD_RANKING_AP",
    "miss_kinds",
    "miss_kind_counts",
    "recall_frequency_figure",
    "recall_depth_figure",
    "score_predictions",
    "comparison_table",
    "deepest_level_counts",
    "deepest_level_stats",
    "deepest_level_figure",
    "run_facts",
    "score_metrics",
    "config_headline",
    "config_table",
    "training_curve_figure",
]

PREDICTION_THRESHOLD = 0.5
"""Probability above which a node is predicted (``prob > 0.5``; docs/method.md, *Metrics*)."""

MISSED_COLUMNS = ["path", "depth", "n_parents", "train_frequency", "support", "tp", "fn", "recall", "precision",
                  "f1", "average_precision", "uncertainty"]
"""Columns of :func:`missed_nodes`, in order (the index is the node id)."""

PATH_SEPARATOR = " > "
"""Separator of the first-parent path in the ``path`` column."""

_UNCERTAINTY_SCALE = "YlOrRd"  # the explorer's uncertainty scale: red = uncertain
_HIGHLIGHT_LINE = "#1f2933"
_JITTER = 0.28
_Range = tuple[float | None, float | None] | None


# ---------------------------------------------------------------- missed nodes
def _evaluated(run: Run) -> pd.DataFrame:
    nm = run.node_metrics
    return nm[nm["evaluated"].to_numpy(dtype=bool)]


def filter_bounds(run: Run) -> dict[str, tuple[int, int]]:
    """Smallest and largest depth, training frequency and test support over the evaluated nodes.

    The limits of the Missed-nodes page's range sliders.

    Returns
    -------
    dict
        ``"depth"``, ``"train_frequency"``, ``"support"`` -> ``(min, max)``
        ints; ``(0, 0)`` when no node is evaluated. A frequency of -1 (unknown)
        counts as 0.
    """
    ev = _evaluated(run)
    out: dict[str, tuple[int, int]] = {}
    for column in ("depth", "train_frequency", "support"):
        values = np.maximum(ev[column].to_numpy(dtype=np.int64), 0)
        out[column] = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    return out


def _in_range(values: np.ndarray, bounds: _Range, name: str) -> np.ndarray:
    """Mask of ``lo <= values <= hi``; a None bound is open."""
    if bounds is None:
        return np.ones(len(values), dtype=bool)
    lo, hi = bounds
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"{name} range ({lo}, {hi}): the lower bound is above the upper bound")
    keep = np.ones(len(values), dtype=bool)
    if lo is not None:
        keep &= values >= lo
    if hi is not None:
        keep &= values <= hi
    return keep


def missed_nodes(
    run: Run,
    threshold: float = 0.5,
    zero_only: bool = False,
    depth: _Range = None,
    train_frequency: _Range = None,
    support: _Range = (1, None),
) -> pd.DataFrame:
    """The evaluated nodes whose test recall is below ``threshold`` (or 0), filtered by depth, frequency and support.

    Parameters
    ----------
    run : Run
    threshold : float in [0, 1], default 0.5
        Keep nodes with ``recall < threshold`` (recall of ``run.node_metrics``:
        threshold 0.5 on the ensemble-mean probabilities; docs/method.md, *Metrics*).
    zero_only : bool, default False
        Keep only nodes with ``recall == 0`` instead (``threshold`` is ignored).
    depth, train_frequency, support : (lo, hi) or None
        Inclusive ranges of :attr:`Hierarchy.depth` (shortest-path depth from a
        root), training frequency (propagated positives in the train split)
        and test support (propagated positives in the test split). None, or a
        None bound, leaves that side open. ``support`` defaults to ``(1,
        None)``: nodes without a test positive have recall 0 by convention
        but nothing to miss; pass ``(0, None)`` or None to list them too.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id, columns :data:`MISSED_COLUMNS`: ``path`` (the
        first-parent path from a root, :func:`hmlc_core.views.explore.lineage`,
        joined by :data:`PATH_SEPARATOR`), depth, n_parents,
        train_frequency, support, tp, fn, recall, precision, f1,
        average_precision (NaN without test positives) and uncertainty (the
        node's mean test uncertainty in the run's display mode). Sorted by
        recall (lowest first), then support (highest first), then the
        hierarchy's column order.

    Raises
    ------
    ValueError
        If ``threshold`` is outside [0, 1] or a range has ``lo > hi``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"recall threshold must be in [0, 1], got {threshold}")
    ev = _evaluated(run)
    recall = ev["recall"].to_numpy(dtype=np.float64)
    keep = recall == 0 if zero_only else recall < threshold
    keep &= _in_range(ev["depth"].to_numpy(), depth, "depth")
    keep &= _in_range(ev["train_frequency"].to_numpy(), train_frequency, "training frequency")
    keep &= _in_range(ev["support"].to_numpy(), support, "test support")
    table = ev.loc[keep, [c for c in MISSED_COLUMNS if c != "path"]].copy()
    order = {n: i for i, n in enumerate(run.hierarchy.nodes)}
    table["_order"] = [order[n] for n in table.index]
    table = table.sort_values(["recall", "support", "_order"], ascending=[True, False, True]).drop(columns="_order")
    table.insert(0, "path", [PATH_SEPARATOR.join(lineage(run.hierarchy, n)) for n in table.index])
    table.index.name = "node"
    return table


def table_csv(table: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV bytes for ``st.download_button``, the index (node ids) as the first column ``node``.

    Text cells that a spreadsheet would read as a formula (a node named ``=HYPERLINK(...)``) get a leading
    ``'`` (:func:`hmlc_core.safe_text.csv_safe_frame`); numbers are written as they are.
    """
    return csv_safe_frame(table).to_csv(index=True, index_label="node").encode("utf-8")


FAILURE_KINDS = ("threshold failure", "ranking failure", "no training data")
"""The kinds of :func:`miss_kinds`, in display order."""

GOOD_RANKING_LIFT = 2.0
"""A node ranks well when its test AP is at least this many times its base rate (and >= :data:`GOOD_RANKING_AP`)."""

GOOD_RANKING_AP = 0.2
"""A node ranks well when its test AP is at least this (and >= :data:`GOOD_RANKING_LIFT` x its base rate)."""


def miss_kinds(node_metrics: pd.DataFrame, n_test: int, recall_by_rule: Mapping[str, np.ndarray] | None = None,
               lift: float = GOOD_RANKING_LIFT, min_ap: float = GOOD_RANKING_AP) -> pd.DataFrame:
    """Why each missed node is missed: a threshold failure, a ranking failure, or no training data.

    A node is *missed* here when it is evaluated, has at least one positive test sample and its
    recall is 0 under the rule of ``node_metrics``. Its kind, checked in this order:

    - ``"no training data"``: no positive training sample (``train_frequency == 0``);
    - ``"threshold failure"``: the ensemble ranks the node's positives well, ``AP >= lift x base
      rate`` and ``AP >= min_ap`` (base rate: test support / ``n_test``, the AP of a random ranking;
      Davis & Goadrich, ICML 2006), yet no probability clears the node's threshold: another
      threshold can find it;
    - ``"ranking failure"``: otherwise; the scores do not separate the positives, and no
      threshold finds them without many false positives.

    Parameters
    ----------
    node_metrics : pandas.DataFrame
        ``Run.node_metrics`` at the rule shown (columns ``evaluated``, ``support``, ``recall``,
        ``average_precision``, ``train_frequency``, ``depth``), indexed by node id.
    n_test : int
        Number of test samples (> 0).
    recall_by_rule : mapping of str to array of float, shape (C,), optional
        Rule label -> every node's test recall under that rule (node_metrics' row order); a missed
        node is *recovered* by a rule under which its recall is > 0.
    lift, min_ap : float
        The thresholds of a good ranking (:data:`GOOD_RANKING_LIFT`, :data:`GOOD_RANKING_AP`).

    Returns
    -------
    pandas.DataFrame
        Indexed by the missed nodes (node_metrics' order), columns ``kind`` (one of
        :data:`FAILURE_KINDS`), ``average_precision``, ``base_rate``, ``lift`` (AP / base rate),
        ``train_frequency``, ``support``, ``depth`` and ``recovered_by`` (the labels of the rules that
        recover the node, joined by ", "; "" when none does).

    Raises
    ------
    ValueError
        If ``n_test`` < 1 or a recall array does not have one value per node.
    """
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    nm = node_metrics
    recall_by_rule = dict(recall_by_rule or {})
    for label, values in recall_by_rule.items():
        if np.shape(values) != (len(nm),):
            raise ValueError(f"recall of rule {label!r} has shape {np.shape(values)}, expected ({len(nm)},)")
    support = nm["support"].to_numpy(dtype=np.float64)
    missed = (nm["evaluated"].to_numpy(dtype=bool) & (support > 0)
              & (nm["recall"].to_numpy(dtype=np.float64) == 0))
    ap = nm["average_precision"].to_numpy(dtype=np.float64)
    base = support / n_test
    ratio = np.divide(ap, base, out=np.full(len(nm), np.nan), where=base > 0)
    good = (ap >= lift * base) & (ap >= min_ap)
    kind = np.where(nm["train_frequency"].to_numpy() == 0, FAILURE_KINDS[2],
                    np.where(good, FAILURE_KINDS[0], FAILURE_KINDS[1]))
    recovered = [", ".join(label for label, r in recall_by_rule.items() if float(np.asarray(r)[i]) > 0)
                 for i in range(len(nm))]
    table = pd.DataFrame({"kind": kind, "average_precision": ap, "base_rate": base, "lift": ratio,
                          "train_frequency": nm["train_frequency"].to_numpy(), "support": nm["support"].to_numpy(),
                          "depth": nm["depth"].to_numpy(), "recovered_by": recovered}, index=nm.index)
    return table[missed]


def miss_kind_counts(kinds: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per kind of :func:`miss_kinds`: the number of missed nodes and, per rule, how many it recovers.

    Returns
    -------
    dict
        Kind (every one of :data:`FAILURE_KINDS`) -> ``{"nodes": n, <rule label>: recovered, ...}``;
        rule labels are those found in ``recovered_by``.
    """
    labels = list(dict.fromkeys(label for text in kinds["recovered_by"] for label in text.split(", ") if label))
    result: dict[str, dict[str, int]] = {}
    for kind in FAILURE_KINDS:
        rows = kinds[kinds["kind"] == kind]
        counts = {"nodes": len(rows)}
        for label in labels:
            counts[label] = int(sum(label in text.split(", ") for text in rows["recovered_by"]))
        result[kind] = counts
    return result


def _plotted(run: Run) -> pd.DataFrame:
    """Evaluated nodes with a positive test sample (their recall is defined), in column order."""
    ev = _evaluated(run)
    return ev[ev["support"].to_numpy() > 0]


def _finite(values: Iterable[float], digits: int = 4) -> list[float | None]:
    return [round(float(v), digits) if math.isfinite(float(v)) else None for v in values]


def _recall_scatter(run: Run, nodes: pd.DataFrame, x: np.ndarray, highlight: Iterable[str]) -> list[go.Scatter]:
    """Two scatter traces (nodes of the table, other nodes) sharing one uncertainty colour scale."""
    shown = set(highlight)
    u = nodes["uncertainty"].to_numpy(dtype=np.float64)
    finite = u[np.isfinite(u)]
    cmin, cmax = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if cmax <= cmin:
        cmax = cmin + 1e-9
    custom = np.column_stack([nodes["depth"], nodes["train_frequency"], nodes["support"], nodes["recall"], u])
    hover = ("<b>%{text}</b><br>depth %{customdata[0]} · training frequency %{customdata[1]}"
             "<br>test support %{customdata[2]} · recall %{customdata[3]:.3f}"
             f"<br>uncertainty ({uncertainty_label(run)}) " + "%{customdata[4]:.3f}<extra></extra>")
    traces = []
    is_shown = np.array([n in shown for n in nodes.index], dtype=bool)
    for name, pick, size, line, opacity in (("other nodes", ~is_shown, 7, 0.0, 0.55),
                                           ("nodes in the table", is_shown, 10, 1.5, 0.95)):
        traces.append(go.Scatter(
            x=_finite(x[pick]), y=_finite(nodes["recall"].to_numpy()[pick]), mode="markers", name=name,
            text=[html.escape(n) for n in nodes.index[pick]], customdata=[_finite(row, 4) for row in custom[pick]],
            hovertemplate=hover,
            marker={"color": _finite(u[pick]), "colorscale": _UNCERTAINTY_SCALE, "cmin": cmin, "cmax": cmax,
                    "size": size, "opacity": opacity, "line": {"width": line, "color": _HIGHLIGHT_LINE},
                    "showscale": name == "nodes in the table",
                    "colorbar": {"title": {"text": f"uncertainty<br>{uncertainty_label(run)}"}, "thickness": 14}},
        ))
    return traces


def _layout(fig: go.Figure, title: str, height: int, threshold: float | None) -> go.Figure:
    if threshold is not None:
        fig.add_hline(y=threshold, line={"dash": "dash", "color": "#888888", "width": 1},
                      annotation_text=f"threshold {threshold:g}", annotation_position="top left")
    fig.update_layout(height=height, margin={"t": 40, "l": 10, "r": 10, "b": 10},
                      title={"text": title, "x": 0, "font": {"size": 15}},
                      legend={"orientation": "h", "y": -0.18, "x": 0},
                      yaxis={"title": {"text": "test recall"}, "range": [-0.04, 1.04]})
    return fig


def recall_frequency_figure(run: Run, highlight: Iterable[str] = (), threshold: float | None = None,
                            height: int = 420) -> go.Figure:
    """Recall vs training frequency (log x axis), coloured by the node's mean uncertainty.

    One point per evaluated node with a positive test sample. The x value is
    ``1 + training frequency`` so that nodes never seen in training (frequency
    0) sit at 1 on the log axis; the hover shows the frequency itself.

    Parameters
    ----------
    run : Run
    highlight : iterable of str
        Nodes drawn larger with a dark outline (the Missed-nodes table); the
        others are drawn smaller and lighter.
    threshold : float, optional
        Draws a dashed horizontal line at this recall.
    height : int, default 420
        Pixels.

    Returns
    -------
    plotly.graph_objects.Figure
        Two ``go.Scatter`` traces, "other nodes" then "nodes in the table";
        ``text`` holds node ids, ``marker.color`` the ``uncertainty`` column
        (one colour scale, ``YlOrRd``); the x axis has ``type="log"``.
    """
    nodes = _plotted(run)
    x = 1.0 + np.maximum(nodes["train_frequency"].to_numpy(dtype=np.float64), 0.0)
    fig = go.Figure(_recall_scatter(run, nodes, x, highlight))
    fig.update_xaxes(type="log", title={"text": "1 + training frequency (log scale)"})
    return _layout(fig, "Recall vs training frequency", height, threshold)


def recall_depth_figure(run: Run, highlight: Iterable[str] = (), threshold: float | None = None,
                        height: int = 420, seed: int = 0) -> go.Figure:
    """Recall vs depth: a box per depth and one jittered point per node, coloured by uncertainty.

    Depth is :attr:`Hierarchy.depth` (shortest path from a root). Nodes as in
    :func:`recall_frequency_figure`.

    Parameters
    ----------
    run : Run
    highlight : iterable of str
        Nodes drawn larger with a dark outline (the Missed-nodes table).
    threshold : float, optional
        Draws a dashed horizontal line at this recall.
    height : int, default 420
        Pixels.
    seed : int, default 0
        Each point's x is its depth plus a uniform jitter in ``[-0.28, 0.28]``
        drawn with ``numpy.random.default_rng(seed)`` over all plotted nodes
        in column order, so a point does not move when the highlight changes.

    Returns
    -------
    plotly.graph_objects.Figure
        A ``go.Box`` trace (recall distribution per depth, all plotted nodes,
        no points), then the two scatter traces of
        :func:`recall_frequency_figure`.
    """
    nodes = _plotted(run)
    depth = nodes["depth"].to_numpy(dtype=np.float64)
    x = depth + np.random.default_rng(seed).uniform(-_JITTER, _JITTER, size=len(depth))
    box = go.Box(x=[int(d) for d in depth], y=_finite(nodes["recall"]), name="recall per depth",
                 boxpoints=False, marker={"color": "#9aa5b1"}, line={"width": 1}, fillcolor="rgba(154,165,177,0.15)",
                 hoverinfo="skip", width=0.7)
    fig = go.Figure([box, *_recall_scatter(run, nodes, x, highlight)])
    fig.update_xaxes(title={"text": "depth"}, dtick=1)
    return _layout(fig, "Recall vs depth", height, threshold)


# ------------------------------------------------------------ prediction scores
@dataclass(frozen=True)
class PredictionScores:
    """Set-based scores of a run's thresholded test predictions (:func:`score_predictions`).

    Attributes
    ----------
    hierarchical : (float, float, float)
        hP, hR, hF (:func:`hmlc_core.metrics.hierarchical_precision_recall_f1`).
    flat_micro : (float, float, float)
        Precision, recall, F1 pooled over all (example, evaluated node) pairs.
    flat_macro : (float, float, float)
        Means of the per-node values over the evaluated nodes (docs/method.md, *Metrics*;
        the run's ``macro_*`` summary values).
    correct_depth, true_depth : numpy.ndarray of int64, shape (N,)
        :func:`hmlc_core.metrics.deepest_correct_level`.
    threshold : float or numpy.ndarray of shape (C,)
        Prediction threshold (``prob > threshold``): one for all nodes, or a decision rule's per-node thresholds.
    """

    hierarchical: tuple[float, float, float]
    flat_micro: tuple[float, float, float]
    flat_macro: tuple[float, float, float]
    correct_depth: np.ndarray
    true_depth: np.ndarray
    threshold: float | np.ndarray


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def score_predictions(hierarchy: Hierarchy, y_true: np.ndarray, probs: np.ndarray,
                      threshold: float | np.ndarray = PREDICTION_THRESHOLD,
                      predictions: np.ndarray | None = None) -> PredictionScores:
    """Hierarchical and flat precision/recall/F1 and the deepest correct levels of thresholded predictions.

    Parameters
    ----------
    hierarchy : Hierarchy
    y_true : array-like of {0, 1}, shape (N, C)
        Test labels (``Run.predictions()["y_true"]``).
    probs : array-like of float, shape (N, C)
        Ensemble-mean probabilities (``Run.predictions()["mean_probs"]``);
        predictions are ``probs > threshold`` (docs/method.md, *Metrics*).
    threshold : float or numpy.ndarray of shape (C,), default 0.5
        One threshold, or a decision rule's per-node thresholds (:attr:`DecisionRule.thresholds`).
    predictions : array-like of {0, 1}, shape (N, C), optional
        A decision rule's predictions (:meth:`DecisionRule.predict`), used instead of
        ``probs > threshold``.

    Returns
    -------
    PredictionScores
        Evaluated nodes only (``hierarchy.eval_mask``).

    Raises
    ------
    ValueError
        If the shapes do not match the hierarchy.
    """
    y = np.asarray(y_true)
    s = np.asarray(probs)
    if y.shape != s.shape:
        raise ValueError(f"y_true {y.shape} and probs {s.shape} must have the same shape")
    pred = s > threshold if predictions is None else np.asarray(predictions) != 0
    mask = hierarchy.eval_mask
    hierarchical = hierarchical_precision_recall_f1(y, pred, hierarchy, mask)
    correct, true = deepest_correct_level(y, pred, hierarchy, mask)
    counts = confusion_counts(y, s, predictions=pred)
    tp, fp, fn = (int(counts[k][mask].sum()) for k in ("tp", "fp", "fn"))
    micro_p, micro_r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    micro = (micro_p, micro_r, _ratio(2 * micro_p * micro_r, micro_p + micro_r))
    macro = macro_precision_recall_f1(y, s, mask, predictions=pred)
    return PredictionScores(hierarchical=hierarchical, flat_micro=micro, flat_macro=macro,
                            correct_depth=correct, true_depth=true,
                            threshold=float(threshold) if np.ndim(threshold) == 0 else np.asarray(threshold))


def comparison_table(scores: PredictionScores) -> pd.DataFrame:
    """Hierarchical vs flat precision, recall and F1 side by side.

    Returns
    -------
    pandas.DataFrame
        Index ``["precision", "recall", "F1"]``; columns ``"hierarchical
        (hP, hR, hF)"``, ``"flat micro"``, ``"flat macro"``; floats in [0, 1].
    """
    return pd.DataFrame(
        {"hierarchical (hP, hR, hF)": scores.hierarchical, "flat micro": scores.flat_micro,
         "flat macro": scores.flat_macro},
        index=pd.Index(["precision", "recall", "F1"], name="metric"),
    )


def deepest_level_counts(scores: PredictionScores) -> pd.DataFrame:
    """Number of test examples per (deepest correct level, true depth).

    Returns
    -------
    pandas.DataFrame of int64
        Index ``deepest correct level`` 0..D and columns ``true depth`` 0..D,
        with D the largest true depth; cell (c, t) counts the examples whose
        deepest correctly predicted evaluated node has depth c and whose
        deepest true evaluated node has depth t (0: none). Cells with c > t
        are always 0.
    """
    top = int(max(scores.true_depth.max(initial=0), scores.correct_depth.max(initial=0)))
    counts = np.zeros((top + 1, top + 1), dtype=np.int64)
    np.add.at(counts, (scores.correct_depth, scores.true_depth), 1)
    levels = list(range(top + 1))
    return pd.DataFrame(counts, index=pd.Index(levels, name="deepest correct level"),
                        columns=pd.Index(levels, name="true depth"))


def deepest_level_stats(scores: PredictionScores) -> dict[str, float | int]:
    """Summary of the deepest-correct-level view.

    Returns
    -------
    dict
        ``n_examples`` (int, examples with at least one evaluated true node),
        ``share_full_depth`` (float in [0, 1], share of those whose deepest
        correct level equals their true depth; NaN if there are none),
        ``mean_gap`` (float >= 0, mean of true depth minus deepest correct
        level over them, in levels; NaN if there are none) and ``share_none``
        (float in [0, 1], share of them with no correct evaluated node).
    """
    has_truth = scores.true_depth > 0
    n = int(has_truth.sum())
    if n == 0:
        return {"n_examples": 0, "share_full_depth": float("nan"), "mean_gap": float("nan"),
                "share_none": float("nan")}
    correct, true = scores.correct_depth[has_truth], scores.true_depth[has_truth]
    return {"n_examples": n, "share_full_depth": float(np.mean(correct == true)),
            "mean_gap": float(np.mean(true - correct)), "share_none": float(np.mean(correct == 0))}


def deepest_level_figure(counts: pd.DataFrame, height: int = 420) -> go.Figure:
    """Heatmap of :func:`deepest_level_counts`: true depth (x) vs deepest correct level (y).

    Cells above the diagonal (a correct level deeper than the true depth) are
    impossible and left blank. Each cell shows its count; the hover adds the
    share of the column (examples of that true depth).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Heatmap``; ``z[c][t]`` is the count (None where c > t).
    """
    values = counts.to_numpy(dtype=np.int64)
    col_totals = values.sum(axis=0)
    z: list[list[int | None]] = []
    share: list[list[float | None]] = []
    for c in range(values.shape[0]):
        z.append([int(values[c, t]) if c <= t else None for t in range(values.shape[1])])
        share.append([round(float(values[c, t] / col_totals[t]), 4) if c <= t and col_totals[t] else None
                      for t in range(values.shape[1])])
    fig = go.Figure(go.Heatmap(
        z=z, x=[int(t) for t in counts.columns], y=[int(c) for c in counts.index], customdata=share,
        colorscale="Blues", texttemplate="%{z}", hoverongaps=False, colorbar={"title": {"text": "examples"},
                                                                             "thickness": 14},
        hovertemplate=("true depth %{x}<br>deepest correct level %{y}<br>%{z} examples"
                       " (%{customdata:.1%} of this true depth)<extra></extra>"),
    ))
    fig.update_layout(height=height, margin={"t": 40, "l": 10, "r": 10, "b": 10},
                      title={"text": "Deepest correct level vs true depth (test examples)", "x": 0,
                             "font": {"size": 15}},
                      xaxis={"title": {"text": "true depth (deepest true node)"}, "dtick": 1},
                      yaxis={"title": {"text": "deepest correct level"}, "dtick": 1})
    return fig


# ----------------------------------------------------------------------- overview
def _fmt(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


def run_facts(run: Run) -> dict[str, str]:
    """Dataset and hierarchy facts of a run (label -> text), for ``st.metric`` cards.

    Keys, in display order: "dataset", "nodes", "evaluated nodes",
    "with test positives", "max depth" (shortest-path depth), "structure"
    ("tree", or "DAG" with the number of nodes that have several parents),
    "edges", "leaves", "features", "train examples" (with the LPROS
    oversampled count when there is one), "valid examples", "test examples".
    Missing summary fields show as "n/a".
    """
    h = run.hierarchy
    s = run.summary
    nm = run.node_metrics
    ev = nm["evaluated"].to_numpy(dtype=bool)
    n_multi = int((nm["n_parents"].to_numpy() > 1).sum())

    def count(key: str) -> str:
        value = s.get(key)
        return "n/a" if value is None else f"{int(value):,}"

    train = count("n_train")
    resampled = s.get("n_resampled")
    if resampled and train != "n/a" and int(resampled) != int(s["n_train"]):
        train += f" ({int(resampled):,} after LPROS)"
    return {
        "dataset": str(s.get("dataset", run.dataset_info.get("name", "n/a"))),
        "nodes": f"{h.n_nodes:,}",
        "evaluated nodes": f"{int(ev.sum()):,}",
        "with test positives": f"{int((ev & (nm['support'].to_numpy() > 0)).sum()):,}",
        "max depth": str(int(h.depth.max())),
        "structure": "tree" if h.is_tree else f"DAG ({n_multi:,} multi-parent)",
        "edges": f"{h.n_edges:,}",
        "leaves": f"{len(h.leaves):,}",
        "features": str(run.dataset_info.get("n_features", "n/a")),
        "train examples": train,
        "valid examples": count("n_valid"),
        "test examples": count("n_test"),
    }


def score_metrics(run: Run, scores: PredictionScores | None = None, quantile: float = 0.25) -> dict[str, str]:
    """Rare-node recall and hierarchical P/R/F1 of a run (label -> text), for ``st.metric``.

    Parameters
    ----------
    run : Run
    scores : PredictionScores, optional
        From :func:`score_predictions`; the hierarchical values show "n/a"
        without it.
    quantile : float, default 0.25
        Rare nodes are the evaluated nodes whose training frequency is at or
        below this quantile (:func:`hmlc_core.metrics.rare_node_recall`).

    Returns
    -------
    dict
        Keys "rare-node recall", "hierarchical precision",
        "hierarchical recall", "hierarchical F1"; values formatted to 3
        decimals or "n/a" (no scores, or unknown training frequencies).
    """
    rare = run.rare_node_recall(quantile)
    hier = scores.hierarchical if scores is not None else (float("nan"),) * 3
    return {"rare-node recall": _fmt(rare), "hierarchical precision": _fmt(hier[0]),
            "hierarchical recall": _fmt(hier[1]), "hierarchical F1": _fmt(hier[2])}


def config_headline(run: Run) -> str:
    """One line naming the training recipe, e.g. ``"MCLoss · class-wise weights (ω 0.25) · focal: bBMA ..."``."""
    c = run.config
    parts = ["MCLoss" if c.loss == "mcloss" else c.loss.upper()]
    if c.loss == "asl":
        parts[0] += f" (γ+ {c.asl_gamma_pos:g}, γ- {c.asl_gamma_neg:g}, clip {c.asl_clip:g})"
    if c.weighting == "class-balanced":
        parts.append(f"class-balanced node weights (β {c.cb_beta:g})")
    else:
        parts.append("no node weights" if c.weighting == "none" else f"{c.weighting} node weights (ω {c.omega:g})")
    if c.focal == "none":
        parts.append("no focal term")
    else:
        parts.append(f"focal: {UNCERTAINTY_LABELS.get(c.focal, c.focal)} (k {c.focal_k:g}, min {c.focal_min:g})")
    if c.schedule != "none":
        parts.append(f"{c.schedule} schedule")
    if c.mixed_lambda is not None:
        parts.append(f"mixed λ {c.mixed_lambda:g}")
    if c.lpros is not None:
        parts.append(f"LPROS S {c.lpros:g}")
    if c.logit_adjust is not None:
        parts.append(f"logit adjustment τ {c.logit_adjust:g}")
    parts.append(f"{c.heads}-member {c.ensemble} ensemble")
    parts.append(f"{c.profile} profile")
    return " · ".join(parts)


_CONFIG_FIRST = ("loss", "weighting", "omega", "counting", "weight_indexing", "focal", "focal_k", "focal_min",
                 "schedule", "schedule_k", "mixed_lambda", "lpros", "ensemble", "heads", "profile", "epochs",
                 "batch_size", "lr", "hidden", "n_layers", "dropout", "weight_decay", "fit_on", "patience", "seed")


def config_table(run: Run) -> pd.DataFrame:
    """The run's training configuration as a two-column table.

    Returns
    -------
    pandas.DataFrame
        Index ``setting`` (every :class:`~hmlc_core.train.TrainConfig` field:
        the loss and weighting settings first, then ensemble and optimisation,
        then the rest in field order) and one column ``value`` (str; None is
        shown as "—").
    """
    values = run.config.to_dict()
    names = [f for f in _CONFIG_FIRST if f in values]
    names += [f.name for f in dataclasses.fields(run.config) if f.name not in names]
    text = ["—" if values[n] is None else f"{values[n]:g}" if isinstance(values[n], float) else str(values[n])
            for n in names]
    return pd.DataFrame({"value": text}, index=pd.Index(names, name="setting"))


def training_curve_figure(history: pd.DataFrame, height: int = 340) -> go.Figure:
    """Training loss per epoch and, when recorded, the validation micro AUPRC on a second y axis.

    Parameters
    ----------
    history : pandas.DataFrame
        ``Run.history``: columns ``epoch``, ``loss`` and optionally
        ``valid_auprc`` (runs with ``fit_on="train"``).
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        A "training loss" ``go.Scatter`` (left axis) and, if present, a
        "valid micro AUPRC" one (right axis, range [0, 1]); with no epochs, an
        empty figure with a note.

    Raises
    ------
    ValueError
        If ``history`` has rows but lacks the ``epoch`` or ``loss`` column.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(height=height, margin={"t": 40, "l": 10, "r": 10, "b": 10},
                      title={"text": "Training curve", "x": 0, "font": {"size": 15}},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    if history.empty:
        fig.add_annotation(text="no epoch recorded", showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        return fig
    missing = [c for c in ("epoch", "loss") if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks the column(s) {missing}")
    epochs = [int(e) for e in history["epoch"]]
    fig.add_trace(go.Scatter(x=epochs, y=_finite(history["loss"], 6), name="training loss", mode="lines+markers",
                             line={"color": "#4c78a8"}), secondary_y=False)
    if "valid_auprc" in history.columns:
        fig.add_trace(go.Scatter(x=epochs, y=_finite(history["valid_auprc"], 6), name="valid micro AUPRC",
                                 mode="lines+markers", line={"color": "#f58518", "dash": "dot"}), secondary_y=True)
        fig.update_yaxes(title={"text": "valid micro AUPRC"}, range=[0, 1], secondary_y=True)
    fig.update_yaxes(title={"text": "loss"}, secondary_y=False)
    fig.update_xaxes(title={"text": "epoch"})
    return fig

