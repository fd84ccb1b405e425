"""The "How it works" page and the Overview's story of a run: small figures and sentences that explain the method.

Everything here is pure and Streamlit-free; every number comes from the core
functions, never from a second copy of a formula:

- node weights: :func:`hmlc_core.weighting.frequencies_from_counts` and
  :func:`hmlc_core.weighting.rescaled_weights` (what
  :func:`hmlc_core.losses.node_weights` computes during training) on a run's
  saved training frequencies: :func:`node_weight_table`, :func:`node_weight_figure`;
- the focal factor: :func:`hmlc_core.weighting.focal_factor` (what
  :func:`hmlc_core.losses.focal_weight` computes): :func:`focal_figure`;
- the max-constraint module: :meth:`hmlc_core.hierarchy.Hierarchy.max_constraint`
  (the values of :class:`hmlc_core.model.MCM`) on a toy hierarchy:
  :func:`toy_hierarchy`, :func:`mcm_table`, :func:`mcm_figure`;
- the uncertainty modes: the per-node means a run saved at training time
  (``uncertainty_<mode>`` columns of ``node_metrics.csv``, computed by
  :mod:`hmlc_core.uncertainty`) and the spread of its members' saved
  probabilities: :func:`uncertainty_scale_table`, :func:`uncertainty_scale_figure`,
  :func:`member_spread`;
- evaluated and rare nodes: :attr:`hmlc_core.hierarchy.Hierarchy.eval_mask` and
  :func:`hmlc_core.metrics.rare_node_mask`: :func:`node_sets`, :func:`rare_node_figure`;
- :func:`run_story`: the Overview's two-sentence summary of a run;
- :func:`method_section`: a section of ``docs/method.md``, shown under each part of the page.

None of it imports torch (the dashboard's read path must not, ``tests/test_imports.py``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hmlc_core.config import UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.metrics import rare_node_mask, recall_by_depth
from hmlc_core.runs import Run
from hmlc_core.views.decision import rule_phrase
from hmlc_core.weighting import focal_factor, frequencies_from_counts, rescaled_weights, weighting_constant

__all__ = [
    "METHOD_DOC",
    "WEIGHT_MODES",
    "UNCERTAINTY_MEANINGS",
    "PREDICTION_THRESHOLD",
    "RARE_QUANTILE",
    "method_section",
    "node_weight_table",
    "node_weight_figure",
    "node_weight_sentence",
    "focal_figure",
    "focal_sentence",
    "toy_hierarchy",
    "TOY_SCORES",
    "mcm_table",
    "mcm_figure",
    "mcm_sentence",
    "uncertainty_scale_table",
    "uncertainty_scale_figure",
    "member_spread",
    "epistemic_explanation",
    "node_sets",
    "node_sets_text",
    "rare_node_figure",
    "run_story",
]

METHOD_DOC = Path(__file__).resolve().parents[2] / "docs" / "method.md"
"""The project's method document, whose sections the page shows."""

WEIGHT_MODES = ("class-wise", "binary")
"""The weighting modes drawn by :func:`node_weight_figure`, in order."""

PREDICTION_THRESHOLD = 0.5
"""A node is predicted when its ensemble-mean probability exceeds this (as in every metric of the dashboard)."""

RARE_QUANTILE = 0.25
"""Rare nodes: the bottom quartile of training frequency (:func:`hmlc_core.metrics.rare_node_mask`)."""

UNCERTAINTY_MEANINGS: dict[str, tuple[str, str]] = {
    "mean": ("how close the members' mean probability is to 0.5: 1 - |2 p̄ - 1|", "0 to 1"),
    "predictive": ("the entropy of the members' mean probability, H(p̄)", "0 to 1 bit"),
    "aleatoric": ("the members' average entropy: how unsure each member is on its own", "0 to 1 bit"),
    "epistemic": ("how much the members disagree: mean Jensen-Shannon divergence between pairs", "0 to 1 bit"),
    "epistemic_kl": ("how much the members disagree: mean KL divergence between pairs", "0 to about 33 bits"),
    "pcs": ("like bBMA, but raised towards 1 when the members scatter widely compared with |2 p̄ - 1|", "0 to 1"),
}
"""Mode -> (what it measures in plain words, its range); the formulas are in :mod:`hmlc_core.uncertainty`."""

_COLORS = {"class-wise": "#4c78a8", "binary": "#e45756"}
_GREY = "#9aa5b1"
_RARE = "#e45756"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(height=height, margin={"t": 40, "l": 10, "r": 10, "b": 10},
                      title={"text": title, "x": 0, "font": {"size": 15}})
    return fig


def _count_axis(counts: np.ndarray) -> dict[str, object]:
    """A log x axis for counts where 0 is drawn at 0.5 and labelled "0" (ticks 0, 1, 10, 100, ...)."""
    top = max(float(np.max(counts)) if np.size(counts) else 1.0, 1.0)
    ticks = [0.5] + [10.0 ** e for e in range(int(math.log10(top)) + 1)]
    return {"type": "log", "tickvals": ticks, "ticktext": ["0"] + [f"{t:g}" for t in ticks[1:]],
            "title": {"text": "training frequency (log)"}}


# ----------------------------------------------------------------------------------------- method document
def method_section(heading: str, path: str | Path = METHOD_DOC) -> str | None:
    """The text of one section of a markdown file, found by its heading.

    Parameters
    ----------
    heading : str
        The heading's text (case and surrounding ``*``/``_``/spaces ignored), at any level.
    path : str or pathlib.Path, default :data:`METHOD_DOC`

    Returns
    -------
    str or None
        The section's body, without its heading, up to the next heading of the
        same or a higher level; None when the file or the heading is missing.
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    wanted = heading.strip(" *_").casefold()
    start, level = None, 0
    for i, line in enumerate(lines):
        m = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m is None:
            continue
        if start is not None and len(m.group(1)) <= level:
            return "\n".join(lines[start:i]).strip() or None
        if start is None and m.group(2).strip(" *_").casefold() == wanted:
            start, level = i + 1, len(m.group(1))
    return None if start is None else ("\n".join(lines[start:]).strip() or None)


# ---------------------------------------------------------------------------------------------- node weights
def node_weight_table(hierarchy: Hierarchy, train_frequency: np.ndarray, n_train: int, omega: float = 0.25,
                      counting: str = "descendant-sum") -> pd.DataFrame:
    """The node weights a run's training would use, per evaluated node, for both weighting modes.

    The weights are :func:`hmlc_core.weighting.rescaled_weights` of the
    counted frequencies, exactly as :func:`hmlc_core.losses.node_weights`
    computes them from the training labels (Xu et al. 2026; docs/method.md,
    *Node weights*): raw ``N / (K f)`` with ``K = C`` (class-wise) or 2
    (binary), rescaled over all C nodes to ``[omega, omega + max raw]``.

    Parameters
    ----------
    hierarchy : Hierarchy
    train_frequency : array-like of int, shape (C,), values >= 0
        Positive training examples per node (propagated labels, train split):
        the ``train_frequency`` column of ``node_metrics.csv``.
    n_train : int
        N, the number of training examples (>= 1).
    omega : float, default 0.25
        The minimum weight (>= 0).
    counting : {"descendant-sum", "propagated"}
        See :func:`hmlc_core.weighting.frequencies_from_counts`.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id (evaluated nodes only, column order), columns
        ``depth`` (int), ``train_frequency`` (int), ``counted_frequency``
        (float) and one float column per :data:`WEIGHT_MODES`.

    Raises
    ------
    ValueError
        On a frequency vector of the wrong length, a negative omega, an
        unknown counting or ``n_train < 1``.
    """
    freq = np.asarray(train_frequency, dtype=np.float64)
    counted = frequencies_from_counts(freq, hierarchy, counting)
    table = pd.DataFrame({"depth": hierarchy.depth, "train_frequency": freq.astype(np.int64),
                          "counted_frequency": counted}, index=pd.Index(hierarchy.nodes, name="node"))
    for mode in WEIGHT_MODES:
        table[mode] = rescaled_weights(counted, n_train, weighting_constant(mode, hierarchy.n_nodes), omega)
    return table[hierarchy.eval_mask]


def node_weight_figure(table: pd.DataFrame, omega: float, height: int = 340) -> go.Figure:
    """Node weight against training frequency (log x), one panel per weighting mode, with omega marked.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`node_weight_table`.
    omega : float
        The minimum weight, drawn as a dashed line.
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Scatter`` per mode (``name`` = the mode; ``x`` training
        frequencies, 0 drawn at 0.5 on the log axis; ``y`` weights;
        ``customdata`` rows [node (escaped), counted frequency, training
        frequency]), in :data:`WEIGHT_MODES` order, each in its own column.
    """
    fig = make_subplots(rows=1, cols=len(WEIGHT_MODES), horizontal_spacing=0.12,
                        subplot_titles=[f"{m} (K = {'C' if m == 'class-wise' else 2})" for m in WEIGHT_MODES])
    custom = np.column_stack([[html.escape(str(n)) for n in table.index], table["counted_frequency"].to_numpy(),
                              table["train_frequency"].to_numpy()])
    for col, mode in enumerate(WEIGHT_MODES, start=1):
        fig.add_trace(go.Scatter(
            x=np.maximum(table["train_frequency"].to_numpy(dtype=np.float64), 0.5).tolist(),
            y=table[mode].round(4).tolist(), mode="markers", name=mode, customdata=custom,
            marker={"color": _COLORS[mode], "size": 7, "opacity": 0.75},
            hovertemplate=("node %{customdata[0]}<br>training frequency %{customdata[2]}<br>counted frequency "
                           "%{customdata[1]}<br>weight %{y:.3f}<extra>" + mode + "</extra>"),
        ), row=1, col=col)
        fig.add_hline(y=omega, line={"dash": "dash", "color": _GREY}, row=1, col=col,
                      annotation_text=f"ω = {omega:g}", annotation_position="top right")
        fig.update_xaxes(**_count_axis(table["train_frequency"].to_numpy()), row=1, col=col)
    fig.update_yaxes(title_text="node weight", row=1, col=1)
    fig.update_layout(showlegend=False)
    _layout(fig, "Node weight against training frequency", height)
    fig.update_layout(margin={"t": 70})
    return fig


def node_weight_sentence(table: pd.DataFrame, n_train: int, n_nodes: int, omega: float) -> str:
    """Plain-text summary of a :func:`node_weight_table`: each mode's range, who gets the most, and the f = 0 nodes.

    Returns
    -------
    str
        Numbers only (no node ids), e.g. "With N = 600 training examples and
        C = 121 nodes, class-wise weights run from 0.25 to 5.21 and binary
        weights from 0.45 to 300.25 (ω = 0.25). ..."
    """
    ranges = " and ".join(f"{mode} weights {'run ' if i == 0 else ''}from {table[mode].min():.2f} to "
                          f"{table[mode].max():.2f}" for i, mode in enumerate(WEIGHT_MODES))
    top = table.loc[table["class-wise"].idxmax()]
    text = (f"With N = {n_train:,} training examples and C = {n_nodes:,} nodes, {ranges} (ω = {omega:g}). "
            f"The largest weight goes to the nodes with the fewest training positives "
            f"({int(top['train_frequency'])}).")
    zero = table["counted_frequency"] == 0
    if zero.any():
        first = table[zero].iloc[0]
        text += (f" The {int(zero.sum())} evaluated node{'s' if zero.sum() > 1 else ''} without any training positive "
                 f"keep the raw weight 1, which rescales to {first['class-wise']:.2f} (class-wise) and "
                 f"{first['binary']:.2f} (binary).")
    return text


# ---------------------------------------------------------------------------------------------- focal factor
def focal_figure(k: float, focal_min: float, node_u: np.ndarray | None = None, mode_label: str = "",
                 n_points: int = 201, height: int = 340) -> go.Figure:
    """The focal factor ``focal_min + u**k`` against u in [0, 1], optionally with a run's nodes on it.

    Values from :func:`hmlc_core.weighting.focal_factor` (Xu et al. 2026;
    docs/method.md, *Focal weighting*).

    Parameters
    ----------
    k : float
        Focusing exponent (> 0).
    focal_min : float
        Floor of the factor (>= 0).
    node_u : array-like of float, shape (n,), optional
        Per-node mean uncertainties of a run, drawn as points on the curve
        (values above 1 are left out: the curve stops at 1).
    mode_label : str
        The uncertainty mode of ``node_u``, for the legend.
    n_points : int, default 201
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0: the curve (``name`` "focal factor"); trace 1 when
        ``node_u`` is given: the nodes.

    Raises
    ------
    ValueError
        If ``k <= 0`` or ``focal_min < 0`` (from ``focal_factor``).
    """
    u = np.linspace(0.0, 1.0, n_points)
    fig = go.Figure(go.Scatter(x=u.round(4).tolist(), y=focal_factor(u, k, focal_min).round(5).tolist(),
                               mode="lines", name="focal factor", line={"color": "#4c78a8", "width": 3},
                               hovertemplate="u %{x:.3f}<br>factor %{y:.3f}<extra></extra>"))
    if node_u is not None:
        v = np.asarray(node_u, dtype=np.float64)
        v = v[np.isfinite(v) & (v <= 1)]
        fig.add_trace(go.Scatter(x=v.round(5).tolist(), y=focal_factor(v, k, focal_min).round(5).tolist(),
                                 mode="markers", name=f"this run's nodes ({html.escape(mode_label)})",
                                 marker={"color": _RARE, "size": 7, "opacity": 0.6},
                                 hovertemplate="node mean u %{x:.4f}<br>factor %{y:.3f}<extra></extra>"))
    fig.add_hline(y=focal_min, line={"dash": "dash", "color": _GREY}, annotation_text=f"focal_min = {focal_min:g}",
                  annotation_position="bottom right")
    fig.update_layout(xaxis={"title": {"text": "uncertainty u"}, "range": [0, 1]},
                      yaxis={"title": {"text": "factor on the loss"}, "rangemode": "tozero"},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    return _layout(fig, f"Focal factor {focal_min:g} + u^{k:g}", height)


def focal_sentence(node_u: np.ndarray | None, k: float, focal_min: float, mode_label: str) -> str:
    """Where a run's nodes sit on the focal curve: the range of their mean u and of the factor (plain text).

    Parameters
    ----------
    node_u : array-like of float or None
        Per-node mean uncertainties (evaluated nodes); None or empty gives a note that the run lacks them.
    k, focal_min : float
        As in :func:`focal_figure`.
    mode_label : str
        The uncertainty mode's display name.

    Returns
    -------
    str
    """
    v = np.asarray(node_u if node_u is not None else [], dtype=np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return f"This run has no saved {mode_label} uncertainty per node."
    lo, hi = focal_factor(np.array([v.min(), v.max()]), k, focal_min)
    return (f"Under {mode_label}, this run's nodes have a mean u between {v.min():.2g} and {v.max():.2g}, so their "
            f"factor lies between {lo:.3g} and {hi:.3g}: the further u stays below 1, the closer every entry is to "
            f"focal_min = {focal_min:g}, and the less the factor tells entries apart.")


# ---------------------------------------------------------------------------------------------- MCM toy
TOY_SCORES: dict[str, float] = {"Animal": 0.30, "Dog": 0.80, "Cat": 0.10, "Vehicle": 0.60, "Car": 0.20,
                                "Bike": 0.40}
"""Default raw scores of the toy sample: the network says "dog" but not "animal", an incoherent answer."""


def toy_hierarchy() -> Hierarchy:
    """The toy hierarchy of the MCM demo: Animal (Dog, Cat) and Vehicle (Car, Bike), two trees without a common root."""
    return Hierarchy([("Animal", "Dog"), ("Animal", "Cat"), ("Vehicle", "Car"), ("Vehicle", "Bike")])


def mcm_table(hierarchy: Hierarchy, raw: Mapping[str, float]) -> pd.DataFrame:
    """One sample's raw scores and its coherent scores after the max-constraint module.

    The coherent score of a node is the max of the raw scores of the node and
    its descendants (:meth:`hmlc_core.hierarchy.Hierarchy.max_constraint`,
    the values of C-HMCNN's MCM; docs/method.md, *MCM and MCLoss*).

    Parameters
    ----------
    hierarchy : Hierarchy
    raw : mapping of node id to float
        A raw score for every node of ``hierarchy``.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id (column order), columns ``parent`` (first parent,
        "" for a root), ``raw``, ``coherent`` (floats) and ``from`` (the node
        whose raw score the coherent score is: the node itself when it is the
        largest, else the first descendant in column order that reaches it).

    Raises
    ------
    KeyError
        If a node has no raw score.
    """
    raw_values = np.array([float(raw[n]) for n in hierarchy.nodes])
    coherent = hierarchy.max_constraint(raw_values)
    source = []
    for j, node in enumerate(hierarchy.nodes):
        if raw_values[j] == coherent[j]:
            source.append(node)
            continue
        candidates = sorted(hierarchy.index[d] for d in hierarchy.descendants(node))
        source.append(hierarchy.nodes[next(i for i in candidates if raw_values[i] == coherent[j])])
    return pd.DataFrame({"parent": [hierarchy.first_parent(n) or "" for n in hierarchy.nodes], "raw": raw_values,
                         "coherent": coherent, "from": source}, index=pd.Index(hierarchy.nodes, name="node"))


def mcm_sentence(table: pd.DataFrame) -> str:
    """What the MCM changed in a :func:`mcm_table`, in words (node ids escaped for markdown).

    Returns
    -------
    str
        "Already coherent: ..." when no node was raised, else one clause per
        raised node naming the descendant whose score it took.
    """
    raised = table[table["coherent"] > table["raw"]]
    if raised.empty:
        return ("Already coherent: no node scores below one of its descendants, so the MCM changes nothing.")
    clauses = [f"{_md(node)} rises from {row['raw']:.2f} to {row['coherent']:.2f} (the score of its descendant "
               f"{_md(str(row['from']))})" for node, row in raised.iterrows()]
    return ("; ".join(clauses) + ". A node is as likely as its most likely descendant, so a threshold of 0.5 "
            "can never predict a child without its parent.")


def _md(text: str) -> str:
    """``text`` with markdown's special characters backslash-escaped."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$])", r"\\\1", text)


def _tree_positions(hierarchy: Hierarchy) -> dict[str, tuple[float, float]]:
    """x from the leaves' first-parent depth-first order (a parent sits over its children), y = -depth."""
    x: dict[str, float] = {}
    next_leaf = [0.0]

    def place(node: str) -> float:
        kids = [c for c in hierarchy.children(node) if hierarchy.first_parent(c) == node]
        x[node] = float(np.mean([place(c) for c in kids])) if kids else next_leaf[0]
        if not kids:
            next_leaf[0] += 1
        return x[node]

    for root in hierarchy.roots:
        place(root)
    return {n: (x[n], -float(hierarchy.depth[hierarchy.index[n]])) for n in hierarchy.nodes}


def mcm_figure(hierarchy: Hierarchy, table: pd.DataFrame, height: int = 340) -> go.Figure:
    """The toy hierarchy with each node's raw and coherent score; nodes the MCM raised are highlighted.

    Parameters
    ----------
    hierarchy : Hierarchy
    table : pandas.DataFrame
        From :func:`mcm_table`.
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0: the edges; trace 1: the nodes, with ``customdata`` rows
        [node, raw, coherent, from] in column order and the node's label and
        both scores as text.
    """
    pos = _tree_positions(hierarchy)
    ex: list[float | None] = []
    ey: list[float | None] = []
    for parent, child in hierarchy.graph.edges:
        ex += [pos[parent][0], pos[child][0], None]
        ey += [pos[parent][1], pos[child][1], None]
    nodes = hierarchy.nodes
    raised = (table["coherent"] > table["raw"]).to_numpy()
    text = [f"<b>{html.escape(n)}</b><br>raw {table.at[n, 'raw']:.2f}<br>→ {table.at[n, 'coherent']:.2f}"
            for n in nodes]
    fig = go.Figure([
        go.Scatter(x=ex, y=ey, mode="lines", line={"color": _GREY, "width": 2}, hoverinfo="skip", name="edges"),
        go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text", name="nodes",
            text=text, textposition="middle right", textfont={"size": 14, "color": "#1f2933"},
            customdata=[[html.escape(n), round(float(table.at[n, "raw"]), 4), round(float(table.at[n, "coherent"]), 4),
                         html.escape(str(table.at[n, "from"]))] for n in nodes],
            marker={"size": 22, "color": [_RARE if r else "#4c78a8" for r in raised], "line": {"width": 1}},
            hovertemplate=("%{customdata[0]}<br>raw %{customdata[1]:.2f}<br>coherent %{customdata[2]:.2f} "
                           "(from %{customdata[3]})<extra></extra>"),
        ),
    ])
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    fig.update_layout(showlegend=False,
                      xaxis={"visible": False, "range": [min(xs) - 0.4, max(xs) + 0.9]},
                      yaxis={"visible": False, "range": [min(ys) - 0.6, max(ys) + 0.5]})
    return _layout(fig, "One sample: raw → coherent scores (red: raised by the MCM)", height)


# ------------------------------------------------------------------------------------------ uncertainty modes
def uncertainty_scale_table(node_metrics: pd.DataFrame) -> pd.DataFrame:
    """What each uncertainty mode measures, its range, and a run's per-node mean values under it.

    Parameters
    ----------
    node_metrics : pandas.DataFrame
        ``Run.node_metrics``; the ``uncertainty_<mode>`` columns hold each
        node's mean test uncertainty under that mode (:mod:`hmlc_core.uncertainty`,
        computed when the run was saved; docs/method.md, *Uncertainty modes*).

    Returns
    -------
    pandas.DataFrame
        Indexed by the modes' display names, columns ``mode`` (the option
        name), ``measures``, ``range`` (str), ``median`` and ``max`` (float:
        over the evaluated nodes' means; NaN when the run lacks the column).
    """
    ev = node_metrics["evaluated"].to_numpy(dtype=bool)
    rows = []
    for mode in UNCERTAINTY_MODE_NAMES:
        column = f"uncertainty_{mode}"
        values = node_metrics[column].to_numpy(dtype=np.float64)[ev] if column in node_metrics else np.array([])
        values = values[np.isfinite(values)]
        measures, scale = UNCERTAINTY_MEANINGS[mode]
        rows.append({"uncertainty": UNCERTAINTY_LABELS[mode], "mode": mode, "measures": measures, "range": scale,
                     "median": float(np.median(values)) if values.size else math.nan,
                     "max": float(values.max()) if values.size else math.nan})
    return pd.DataFrame(rows).set_index("uncertainty")


def uncertainty_scale_figure(node_metrics: pd.DataFrame, height: int = 340) -> go.Figure:
    """Each mode's per-node mean uncertainty over the evaluated nodes, one box per mode, log x.

    Parameters
    ----------
    node_metrics : pandas.DataFrame
        ``Run.node_metrics`` (see :func:`uncertainty_scale_table`).
    height : int, default 340

    Returns
    -------
    plotly.graph_objects.Figure
        One horizontal ``go.Box`` per mode present in the run (``name`` = its
        display name, ``x`` = the positive node means; zeros cannot sit on a
        log axis and are left out).
    """
    ev = node_metrics["evaluated"].to_numpy(dtype=bool)
    fig = go.Figure()
    lowest = 1.0
    for mode in reversed(UNCERTAINTY_MODE_NAMES):
        column = f"uncertainty_{mode}"
        if column not in node_metrics:
            continue
        v = node_metrics[column].to_numpy(dtype=np.float64)[ev]
        v = v[np.isfinite(v) & (v > 0)]
        lowest = min(lowest, float(v.min())) if v.size else lowest
        fig.add_trace(go.Box(x=v.round(6).tolist(), name=UNCERTAINTY_LABELS[mode], orientation="h",
                             boxpoints="all", jitter=0.4, pointpos=0, marker={"size": 4, "opacity": 0.5},
                             line={"width": 1}, hoverinfo="x",
                             marker_color=_RARE if mode == "epistemic" else "#4c78a8"))
    decades = [10.0 ** e for e in range(math.floor(math.log10(lowest)), 2)]
    fig.update_layout(showlegend=False, xaxis={"type": "log", "title": {"text": "node mean uncertainty (log)"},
                                               "tickvals": decades,
                                               "ticktext": [np.format_float_positional(d, trim="-") for d in decades]})
    return _layout(fig, "This run's uncertainty, per node and mode", height)


def member_spread(member_probs: np.ndarray, eval_mask: np.ndarray) -> dict[str, float | int]:
    """How far apart the ensemble members' probabilities are: their standard deviation per test example and node.

    Parameters
    ----------
    member_probs : array-like of float, shape (H, N, C), values in [0, 1]
        The members' coherent test probabilities (``predictions.npz``).
    eval_mask : array-like of bool, shape (C,)

    Returns
    -------
    dict
        ``members`` (H); ``mean``, ``median`` and ``p90``: the mean, median
        and 90th percentile over test examples x evaluated nodes of the
        members' standard deviation (unbiased, as in GMU; 0 for one member).

    Raises
    ------
    ValueError
        If ``member_probs`` is not 3-D or its last dimension does not match ``eval_mask``.
    """
    p = np.asarray(member_probs, dtype=np.float64)
    mask = np.asarray(eval_mask, dtype=bool)
    if p.ndim != 3 or p.shape[2] != mask.shape[0]:
        raise ValueError(f"member_probs must have shape (H, N, {mask.shape[0]}), got {p.shape}")
    p = p[:, :, mask]
    std = p.std(axis=0, ddof=1) if p.shape[0] > 1 else np.zeros(p.shape[1:])
    return {"members": int(p.shape[0]), "mean": float(std.mean()), "median": float(np.median(std)),
            "p90": float(np.quantile(std, 0.9))}


def epistemic_explanation(scales: pd.DataFrame, spread: Mapping[str, float] | None) -> str:
    """Why a run's epistemic (JS) uncertainty is so small, with the run's numbers (markdown, numbers only).

    Parameters
    ----------
    scales : pandas.DataFrame
        From :func:`uncertainty_scale_table`.
    spread : mapping or None
        From :func:`member_spread`; None when the member probabilities are unavailable.

    Returns
    -------
    str
        Markdown: the run's largest and median epistemic (JS) node mean next to
        the largest predictive entropy, then the three reasons (members agree,
        JS is bounded, JS grows with the square of the spread; docs/method.md,
        *Uncertainty modes*).
    """
    js = scales.loc[UNCERTAINTY_LABELS["epistemic"]]
    pred = scales.loc[UNCERTAINTY_LABELS["predictive"]]
    if spread is not None and spread["members"] < 2:
        return ("This run has a single network: there is no second member to disagree with, so both epistemic "
                "modes are 0.")
    head = (f"On this run the epistemic (JS) node means reach at most **{js['max']:.2g} bits** (median "
            f"{js['median']:.2g}), while predictive entropy reaches {pred['max']:.2g} bits. That is expected:")
    agree = ("they are trained on the same data with the same loss and differ only by their random "
             "start and dropout")
    if spread is not None:
        agree += (f"; their standard deviation is {spread['mean']:.2g} on average over test examples and "
                  f"evaluated nodes (median {spread['median']:.2g}, 90% below {spread['p90']:.2g})")
    return (f"{head}\n\n"
            f"1. **The members agree closely:** {agree}.\n"
            "2. **JS is bounded:** it never exceeds 1 bit, and reaches it only when one member says 0 and another 1.\n"
            "3. **JS shrinks with the square of the spread:** for members close to their mean p̄ it is about "
            "σ² / (4 ln 2 · p̄ (1 − p̄)) bits, so halving the members' spread σ quarters it.\n\n"
            "So compare epistemic values with each other (where do the members disagree most?), not with the "
            "other modes.")


# ------------------------------------------------------------------------------------- evaluated and rare
def node_sets(hierarchy: Hierarchy, train_frequency: np.ndarray, quantile: float = RARE_QUANTILE
              ) -> dict[str, object]:
    """Which nodes are evaluated and which are rare, as the metrics count them.

    Evaluated: :attr:`Hierarchy.eval_mask`, every node but the skipped ones
    (the roots, plus for CLUS data the GO namespace roots). Rare:
    :func:`hmlc_core.metrics.rare_node_mask`, the evaluated nodes whose training
    frequency is at or below the ``quantile`` of the evaluated nodes'
    frequencies (docs/method.md, *Evaluated nodes* and *Rare nodes*).

    Parameters
    ----------
    hierarchy : Hierarchy
    train_frequency : array-like of int, shape (C,)
    quantile : float in (0, 1], default 0.25

    Returns
    -------
    dict
        ``n_nodes``, ``n_evaluated``, ``n_rare`` (int), ``skipped`` (list of
        the non-evaluated node ids), ``cut`` (float, the quantile),
        ``rare_max`` (int, the largest training frequency of a rare node),
        ``rare`` (bool array, shape (C,)).
    """
    freq = np.asarray(train_frequency, dtype=np.float64)
    ev = hierarchy.eval_mask
    rare = rare_node_mask(freq, ev, quantile)
    return {"n_nodes": hierarchy.n_nodes, "n_evaluated": int(ev.sum()), "n_rare": int(rare.sum()),
            "skipped": [n for n, e in zip(hierarchy.nodes, ev, strict=True) if not e],
            "cut": float(np.quantile(freq[ev], quantile)), "rare_max": int(freq[rare].max()), "rare": rare}


def node_sets_text(info: Mapping[str, object], quantile: float = RARE_QUANTILE) -> str:
    """The definitions of evaluated and rare nodes with a run's counts, from :func:`node_sets` (markdown).

    Skipped node ids are escaped for markdown; at most five are named.
    """
    skipped = [str(n) for n in info["skipped"]]  # type: ignore[attr-defined]
    named = ", ".join(f"`{n.replace('`', '')}`" for n in skipped[:5]) + (" …" if len(skipped) > 5 else "")
    cut = float(info["cut"])  # type: ignore[arg-type]
    most = int(info["rare_max"])  # type: ignore[call-overload]
    return (
        f"**Evaluated** nodes are every node except the hierarchy's roots (and, for GO data, the three ontology "
        f"roots): here {info['n_evaluated']:,} of {info['n_nodes']:,}, leaving out {named}. They are the nodes "
        "the loss trains and the metrics average over; an evaluated node without a positive test example still "
        "counts, with recall 0.\n\n"
        f"**Rare** nodes are the evaluated nodes whose training frequency (positive examples in the train split, "
        f"after propagating labels to ancestors) is at or below the {_quantile_name(quantile)} of the evaluated "
        f"nodes' frequencies: here that cut is {cut:g}, so the {info['n_rare']:,} nodes with at most {most} "
        f"training example{'' if most == 1 else 's'} are rare. Ties count, so this can be more than a quarter "
        "of the nodes. *Rare-node recall* is their macro recall."
    )


def rare_node_figure(hierarchy: Hierarchy, train_frequency: np.ndarray, quantile: float = RARE_QUANTILE,
                     height: int = 320) -> go.Figure:
    """Every evaluated node by training frequency (log x) and depth, the rare ones in red, the cut dashed.

    Returns
    -------
    plotly.graph_objects.Figure
        Trace 0: the other evaluated nodes, trace 1: the rare nodes (``name``
        "rare"); ``x`` training frequency, ``y`` depth plus a fixed jitter,
        ``customdata`` rows [node id (escaped), training frequency]. Frequencies of 0 are drawn at 0.5.
    """
    info = node_sets(hierarchy, train_frequency, quantile)
    freq = np.asarray(train_frequency, dtype=np.float64)
    ev = hierarchy.eval_mask
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, hierarchy.n_nodes)
    fig = go.Figure()
    for name, keep, color in (("other evaluated nodes", ev & ~info["rare"], "#4c78a8"),
                              ("rare", info["rare"], _RARE)):
        idx = np.flatnonzero(keep)
        fig.add_trace(go.Scatter(
            x=np.maximum(freq[idx], 0.5).tolist(), y=(hierarchy.depth[idx] + jitter[idx]).round(3).tolist(),
            mode="markers", name=name, customdata=[[html.escape(hierarchy.nodes[i]), int(freq[i])] for i in idx],
            marker={"color": color, "size": 7, "opacity": 0.7},
            hovertemplate="node %{customdata[0]}<br>training frequency %{customdata[1]}<extra>" + name + "</extra>"))
    fig.add_vline(x=max(info["cut"], 0.5), line={"dash": "dash", "color": _GREY},
                  annotation_text=f"{_quantile_name(quantile)}: ≤ {info['cut']:g}", annotation_position="top right")
    fig.update_layout(xaxis=_count_axis(freq[ev]),
                      yaxis={"title": {"text": "depth"}, "dtick": 1, "autorange": "reversed"},
                      legend={"orientation": "h", "y": -0.25, "x": 0})
    return _layout(fig, "Evaluated nodes: rare ones in red", height)


# ---------------------------------------------------------------------------------------------- run story
def _quantile_name(quantile: float) -> str:
    return "bottom quartile" if quantile == 0.25 else f"bottom {quantile:.0%}"


def _recall_sentence(by_depth: dict[int, float]) -> str:
    depths = sorted(by_depth)
    first, last = depths[0], depths[-1]
    if first == last:
        return f"Macro recall is {by_depth[first]:.2f} (every evaluated node sits at depth {first})."
    a, b = by_depth[first], by_depth[last]
    verb = "falls" if b < a else "rises" if b > a else "stays"
    middle = ", ".join(f"{by_depth[d]:.2f} at depth {d}" for d in depths[1:-1])
    path = f" (through {middle})" if middle else ""
    if verb == "stays":
        return f"Macro recall stays at {a:.2f} from depth {first} to depth {last}{path}."
    return f"Macro recall {verb} from {a:.2f} at depth {first} to {b:.2f} at depth {last}{path}."


def run_story(run: Run, quantile: float = RARE_QUANTILE) -> str:
    """Two sentences that tell what a run shows: recall by depth, and how many rare nodes are never found.

    Numbers come from the run's ``node_metrics`` (at the rule named by ``summary["decision"]``,
    threshold 0.5 when absent; :func:`hmlc_core.views.decision.run_under_rule`) through
    :func:`hmlc_core.metrics.recall_by_depth`
    and :func:`hmlc_core.metrics.rare_node_mask`.

    Parameters
    ----------
    run : Run
    quantile : float, default 0.25
        Rare nodes: the evaluated nodes at or below this quantile of training frequency.

    Returns
    -------
    str
        Plain text (digits and words only, safe as markdown). The rare-node
        sentence is left out when the run's training frequencies are unknown.
    """
    nm = run.node_metrics
    ev = nm["evaluated"].to_numpy(dtype=bool)
    if not ev.any():
        return "This run has no evaluated node."
    rule = rule_phrase(str(run.summary.get("decision", f"fixed {PREDICTION_THRESHOLD:g}")))
    rule = ("at " if rule.startswith("threshold") else "under ") + rule
    recall = nm["recall"].to_numpy(dtype=np.float64)
    parts = [_recall_sentence(recall_by_depth(recall, nm["depth"].to_numpy(), ev))]
    freq = nm["train_frequency"].to_numpy(dtype=np.float64)
    if (freq[ev] >= 0).all():
        rare = rare_node_mask(freq, ev, quantile)
        n_rare, n_pos = int(rare.sum()), int((rare & (nm["support"].to_numpy() > 0)).sum())
        n_missed = int((rare & (nm["support"].to_numpy() > 0) & (nm["tp"].to_numpy() == 0)).sum())
        most = int(freq[rare].max())
        what = (f"the {n_rare} rare nodes (the evaluated nodes in the {_quantile_name(quantile)} of training "
                f"frequency: at most {most} training example{'' if most == 1 else 's'})")
        if n_pos == 0:
            parts.append(f"None of {what} has a positive test example.")
        elif n_missed == n_pos:
            parts.append(f"Of {what}, {n_pos} {'has' if n_pos == 1 else 'have'} test positives, and not one of them "
                         f"is found {rule}.")
        else:
            parts.append(f"Of {what}, {n_pos} {'has' if n_pos == 1 else 'have'} test positives; {n_missed} of "
                         f"those {'is' if n_missed == 1 else 'are'} never found {rule}.")
    return " ".join(parts)
