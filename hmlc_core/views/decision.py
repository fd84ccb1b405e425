"""The dashboard's decision rules: a run's metrics under a chosen rule, a node's PR curve, the shrinkage trade-off.

A run directory stores its per-node metrics and headline metrics at the run's default decision rule
(``node_metrics.csv``, ``summary.json``). The dashboard lets the user pick another rule (fixed ``T``,
``global`` or ``per-node``; :mod:`hmlc_core.decision`, docs/method.md, *Decision rules*), so every
page recomputes the threshold-dependent numbers from the saved test predictions:

- :func:`run_under_rule`: a copy of the :class:`~hmlc_core.runs.Run` whose ``node_metrics`` (tp, fp,
  fn, precision, recall, f1, and a ``threshold`` column) and ``summary`` (macro precision, recall and
  F1, recall by depth, coherence violations, ``decision``) hold the values at the rule's thresholds,
  so the pages keep calling the same view functions on it. The threshold-free columns (AP, support,
  training frequency, uncertainty) are kept.
- :func:`pr_curve` and :func:`pr_curve_figure`: a node's test precision-recall curve with each rule's
  operating point.
- :func:`tradeoff_figure`: test micro and macro F1 of the per-node rule over its shrinkage ``m``
  (:func:`hmlc_core.decision.shrinkage_tradeoff`), with the fixed and global rules as reference lines.

Pure and Streamlit-free; no torch.
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hmlc_core.decision import DecisionRule
from hmlc_core.metrics import confusion_counts, precision_recall_f1, recall_by_depth
from hmlc_core.runs import Run

__all__ = ["RULE_CHOICES", "RECOMPUTED_COLUMNS", "rule_phrase", "run_under_rule", "pr_curve",
           "operating_point", "pr_curve_figure", "tradeoff_figure"]

RULE_CHOICES: dict[str, str] = {"fixed": "fixed", "global": "global", "per-node": "per-node"}
"""Decision rule (``decision`` query parameter) -> text of the sidebar's rule selector."""

RECOMPUTED_COLUMNS = ("tp", "fp", "fn", "precision", "recall", "f1", "threshold")
"""The ``node_metrics`` columns :func:`run_under_rule` recomputes (all other columns are kept)."""

_RULE_COLORS = {"fixed": "#4c78a8", "global": "#f58518", "per-node": "#54a24b"}
_CURVE_COLOR = "#666666"


def rule_phrase(label: str) -> str:
    """How captions name a rule: ``"threshold 0.5"`` for ``"fixed 0.5"``, else ``"the global 0.27 rule"``.

    Parameters
    ----------
    label : str
        :meth:`DecisionRule.label` (or a run summary's ``decision``).
    """
    if label.startswith("fixed "):
        return "threshold " + label.removeprefix("fixed ")
    return f"the {label} rule"


def run_under_rule(run: Run, rule: DecisionRule, y_true: np.ndarray, probs: np.ndarray) -> Run:
    """A copy of ``run`` whose threshold-dependent metrics are those of ``rule`` on its test predictions.

    Parameters
    ----------
    run : Run
        Not modified.
    rule : DecisionRule
        Its predictions (:meth:`DecisionRule.predict`: ``probs > thresholds`` and their ancestors)
        give the counts.
    y_true : array-like of {0, 1}, shape (N, C)
        Test labels (``Run.predictions()["y_true"]``).
    probs : array-like of float, shape (N, C)
        Test ensemble-mean probabilities (``Run.predictions()["mean_probs"]``).

    Returns
    -------
    Run
        ``node_metrics`` a new frame with :data:`RECOMPUTED_COLUMNS` from
        :func:`hmlc_core.metrics.confusion_counts` and :func:`hmlc_core.metrics.precision_recall_f1`
        of the rule's predictions (``threshold``: each node's, ``-inf`` for the roots); ``summary`` a
        new dict with ``macro_precision``, ``macro_recall``, ``macro_f1`` (means over the evaluated
        nodes, docs/method.md, *Metrics*), ``recall_by_depth``, ``coherence_violations`` of the
        rule's predictions and ``decision`` (the rule's label) replaced. Everything else is shared
        with ``run`` (never mutate it).

    Raises
    ------
    ValueError
        If the shapes do not match the run's hierarchy.
    """
    hierarchy = run.hierarchy
    y, p = np.asarray(y_true), np.asarray(probs)
    if y.shape != p.shape or y.ndim != 2 or y.shape[1] != hierarchy.n_nodes:
        raise ValueError(f"y_true {y.shape} and probs {p.shape} must both be (N, {hierarchy.n_nodes})")
    t = np.asarray(rule.thresholds, dtype=np.float64)
    pred = rule.predict(p)
    counts = confusion_counts(y, p, predictions=pred)
    precision, recall, f1 = precision_recall_f1(y, p, predictions=pred)
    nm = run.node_metrics.copy()
    for column, values in (("tp", counts["tp"]), ("fp", counts["fp"]), ("fn", counts["fn"]),
                           ("precision", precision), ("recall", recall), ("f1", f1), ("threshold", t)):
        nm[column] = values
    mask = hierarchy.eval_mask
    summary = dict(run.summary)
    summary.update({
        "macro_precision": float(precision[mask].mean()) if mask.any() else float("nan"),
        "macro_recall": float(recall[mask].mean()) if mask.any() else float("nan"),
        "macro_f1": float(f1[mask].mean()) if mask.any() else float("nan"),
        "recall_by_depth": {str(k): v for k, v in recall_by_depth(recall, hierarchy.depth, mask).items()},
        "coherence_violations": hierarchy.coherence_violations(pred),
        "decision": rule.label(),
    })
    return dataclasses.replace(run, node_metrics=nm, summary=summary)


def pr_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision-recall curve of one node: one point per distinct score, predicted when ``score >= t``.

    The same points as :func:`sklearn.metrics.precision_recall_curve` (without its final ``(recall
    0, precision 1)`` anchor), computed by sorting the scores (Davis & Goadrich, ICML 2006).

    Parameters
    ----------
    y_true : array-like of {0, 1}, shape (N,)
    scores : array-like of float, shape (N,)

    Returns
    -------
    precision, recall, thresholds : numpy.ndarray of float64, shape (K,)
        K distinct scores in decreasing order; recall is NaN without a positive.

    Raises
    ------
    ValueError
        If the shapes differ or are not 1-D.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError(f"y_true {y.shape} and scores {s.shape} must be equal 1-D shapes")
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1] if s.size else np.array([], dtype=np.int64)
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    predicted = (last + 1).astype(np.float64)
    n_pos = float(y.sum())
    recall = tp / n_pos if n_pos > 0 else np.full(tp.shape, np.nan)
    return tp / predicted, recall, s_sorted[last]


def operating_point(y_true: np.ndarray, predictions: np.ndarray) -> tuple[float, float]:
    """(precision, recall) of one node's 0/1 predictions (a decision rule's point).

    Parameters
    ----------
    y_true, predictions : array-like of {0, 1} or bool, shape (N,)

    Returns
    -------
    (precision, recall) : float, float
        Precision is 1 when nothing is predicted (the curve's anchor), recall NaN without a positive.
    """
    y = np.asarray(y_true).astype(bool)
    pred = np.asarray(predictions).astype(bool)
    tp, n_pred, n_pos = int((y & pred).sum()), int(pred.sum()), int(y.sum())
    return (tp / n_pred if n_pred else 1.0), (tp / n_pos if n_pos else float("nan"))


def pr_curve_figure(y_true: np.ndarray, scores: np.ndarray, node: str, rules: Mapping[str, DecisionRule],
                    current: str | None = None, node_index: int | None = None, height: int = 320,
                    probs: np.ndarray | None = None) -> go.Figure:
    """A node's test precision-recall curve with each decision rule's operating point.

    Parameters
    ----------
    y_true, scores : array-like, shape (N,)
        The node's test labels and ensemble-mean probabilities.
    node : str
        Node id, for the title (HTML-escaped: plotly renders some tags in titles).
    rules : mapping of str to DecisionRule
        Display label -> rule; each point is the :func:`operating_point` of the rule's predictions of
        the node (``rule.predict_node(probs, node_index)``: above its threshold, or an ancestor of a
        predicted node), which lies on the curve unless the closure added predictions.
    current : str, optional
        The label of the rule in use: its marker is larger and outlined.
    node_index : int, optional
        The node's column (index into each rule's thresholds); required when ``rules`` is not empty.
    height : int, default 320
    probs : array-like of float, shape (N, C), optional
        All nodes' test probabilities (the rules' closure needs the descendants); required when
        ``rules`` is not empty.

    Returns
    -------
    plotly.graph_objects.Figure
        A step line ``recall`` (x) against ``precision`` (y) from :func:`pr_curve`, anchored at
        (0, 1), then one marker trace per rule (``customdata`` the threshold). With no positive test
        sample: an annotation saying so and no trace.

    Raises
    ------
    ValueError
        If ``rules`` is not empty and ``node_index`` or ``probs`` is missing.
    """
    y = np.asarray(y_true)
    fig = go.Figure()
    if not np.asarray(y).astype(bool).any():
        fig.add_annotation(text="no positive test sample: no precision-recall curve", x=0.5, y=0.5, xref="paper",
                           yref="paper", showarrow=False, font={"size": 14, "color": "#666666"})
    else:
        precision, recall, thresholds = pr_curve(y, scores)
        fig.add_trace(go.Scatter(
            x=np.r_[0.0, recall].round(4).tolist(), y=np.r_[1.0, precision].round(4).tolist(),
            customdata=np.r_[np.nan, thresholds].round(4).tolist(), mode="lines", line_shape="vh",
            line={"color": _CURVE_COLOR, "width": 1.5}, name="test PR curve", showlegend=False,
            hovertemplate="predicted when p ≥ %{customdata}<br>recall %{x:.3f}, precision %{y:.3f}<extra></extra>",
        ))
        if rules and (node_index is None or probs is None):
            raise ValueError("node_index and probs are required to place the rules' operating points")
        for label, rule in rules.items():
            t = float(rule.thresholds[node_index])
            p, r = operating_point(y, rule.predict_node(probs, node_index))
            chosen = label == current
            fig.add_trace(go.Scatter(
                x=[r], y=[p], customdata=[t], mode="markers", name=label,
                marker={"size": 15 if chosen else 10, "color": _RULE_COLORS.get(rule.rule, "#333333"),
                        "symbol": "circle" if chosen else "diamond",
                        "line": {"width": 2 if chosen else 0, "color": "#1f2933"}},
                hovertemplate=f"{label}: p > %{{customdata:.3f}} or a descendant predicted<br>"
                              "recall %{x:.3f}, precision %{y:.3f}<extra></extra>",
            ))
    fig.update_layout(
        height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
        title={"text": f"Precision-recall of {html.escape(node)} on the test set", "x": 0, "font": {"size": 14}},
        xaxis={"title": {"text": "recall"}, "range": [-0.02, 1.02]},
        yaxis={"title": {"text": "precision"}, "range": [-0.02, 1.05]},
        legend={"orientation": "h", "y": -0.25, "x": 0},
    )
    return fig


def tradeoff_figure(table: pd.DataFrame, height: int = 340) -> go.Figure:
    """Test micro and macro F1 of the per-node rule over its shrinkage ``m``, the fixed and global rules as lines.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`hmlc_core.decision.shrinkage_tradeoff` output (columns ``rule``, ``m``, ``label``,
        ``micro_f1``, ``macro_f1``).
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        Per metric (micro F1, then macro F1): a line "<metric>, per-node" over the per-node rows (x:
        ``m``; ``m = 0`` drawn at the left end of a log axis, at a quarter of the smallest positive
        ``m``, its tick labelled ``0``), then flat lines "<metric>, <label>" for the global (dotted)
        and fixed (dashed) rules, across the same x range.

    Raises
    ------
    ValueError
        If the table has no per-node row.
    """
    per_node = table[table["rule"] == "per-node"].sort_values("m")
    if per_node.empty:
        raise ValueError("the trade-off table has no per-node row")
    m = per_node["m"].to_numpy(dtype=np.float64)
    finite_pos = m[(m > 0) & np.isfinite(m)]
    zero_at = float(finite_pos.min()) / 4 if finite_pos.size else 0.1
    x = np.where(m > 0, m, zero_at)
    fig = go.Figure()
    for column, name, color in (("micro_f1", "micro F1", "#4c78a8"), ("macro_f1", "macro F1", "#e45756")):
        fig.add_trace(go.Scatter(
            x=x.tolist(), y=per_node[column].round(4).tolist(), mode="lines+markers", name=f"{name}, per-node",
            line={"color": color}, customdata=m.tolist(),
            hovertemplate=f"per-node, m = %{{customdata:g}}<br>{name} %{{y:.3f}}<extra></extra>",
        ))
        for rule, dash in (("global", "dot"), ("fixed", "dash")):
            row = table[table["rule"] == rule]
            if not row.empty and math.isfinite(float(row[column].iloc[0])):
                value, label = round(float(row[column].iloc[0]), 4), str(row["label"].iloc[0])
                fig.add_trace(go.Scatter(
                    x=[float(x.min()), float(x.max())], y=[value, value], mode="lines", name=f"{name}, {label}",
                    line={"dash": dash, "color": color, "width": 1},
                    hovertemplate=f"{label}<br>{name} {value:.3f}<extra></extra>",
                ))
    ticks = sorted(set(x.tolist()))
    fig.update_layout(
        height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
        title={"text": "Micro and macro F1 over the shrinkage m (test set)", "x": 0, "font": {"size": 14}},
        xaxis={"title": {"text": "m (pseudo-positives pulling each node's threshold to the global one)"},
               "type": "log", "tickvals": ticks, "ticktext": ["0" if v == zero_at else f"{v:g}" for v in ticks]},
        yaxis={"title": {"text": "F1"}, "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.3, "x": 0},
    )
    return fig
