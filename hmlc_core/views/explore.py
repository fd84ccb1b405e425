"""Views of a saved run for the dashboard: figures, tables and small graph helpers.

Everything here is pure and Streamlit-free, so the pages stay thin and the
logic can be unit-tested: the pages only call these functions and lay out the
results.

Main views
----------
- :func:`sunburst_figure`: the whole label hierarchy as a plotly sunburst (for a
  DAG, its first-parent spanning tree), coloured by a per-node quantity.
  :func:`hierarchy_sunburst` draws the same sunburst from any :class:`ColorSpec`
  (the Compare page colours it by a per-node difference, :func:`diverging_color_spec`).
  :func:`sunburst_rings` decides how many rings are drawn at once and
  :func:`sunburst_centre` which sector a selected node centres it on; above
  that many nodes, :func:`sunburst_sectors` keeps only the sectors that can be
  drawn around the centre (a 100k-node hierarchy sends about a hundred).
- :func:`search_nodes`: the node search box of hierarchies too large for a
  selectbox (:data:`NODE_SEARCH_MIN_NODES`).
- :func:`neighbourhood` and :func:`pyvis_html`: a small local subgraph around one
  node (ancestors, children, siblings) drawn with pyvis/vis-network.
- :func:`recall_by_depth_figure`, :func:`node_table`, :func:`relatives_table`,
  :func:`headline_metrics`: summary chart and tables; :func:`na_text` writes a
  table's missing values as "n/a" for display.
- The node card: :func:`node_facts`, :func:`member_probs_figure` (each ensemble
  member's probabilities on the node's positive test samples) and
  :func:`uncertainty_by_mode`.
- :func:`node_from_selection`: turns a plotly selection event into a node id
  (the sunburst click handler).
- :func:`discover_runs`, :func:`resolve_run_key`: the run chooser's list.

Colour quantities
-----------------
:data:`COLOR_QUANTITIES` maps user-facing names to ``Run.node_metrics``
columns. :func:`color_values` gives the numbers the figures colour by:

- ``training frequency`` is shown as ``log10(1 + frequency)`` (the colour bar is
  labelled in counts);
- ``recall``, ``precision``, ``F1`` and ``average precision`` are the column
  values, except that nodes that are not evaluated or have no positive test
  sample get :data:`NO_DATA` (drawn grey);
- ``ensemble uncertainty`` is the ``uncertainty`` column, the mean per-node
  uncertainty of the run's display mode (``summary["uncertainty_mode"]``).

Any non-finite value is also drawn grey.

Imports
-------
This module never imports torch, and imports :mod:`hmlc_core.runs` only for
type checking and in :func:`discover_runs`, so a page can import it cheaply;
the uncertainty mode names come from the torch-free :mod:`hmlc_core.config`.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from hmlc_core.config import UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES
from hmlc_core.hierarchy import Hierarchy

if TYPE_CHECKING:
    from hmlc_core.runs import Run

__all__ = [
    "COLOR_QUANTITIES",
    "DEFAULT_COLOR",
    "NO_DATA",
    "GREY",
    "THRESHOLD",
    "MAX_STRIP_POINTS",
    "DIVERGING_SCALE",
    "ColorSpec",
    "make_color_spec",
    "color_spec",
    "diverging_color_spec",
    "color_values",
    "color_title",
    "uncertainty_label",
    "hover_columns",
    "SUNBURST_MAX_SECTORS",
    "sunburst_rings",
    "sunburst_centre",
    "sunburst_sectors",
    "sunburst_chart_key",
    "first_parent_tree",
    "FirstParentTree",
    "NODE_SEARCH_MIN_NODES",
    "NODE_SEARCH_LIMIT",
    "DETAILS_AFTER_DRAW_MIN_NODES",
    "search_nodes",
    "sunburst_figure",
    "hierarchy_sunburst",
    "neighbourhood",
    "lineage",
    "node_hover_text",
    "pyvis_html",
    "vis_tooltip_text",
    "recall_by_depth_figure",
    "node_table",
    "relatives_table",
    "headline_metrics",
    "node_facts",
    "positive_member_probs",
    "member_probs_figure",
    "uncertainty_by_mode",
    "node_from_selection",
    "node_from_row_selection",
    "na_text",
    "threshold_text",
    "DEMO_KEY",
    "DEMO_WEIGHTED_KEY",
    "discover_runs",
    "resolve_run_key",
]

log = logging.getLogger(__name__)

COLOR_QUANTITIES: dict[str, str] = {
    "recall": "recall",
    "training frequency": "train_frequency",
    "ensemble uncertainty": "uncertainty",
    "precision": "precision",
    "F1": "f1",
    "average precision": "average_precision",
}
"""User-facing colour quantity -> ``Run.node_metrics`` column.

``ensemble uncertainty`` is the run's display mode; :func:`uncertainty_label`
gives its user-facing name (``UNCERTAINTY_LABELS``).
"""

DEFAULT_COLOR = "recall"
"""The colour quantity a page starts with."""

NO_DATA = -0.1
"""Colour value of nodes without data for a test metric (not evaluated, or no
positive test sample). It lies below the metric's range [0, 1], in the grey band
of the colour scale."""

GREY = "rgb(200, 200, 200)"
"""Colour of nodes without data."""

THRESHOLD = 0.5
"""Decision threshold on the ensemble-mean probability behind every precision/recall/F1 (docs/method.md, *Metrics*)."""

_TEST_METRICS = frozenset({"recall", "precision", "f1", "average_precision"})


_SCALES: dict[str, str] = {
    "recall": "RdYlBu",  # red = missed, blue = found
    "precision": "RdYlBu",
    "f1": "RdYlBu",
    "average_precision": "RdYlBu",
    "train_frequency": "Viridis",  # dark = rare
    "uncertainty": "YlOrRd",  # red = uncertain
}

DIVERGING_SCALE = "RdBu"
"""Colour scale of differences: red below 0 (worse), white at 0, blue above 0 (better)."""


# ---------------------------------------------------------------- colours
@dataclass(frozen=True)
class ColorSpec:
    """How a figure colours the hierarchy's nodes (built by :func:`make_color_spec`).

    Attributes
    ----------
    values : numpy.ndarray of float64, shape (C,)
        Colour value of each node, in the hierarchy's column order. Nodes
        without data hold a value in the grey band below ``lo``.
    valid : numpy.ndarray of bool, shape (C,)
        Nodes that have a value to show (the others are drawn :data:`GREY`).
    scale : str
        Named plotly colour scale of the data range ``[lo, hi]``.
    lo, hi : float
        Data range mapped onto ``scale``.
    cmin : float
        Lower end of the whole colour bar: ``lo`` without missing nodes, else
        the grey band's value below ``lo``.
    colorscale : list of [float, str]
        Plotly colour scale over ``[cmin, hi]``: grey up to ``lo``, then
        ``scale`` sampled at 11 points; positions start at 0 and end at
        exactly 1 (plotly.js rejects anything else).
    tickvals : list of float
    ticktext : list of str
        Colour-bar ticks (``"n/a"`` marks the grey band).
    title : str
        Colour-bar title (plotly's HTML subset, e.g. ``<br>``).
    """

    values: np.ndarray
    valid: np.ndarray
    scale: str
    lo: float
    hi: float
    cmin: float
    colorscale: list[list[Any]]
    tickvals: list[float]
    ticktext: list[str]
    title: str


def make_color_spec(values: np.ndarray, valid: np.ndarray, scale: str, lo: float, hi: float, title: str,
                    tickvals: Sequence[float] | None = None, ticktext: Sequence[str] | None = None) -> ColorSpec:
    """A :class:`ColorSpec` mapping ``[lo, hi]`` onto ``scale``, with a grey band below ``lo`` for missing nodes.

    Parameters
    ----------
    values : array-like of float, shape (C,)
        Per-node values; entries where ``valid`` is False are ignored.
    valid : array-like of bool, shape (C,)
        Nodes that have a value. Non-finite values are treated as invalid too.
    scale : str
        A named plotly colour scale (``"RdYlBu"``, ``"Viridis"``, ``"RdBu"``...).
    lo, hi : float
        The data range; values outside it get the end colours.
    title : str
        Colour-bar title.
    tickvals, ticktext : sequence, optional
        Colour-bar ticks; by default 5 evenly spaced values from ``lo`` to
        ``hi`` written with 2 significant digits. An ``"n/a"`` tick is added
        in the grey band when a node is missing.

    Returns
    -------
    ColorSpec
        Missing nodes get the value ``lo - 0.1 (hi - lo)`` (:data:`NO_DATA`
        for the range [0, 1]).

    Raises
    ------
    ValueError
        If ``values`` and ``valid`` differ in shape, or ``hi <= lo``.
    """
    raw = np.asarray(values, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool)
    if raw.shape != ok.shape or raw.ndim != 1:
        raise ValueError(f"values {raw.shape} and valid {ok.shape} must be equal 1-D shapes")
    if not hi > lo:
        raise ValueError(f"the colour range needs hi > lo, got lo={lo}, hi={hi}")
    ok = ok & np.isfinite(raw)
    missing = lo - 0.1 * (hi - lo)
    has_missing = not bool(ok.all())
    cmin = missing if has_missing else lo
    band = (lo - cmin) / (hi - cmin)
    n_samples = 11
    samples = sample_colorscale(scale, [i / (n_samples - 1) for i in range(n_samples)])
    colorscale: list[list[Any]] = [[0.0, GREY], [band, GREY]] if has_missing else []
    colorscale += [[band + (1 - band) * i / (n_samples - 1), c] for i, c in enumerate(samples)]
    colorscale[-1][0] = 1.0  # plotly.js rejects a scale whose last stop is not exactly 1 (rounding)
    if tickvals is None:
        tickvals = [float(v) for v in np.linspace(lo, hi, 5)]
        ticktext = [f"{v:.2g}" for v in tickvals]
    elif ticktext is None or len(ticktext) != len(tickvals):
        raise ValueError("give ticktext with one label per tick value")
    tickvals, ticktext = list(tickvals), list(ticktext)
    if has_missing:
        tickvals = [(cmin + lo) / 2] + tickvals
        ticktext = ["n/a"] + ticktext
    return ColorSpec(values=np.where(ok, raw, missing), valid=ok, scale=scale, lo=float(lo), hi=float(hi),
                     cmin=float(cmin), colorscale=colorscale, tickvals=tickvals, ticktext=ticktext, title=title)


def diverging_color_spec(values: np.ndarray, valid: np.ndarray, title: str, limit: float | None = None) -> ColorSpec:
    """A :class:`ColorSpec` for signed differences: :data:`DIVERGING_SCALE` centred at 0.

    The range is symmetric, ``[-limit, limit]``, so 0 is white; positive
    values are blue, negative red, missing nodes grey.

    Parameters
    ----------
    values : array-like of float, shape (C,)
        Differences (for example per-node recall of run B minus run A).
    valid : array-like of bool, shape (C,)
    title : str
    limit : float, optional
        Half-width of the range. Default: the largest ``|value|`` over valid
        nodes, or 1 when all of them are 0 (or none is valid).

    Returns
    -------
    ColorSpec
        Ticks at ``-limit, -limit/2, 0, limit/2, limit`` written with a sign.

    Raises
    ------
    ValueError
        If ``limit`` is given and not positive, or the shapes differ.
    """
    raw = np.asarray(values, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool) & np.isfinite(raw)
    if limit is None:
        biggest = float(np.abs(raw[ok]).max()) if ok.any() else 0.0
        limit = biggest if biggest > 0 else 1.0
    elif not limit > 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    ticks = [float(v) for v in np.linspace(-limit, limit, 5)]
    labels = ["0" if v == 0 else f"{v:+.2g}" for v in ticks]
    return make_color_spec(raw, ok, DIVERGING_SCALE, -limit, limit, title, ticks, labels)


def _column(color_by: str) -> str:
    try:
        return COLOR_QUANTITIES[color_by]
    except KeyError:
        raise ValueError(f"unknown colour quantity {color_by!r}; choose one of {sorted(COLOR_QUANTITIES)}") from None


def uncertainty_label(run: Run) -> str:
    """User-facing name of the run's display uncertainty, e.g. ``"bBMA (mean confidence)"``."""
    mode = str(run.summary.get("uncertainty_mode", ""))
    return UNCERTAINTY_LABELS.get(mode, mode or "uncertainty")


def color_title(run: Run, color_by: str) -> str:
    """Title of the colour bar for ``color_by`` (the uncertainty names its mode).

    Raises
    ------
    ValueError
        If ``color_by`` is not a key of :data:`COLOR_QUANTITIES`.
    """
    column = _column(color_by)
    if column == "uncertainty":
        return f"uncertainty<br>{uncertainty_label(run)}"
    return color_by


def _raw_and_valid(run: Run, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The column as float64 and the mask of nodes that have a value to show."""
    nm = run.node_metrics
    values = nm[column].to_numpy(dtype=np.float64)
    valid = np.isfinite(values)
    if column in _TEST_METRICS:
        valid &= nm["evaluated"].to_numpy(dtype=bool) & (nm["support"].to_numpy() > 0)
    elif column == "train_frequency":
        valid &= values >= 0  # -1 marks an unknown frequency
    return values, valid


def color_spec(run: Run, color_by: str = DEFAULT_COLOR) -> ColorSpec:
    """The :class:`ColorSpec` of a colour quantity of :data:`COLOR_QUANTITIES` (see the module docstring).

    Ranges: [0, 1] for the test metrics; ``[0, max]`` over valid nodes for
    the uncertainty and for ``log10(1 + training frequency)``, whose ticks
    are labelled in counts (0, 1, 10, 100, ...).

    Raises
    ------
    ValueError
        If ``color_by`` is unknown.
    """
    column = _column(color_by)
    values, valid = _raw_and_valid(run, column)
    title = color_title(run, color_by)
    if column in _TEST_METRICS:
        return make_color_spec(values, valid, _SCALES[column], 0.0, 1.0, title)
    if column == "train_frequency":
        values = np.log10(1.0 + np.where(valid, values, 0.0))
    hi = float(values[valid].max()) if valid.any() else 1.0
    hi = hi if hi > 0 else 1.0
    if column == "train_frequency":
        counts = [0] + [10 ** k for k in range(0, int(math.floor(hi)) + 1)]
        return make_color_spec(values, valid, _SCALES[column], 0.0, hi, title,
                               [math.log10(1 + c) for c in counts], [str(c) for c in counts])
    return make_color_spec(values, valid, _SCALES[column], 0.0, hi, title)


def color_values(run: Run, color_by: str) -> np.ndarray:
    """The numbers the figures colour each node by, in the hierarchy's column order.

    Parameters
    ----------
    run : Run
    color_by : str
        A key of :data:`COLOR_QUANTITIES`.

    Returns
    -------
    numpy.ndarray of float64, shape (C,)
        ``log10(1 + train_frequency)`` for ``training frequency``; the
        ``node_metrics`` column otherwise. Nodes without a value (see the
        module docstring) are :data:`NO_DATA` for test metrics and, for the
        other quantities, a value just below the range, both drawn grey.

    Raises
    ------
    ValueError
        If ``color_by`` is unknown.
    """
    return color_spec(run, color_by).values


def _hex_colors(spec: ColorSpec, columns: Sequence[int] | None = None) -> list[str]:
    """CSS colours of the nodes ``columns`` (all when None) matching the sunburst's colour scale (grey for missing)."""
    rows = np.arange(len(spec.values)) if columns is None else np.asarray(columns, dtype=np.int64)
    pos = np.clip((spec.values[rows] - spec.lo) / (spec.hi - spec.lo), 0.0, 1.0)
    colors = sample_colorscale(spec.scale, [float(p) for p in pos])
    return [c if ok else GREY for c, ok in zip(colors, spec.valid[rows], strict=True)]


# ----------------------------------------------------------- rings and centre
SUNBURST_MAX_SECTORS = 1000
"""Most sectors :func:`sunburst_rings` lets the sunburst draw at once.

Measured in headless Chromium on 2 CPU cores: FunCat's 500 nodes draw at every
depth in 2.9 s (1.9-2.6 s for 3 rings), while GO's 4,126 take 7-9 s at every
depth and about 3 s at 3 rings."""


def sunburst_rings(hierarchy: Hierarchy, max_sectors: int = SUNBURST_MAX_SECTORS) -> int:
    """How many rings the sunburst draws at once (plotly's ``maxdepth``).

    Every ring (``-1``) when the hierarchy has at most ``max_sectors``
    nodes, so a small hierarchy shows its deepest nodes without a click;
    otherwise the most rings from the top whose nodes number at most
    ``max_sectors`` in the first-parent spanning tree, and never fewer than 3.

    Parameters
    ----------
    hierarchy : Hierarchy
    max_sectors : int, default :data:`SUNBURST_MAX_SECTORS`

    Returns
    -------
    int
        -1 or a ring count >= 3 (the centre counts as a ring).
    """
    if hierarchy.n_nodes <= max_sectors:
        return -1
    # columns are ordered by depth, so a node's first parent is a shallowest one and its ring is its depth
    per_ring = np.bincount(hierarchy.depth)
    return max(3, int((np.cumsum(per_ring) <= max_sectors).sum()))


def sunburst_centre(hierarchy: Hierarchy, node: str) -> str:
    """The sector to centre the sunburst on when ``node`` is selected (plotly's ``level``).

    The node itself, or, for a leaf, its first parent, so that the leaf is
    drawn with its siblings rather than as a lone disc. A parentless leaf is
    its own centre.

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy.
    """
    if node not in hierarchy:
        raise KeyError(f"node {node!r} is not in the hierarchy")
    if hierarchy.children(node):
        return node
    return hierarchy.first_parent(node) or node


@dataclass(frozen=True)
class FirstParentTree:
    """The first-parent spanning tree of a hierarchy (what the sunburst draws), as column-index arrays.

    Attributes
    ----------
    parent : numpy.ndarray of int64, shape (C,)
        Column of each node's first parent (:meth:`Hierarchy.first_parent`, the parent of smallest
        column index), -1 for a root.
    order : numpy.ndarray of int64, shape (C - R,)
        The non-root columns grouped by first parent (``R`` roots), increasing within a group.
    start : numpy.ndarray of int64, shape (C + 1,)
        Node ``i``'s children in the tree are ``order[start[i]:start[i + 1]]``.
    leaves : numpy.ndarray of int64, shape (C,)
        Leaves of the tree at or below each node (1 for a leaf of the tree): the sector sizes of
        plotly's ``count="leaves"`` over the whole tree.
    """

    parent: np.ndarray
    order: np.ndarray
    start: np.ndarray
    leaves: np.ndarray

    def children(self, i: int) -> np.ndarray:
        """Columns of node ``i``'s children in the tree, increasing."""
        return self.order[self.start[i]:self.start[i + 1]]


_TREES: weakref.WeakKeyDictionary[Hierarchy, FirstParentTree] = weakref.WeakKeyDictionary()


def first_parent_tree(hierarchy: Hierarchy) -> FirstParentTree:
    """The :class:`FirstParentTree` of ``hierarchy``, built once per hierarchy object (weakly cached).

    Built from :meth:`Hierarchy.edge_index` with numpy (5 ms for 111,111 nodes). A node's first
    parent is one depth above it (columns are sorted by shortest-path depth), so the leaf counts are
    summed up one depth at a time.
    """
    tree = _TREES.get(hierarchy)
    if tree is not None:
        return tree
    n = hierarchy.n_nodes
    child, parent = hierarchy.edge_index()
    first = np.full(n, n, dtype=np.int64)
    np.minimum.at(first, child, parent)
    first[first == n] = -1
    non_root = np.flatnonzero(first >= 0)
    order = non_root[np.argsort(first[non_root], kind="stable")]
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(first[non_root], minlength=n), out=start[1:])
    leaves = (start[1:] == start[:-1]).astype(np.int64)
    depth = hierarchy.depth
    for d in range(int(depth.max()), 0, -1):
        level = non_root[depth[non_root] == d]
        np.add.at(leaves, first[level], leaves[level])
    tree = FirstParentTree(parent=first, order=order, start=start, leaves=leaves)
    _TREES[hierarchy] = tree
    return tree


def sunburst_sectors(hierarchy: Hierarchy, centre: str | None = None, rings: int | None = None) -> np.ndarray:
    """The nodes a sunburst centred on ``centre`` with ``rings`` rings needs: the sectors it can draw.

    With every ring drawn (``rings == -1``) that is every node. Otherwise it is the centre and its
    descendants in the first-parent tree (the tree the sunburst draws, :class:`FirstParentTree`) less
    than ``rings`` levels below it (the centre is the first ring, as with plotly's ``maxdepth``).
    Without a centre (the top of the hierarchy) it is every node of depth below ``rings``.

    Parameters
    ----------
    hierarchy : Hierarchy
    centre : str, optional
        The sector the sunburst is centred on (plotly's ``level``; :func:`sunburst_centre`).
    rings : int, optional
        Rings drawn at once, the centre included (plotly's ``maxdepth``), >= 1, or -1 for all.
        Default: :func:`sunburst_rings`.

    Returns
    -------
    numpy.ndarray of int64
        Column indices, increasing (the hierarchy's column order).

    Raises
    ------
    KeyError
        If ``centre`` is not in the hierarchy.
    ValueError
        If ``rings`` is neither -1 nor >= 1.
    """
    if centre is not None and centre not in hierarchy:
        raise KeyError(f"node {centre!r} is not in the hierarchy")
    rings = sunburst_rings(hierarchy) if rings is None else int(rings)
    if rings == -1:
        return np.arange(hierarchy.n_nodes, dtype=np.int64)
    if rings < 1:
        raise ValueError(f"rings must be -1 or >= 1, got {rings}")
    if centre is None:
        return np.flatnonzero(hierarchy.depth < rings).astype(np.int64)
    tree = first_parent_tree(hierarchy)
    i = hierarchy.index[centre]
    chosen = [i]
    level = np.array([i], dtype=np.int64)
    for _ in range(rings - 1):
        level = np.concatenate([tree.children(int(j)) for j in level]) if level.size else level
        chosen.extend(level.tolist())
    return np.unique(np.asarray(chosen, dtype=np.int64))


def sunburst_chart_key(hierarchy: Hierarchy, serial: int, key: str = "sunburst") -> str:
    """The ``st.plotly_chart`` key of the explorer's sunburst: ``key``, or, for a pruned figure, one per serial.

    A pruned figure (more than :data:`SUNBURST_MAX_SECTORS` nodes, :func:`sunburst_sectors`) is drawn as a
    new chart each time its centre changes (the page counts the changes in ``serial``). Measured in
    Chromium on the 100k-node run: a chart kept across reruns, or one keyed by its centre, keeps the
    browser's state of the chart (Streamlit's element state), so after a click on the centre selected its
    parent the chart went on showing the zoom of an earlier click on it.

    Returns
    -------
    str
        ``key`` for a hierarchy of at most :data:`SUNBURST_MAX_SECTORS` nodes, else ``f"{key}:{serial}"``.
    """
    return key if hierarchy.n_nodes <= SUNBURST_MAX_SECTORS else f"{key}:{serial}"


NODE_SEARCH_MIN_NODES = 10_000
"""From this many nodes on, the explorer chooses nodes with a search box (:func:`search_nodes`), not a
selectbox, which would send every node id to the browser."""

NODE_SEARCH_LIMIT = 50
"""Most matches :func:`search_nodes` returns (the search box's list)."""

DETAILS_AFTER_DRAW_MIN_NODES = 1_000
"""From this many nodes on, the explorer's first view in a session sends the overview and the node card's
heading and facts first, and the rest of the page (the node's tables and charts, its neighbourhood, the
depth chart and the per-node table) once the browser has drawn the sunburst: loading and drawing those in
the same pass delayed the sunburst of the 100k-node benchmark by about 1.5 s (bench/README.md, *The
explorer on a 100k-node run*). Smaller hierarchies (the demo runs) keep the single pass."""


def search_nodes(hierarchy: Hierarchy, query: str, limit: int = NODE_SEARCH_LIMIT) -> tuple[list[str], int]:
    """Nodes whose id contains ``query`` (case-insensitive): the exact match, then prefixes, then the rest.

    Parameters
    ----------
    hierarchy : Hierarchy
    query : str
        Text typed in the search box; surrounding whitespace is ignored. Empty: no match.
    limit : int, default :data:`NODE_SEARCH_LIMIT`
        Most nodes returned, >= 1.

    Returns
    -------
    matches : list of str
        At most ``limit`` node ids: an id equal to the query (ignoring case), then ids starting with it,
        then ids containing it elsewhere, each group in column order (shallow nodes first).
    total : int
        How many nodes match in all.

    Raises
    ------
    ValueError
        If ``limit < 1``.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    needle = query.strip().casefold()
    if not needle:
        return [], 0
    exact: list[str] = []
    prefix: list[str] = []
    inside: list[str] = []
    for node in hierarchy.nodes:
        folded = node.casefold()
        at = folded.find(needle)
        if at < 0:
            continue
        (exact if folded == needle else prefix if at == 0 else inside).append(node)
    matches = exact + prefix + inside
    return matches[:limit], len(matches)


def _round(values: np.ndarray, digits: int) -> list[float | int | None]:
    """Rounded plain numbers for compact figure JSON (integral values as int, NaN as None)."""
    out: list[float | int | None] = []
    for v in values:
        if not math.isfinite(v):
            out.append(None)
            continue
        r = round(float(v), digits)
        out.append(int(r) if r.is_integer() else r)
    return out


def hover_columns(table: pd.DataFrame, digits: int = 3) -> np.ndarray:
    """Per-node hover data for plotly's ``customdata``: rounded numbers in a numpy *object* array.

    Plotly validates a numpy array without walking it row by row (nested
    lists cost about 0.5 s for GO's 4,126 x 8 values) and writes an object
    array as plain JSON numbers, so the figure stays small (rounded, integral
    values as int, NaN as null) and quick to build, pickle and cache.

    Parameters
    ----------
    table : pandas.DataFrame, shape (C, k)
        Numeric columns, one row per node.
    digits : int, default 3

    Returns
    -------
    numpy.ndarray of object, shape (C, k)
    """
    out = np.empty(table.shape, dtype=object)
    for j, column in enumerate(table.columns):
        out[:, j] = _round(table[column].to_numpy(dtype=np.float64), digits)
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}f}"


# ----------------------------------------------------------------- sunburst
def hierarchy_sunburst(hierarchy: Hierarchy, spec: ColorSpec, customdata: np.ndarray | None = None,
                       hovertemplate: str | None = None, maxdepth: int | None = None, root: str | None = None,
                       height: int = 640, uirevision: str = "", meta: Sequence[str] | None = None,
                       prune: bool = False) -> go.Figure:
    """The label hierarchy as a sunburst coloured by ``spec``.

    Sectors are the hierarchy's nodes (``ids`` = node ids) and each sector's
    parent is the node's first parent (:meth:`Hierarchy.first_parent`), so a
    DAG is drawn as its first-parent spanning tree. Sector size counts the
    leaves below the node (plotly's ``count="leaves"``, so every ring is full;
    frequencies would break plotly's ``branchvalues="total"`` in multi-label
    data). Only ``maxdepth`` rings are drawn at a time; clicking a sector
    zooms into it.

    Each sector is labelled with its full node id, HTML-escaped (plotly
    renders labels and hover text as HTML; the ids themselves stay raw, as
    the selection returns them). Labels are horizontal, so none is drawn
    sideways or upside down, and a label that would need a font under 9 px
    is hidden (the hover still names the node).

    Parameters
    ----------
    hierarchy : Hierarchy
    spec : ColorSpec
        Per-node colours, in ``hierarchy``'s column order.
    customdata : numpy.ndarray, shape (C, k), optional
        Per-node hover data (see :func:`hover_columns`).
    hovertemplate : str, optional
        Plotly hover template; default: the node id and its colour value.
        Write the node as ``%{label}`` (escaped), never ``%{id}`` (raw).
    maxdepth : int, optional
        Rings drawn at once (plotly's ``maxdepth``; -1 for all, slow on GO).
        Default: :func:`sunburst_rings`.
    root : str, optional
        Start zoomed into this node (plotly's ``level``; see
        :func:`sunburst_centre`).
    height : int, default 640
        Figure height in pixels.
    uirevision : str, default ""
        Plotly's ``uirevision``: the zoom is kept while it stays the same.
    meta : sequence of str, optional
        Plotly's trace ``meta``, for ``%{meta[i]}`` in the hover template;
        the caller escapes it.
    prune : bool, default False
        Send only :func:`sunburst_sectors` of ``root`` and ``maxdepth`` (every node when every ring is
        drawn), with ``root`` as the figure's top sector (parent ``""``). Sector sizes are then the
        leaf counts of the whole first-parent tree (:attr:`FirstParentTree.leaves`, plotly's ``values``
        with ``branchvalues="total"``), as ``count="leaves"`` over every node gives them. Clicking into
        a sector shows the rings sent below it only, and a click on the centre does not zoom out in the
        browser (plotly's top sector): a page that re-centres on the clicked node (the explorer, with
        :func:`node_from_selection`, which goes up on a click on the centre) draws the rest, as a new
        chart per centre (:func:`sunburst_chart_key`).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Sunburst`` trace. Colours are rounded to 4 decimals.

    Raises
    ------
    KeyError
        If ``root`` is not a node of ``hierarchy``.
    ValueError
        If ``spec`` or ``customdata`` does not have one row per node.
    """
    h = hierarchy
    if root is not None and root not in h:
        raise KeyError(f"node {root!r} is not in the hierarchy")
    if spec.values.shape != (h.n_nodes,):
        raise ValueError(f"the colour spec has {spec.values.shape[0]} values, the hierarchy {h.n_nodes} nodes")
    if customdata is not None and len(customdata) != h.n_nodes:
        raise ValueError(f"customdata has {len(customdata)} rows, the hierarchy {h.n_nodes} nodes")
    rings = sunburst_rings(h) if maxdepth is None else maxdepth
    sectors = sunburst_sectors(h, root, rings) if prune else None
    if sectors is not None and len(sectors) < h.n_nodes:
        customdata = customdata[sectors] if customdata is not None else None
    else:
        sectors = None
    return _sunburst(h, spec, sectors, customdata, hovertemplate, rings, root, height, uirevision, meta)


def _sunburst(h: Hierarchy, spec: ColorSpec, sectors: np.ndarray | None, customdata: np.ndarray | None,
              hovertemplate: str | None, maxdepth: int, root: str | None, height: int, uirevision: str,
              meta: Sequence[str] | None) -> go.Figure:
    """:func:`hierarchy_sunburst` of the columns ``sectors`` (all when None); ``customdata`` has their rows."""
    if sectors is None:
        nodes = list(h.nodes)
        sizes: dict[str, Any] = {"count": "leaves", "branchvalues": "remainder"}
        values = spec.values
    else:
        tree = first_parent_tree(h)
        nodes = [h.nodes[i] for i in sectors]
        sizes = {"values": tree.leaves[sectors], "branchvalues": "total"}
        values = spec.values[sectors]
    parents = [h.first_parent(n) or "" for n in nodes]
    if sectors is not None and root is not None:
        parents[nodes.index(root)] = ""  # the centre is the pruned figure's top sector
    trace = go.Sunburst(
        ids=nodes,
        labels=[html.escape(n) for n in nodes],
        parents=parents,
        **sizes,
        maxdepth=maxdepth,
        level=root,
        sort=False,
        textinfo="label",
        insidetextorientation="horizontal",
        customdata=customdata,
        meta=list(meta) if meta is not None else None,
        hovertemplate=hovertemplate or "<b>%{label}</b><br>%{color:.3f}<extra></extra>",
        marker={
            "colors": _round(values, 4),
            "colorscale": spec.colorscale,
            "autocolorscale": False,
            "cmin": spec.cmin,
            "cmax": spec.hi,
            "showscale": True,
            "colorbar": {"title": {"text": spec.title}, "tickvals": spec.tickvals,
                         "ticktext": spec.ticktext, "thickness": 14},
            "line": {"width": 0.5, "color": "white"},
        },
    )
    fig = go.Figure(trace)
    fig.update_layout(margin={"t": 10, "l": 10, "r": 10, "b": 10}, height=height, uirevision=uirevision,
                      uniformtext={"minsize": 9, "mode": "hide"})
    return fig


def sunburst_figure(run: Run, color_by: str = DEFAULT_COLOR, maxdepth: int | None = None, root: str | None = None,
                    height: int = 640) -> go.Figure:
    """The run's label hierarchy as a sunburst coloured by a per-node quantity (:func:`hierarchy_sunburst`).

    Parameters
    ----------
    run : Run
    color_by : str, default "recall"
        A key of :data:`COLOR_QUANTITIES`; colours are :func:`color_values`.
    maxdepth : int, optional
        Rings drawn at once (plotly's ``maxdepth``; -1 for all, slow on GO).
        Default: :func:`sunburst_rings`.
    root : str, optional
        Start zoomed into this node (plotly's ``level``); the page passes
        :func:`sunburst_centre` of the selected node.
    height : int, default 640
        Figure height in pixels.

    A hierarchy of more than :data:`SUNBURST_MAX_SECTORS` nodes sends only the sectors that can be
    drawn, the centre's :func:`sunburst_sectors` (``prune`` of :func:`hierarchy_sunburst`); a smaller
    one sends every node, whatever ``maxdepth``. A page showing a pruned figure draws it as a new chart
    per centre (the explorer: :func:`sunburst_chart_key`).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Sunburst`` trace; ``customdata`` holds, per node, depth,
        training frequency, test support, precision, recall, F1, uncertainty
        and (DAGs only) the number of parents: the hover card. Numbers are
        rounded to 3 decimals (colours to 4) to keep the JSON small (about
        250 KiB for GO's 4,126 nodes).

    Raises
    ------
    ValueError
        If ``color_by`` is unknown.
    KeyError
        If ``root`` is not a node of the run's hierarchy.
    """
    h = run.hierarchy
    columns = ["depth", "train_frequency", "support", "precision", "recall", "f1", "uncertainty"]
    if not h.is_tree:
        columns.append("n_parents")
    hover = (
        "<b>%{label}</b><br>depth %{customdata[0]}"
        + (" · parents %{customdata[7]}" if not h.is_tree else "")
        + "<br>training frequency %{customdata[1]}<br>test support %{customdata[2]}"
        "<br>precision %{customdata[3]:.3f} · recall %{customdata[4]:.3f} · F1 %{customdata[5]:.3f}"
        f"<br>uncertainty ({uncertainty_label(run)}) " + "%{customdata[6]:.3f}<extra></extra>"
    )
    if root is not None and root not in h:
        raise KeyError(f"node {root!r} is not in the hierarchy")
    rings = sunburst_rings(h) if maxdepth is None else maxdepth
    sectors = sunburst_sectors(h, root, rings) if h.n_nodes > SUNBURST_MAX_SECTORS else None
    if sectors is not None and len(sectors) == h.n_nodes:
        sectors = None
    table = run.node_metrics[columns]
    customdata = hover_columns(table if sectors is None else table.iloc[sectors])
    return _sunburst(h, color_spec(run, color_by), sectors, customdata, hover, rings, root, height, str(run.path),
                     None)


# -------------------------------------------------------------- neighbourhood
def neighbourhood(hierarchy: Hierarchy, node: str, max_nodes: int = 300) -> list[str]:
    """A node's local subgraph: its ancestors, itself, its children and its siblings.

    Parameters
    ----------
    hierarchy : Hierarchy
    node : str
    max_nodes : int, default 300
        Cap on the number of nodes returned. Nodes are taken in the order
        node, ancestors, children, siblings until the cap is reached (so the
        ancestors and children are kept before any sibling).

    Returns
    -------
    list of str
        Unique node ids in the hierarchy's column order, at most ``max_nodes``.

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy.
    ValueError
        If ``max_nodes < 1``.
    """
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be >= 1, got {max_nodes}")
    chosen: dict[str, None] = {}
    for group in ([node], hierarchy.ancestors(node), hierarchy.children(node), hierarchy.siblings(node)):
        for n in group:
            if len(chosen) >= max_nodes:
                break
            chosen.setdefault(n, None)
    return sorted(chosen, key=hierarchy.index.__getitem__)


def lineage(hierarchy: Hierarchy, node: str) -> list[str]:
    """The first-parent path from a root down to ``node`` (the sunburst's path to it).

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy.
    """
    path = [node]
    parent = hierarchy.first_parent(node)
    while parent is not None:
        path.append(parent)
        parent = hierarchy.first_parent(parent)
    return path[::-1]


def node_hover_text(run: Run, node: str) -> str:
    """Plain-text hover card of a node (one fact per line).

    Lists id, depth, number of parents, training frequency, test support,
    precision, recall, F1, average precision and uncertainty.

    Raises
    ------
    KeyError
        If ``node`` is not in the run's node metrics.
    """
    row = run.node_metrics.loc[node]
    lines = [
        node,
        f"depth {int(row['depth'])} · parents {int(row['n_parents'])} · children {int(row['n_children'])}",
        f"training frequency {int(row['train_frequency'])}",
        f"test support {int(row['support'])}",
        f"precision {_fmt(row['precision'])}",
        f"recall {_fmt(row['recall'])}",
        f"F1 {_fmt(row['f1'])}",
        f"average precision {_fmt(row['average_precision'])}",
        f"uncertainty ({uncertainty_label(run)}) {_fmt(row['uncertainty'])}",
    ]
    if not bool(row["evaluated"]):
        lines.append("not evaluated")
    return "\n".join(lines)


_REMOTE_TAGS = (
    re.compile(r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>", re.IGNORECASE),
    re.compile(r"<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>", re.IGNORECASE),
    re.compile(r"<center>\s*<h1>\s*</h1>\s*</center>", re.IGNORECASE),
    re.compile(r"<!--\s*<link[^>]*>\s*<script[^>]*node_modules[^>]*>\s*</script>\s*-->", re.IGNORECASE),
)


_TOOLTIP_CSS = "div.vis-tooltip { font-family: sans-serif; font-size: 13px; line-height: 1.35; }"

_HREF = re.compile(r"(h)(?=ref)", re.IGNORECASE)
WORD_JOINER = "\u2060"
"""Invisible, zero-width character :func:`vis_tooltip_text` puts inside the word "href"."""

_HTML_POPUP = "popup.innerHTML"
"""What pyvis 0.3.2's template writes when it draws tooltips as HTML (its ``tooltip_link`` path)."""


def vis_tooltip_text(text: str) -> str:
    """``text`` as a vis-network node title that is shown as text, never parsed as HTML.

    vis-network 9 shows a string title with ``innerText`` (text, whatever it holds), but pyvis 0.3.2
    replaces vis-network's tooltip by its own, which sets ``popup.innerHTML = title``, as soon as any
    node title contains ``href`` (``Network.generate_html`` in pyvis/network.py, the ``tooltip_link``
    block of pyvis/templates/template.html). A node id is user text (an ARFF hierarchy), so every
    ``href`` (any case) gets a :data:`WORD_JOINER` after its ``h``: it reads the same, and pyvis never
    switches to HTML tooltips. The text is not HTML-escaped, since ``innerText`` would show the entities.

    Parameters
    ----------
    text : str
        A node's hover card (:func:`node_hover_text`).

    Returns
    -------
    str
        ``text`` with :data:`WORD_JOINER` inserted after the ``h`` of every ``href`` (case-insensitive);
        removing the joiners gives ``text`` back when it held none.
    """
    return _HREF.sub(r"\1" + WORD_JOINER, text)


def pyvis_html(run: Run, node: str, color_by: str = DEFAULT_COLOR, max_nodes: int = 300,
               height_px: int = 520) -> str:
    """A self-contained HTML page drawing the node's :func:`neighbourhood` with pyvis.

    The layout is vis-network's hierarchical layout (top-down, levels from
    the edge directions) with physics off, so it is drawn at once. Node
    colour follows ``color_by`` (same scale as the sunburst, grey without
    data), node size grows with ``log10(1 + training frequency)``, the
    selected node is drawn larger with a thick dark border, and each node has
    a hover card (:func:`node_hover_text`, shown as text: :func:`vis_tooltip_text`; labels are drawn on
    the canvas, and pyvis writes the node data into the page as JSON that escapes ``<``, ``>``, ``&``
    and ``'``, so no node id is ever parsed as HTML). vis-network is inlined
    (``cdn_resources="in_line"``) and the template's remote Bootstrap tags are
    removed, so the page loads offline and inside an iframe ``srcdoc``.

    Parameters
    ----------
    run : Run
    node : str
    color_by : str, default "recall"
        A key of :data:`COLOR_QUANTITIES`.
    max_nodes : int, default 300
        Passed to :func:`neighbourhood`.
    height_px : int, default 520
        Height of the drawing area.

    Returns
    -------
    str
        The HTML document (about 0.7 MB, mostly the inlined vis-network).

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy.
    ValueError
        If ``color_by`` is unknown.
    RuntimeError
        If pyvis drew the tooltips as HTML after all (a pyvis other than 0.3.2).
    """
    from pyvis.network import Network  # imported here: only the page needs pyvis

    h = run.hierarchy
    if node not in h:
        raise KeyError(f"node {node!r} is not in the hierarchy")
    keep = neighbourhood(h, node, max_nodes)
    keep_set = set(keep)
    columns = [h.index[n] for n in keep]
    colors = dict(zip(columns, _hex_colors(color_spec(run, color_by), columns), strict=True))
    freq = run.node_metrics["train_frequency"].to_numpy(dtype=np.float64)

    net = Network(height=f"{height_px}px", width="100%", directed=True, cdn_resources="in_line",
                  layout=True, bgcolor="#ffffff")
    for n in keep:
        i = h.index[n]
        size = 8.0 + 5.0 * math.log10(1.0 + max(freq[i], 0.0))
        border = "#111111" if n == node else "#666666"
        # the same fill when hovered or clicked, so vis-network's default highlight never shows a wrong colour
        state = {"background": colors[i], "border": "#111111"}
        attrs: dict[str, Any] = {"size": size, "title": vis_tooltip_text(node_hover_text(run, n)),
                                 "color": {"background": colors[i], "border": border,
                                           "highlight": state, "hover": state}}
        if n == node:
            attrs.update(size=size * 1.4, borderWidth=4, shape="diamond",
                         font={"size": 18, "face": "sans-serif"})
        net.add_node(n, label=n, **attrs)
    # the kept nodes' edges in the order of h.graph.edges, without walking every edge of a large hierarchy
    for parent, child in h.edges(among=keep_set):
        first = h.first_parent(child) == parent
        net.add_edge(parent, child, color="#888888" if first else "#c0c0c0", width=1.5 if first else 1.0)
    # Deep DAG neighbourhoods have many levels: shrink the level gap so the drawing is not zoomed far out.
    n_levels = int(h.depth[h.index[node]] - min(h.depth[h.index[n]] for n in keep)) + 2
    level_gap = int(min(120, max(80, (height_px - 60) / n_levels)))
    options = {
        "layout": {"hierarchical": {"enabled": True, "direction": "UD", "sortMethod": "directed",
                                    "levelSeparation": level_gap, "nodeSpacing": 110, "treeSpacing": 140,
                                    "shakeTowards": "roots"}},
        "physics": {"enabled": False},
        "interaction": {"hover": True, "tooltipDelay": 80, "navigationButtons": False, "keyboard": False},
        "edges": {"arrows": {"to": {"enabled": True, "scaleFactor": 0.5}}, "smooth": False},
        "nodes": {"shape": "dot", "font": {"size": 13, "face": "sans-serif"}, "borderWidth": 1},
    }
    net.set_options(json.dumps(options))
    html = net.generate_html()
    if _HTML_POPUP in html:
        raise RuntimeError("pyvis built HTML tooltips from the node titles; refusing to show them")
    for pattern in _REMOTE_TAGS:
        html = pattern.sub("", html)
    html = html.replace("</head>", f"<style>{_TOOLTIP_CSS}</style></head>", 1)
    log.debug("pyvis neighbourhood of %s: %d nodes, %d bytes", node, len(keep), len(html))
    return html


# ------------------------------------------------------------ charts/tables
def recall_by_depth_figure(run: Run, height: int = 340) -> go.Figure:
    """Bar chart of macro recall per depth (``run.summary["recall_by_depth"]``).

    The hover shows, per depth, the number of evaluated nodes and how many of
    them have a positive test sample (nodes without one count as recall 0 in
    the macro average; docs/method.md, *Evaluated nodes*).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Bar`` trace; ``x`` are depths (int, increasing), ``y`` the
        summary's recalls.
    """
    rbd = {int(k): float(v) for k, v in run.summary.get("recall_by_depth", {}).items()}
    depths = sorted(rbd)
    nm = run.node_metrics
    ev = nm[nm["evaluated"].astype(bool)]
    n_nodes = ev.groupby("depth").size()
    n_pos = (ev["support"] > 0).groupby(ev["depth"]).sum()
    custom = [[int(n_nodes.get(d, 0)), int(n_pos.get(d, 0))] for d in depths]
    fig = go.Figure(go.Bar(
        x=depths, y=[rbd[d] for d in depths], customdata=custom, marker={"color": "#4c78a8"},
        hovertemplate=("depth %{x}<br>macro recall %{y:.3f}<br>%{customdata[0]} evaluated nodes"
                       "<br>%{customdata[1]} with test positives<extra></extra>"),
    ))
    fig.update_layout(height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
                      xaxis={"title": {"text": "depth"}, "dtick": 1},
                      yaxis={"title": {"text": "macro recall"}, "range": [0, 1.02]},
                      title={"text": "Macro recall by depth", "x": 0, "font": {"size": 15}})
    return fig


_TABLE_COLUMNS = ["depth", "parent", "n_parents", "n_children", "train_frequency", "support", "tp", "fp", "fn",
                  "precision", "recall", "f1", "average_precision", "uncertainty"]


def node_table(run: Run, depths: Iterable[int] | None = None, evaluated_only: bool = True) -> pd.DataFrame:
    """Per-node metrics for the sortable table.

    Parameters
    ----------
    run : Run
    depths : iterable of int, optional
        Keep only these depths; all when None or empty.
    evaluated_only : bool, default True
        Drop nodes skipped in evaluation (the roots).

    Returns
    -------
    pandas.DataFrame
        Indexed by node id (in column order), with columns depth, parent
        (first parent), n_parents, n_children, train_frequency, support, tp,
        fp, fn, precision, recall, f1, average_precision, uncertainty. A copy.
    """
    nm = run.node_metrics
    mask = np.ones(len(nm), dtype=bool)
    if evaluated_only:
        mask &= nm["evaluated"].to_numpy(dtype=bool)
    depth_list = [int(d) for d in depths] if depths is not None else []
    if depth_list:
        mask &= nm["depth"].isin(depth_list).to_numpy()
    return nm.loc[mask, _TABLE_COLUMNS].copy()


_RELATIVE_COLUMNS = ["depth", "train_frequency", "support", "precision", "recall", "f1", "uncertainty"]


def relatives_table(run: Run, node: str) -> pd.DataFrame:
    """The parents and children of ``node`` with their metrics.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id; a ``relation`` column ("parent (first)",
        "parent" or "child") then depth, train_frequency, support, precision,
        recall, f1, uncertainty. Parents first, in column order.

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy.
    """
    h = run.hierarchy
    parents = h.parents(node)
    children = h.children(node)
    first = h.first_parent(node)
    rows = parents + children
    relation = ["parent (first)" if p == first and len(parents) > 1 else "parent" for p in parents]
    relation += ["child"] * len(children)
    table = run.node_metrics.loc[rows, _RELATIVE_COLUMNS].copy()
    table.insert(0, "relation", relation)
    return table


def headline_metrics(run: Run) -> dict[str, str]:
    """Formatted headline facts of a run (label -> text), for ``st.metric``.

    Keys, in display order: "micro AUPRC", "macro precision", "macro recall",
    "macro F1", "evaluated nodes", "with test positives", "dataset", "heads",
    "epochs" ("done/planned") and "status". Missing summary fields show as "n/a".
    """
    s = run.summary

    def count(key: str) -> str:
        value = s.get(key)
        return "n/a" if value is None else str(int(value))

    done, planned = s.get("epochs_completed"), s.get("epochs_planned")
    return {
        "micro AUPRC": _fmt(s.get("auprc_micro")),
        "macro precision": _fmt(s.get("macro_precision")),
        "macro recall": _fmt(s.get("macro_recall")),
        "macro F1": _fmt(s.get("macro_f1")),
        "evaluated nodes": count("n_eval_nodes"),
        "with test positives": count("n_eval_nodes_with_positives"),
        "dataset": str(s.get("dataset", run.dataset_info.get("name", "n/a"))),
        "heads": str(s.get("heads", run.config.heads)),
        "epochs": "n/a" if done is None else f"{done}/{planned if planned is not None else '?'}",
        "status": str(s.get("status", "n/a")),
    }


def node_facts(run: Run, node: str) -> dict[str, str]:
    """Formatted facts of one node (label -> text), for the node panel's ``st.metric`` cards.

    Keys, in display order: "precision", "recall", "F1", "AP" (average
    precision, "n/a" without test positives), "depth", "parents", "train
    freq.", "test support" and "uncertainty" (mean over the test set, the
    run's display mode).

    Raises
    ------
    KeyError
        If ``node`` is not in the run's node metrics.
    """
    row = run.node_metrics.loc[node]
    return {
        "precision": _fmt(row["precision"]),
        "recall": _fmt(row["recall"]),
        "F1": _fmt(row["f1"]),
        "AP": _fmt(row["average_precision"]),
        "depth": str(int(row["depth"])),
        "parents": str(int(row["n_parents"])),
        "train freq.": str(int(row["train_frequency"])),
        "test support": str(int(row["support"])),
        "uncertainty": _fmt(row["uncertainty"]),
    }


def threshold_text(threshold: float) -> str:
    """A node's decision threshold as text: ``"0.270"``, or ``"none (always predicted)"`` for ``-inf`` (the roots)."""
    return f"{threshold:.3f}" if math.isfinite(threshold) else "none (always predicted)"


def na_text(table: pd.DataFrame, columns: Iterable[str], digits: int = 3) -> pd.DataFrame:
    """A copy of ``table`` with ``columns`` written as text, missing values as ``"n/a"``.

    ``st.dataframe`` draws a missing number as "None" whatever the column
    format; this writes such columns the way the rest of the dashboard does.
    Values in [0, 1] written with a fixed number of decimals sort as text in
    numeric order, ``"n/a"`` after them.

    Parameters
    ----------
    table : pandas.DataFrame
    columns : iterable of str
        Numeric columns of ``table`` to write as text (absent ones are skipped).
    digits : int, default 3
        Decimals.

    Returns
    -------
    pandas.DataFrame
        Same index and columns; the given columns hold str.
    """
    out = table.copy()
    for column in columns:
        if column in out.columns:
            out[column] = [_fmt(v, digits) for v in out[column].to_numpy(dtype=np.float64)]
    return out


# ---------------------------------------------------------------- node card
def positive_member_probs(predictions: Mapping[str, np.ndarray], hierarchy: Hierarchy,
                          node: str) -> tuple[np.ndarray, np.ndarray]:
    """Each ensemble member's probability of ``node`` on the node's positive test samples.

    Parameters
    ----------
    predictions : mapping
        :meth:`Run.predictions`: ``y_true`` (N, C) {0, 1} and ``member_probs``
        (H, N, C) float16 coherent probabilities in [0, 1].
    hierarchy : Hierarchy
        The run's hierarchy (column order of the arrays).
    node : str

    Returns
    -------
    samples : numpy.ndarray of int64, shape (P,)
        Test-sample indices (rows of ``y_true``) where the node is positive.
    probs : numpy.ndarray of float32, shape (H, P)
        ``member_probs[h, samples, column]``, values in [0, 1].

    Raises
    ------
    KeyError
        If ``node`` is not in the hierarchy or an array is missing.
    ValueError
        If the arrays do not have ``hierarchy.n_nodes`` columns.
    """
    if node not in hierarchy:
        raise KeyError(f"node {node!r} is not in the hierarchy")
    y, members = predictions["y_true"], predictions["member_probs"]
    if y.shape[-1] != hierarchy.n_nodes or members.shape[-1] != hierarchy.n_nodes or members.ndim != 3:
        raise ValueError(f"predictions y_true {y.shape} / member_probs {members.shape} do not match "
                         f"the hierarchy's {hierarchy.n_nodes} nodes")
    j = hierarchy.index[node]
    samples = np.flatnonzero(y[:, j] != 0)
    return samples, members[:, samples, j].astype(np.float32)


MAX_STRIP_POINTS = 500
"""Above this many positive test samples, :func:`member_probs_figure` draws boxes and outliers, not every point."""

_MEMBER_COLOR = "#4c78a8"
_MEAN_COLOR = "#e45756"


def member_probs_figure(predictions: Mapping[str, np.ndarray], hierarchy: Hierarchy, node: str,
                        height: int = 320, max_points: int = MAX_STRIP_POINTS,
                        threshold: float = THRESHOLD) -> go.Figure:
    """Box plot with the points: each member's probability on the node's positive test samples.

    One box per ensemble member ("member 1" ... "member H") and a last one for
    the ensemble mean (the probability the metrics threshold at
    :data:`THRESHOLD`; docs/method.md, *Metrics*), each with all its points jittered over
    it (a strip plot); a dashed line marks the threshold, so points below it
    are the node's misses (its false negatives, for the mean). Hovering a
    point shows its test-sample index. Nodes with more than ``max_points``
    positives (the top of GO has over a thousand) show only the boxes and
    their outliers, which keeps the browser responsive.

    Parameters
    ----------
    predictions : mapping
        :meth:`Run.predictions` (``y_true``, ``member_probs``).
    hierarchy : Hierarchy
    node : str
    height : int, default 320
    max_points : int, default :data:`MAX_STRIP_POINTS` (500)
        Draw every point up to this many positive samples (plotly's
        ``boxpoints="all"``), only the outliers above it.
    threshold : float, default :data:`THRESHOLD`
        The node's decision threshold (the dashed line): the decision rule's threshold of this node.

    Returns
    -------
    plotly.graph_objects.Figure
        ``H + 1`` ``go.Box`` traces (``y`` in [0, 1], ``customdata`` the
        sample indices); with no positive test sample, no trace and an
        annotation saying so.

    Raises
    ------
    KeyError, ValueError
        As :func:`positive_member_probs`.
    """
    samples, probs = positive_member_probs(predictions, hierarchy, node)
    fig = go.Figure()
    n_members = probs.shape[0]
    points = "all" if samples.size <= max_points else "outliers"
    if samples.size:
        names = [f"member {h + 1}" for h in range(n_members)] + ["ensemble mean"]
        rows = [*probs, probs.mean(axis=0)]
        for i, (name, values) in enumerate(zip(names, rows, strict=True)):
            color = _MEAN_COLOR if i == n_members else _MEMBER_COLOR
            fig.add_trace(go.Box(
                y=values, name=name, customdata=samples, boxpoints=points, jitter=0.5, pointpos=0,
                marker={"size": 4, "opacity": 0.6, "color": color}, line={"color": color},
                fillcolor="rgba(0,0,0,0)", showlegend=False,
                hovertemplate=f"{name}<br>test sample %{{customdata}}<br>p = %{{y:.3f}}<extra></extra>",
            ))
        fig.add_hline(y=threshold, line={"dash": "dash", "color": "#555555", "width": 1},
                      annotation_text=f"threshold {threshold:.3g}", annotation_position="top left")
    else:
        fig.add_annotation(text="no positive test sample", x=0.5, y=0.5, xref="paper", yref="paper",
                           showarrow=False, font={"size": 14, "color": "#666666"})
    fig.update_layout(
        height=height, margin={"t": 30, "l": 10, "r": 10, "b": 10},
        title={"text": f"Probability of {html.escape(node)} on its {samples.size} positive test samples", "x": 0,
               "font": {"size": 14}},
        yaxis={"title": {"text": "probability"}, "range": [-0.02, 1.02]},
    )
    return fig


def uncertainty_by_mode(run: Run, node: str) -> pd.DataFrame:
    """The node's mean test-set uncertainty under every uncertainty mode, with its rank among the nodes.

    Read from the ``uncertainty_<mode>`` columns of ``run.node_metrics``
    (the per-sample uncertainty of :func:`hmlc_core.uncertainty.uncertainty`
    averaged over the test set; docs/method.md, *Uncertainty modes*). Modes missing from the run are
    left out.

    Parameters
    ----------
    run : Run
    node : str

    Returns
    -------
    pandas.DataFrame
        One row per mode, indexed by the mode's user-facing name
        (``UNCERTAINTY_LABELS``), in the order of ``UNCERTAINTY_MODE_NAMES``;
        columns ``mode`` (str), ``uncertainty`` (float; [0, 1] bits or
        fraction, ``epistemic_kl`` unbounded), ``percentile`` (float in [0,
        100]: the share of evaluated nodes whose value is at most this
        node's, ``scipy.stats.percentileofscore(kind="weak")``) and
        ``display`` (bool: the mode the run's colours and tables use).

    Raises
    ------
    KeyError
        If ``node`` is not in the run's node metrics.
    """
    nm = run.node_metrics
    row = nm.loc[node]
    evaluated = nm["evaluated"].to_numpy(dtype=bool)
    display = str(run.summary.get("uncertainty_mode", ""))
    records = []
    for mode in UNCERTAINTY_MODE_NAMES:
        column = f"uncertainty_{mode}"
        if column not in nm.columns:
            continue
        value = float(row[column])
        others = nm[column].to_numpy(dtype=np.float64)[evaluated]
        others = others[np.isfinite(others)]
        percentile = float(np.mean(others <= value) * 100) if others.size and math.isfinite(value) else math.nan
        records.append({"label": UNCERTAINTY_LABELS.get(mode, mode), "mode": mode, "uncertainty": value,
                        "percentile": percentile, "display": mode == display})
    table = pd.DataFrame(records, columns=["label", "mode", "uncertainty", "percentile", "display"])
    return table.set_index("label").rename_axis("uncertainty mode")


# --------------------------------------------------------------- selection
def node_from_selection(event: Any, hierarchy: Hierarchy, centre: str | None = None) -> str | None:
    """The node selected by a click in the sunburst, from a ``st.plotly_chart`` selection event.

    A click on a ring sector selects that node (plotly zooms into it). A
    click on the centre sector makes plotly zoom out to its parent, so it
    selects the centre's first parent (the centre itself at the top).

    Parameters
    ----------
    event : mapping or attribute object
        The chart's state (``{"selection": {"points": [...]}}``), its
        ``selection`` part, or None.
    hierarchy : Hierarchy
        Ids that are not nodes of it are ignored.
    centre : str, optional
        The node the sunburst was centred on (its ``level``,
        :func:`sunburst_centre`).

    Returns
    -------
    str or None
        The node of ``points[0]["id"]`` (falling back to the point's
        HTML-escaped ``label``) when it is a node of ``hierarchy``; None for an
        empty or foreign selection.
    """
    if event is None:
        return None
    selection = _get(event, "selection")
    if selection is None:
        selection = event
    points = _get(selection, "points") or []
    for point in points:
        for key in ("id", "label"):
            value = _get(point, key)
            if isinstance(value, str) and key == "label":
                value = html.unescape(value)
            if isinstance(value, str) and value in hierarchy:
                if value == centre:
                    return hierarchy.first_parent(value) or value
                return value
    return None


def node_from_row_selection(event: Any, nodes: Sequence[str]) -> str | None:
    """The node of the first selected row of a ``st.dataframe`` selection event.

    Parameters
    ----------
    event : mapping or attribute object
        The dataframe's state (``{"selection": {"rows": [...]}}``) or None.
    nodes : sequence of str
        The displayed table's index (row position -> node id).

    Returns
    -------
    str or None
        None when no row is selected or the row position is out of range.
    """
    if event is None:
        return None
    selection = _get(event, "selection")
    rows = _get(selection if selection is not None else event, "rows") or []
    for row in rows:
        if isinstance(row, int) and 0 <= row < len(nodes):
            return str(nodes[row])
    return None


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError, AttributeError):
        return getattr(obj, key, None)


# -------------------------------------------------------------------- runs
DEMO_KEY = "demo"
"""Run chooser key of the bundled plain demo run (``assets/demo_run``; URLs ``?run=demo``)."""

DEMO_WEIGHTED_KEY = "demo-weighted"
"""Run chooser key of the bundled weighted demo run (``assets/demo_weighted_run``), the plain one's match."""


def discover_runs(demos: str | Path | Mapping[str, str | Path] | None,
                  roots: Sequence[str | Path] = ()) -> dict[str, Path]:
    """Runs for the run chooser, keyed by a short, URL-friendly name.

    Parameters
    ----------
    demos : path, mapping of str to path, or None
        The bundled demo runs, key -> run directory (for example
        ``{DEMO_KEY: ..., DEMO_WEIGHTED_KEY: ...}``), listed first in this
        order, each only when it is a run directory. A single path is the
        plain demo, key :data:`DEMO_KEY`.
    roots : sequence of path
        Folders searched with :func:`hmlc_core.runs.find_runs` (missing
        folders are ignored).

    Returns
    -------
    dict of str to pathlib.Path
        Key -> resolved run directory. A run's key is its folder name; on a
        clash, ``"<parent>/<name>"``, then the full path. A run is listed
        once, under the first key that reaches it.
    """
    from hmlc_core.runs import find_runs

    found: dict[str, Path] = {}
    seen: set[Path] = set()
    if demos is not None and not isinstance(demos, Mapping):
        demos = {DEMO_KEY: demos}
    for key, demo_dir in (demos or {}).items():
        demo = Path(demo_dir).resolve()
        if demo not in seen and demo in find_runs([demo]):
            found[key] = demo
            seen.add(demo)
    for path in find_runs(roots):
        if path in seen:
            continue
        seen.add(path)
        for key in (path.name, f"{path.parent.name}/{path.name}", str(path)):
            if key not in found:
                found[key] = path
                break
    return found


def resolve_run_key(value: str | None, choices: Mapping[str, Path]) -> str | None:
    """Map a ``run`` URL value to a key of ``choices``: a key itself, or a path of a listed run.

    Returns None when ``value`` is empty or names no listed run (paths that
    are not listed are never loaded).
    """
    if not value:
        return None
    if value in choices:
        return value
    try:
        target = Path(value).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    for key, path in choices.items():
        if path == target:
            return key
    return None
