"""Comparing runs trained on the same hierarchy: side-by-side metrics, per-node differences, paired tests.

Pure functions behind the dashboard's Compare page. Runs are passed as a
mapping from a display name (the run chooser's key) to a loaded
:class:`~hmlc_core.runs.Run`, in display order. Two-run views take a
*baseline* ``base`` and another run ``other``; differences are always
``other - base``.

Per-node views use the conventions of :mod:`hmlc_core.metrics` (docs/method.md, *Metrics*):
threshold 0.5 on the ensemble-mean probability, and only *evaluated* nodes
(roots skipped) that have at least one positive test sample in both runs are
compared (recall, F1 and AP are undefined, or 0 by convention, without
positives).
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from hmlc_core.views import explore
from hmlc_core.hierarchy import Hierarchy

if TYPE_CHECKING:
    from hmlc_core.runs import Run

__all__ = [
    "METRICS",
    "TESTED_METRICS",
    "PAIRED_TEST_NOTE",
    "DEMO_PAIR",
    "default_pair",
    "check_same_hierarchy",
    "headline_table",
    "headline_text",
    "data_read",
    "config_differences",
    "recall_by_depth_figure",
    "recall_vs_frequency_figure",
    "node_difference",
    "difference_sunburst",
    "gained_and_lost",
    "paired_tests",
    "paired_tests_text",
]

METRICS: dict[str, str] = {"recall": "recall", "F1": "f1", "average precision": "average_precision",
                           "precision": "precision"}
"""User-facing per-node metric -> ``Run.node_metrics`` column (the metrics a difference can be taken of)."""

TESTED_METRICS: tuple[str, ...] = ("recall", "F1", "average precision")
"""The per-node metrics :func:`paired_tests` tests by default."""

PAIRED_TEST_NOTE = (
    "Indicative only: the test treats nodes as independent pairs, but they are not. A child's positive test "
    "samples are a subset of its parent's, every node is scored on the same test samples by the same model, and "
    "ensemble members share their training data, so the p-value overstates the evidence. For a claim, repeat "
    "both configurations over several seeds and test the seeds (`python -m hmlc_core seeds`, then "
    "`python -m hmlc_core wilcoxon`)."
)
"""Why the node-level paired test is only indicative (shown next to its results)."""

_RUN_COLORS = ("#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2", "#9d755d", "#bab0ac")


def _color(i: int) -> str:
    return _RUN_COLORS[i % len(_RUN_COLORS)]


_LEGEND_CHARS = 40


def _legend_name(name: str) -> str:
    """A run name for a legend: HTML-escaped, and cut in the middle to 40 characters (a long one is clipped)."""
    if len(name) > _LEGEND_CHARS:
        keep = _LEGEND_CHARS - 1
        name = f"{name[:keep - keep // 3]}…{name[-(keep // 3):]}"
    return html.escape(name)


# ---------------------------------------------------------------- choice
DEMO_PAIR: tuple[str, str] = (explore.DEMO_KEY, explore.DEMO_WEIGHTED_KEY)
"""The bundled demo pair's run chooser keys: (plain baseline, weighted run compared with it)."""


def default_pair(current: str | None, datasets: Mapping[str, str | None],
                 demo_pair: tuple[str, str] = DEMO_PAIR) -> list[str]:
    """The runs the Compare page opens on, baseline first.

    Parameters
    ----------
    current : str or None
        The sidebar's run key; None or a key not in ``datasets`` means the
        first key.
    datasets : mapping of str to (str or None)
        Every run chooser key, in the chooser's order -> the run's dataset name
        (None when it could not be read).
    demo_pair : (str, str), default :data:`DEMO_PAIR`
        (plain, weighted) keys of the bundled demo pair.

    Returns
    -------
    list of str
        ``list(demo_pair)`` when ``current`` is one of the demo pair and both
        are listed; otherwise ``current`` and the first other run of the same
        dataset in chooser order; ``[current]`` alone when no other run has its
        dataset (or its dataset is unknown), and ``[]`` when ``datasets`` is
        empty.
    """
    keys = list(datasets)
    if not keys:
        return []
    if current not in datasets:
        current = keys[0]
    if current in demo_pair and all(k in datasets for k in demo_pair):
        return list(demo_pair)
    dataset = datasets[current]
    if dataset is None:
        return [current]
    return [current] + [k for k in keys if k != current and datasets[k] == dataset][:1]


# ---------------------------------------------------------------- checks
def check_same_hierarchy(runs: Mapping[str, Run]) -> Hierarchy:
    """Check that all runs share one hierarchy and return it.

    Two hierarchies are the same when they have the same nodes in the same
    column order, the same parent -> child edges and the same evaluated
    nodes, so per-node arrays line up.

    Parameters
    ----------
    runs : mapping of str to Run
        Display name -> run; at least one.

    Returns
    -------
    Hierarchy
        The first run's hierarchy.

    Raises
    ------
    ValueError
        If ``runs`` is empty, or a run's hierarchy differs from the first
        one's; the message names both runs and how they differ.
    """
    if not runs:
        raise ValueError("no run to compare")
    items = list(runs.items())
    first_name, first = items[0]
    ref = first.hierarchy
    ref_edges = set(ref.graph.edges)
    for name, run in items[1:]:
        h = run.hierarchy
        where = f"runs {first_name!r} ({first.summary.get('dataset', '?')}) and {name!r} " \
                f"({run.summary.get('dataset', '?')}) have different hierarchies"
        if h.nodes != ref.nodes:
            only_first = sorted(set(ref.nodes) - set(h.nodes))
            only_other = sorted(set(h.nodes) - set(ref.nodes))
            detail = f"{ref.n_nodes} vs {h.n_nodes} nodes"
            if only_first:
                detail += f"; only in {first_name!r}: {', '.join(only_first[:3])}" + ("..." if len(only_first) > 3
                                                                                      else "")
            if only_other:
                detail += f"; only in {name!r}: {', '.join(only_other[:3])}" + ("..." if len(only_other) > 3
                                                                                else "")
            if not only_first and not only_other:
                detail += " (same nodes in another order)"
            raise ValueError(f"{where}: {detail}")
        edges = set(h.graph.edges)
        if edges != ref_edges:
            diff = sorted(edges ^ ref_edges)
            raise ValueError(f"{where}: {len(diff)} edges differ, e.g. {diff[0][0]} -> {diff[0][1]}")
        if not np.array_equal(h.eval_mask, ref.eval_mask):
            raise ValueError(f"{where}: they evaluate different nodes ({int(ref.eval_mask.sum())} vs "
                             f"{int(h.eval_mask.sum())})")
    return ref


# ----------------------------------------------------------- side by side
_HEADLINE_DIGITS: dict[str, int | None] = {
    "micro AUPRC": 3, "macro precision": 3, "macro recall": 3, "macro F1": 3, "rare-node recall": 3,
    "nodes found (recall > 0)": 0, "nodes with test positives": 0, "coherence violations": 0, "heads": 0,
    "epochs": 0, "seconds per epoch": None,  # None: 3 significant digits (a fast epoch takes 0.02 s)
}
_HEADLINE_ROWS = tuple(_HEADLINE_DIGITS)


def headline_table(runs: Mapping[str, Run]) -> pd.DataFrame:
    """Headline test metrics of each run side by side.

    Rows (index, in this order): ``micro AUPRC``, ``macro precision``,
    ``macro recall``, ``macro F1`` (from each run's summary; docs/method.md, *Metrics*),
    ``rare-node recall`` (macro recall of the evaluated nodes in the
    bottom quartile of training frequency, docs/method.md, *Rare nodes*;
    :func:`hmlc_core.metrics.rare_node_recall`), ``nodes found (recall >
    0)`` and ``nodes with test positives`` (counts of evaluated nodes),
    ``coherence violations``, ``heads``, ``epochs`` (completed) and
    ``seconds per epoch``.

    Parameters
    ----------
    runs : mapping of str to Run

    Returns
    -------
    pandas.DataFrame of float64
        One column per run (its display name), in the mapping's order.
        Missing summary fields are NaN.
    """
    columns: dict[str, list[float]] = {}
    for name, run in runs.items():
        s = run.summary
        nm = run.node_metrics
        evaluated = nm["evaluated"].to_numpy(dtype=bool)
        recall = nm["recall"].to_numpy(dtype=np.float64)
        positives = nm["support"].to_numpy() > 0

        def get(key: str, summary: Mapping[str, Any] = s) -> float:
            value = summary.get(key)
            return float(value) if value is not None else math.nan

        columns[name] = [
            get("auprc_micro"), get("macro_precision"), get("macro_recall"), get("macro_f1"),
            run.rare_node_recall(),
            float((evaluated & (recall > 0)).sum()), float((evaluated & positives).sum()),
            get("coherence_violations"), float(run.config.heads), get("epochs_completed"), get("seconds_per_epoch"),
        ]
    return pd.DataFrame(columns, index=pd.Index(_HEADLINE_ROWS, name="metric"), dtype=np.float64)


def headline_text(table: pd.DataFrame, decisions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """:func:`headline_table` written for display: each row with its own number of decimals.

    Metrics in [0, 1] get 3 decimals, counts none, seconds 3 significant
    digits (at least one decimal: ``0.0177``, ``0.177``, ``1.77``, ``17.7``,
    ``177.0``); NaN is ``"n/a"``. Rows not made by :func:`headline_table` get
    3 decimals.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`headline_table` output.
    decisions : mapping of str to str, optional
        Column (run display name) -> the label of the decision rule its metrics were computed under
        (``summary["decision"]``, e.g. ``"per-node (m = 5)"``): shown as a first row ``decision rule``,
        so a table of runs under different rules says so. Columns without an entry read ``"n/a"``.

    Returns
    -------
    pandas.DataFrame of str
        Same columns as ``table``; its index, after ``decision rule`` when ``decisions`` is given.
    """
    out = table.astype(object)
    for row in table.index:
        digits = _HEADLINE_DIGITS.get(str(row), 3)
        out.loc[row] = [_number_text(v, digits) for v in table.loc[row].to_numpy(float)]
    if decisions is None:
        return out
    first = pd.DataFrame([[str(decisions.get(c, "n/a")) for c in out.columns]], columns=out.columns,
                         index=pd.Index(["decision rule"], name=out.index.name))
    return pd.concat([first, out])


def _number_text(value: float, digits: int | None) -> str:
    """``value`` with ``digits`` decimals, or with 3 significant digits (at least 1 decimal) when None."""
    if not math.isfinite(value):
        return "n/a"
    if digits is None:
        digits = 1 if value == 0 else max(1, 2 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}"


def data_read(run: Run) -> str:
    """What data a run was trained on, as recorded in its ``config.json``.

    The ``data_dir`` option alone does not say it: unset, it meant
    ``$HMLC_DATA_DIR`` at training time, and the synthetic dataset ignores
    it. The run records the files it read (``dataset.source``, split ->
    path), so this is the folder holding them, or the synthetic generator's
    tag (``"synthetic(seed=0)"``).

    Returns
    -------
    str
        The common folder of the recorded data files; the recorded tags of a
        generated dataset, joined with ", "; for a run that recorded no files,
        its ``data_dir`` option, or ``"$HMLC_DATA_DIR (not recorded)"``.
    """
    source = {str(k): str(v) for k, v in (run.dataset_info.get("source") or {}).items()}
    if source and all(v.lower().endswith(".arff") for v in source.values()):
        return os.path.commonpath([str(PurePath(v).parent) for v in source.values()])
    if source or run.config.dataset == "synthetic":
        return ", ".join(sorted(set(source.values()))) or run.config.dataset
    return str(run.config.data_dir) if run.config.data_dir else "$HMLC_DATA_DIR (not recorded)"


def config_differences(runs: Mapping[str, Run]) -> pd.DataFrame:
    """The training options that differ between the runs (:meth:`TrainConfig.to_dict`).

    The ``data_dir`` option is replaced by ``data read`` (:func:`data_read`):
    runs that read the same files do not differ, whether the folder came
    from ``--data-dir`` or from ``$HMLC_DATA_DIR``.

    Returns
    -------
    pandas.DataFrame of str
        Indexed by option name (sorted), one column per run; values written
        with ``str`` (``None`` for unset). Empty (no rows) when every option
        is equal.
    """
    configs = {name: {**{k: v for k, v in run.config.to_dict().items() if k != "data_dir"},
                      "data read": data_read(run)} for name, run in runs.items()}
    keys = sorted(set().union(*(c.keys() for c in configs.values()))) if configs else []
    rows = {}
    for key in keys:
        values = [c.get(key) for c in configs.values()]
        if any(v != values[0] for v in values[1:]):
            rows[key] = [str(v) for v in values]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(configs))
    return table.rename_axis("option")


# ------------------------------------------------------------------ figures
def recall_by_depth_figure(runs: Mapping[str, Run], height: int = 360) -> go.Figure:
    """Macro recall by depth, one line per run (each run's ``summary["recall_by_depth"]``).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Scatter`` (lines and markers) per run, named after it
        (HTML-escaped, a long name cut to 40 characters; the full name is the
        trace's ``meta[0]``, shown in the hover); ``x`` are depths (int,
        increasing), ``y`` macro recalls in [0, 1].
    """
    fig = go.Figure()
    for i, (name, run) in enumerate(runs.items()):
        rbd = {int(k): float(v) for k, v in run.summary.get("recall_by_depth", {}).items()}
        depths = sorted(rbd)
        fig.add_trace(go.Scatter(
            x=depths, y=[rbd[d] for d in depths], name=_legend_name(name), meta=[html.escape(name)],
            mode="lines+markers", line={"color": _color(i)},
            hovertemplate="%{meta[0]}<br>depth %{x}<br>macro recall %{y:.3f}<extra></extra>",
        ))
    fig.update_layout(height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
                      xaxis={"title": {"text": "depth"}, "dtick": 1},
                      yaxis={"title": {"text": "macro recall"}, "rangemode": "tozero"},
                      legend={"orientation": "h", "y": -0.2},
                      title={"text": "Macro recall by depth", "x": 0, "font": {"size": 15}})
    return fig


def _frequency_points(run: Run) -> pd.DataFrame:
    """Evaluated nodes with test positives and a known training frequency: train_frequency, recall."""
    nm = run.node_metrics
    keep = nm["evaluated"].astype(bool) & (nm["support"] > 0) & (nm["train_frequency"] >= 0)
    return nm.loc[keep, ["train_frequency", "recall"]]


def recall_vs_frequency_figure(runs: Mapping[str, Run], n_bins: int = 10, height: int = 420) -> go.Figure:
    """Per-node recall against training frequency (log x), each run as points plus a binned mean line.

    Only evaluated nodes with at least one positive test sample are drawn.
    ``x`` is ``1 + training frequency`` so that nodes never seen in training
    sit at 1 on the log axis. The line is the mean recall in ``n_bins``
    logarithmically spaced bins of ``x`` shared by all runs
    (``scipy.stats.binned_statistic``), drawn at each bin's geometric centre;
    empty bins are left out.

    Parameters
    ----------
    runs : mapping of str to Run
    n_bins : int, default 10
        Number of frequency bins (>= 1).
    height : int, default 420

    Returns
    -------
    plotly.graph_objects.Figure
        Per run, a ``go.Scattergl`` of nodes (``x`` = 1 + frequency,
        ``y`` = recall, ``text`` = escaped node ids) and a ``go.Scatter`` line
        of bin means, sharing a legend group, named as in
        :func:`recall_by_depth_figure`; log x axis.

    Raises
    ------
    ValueError
        If ``n_bins < 1``.
    """
    from scipy.stats import binned_statistic

    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    points = {name: _frequency_points(run) for name, run in runs.items()}
    all_x = np.concatenate([1.0 + p["train_frequency"].to_numpy(dtype=np.float64) for p in points.values()] or
                           [np.ones(1)])
    hi = float(all_x.max()) if all_x.size else 2.0
    edges = np.geomspace(1.0, hi if hi > 1 else 2.0, n_bins + 1)
    edges[-1] = np.nextafter(edges[-1], np.inf)  # the largest value falls inside the last bin
    centres = np.sqrt(edges[:-1] * edges[1:])
    fig = go.Figure()
    for i, (name, p) in enumerate(points.items()):
        x = 1.0 + p["train_frequency"].to_numpy(dtype=np.float64)
        y = p["recall"].to_numpy(dtype=np.float64)
        fig.add_trace(go.Scattergl(
            x=x, y=y, text=[html.escape(n) for n in p.index], mode="markers",
            name=f"{_legend_name(name)} (nodes)", legendgroup=name, meta=[html.escape(name)],
            showlegend=False, marker={"size": 5, "opacity": 0.35, "color": _color(i)},
            hovertemplate="%{meta[0]}<br>%{text}<br>training frequency %{customdata}<br>recall %{y:.3f}<extra></extra>",
            customdata=p["train_frequency"].to_numpy(),
        ))
        if x.size:
            means, _, _ = binned_statistic(x, y, statistic="mean", bins=edges)
            counts, _, _ = binned_statistic(x, y, statistic="count", bins=edges)
            full = counts > 0
            fig.add_trace(go.Scatter(
                x=centres[full], y=means[full], customdata=counts[full], name=_legend_name(name),
                legendgroup=name, meta=[html.escape(name)], mode="lines+markers",
                line={"color": _color(i), "width": 2.5},
                hovertemplate=("%{meta[0]}<br>1 + frequency ≈ %{x:.0f}<br>mean recall %{y:.3f}"
                               "<br>%{customdata} nodes<extra></extra>"),
            ))
    fig.update_layout(height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
                      xaxis={"title": {"text": "1 + training frequency (log)"}, "type": "log"},
                      yaxis={"title": {"text": "recall"}, "range": [-0.03, 1.03]},
                      legend={"orientation": "h", "y": -0.2},
                      title={"text": "Recall vs training frequency (points: nodes; lines: binned means)", "x": 0,
                             "font": {"size": 15}})
    return fig


# -------------------------------------------------------- per-node difference
def _metric_column(metric: str) -> str:
    try:
        return METRICS[metric]
    except KeyError:
        raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}") from None


def node_difference(base: Run, other: Run, metric: str = "recall") -> pd.DataFrame:
    """A per-node metric in two runs and its difference ``other - base``.

    Parameters
    ----------
    base, other : Run
        Runs on the same hierarchy (see :func:`check_same_hierarchy`).
    metric : str, default "recall"
        A key of :data:`METRICS`.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id in column order; columns ``depth``,
        ``train_frequency`` and ``support`` (of ``other``), ``base``,
        ``other``, ``difference`` (float) and ``valid`` (bool: evaluated,
        at least one positive test sample in both runs, both values finite).
        ``difference`` is NaN where not valid.

    Raises
    ------
    ValueError
        If the metric is unknown or the hierarchies differ.
    """
    column = _metric_column(metric)
    check_same_hierarchy({"base": base, "other": other})
    a, b = base.node_metrics, other.node_metrics
    va = a[column].to_numpy(dtype=np.float64)
    vb = b[column].to_numpy(dtype=np.float64)
    valid = (a["evaluated"].to_numpy(dtype=bool) & (a["support"].to_numpy() > 0) & (b["support"].to_numpy() > 0)
             & np.isfinite(va) & np.isfinite(vb))
    return pd.DataFrame({
        "depth": b["depth"].to_numpy(),
        "train_frequency": b["train_frequency"].to_numpy(),
        "support": b["support"].to_numpy(),
        "base": va,
        "other": vb,
        "difference": np.where(valid, vb - va, np.nan),
        "valid": valid,
    }, index=b.index.copy())


def difference_sunburst(base: Run, other: Run, metric: str = "recall", names: Sequence[str] = ("base", "other"),
                        maxdepth: int | None = None, height: int = 640, root: str | None = None) -> go.Figure:
    """The hierarchy sunburst coloured by the per-node difference ``other - base`` (:func:`node_difference`).

    A diverging scale centred at 0 (:func:`hmlc_core.views.explore.diverging_color_spec`):
    blue where ``other`` is better, red where it is worse, white for no
    change, grey for nodes without a comparable value. The layout is
    :func:`hmlc_core.views.explore.hierarchy_sunburst` (first-parent spanning tree
    for a DAG); above :data:`hmlc_core.views.explore.SUNBURST_MAX_SECTORS` nodes it carries only the
    sectors drawn around ``root`` (``prune``), so a page draws it as a new chart per centre
    (:func:`hmlc_core.views.explore.sunburst_chart_key`). The colour bar's title is only the metric (``"Δ recall"``), so
    the plot keeps its size whatever the run names' length; the names appear
    in the hover only, HTML-escaped, through the trace's ``meta``.

    Parameters
    ----------
    base, other : Run
    metric : str, default "recall"
        A key of :data:`METRICS`.
    names : pair of str
        Display names of ``base`` and ``other`` (hover only).
    maxdepth : int, optional
        Rings drawn at once; default
        :func:`hmlc_core.views.explore.sunburst_rings`.
    height : int, default 640
    root : str, optional
        Start zoomed into this node (plotly's ``level``; see
        :func:`hmlc_core.views.explore.sunburst_centre`).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Sunburst``; ``marker.colors`` are the differences (grey
        band value where not valid), ``customdata`` per node: depth, training
        frequency, test support, base value, other value, difference;
        ``meta`` the two names, escaped.

    Raises
    ------
    ValueError
        If the metric is unknown, the hierarchies differ or ``names`` is not a pair.
    KeyError
        If ``root`` is not a node of the hierarchy.
    """
    if len(names) != 2:
        raise ValueError(f"names must be a pair (base, other), got {names!r}")
    diff = node_difference(base, other, metric)
    short = "AP" if metric == "average precision" else metric
    spec = explore.diverging_color_spec(diff["difference"].to_numpy(), diff["valid"].to_numpy(), f"Δ {short}")
    custom = explore.hover_columns(diff[["depth", "train_frequency", "support", "base", "other", "difference"]])
    hover = ("<b>%{label}</b><br>depth %{customdata[0]} · training frequency %{customdata[1]}"
             " · test support %{customdata[2]}"
             f"<br>{metric}: " + "%{meta[0]} %{customdata[3]:.3f} → %{meta[1]} %{customdata[4]:.3f}"
             "<br>difference %{customdata[5]:+.3f}<extra></extra>")
    return explore.hierarchy_sunburst(base.hierarchy, spec, custom, hover, maxdepth=maxdepth, root=root,
                                      height=height, uirevision=f"{base.path}|{other.path}",
                                      meta=[html.escape(str(n)) for n in names],
                                      prune=base.hierarchy.n_nodes > explore.SUNBURST_MAX_SECTORS)


def gained_and_lost(base: Run, other: Run, metric: str = "recall",
                    threshold: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes ``other`` gains and loses compared with ``base``.

    A node is *gained* when its metric is at most ``threshold`` in ``base``
    and above it in ``other`` (with the default 0: missed entirely by
    ``base``, found at least once by ``other``), and *lost* the other way
    round. Only valid nodes of :func:`node_difference` count.

    Parameters
    ----------
    base, other : Run
    metric : str, default "recall"
        A key of :data:`METRICS`.
    threshold : float, default 0.0
        In [0, 1).

    Returns
    -------
    gained, lost : pandas.DataFrame
        Rows of :func:`node_difference` (without ``valid``); gained sorted
        by decreasing difference, lost by increasing difference (largest
        change first), ties by node id.

    Raises
    ------
    ValueError
        If the metric is unknown, the hierarchies differ or ``threshold`` is
        outside [0, 1).
    """
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold}")
    diff = node_difference(base, other, metric)
    valid = diff["valid"].to_numpy()
    a, b = diff["base"].to_numpy(), diff["other"].to_numpy()
    columns = ["depth", "train_frequency", "support", "base", "other", "difference"]
    gained = diff.loc[valid & (a <= threshold) & (b > threshold), columns]
    lost = diff.loc[valid & (a > threshold) & (b <= threshold), columns]
    gained = gained.rename_axis("node").reset_index().sort_values(["difference", "node"], ascending=[False, True])
    lost = lost.rename_axis("node").reset_index().sort_values(["difference", "node"], ascending=[True, True])
    return gained.set_index("node"), lost.set_index("node")


# --------------------------------------------------------------- paired test
def paired_tests(base: Run, other: Run, metrics: Sequence[str] = TESTED_METRICS) -> pd.DataFrame:
    """Wilcoxon signed-rank test across nodes of ``other`` against ``base``, per metric.

    The pairs are the nodes' values in the two runs, over the valid nodes of
    :func:`node_difference` (evaluated, with test positives). Uses
    ``scipy.stats.wilcoxon(other, base)`` (two-sided; zero differences are
    dropped, ``zero_method="wilcox"``). As in
    :func:`hmlc_core.experiments.paired_wilcoxon`, when every difference is 0
    the statistic is NaN and the p-value 1. Only indicative: see
    :data:`PAIRED_TEST_NOTE`.

    Parameters
    ----------
    base, other : Run
    metrics : sequence of str
        Keys of :data:`METRICS`.

    Returns
    -------
    pandas.DataFrame
        Indexed by metric; columns ``n_pairs`` (int, valid nodes),
        ``n_nonzero`` (int, pairs with a non-zero difference, the ones the
        test ranks), ``mean_base``, ``mean_other``, ``median_difference``
        (over all pairs), ``statistic`` (Wilcoxon's W) and ``p_value`` (in
        [0, 1]; NaN without any pair).

    Raises
    ------
    ValueError
        If a metric is unknown or the hierarchies differ.
    """
    from scipy.stats import wilcoxon

    rows = []
    for metric in metrics:
        diff = node_difference(base, other, metric)
        pairs = diff[diff["valid"]]
        a, b = pairs["base"].to_numpy(), pairs["other"].to_numpy()
        d = b - a
        n_nonzero = int(np.count_nonzero(d))
        if len(pairs) == 0:
            statistic, p_value = math.nan, math.nan
        elif n_nonzero == 0:
            statistic, p_value = math.nan, 1.0
        else:
            result = wilcoxon(b, a, zero_method="wilcox")
            statistic, p_value = float(result.statistic), float(result.pvalue)
        rows.append({
            "metric": metric, "n_pairs": len(pairs), "n_nonzero": n_nonzero,
            "mean_base": float(a.mean()) if len(a) else math.nan,
            "mean_other": float(b.mean()) if len(b) else math.nan,
            "median_difference": float(np.median(d)) if len(d) else math.nan,
            "statistic": statistic, "p_value": p_value,
        })
    columns = ["metric", "n_pairs", "n_nonzero", "mean_base", "mean_other", "median_difference", "statistic",
               "p_value"]
    return pd.DataFrame(rows, columns=columns).set_index("metric")


PAIRED_TEST_FORMATS = {"n_pairs": "{:.0f}", "n_nonzero": "{:.0f}", "mean_base": "{:.4f}", "mean_other": "{:.4f}",
                       "median_difference": "{:+.4f}", "statistic": "{:.1f}", "p_value": "{:.3g}"}
"""How :func:`paired_tests_text` writes each column of :func:`paired_tests`."""


def paired_tests_text(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`paired_tests` written for display, a missing value (no pair, or no difference) as ``"n/a"``.

    ``st.dataframe`` draws a missing number as "None" whatever the column
    format; the rest of the dashboard says "n/a".

    Returns
    -------
    pandas.DataFrame of str
        Same index and columns as ``table``; the columns of
        :data:`PAIRED_TEST_FORMATS` written with those formats.
    """
    out = table.astype(object)
    for column, fmt in PAIRED_TEST_FORMATS.items():
        if column in out.columns:
            out[column] = [fmt.format(v) if math.isfinite(v) else "n/a" for v in table[column].to_numpy(float)]
    return out
