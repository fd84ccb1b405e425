"""Streamlit glue shared by ``app.py`` and the pages: run discovery, cached loading, cached views.

Not a page itself: ``app.py`` lists the pages with ``st.navigation``.

The views themselves live in :mod:`hmlc_core.views.explore` (pure, tested without
Streamlit); this module only adds Streamlit caching and the sidebar run chooser.

Session and URL state
---------------------
``st.query_params["run"]``
    Key of the selected run (bound to the hidden sidebar selectbox ``key="run"``; the visible chooser,
    ``run__shown``, shows names: :func:`labelled_choice`). A ``run`` in the URL that differs from the
    chooser's value wins (:func:`_follow_url_run`).
``st.query_params["node"]``
    Selected node (bound to the Explorer's selectbox ``key="node"``).
``st.query_params["decision"]``, ``["threshold"]``, ``["shrinkage"]``
    The decision rule behind every precision, recall and F1 (sidebar widgets under the run chooser,
    :func:`choose_decision`; defaults ``fixed``, ``0.5``, ``DEFAULT_SHRINKAGE`` are dropped from the URL).
``st.session_state[RUN_PATH_KEY]``
    Path (str) of the run chosen in this script run, read by the pages.
"""

from __future__ import annotations

import contextlib
import dataclasses
import html
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from hmlc_core.views import compare, diagnose, explore, teaching
from hmlc_core.views import images as image_views
from hmlc_core.views import decision as decision_views
from hmlc_core import exports, jobs, registry
from hmlc_core.decision import DEFAULT_SHRINKAGE, DEFAULT_TRADEOFF_MS, DecisionRule
from hmlc_core.decision import shrinkage_tradeoff as tradeoff
from hmlc_core.metrics import precision_recall_f1
from hmlc_core.registry import Registry, RegistryError
from hmlc_core.config import TrainConfig
from hmlc_core.runs import RUNS_DIR_ENV, Run, RunError, RunImages, env_runs_dirs, load_run, read_config

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent.parent
DEMO_RUN_DIR = APP_DIR / "assets" / "demo_run"
DEMO_WEIGHTED_RUN_DIR = APP_DIR / "assets" / "demo_weighted_run"
LOCAL_RUNS_DIR = APP_DIR / "runs"
LOCAL_RUNS_ENV = "HMLC_LOCAL_RUNS_DIR"
"""Environment variable that replaces :data:`LOCAL_RUNS_DIR` (the tests point it at an empty folder, so the
user's own ``runs/`` never reaches them)."""
RUN_PATH_KEY = "_hmlc_run_path"
DEMO_COMMAND = "python -m hmlc_core demo"


def demo_runs() -> dict[str, Path]:
    """The bundled demo pair, run chooser key -> folder: ``demo`` (plain C-HMCNN), ``demo-weighted``.

    Both are made by :data:`DEMO_COMMAND` (``hmlc_core.cli.DEMO_RUNS``) with the same data, seed and
    budget; read at call time, so tests can point :data:`DEMO_RUN_DIR` and :data:`DEMO_WEIGHTED_RUN_DIR`
    elsewhere.
    """
    return {explore.DEMO_KEY: DEMO_RUN_DIR, explore.DEMO_WEIGHTED_KEY: DEMO_WEIGHTED_RUN_DIR}


def run_roots() -> list[Path]:
    """Folders searched for runs: ``runs/`` next to the app (:func:`local_runs_dir`), then each folder in
    ``$HMLC_RUNS_DIR``.

    ``HMLC_RUNS_DIR`` may hold several folders separated by ``os.pathsep``.
    """
    return [local_runs_dir(), *env_runs_dirs()]


def local_runs_dir() -> Path:
    """The app's own runs folder: ``$HMLC_LOCAL_RUNS_DIR`` when set, else ``runs/`` next to ``app.py``."""
    override = os.environ.get(LOCAL_RUNS_ENV, "").strip()
    return Path(override).expanduser() if override else LOCAL_RUNS_DIR


def run_stamp(path: str | Path) -> int:
    """Modification time (ns) of the run's ``summary.json``: part of every cache key, 0 if missing."""
    try:
        return (Path(path) / "summary.json").stat().st_mtime_ns
    except OSError:
        return 0


@st.cache_resource(max_entries=8, show_spinner="Loading run…")
def _load_run(path: str, stamp: int) -> Run:
    del stamp  # only part of the cache key: a rewritten run is loaded again
    return load_run(path)


def cached_run(path: str | Path) -> Run:
    """:func:`hmlc_core.runs.load_run`, cached per (path, mtime of summary.json). Shared: never mutate it.

    Raises
    ------
    RunError
        As ``load_run``.
    """
    return _load_run(str(path), run_stamp(path))


@st.cache_resource(max_entries=4, show_spinner="Loading the test predictions…")
def _predictions(path: str, stamp: int) -> dict[str, np.ndarray]:
    """:meth:`hmlc_core.runs.Run.predictions` of the run at ``path``, read once per (path, :func:`run_stamp`).

    Shared by all sessions, the arrays read-only; at most 4 runs' predictions are held (about 110 MB each for
    a cellcycle_GO run of two members). Raises :class:`RunError` as ``Run.predictions`` (not cached).
    """
    preds = _load_run(path, stamp).predictions()
    for array in preds.values():
        array.flags.writeable = False  # shared by every session: a write would change them all
    return preds


def _view_run(path: str, stamp: int, decision: Decision | None) -> Run:
    """The run at ``path`` under ``decision`` (:func:`decided_run`); its saved metrics when None or unreadable."""
    if decision is not None:
        try:
            return _decided_run(path, stamp, decision)
        except RunError as exc:
            log.warning("cannot apply the decision rule %s to run %s: %s", decision, path, exc)
    return _load_run(path, stamp)


# Figures are cached with st.cache_resource: one object shared by every session (st.plotly_chart only reads
# it), where st.cache_data would unpickle and re-validate a copy of a GO-sized figure on every page view.
@st.cache_resource(max_entries=32, show_spinner=False)
def sunburst(path: str, stamp: int, color_by: str, centre: str | None = None,
             decision: Decision | None = None) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.sunburst_figure` of the run at ``path`` (under ``decision``),
    centred on ``centre``. Shared by all sessions: never mutate it."""
    return explore.sunburst_figure(_view_run(path, stamp, decision), color_by, root=centre)


@st.cache_data(max_entries=32, show_spinner="Drawing the neighbourhood…")
def neighbourhood_html(path: str, stamp: int, node: str, color_by: str, decision: Decision | None = None) -> str:
    """Cached :func:`hmlc_core.views.explore.pyvis_html` of the run at ``path`` (under ``decision``)."""
    return explore.pyvis_html(_view_run(path, stamp, decision), node, color_by)


@st.cache_resource(max_entries=16, show_spinner=False)
def recall_by_depth(path: str, stamp: int, decision: Decision | None = None) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.recall_by_depth_figure` of the run at ``path`` (under ``decision``).

    Shared by all sessions: never mutate it.
    """
    return explore.recall_by_depth_figure(_view_run(path, stamp, decision))


# Column headers and number formats of the per-node tables (explorer, missed nodes). Short headers (the full
# names are in each header's help) and METRIC_ORDER keep node, P, R and F1 on screen at 1280 px. AP is text,
# written by explore.na_text, so that a node without test positives reads "n/a" rather than st.dataframe's "None".
METRIC_COLUMNS = {
    "_index": st.column_config.TextColumn("node"),
    "precision": st.column_config.NumberColumn("prec.", format="%.3f",
                                               help="Precision under the decision rule chosen in the sidebar."),
    "recall": st.column_config.NumberColumn("recall", format="%.3f",
                                            help="Recall under the decision rule chosen in the sidebar."),
    "f1": st.column_config.NumberColumn("F1", format="%.3f", help="F1 under the decision rule chosen in the sidebar."),
    "average_precision": st.column_config.TextColumn(
        "AP", alignment="right", help="Average precision; n/a without a positive test sample."),
    "support": st.column_config.NumberColumn("test pos.", help="Positive test samples."),
    "train_frequency": st.column_config.NumberColumn("train freq.", help="Positive training samples."),
    "n_parents": st.column_config.NumberColumn("parents"),
    "n_children": st.column_config.NumberColumn("children"),
    "uncertainty": st.column_config.NumberColumn("uncert.", format="%.3f",
                                                 help="Mean test-set uncertainty (the run's display mode)."),
}
METRIC_ORDER = ("precision", "recall", "f1", "average_precision", "support", "train_frequency", "depth")
"""Leading columns of the per-node tables: the metrics first, then the counts."""


def metric_column_order(columns: Iterable[str], first: Iterable[str] = METRIC_ORDER,
                        last: Iterable[str] = ()) -> list[str]:
    """``st.dataframe(column_order=...)`` of a per-node table: ``first`` (those present), the rest, then ``last``."""
    columns = list(columns)
    head = [c for c in dict.fromkeys(first) if c in columns]
    tail = [c for c in last if c in columns and c not in head]
    return head + [c for c in columns if c not in head and c not in tail] + tail


RUN_CHANGED_KEY = "_hmlc_run_changed"
RUN_PICKED_KEY = "_hmlc_run_picked"


def _forget_node() -> None:
    """Run chooser callback: the selected node belongs to the previous run's hierarchy."""
    st.session_state.pop("node", None)
    st.session_state[RUN_CHANGED_KEY] = True


def _run_picked() -> None:
    """Run chooser callback: forget the node, and let this pick win over the ``run`` still in the URL."""
    _forget_node()
    st.session_state[RUN_PICKED_KEY] = True


def url_node_is_stale() -> bool:
    """True (once) right after the user switched runs, when a ``node`` left in the URL is expected to be invalid."""
    return bool(st.session_state.pop(RUN_CHANGED_KEY, False))


def choose_run() -> Path | None:
    """Sidebar run chooser. Call it from ``app.py`` before ``pg.run()``.

    Lists the demo pair (keys ``demo``, the default, and ``demo-weighted``;
    :func:`demo_runs`) and the runs found in :func:`run_roots`, each as
    :func:`run_labels` (name · dataset · key). The choice is bound to the
    ``run`` query parameter by key (:func:`labelled_choice`); a ``run`` value in
    the URL that names no listed run shows a warning and keeps the current run
    (the default on a first view). A missing demo
    run is reported in the sidebar with the command that creates it; when no
    run exists at all, shows that error in the page and stops the script.

    Returns
    -------
    pathlib.Path or None
        The chosen run directory (also stored in ``st.session_state[RUN_PATH_KEY]``).
    """
    choices = available_runs()
    st.session_state[RUN_PATH_KEY] = None
    missing = [path for key, path in demo_runs().items() if key not in choices]
    if missing:
        st.sidebar.error(f"The bundled demo run is missing ({', '.join(map(str, missing))}). "
                         f"Create the demo pair with `{DEMO_COMMAND}`.")
    if not choices:
        st.error(
            f"No run found. Create the demo run with `{DEMO_COMMAND}`, train one with "
            f"`python -m hmlc_core train --dataset ... --out runs/NAME`, or point `{RUNS_DIR_ENV}` to a folder of runs."
        )
        st.stop()
    keys = list(choices)
    if st.session_state.get("run") not in (None, *keys):
        del st.session_state["run"]  # a run that disappeared since the last rerun
    if not st.session_state.pop(RUN_PICKED_KEY, False):
        _follow_url_run(choices)
    labels = run_labels(choices)
    key = labelled_choice(
        st.sidebar, "Run", keys, labels, key="run", on_change=_run_picked,
        help=f"The demo runs, runs in `runs/`, and runs in `${RUNS_DIR_ENV}`: name · dataset · key (the key is "
             "what the URL holds).",
    )
    path = choices[key if key in choices else keys[0]]
    st.sidebar.caption(f"`{path}`" if "`" not in str(path) else md_text(path))  # a code span shows text as is
    st.session_state[RUN_PATH_KEY] = str(path)
    return path


def _follow_url_run(choices: dict[str, Path]) -> None:
    """Let a ``run`` in the URL that differs from the chooser's value win, before the chooser is drawn.

    A bound widget keeps its session value on a rerun, so a link to another
    page with ``?run=KEY`` (which the browser sends next to the chooser's own
    ``run``) would otherwise open the chooser's run. Run keys and run paths are
    accepted (:func:`hmlc_core.views.explore.resolve_run_key`); an unknown run
    shows a warning and the chooser keeps its value.
    """
    current = st.session_state.get("run")
    requested = [value for value in st.query_params.get_all("run") if value != current]
    if not requested:
        return
    resolved = explore.resolve_run_key(requested[-1], choices)
    if resolved is None:
        shown = current if current is not None else next(iter(choices))
        st.warning(f"Run {md_text(repr(requested[-1]))} from the URL was not found; showing {md_text(repr(shown))} "
                   "instead.")
    elif resolved != current:
        st.session_state["run"] = resolved


SHOWN_SUFFIX = "__shown"
"""Session key suffix of the visible twin of a :func:`labelled_choice`."""


def labelled_choice(container: DeltaGenerator, label: str, options: list[str], labels: Mapping[str, str], *,
                    key: str, multiple: bool = False, default: str | list[str] | None = None,
                    on_change: Callable[[], None] | None = None, **kwargs: Any) -> Any:
    """A selectbox (or multiselect) that shows readable labels but keeps the option keys in the URL.

    Streamlit 1.67 writes a bound widget's *formatted* option (its ``format_func`` label) into the URL and
    rejects a URL value that is not such a label, so a bound widget with readable labels would put
    renamable run names into links and break links holding keys. This draws two widgets: one bound to the
    query parameter ``key`` whose options are the keys, hidden with CSS, and a visible one (session key
    ``key + SHOWN_SUFFIX``, not bound) that shows ``labels``. A pick in the visible one is copied into the
    bound one by its callback (then ``on_change`` runs); the bound value (from the URL, Back/Forward or
    code) is copied into the visible one on every run.

    Parameters
    ----------
    container : streamlit.delta_generator.DeltaGenerator
        Where to draw (``st``, ``st.sidebar``, a column).
    label : str
        The visible widget's label (the hidden one gets the same, collapsed).
    options : list of str
        Option keys, as the URL holds them.
    labels : mapping of str to str
        Key -> text shown; a key without a label shows itself. Plain text (not markdown).
    key : str
        Session key and query parameter of the bound widget.
    multiple : bool
        A multiselect instead of a selectbox.
    default : str, list of str or None
        Selectbox: the default key (None: the first option); multiselect: the default keys.
    on_change : callable, optional
        Called after a pick, in either widget.
    **kwargs
        Passed to the visible widget (``help``, ``placeholder``, ...).

    Returns
    -------
    str or list of str
        The chosen key (selectbox) or keys (multiselect).
    """
    shown = key + SHOWN_SUFFIX

    def _copy_pick() -> None:
        st.session_state[key] = st.session_state[shown]
        if on_change is not None:
            on_change()

    def _label(option: str) -> str:
        return labels.get(option, option)

    container.html(f"<style>.st-key-{key} {{display: none;}}</style>")
    if multiple:
        value = container.multiselect(label, options, default=default, key=key, bind="query-params",
                                      on_change=on_change, label_visibility="collapsed")
        st.session_state[shown] = list(value)
        container.multiselect(label, options, key=shown, format_func=_label, on_change=_copy_pick, **kwargs)
    else:
        index = options.index(default) if default in options else 0
        value = container.selectbox(label, options, index=index, key=key, bind="query-params", on_change=on_change,
                                    label_visibility="collapsed")
        st.session_state[shown] = value
        container.selectbox(label, options, key=shown, format_func=_label, on_change=_copy_pick, **kwargs)
    return value


_MARKDOWN_SPECIAL = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def md_text(text: object) -> str:
    """``text`` for Streamlit markdown (``st.markdown``, widget labels, captions) shown as typed, never formatted.

    Backslash-escapes every ASCII punctuation character (CommonMark lets any of
    them be escaped), which also disarms Streamlit's ``:color[...]``,
    ``:material/...:`` and ``$math$`` syntax; newlines become spaces. For user
    text: node ids, run names, file names.
    """
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c
                   for c in " ".join(str(text).splitlines()))


def run_heading(run: Run) -> str:
    """The run's name for a page title, markdown-escaped.

    Its registry name, else its run chooser key (``demo``, ``demo-weighted``) when it is the sidebar's run
    (:func:`choose_run` already resolved that key: no second scan of the runs folders), else its folder name.
    """
    path = run.path.resolve()
    chosen = st.session_state.get(RUN_PATH_KEY)
    key = current_run_key() if chosen and Path(chosen).resolve() == path else None
    return md_text(run_display_names().get(path, key or run.name))


def current_run_key() -> str | None:
    """The run chooser's key of the sidebar's run (what the ``run`` query parameter holds), None before it is drawn."""
    return st.session_state.get("run")


EXPLORER_URL_PATH = "hierarchy"
"""URL path of the Hierarchy explorer (``app.py`` gives it to the page)."""


def link_to(url: str, text: str) -> None:
    """A plain link that opens ``url`` (relative to the app) in this tab, as a fresh page view; ``text`` is escaped.

    Used instead of ``st.page_link(..., query_params=...)`` and ``st.switch_page``: ``st.switch_page``
    refuses to clear query parameters bound to widgets (Streamlit 1.67), and ``st.page_link`` sends the
    current page's bound parameters along, Streamlit drops them and pushes an extra browser history entry
    on the old page without them, so one Back press shows the previous page with its filters reset. A plain
    link makes one history entry, and the target page reads its whole state from the URL.
    """
    st.html(f'<a href="{html.escape(url)}" target="_self">{html.escape(text)}</a>')


def explorer_url(node: str | None = None, run_dir: str | Path | None = None) -> str:
    """Relative URL of the Hierarchy explorer on :func:`explorer_link`'s run and node (for :func:`link_to`)."""
    return f"{EXPLORER_URL_PATH}?{urlencode(explorer_link(node, run_dir))}"


def explorer_link(node: str | None = None, run_dir: str | Path | None = None) -> dict[str, str]:
    """Query parameters of a link to the Hierarchy explorer.

    Parameters
    ----------
    node : str, optional
        The node to show (``node``).
    run_dir : path, optional
        The run to open (``run``, its chooser key); default: the sidebar's run.

    Returns
    -------
    dict of str to str
        ``run`` (omitted when the run is not in the chooser) and ``node`` (omitted when None).
    """
    key = current_run_key()
    if run_dir is not None:
        target = Path(run_dir).resolve()
        key = next((k for k, p in available_runs().items() if p == target), None)
    params = {"run": key} if key is not None else {}
    if node is not None:
        params["node"] = node
    return params


def run_labels(choices: dict[str, Path]) -> dict[str, str]:
    """How the run chooser and Compare list runs: :func:`hmlc_core.registry.run_label` of each key of ``choices``.

    Names come from the run registries (:func:`run_display_names`), datasets from the runs' configs
    (:func:`run_configs`).
    """
    names = run_display_names()
    configs = run_configs(choices)
    return {key: registry.run_label(key, names.get(Path(path).resolve()),
                                    configs[key].dataset if key in configs else None)
            for key, path in choices.items()}


def current_run() -> Run:
    """The run chosen in the sidebar, loaded (cached), with its metrics under the sidebar's decision rule.

    :func:`decided_run` of :func:`current_decision`; when the test predictions cannot be read, the
    run's saved metrics (at its default rule) with a warning. Stops the page with an error if the run
    cannot be loaded.
    """
    path = st.session_state.get(RUN_PATH_KEY)
    if not path:
        st.error("No run selected.")
        st.stop()
    try:
        run = cached_run(path)
    except RunError as exc:
        log.warning("cannot load run %s: %s", path, exc)
        st.error(f"Cannot load this run: {md_text(exc)}")
        st.stop()
        raise  # unreachable: st.stop() raises
    try:
        return decided_run(path, current_decision())
    except RunError as exc:
        log.warning("cannot apply the decision rule to run %s: %s", path, exc)
        st.warning(f"The metrics cannot be recomputed under the chosen decision rule ({md_text(exc)}); showing the "
                   f"run's saved metrics ({md_text(run.summary.get('decision', 'fixed 0.5'))}).")
        return run


# ------------------------------------------------------------------------------------------------------------
# Decision rule: the sidebar selector shared by every page, and the run's metrics under it
# ------------------------------------------------------------------------------------------------------------
Decision = tuple[str, float, float | None]
"""A decision rule as a cache key: (rule, threshold of ``fixed``, shrinkage ``m`` of ``per-node`` else None)."""

DEFAULT_DECISION: Decision = ("fixed", 0.5, None)
"""The rule shown without ``decision`` in the URL: fixed 0.5, the paper's (and C-HMCNN's) threshold."""

DECISION_STATE_KEY = "_hmlc_decision"
DECISION_REQUESTED_KEY = "_hmlc_decision_requested"
SHRINKAGE_CHOICES = tuple(sorted({*DEFAULT_TRADEOFF_MS, DEFAULT_SHRINKAGE}))
"""The per-node rule's shrinkage strengths offered by the sidebar (those of the measured trade-off)."""


@st.cache_data(max_entries=64, show_spinner=False)
def has_held_out(path: str, stamp: int) -> bool:
    """Whether the run at ``path`` saved held-out (valid) predictions, which the tuned rules need.

    False when ``predictions.npz`` cannot be read (the pages report that themselves).
    """
    try:
        preds = _predictions(path, stamp)
        return "valid_y_true" in preds and "valid_mean_probs" in preds
    except RunError as exc:
        log.warning("cannot read the held-out predictions of %s: %s", path, exc)
        return False


def choose_decision() -> Decision:
    """Sidebar decision-rule selector, under the run chooser. Call it from ``app.py`` after :func:`choose_run`.

    Three bound widgets (query parameters ``decision``, ``threshold``, ``shrinkage``; defaults
    dropped from the URL): the rule (``fixed``, ``global``, ``per-node``;
    :mod:`hmlc_core.decision`), the fixed rule's threshold (a slider, disabled for the tuned rules)
    and the per-node rule's shrinkage ``m`` (disabled for the others). Disabled, not hidden: a bound
    widget that is not drawn loses its URL value. A tuned rule asked of a run without held-out
    predictions (trained on train+valid) says so under the rule and falls back to ``fixed`` (its
    threshold slider enabled).

    Returns
    -------
    Decision
        The rule in force (also in ``st.session_state[DECISION_STATE_KEY]``; :func:`current_decision`).
    """
    sidebar = st.sidebar
    rule = sidebar.radio("Decision rule", list(decision_views.RULE_CHOICES), key="decision", horizontal=True,
                         format_func=decision_views.RULE_CHOICES.get, bind="query-params",
                         help="How probabilities become predicted labels, for every precision, recall and F1 "
                              "shown: one fixed threshold; one threshold tuned on the held-out (valid) split for "
                              "micro F1; or one per node, tuned for the node's F1, shrunk towards the global "
                              "one and capped by the node's prevalence floor. The ancestors of a predicted node "
                              "are always predicted (docs/method.md, *Decision rules*).")
    path = st.session_state.get(RUN_PATH_KEY)
    fallback = rule != "fixed" and bool(path) and not has_held_out(path, run_stamp(path))
    if fallback:
        sidebar.warning(f"The {rule} rule is tuned on held-out (valid) predictions, and this run has none: it was "
                        "trained on train+valid. Showing the fixed rule instead; retrain with `--fit-on train` to tune "
                        "a rule.", icon=":material/warning:")
    threshold = sidebar.slider("Threshold (fixed rule)", 0.05, 0.95, DEFAULT_DECISION[1], step=0.05, key="threshold",
                               bind="query-params", disabled=rule != "fixed" and not fallback,
                               help="A node is predicted when its ensemble-mean probability is above this.")
    shrinkage = sidebar.select_slider(
        "Shrinkage m (per-node rule)", options=list(SHRINKAGE_CHOICES), value=DEFAULT_SHRINKAGE, key="shrinkage",
        format_func=lambda m: f"{m:g}", bind="query-params", disabled=rule != "per-node" or fallback,
        help="Pseudo-positives pulling each node's threshold towards the global one: 0 = each node's own "
             f"F1-optimal threshold, large = the global rule. Default {DEFAULT_SHRINKAGE:g}.")
    st.session_state[DECISION_REQUESTED_KEY] = (str(rule), float(threshold),
                                                float(shrinkage) if rule == "per-node" else None)
    decision: Decision = ("fixed", float(threshold), None) if fallback else st.session_state[DECISION_REQUESTED_KEY]
    st.session_state[DECISION_STATE_KEY] = decision
    return decision


def current_decision() -> Decision:
    """The decision rule in force for the sidebar's run in this script run (:func:`choose_decision`), else the default.

    ``fixed`` when a tuned rule was asked of a run without held-out predictions.
    """
    return st.session_state.get(DECISION_STATE_KEY) or DEFAULT_DECISION


def requested_decision() -> Decision:
    """The decision rule the sidebar asks for, before the sidebar run's fallback (Compare checks its own runs)."""
    return st.session_state.get(DECISION_REQUESTED_KEY) or DEFAULT_DECISION


def fit_rule(run: Run, decision: Decision) -> DecisionRule:
    """:meth:`hmlc_core.runs.Run.decision_rule` of ``decision`` (cached on the run).

    Raises
    ------
    RunError
        When a tuned rule is asked of a run without held-out predictions.
    """
    rule, threshold, shrinkage = decision
    return run.decision_rule(rule, threshold, shrinkage)


def rule_text(run: Run) -> str:
    """How captions name the rule of ``run``'s metrics: ``"threshold 0.5"``, ``"the global 0.27 rule"``, ...

    :func:`hmlc_core.views.decision.rule_phrase` of its summary's ``decision`` (``fixed 0.5`` when absent).
    """
    return decision_views.rule_phrase(str(run.summary.get("decision", "fixed 0.5")))


@st.cache_resource(max_entries=16, show_spinner="Applying the decision rule…")
def _decided_run(path: str, stamp: int, decision: Decision) -> Run:
    run = _load_run(path, stamp)
    rule = fit_rule(run, decision)
    if decision[0] == "fixed" and run.summary.get("decision") == rule.label():
        # save_run computed the saved metrics with this very rule: the same numbers, without reading and
        # scoring the test predictions (7 s and 2.6 s for a 111,111-node run of 500 test rows)
        thresholds = np.asarray(rule.thresholds, dtype=np.float64)
        return dataclasses.replace(run, node_metrics=run.node_metrics.assign(threshold=thresholds))
    preds = _predictions(path, stamp)
    return decision_views.run_under_rule(run, rule, preds["y_true"], preds["mean_probs"])


def decided_run(path: str | Path, decision: Decision) -> Run:
    """The run at ``path`` with its metrics under ``decision`` (:func:`hmlc_core.views.decision.run_under_rule`).

    Cached per (path, :func:`run_stamp`, decision). Shared: never mutate it.

    Raises
    ------
    RunError
        As :func:`cached_run`, when ``predictions.npz`` cannot be read, or a tuned rule has no held-out data.
    """
    return _decided_run(str(path), run_stamp(path), decision)


@st.cache_data(max_entries=16, show_spinner=False)
def rule_recalls(path: str, stamp: int, threshold: float, shrinkage: float | None) -> dict[str, np.ndarray]:
    """Every node's test recall under each rule the run can use: fixed ``threshold``, global, per-node (``m``).

    Keyed by rule label; the tuned rules only when the run has held-out predictions.
    """
    run = _load_run(path, stamp)
    decisions: list[Decision] = [("fixed", threshold, None)]
    if has_held_out(path, stamp):
        decisions += [("global", threshold, None), ("per-node", threshold, shrinkage)]
    preds = _predictions(path, stamp)
    result = {}
    for decision in decisions:
        rule = fit_rule(run, decision)
        result[rule.label()] = precision_recall_f1(preds["y_true"], preds["mean_probs"],
                                                   predictions=rule.predict(preds["mean_probs"]))[1]
    return result


@st.cache_data(max_entries=16, show_spinner=False)
def miss_kinds(path: str, stamp: int, decision: Decision) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.diagnose.miss_kinds` of the run under ``decision``, against the other rules.

    Raises
    ------
    RunError
        As :func:`decided_run`.
    """
    run = _decided_run(path, stamp, decision)
    recalls = rule_recalls(path, stamp, decision[1], decision[2] if decision[2] is not None else DEFAULT_SHRINKAGE)
    current = fit_rule(run, decision).label()
    others = {label: r for label, r in recalls.items() if label != current}
    return diagnose.miss_kinds(run.node_metrics,
                               int(run.summary.get("n_test") or len(_predictions(path, stamp)["y_true"])), others)


@st.cache_resource(max_entries=64, show_spinner=False)
def pr_curve(path: str, stamp: int, node: str, decision: Decision) -> go.Figure:
    """Cached :func:`hmlc_core.views.decision.pr_curve_figure` of a node, with the points of every usable rule.

    Shared by all sessions: never mutate it.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read.
    """
    run = _load_run(path, stamp)
    preds = _predictions(path, stamp)
    j = run.hierarchy.index[node]
    shrinkage = decision[2] if decision[2] is not None else DEFAULT_SHRINKAGE
    decisions: list[Decision] = [("fixed", decision[1], None)]
    if has_held_out(path, stamp):
        decisions += [("global", decision[1], None), ("per-node", decision[1], shrinkage)]
    rules = {fit_rule(run, d).label(): fit_rule(run, d) for d in decisions}
    return decision_views.pr_curve_figure(preds["y_true"][:, j], preds["mean_probs"][:, j], node, rules,
                                          current=fit_rule(run, decision).label(), node_index=j,
                                          probs=preds["mean_probs"])


@st.cache_data(max_entries=8, show_spinner="Tuning the per-node rule at each m…")
def shrinkage_tradeoff(path: str, stamp: int) -> pd.DataFrame | None:
    """Cached :func:`hmlc_core.decision.shrinkage_tradeoff` of the run; None without held-out predictions.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read, or the held-out data cannot tune the rules.
    """
    run = _load_run(path, stamp)
    preds = _predictions(path, stamp)  # the shared copy: held-out arrays included, read once
    if "valid_y_true" not in preds or "valid_mean_probs" not in preds:
        return None
    held = preds["valid_y_true"], preds["valid_mean_probs"]
    freq = run.node_metrics["train_frequency"].to_numpy(dtype=np.int64)
    known = bool((freq[run.hierarchy.eval_mask] >= 0).all())
    try:
        return tradeoff(run.hierarchy, held[0], held[1], preds["y_true"], preds["mean_probs"], SHRINKAGE_CHOICES,
                        freq if known else None, n_train=int(run.summary.get("n_train") or 0) or None)
    except ValueError as exc:
        raise RunError(f"run {path}: cannot tune the decision rules ({exc})") from exc


@st.cache_resource(max_entries=8, show_spinner=False)
def tradeoff_chart(path: str, stamp: int) -> go.Figure | None:
    """Cached :func:`hmlc_core.views.decision.tradeoff_figure` of :func:`shrinkage_tradeoff`; None without
    held-out predictions. Shared by all sessions: never mutate it.

    Raises
    ------
    RunError
        As :func:`shrinkage_tradeoff` (the failure is not cached).
    """
    table = shrinkage_tradeoff(path, stamp)
    return None if table is None else decision_views.tradeoff_figure(table)


# ------------------------------------------------------------------------------------------------------------
# Overview and Missed-nodes pages: cached wrappers of hmlc_core.views.diagnose, keyed by (run path, run_stamp)
# ------------------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Scoring the test predictions…")
def prediction_scores(path: str, stamp: int, decision: Decision = DEFAULT_DECISION) -> diagnose.PredictionScores:
    """Cached :func:`hmlc_core.views.diagnose.score_predictions` of the run's saved test predictions under ``decision``.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read, or ``decision`` is a tuned rule and the run has no
        held-out predictions (the failure is not cached).
    """
    run = _load_run(path, stamp)
    preds = _predictions(path, stamp)
    rule = fit_rule(run, decision)
    return diagnose.score_predictions(run.hierarchy, preds["y_true"], preds["mean_probs"], rule.thresholds,
                                      predictions=rule.predict(preds["mean_probs"]))


@st.cache_resource(max_entries=16, show_spinner=False)
def deepest_level(path: str, stamp: int, decision: Decision = DEFAULT_DECISION) -> go.Figure:
    """Cached :func:`hmlc_core.views.diagnose.deepest_level_figure` of the run at ``path`` under ``decision``.

    Shared by all sessions: never mutate it. Raises as :func:`prediction_scores`.
    """
    return diagnose.deepest_level_figure(diagnose.deepest_level_counts(prediction_scores(path, stamp, decision)))


@st.cache_resource(max_entries=16, show_spinner=False)
def training_curve(path: str, stamp: int) -> go.Figure:
    """Cached :func:`hmlc_core.views.diagnose.training_curve_figure` of the run's history.

    Shared by all sessions: never mutate it.
    """
    return diagnose.training_curve_figure(_load_run(path, stamp).history)


@st.cache_data(max_entries=64, show_spinner=False)
def missed_table(path: str, stamp: int, threshold: float, zero_only: bool, depth: tuple[int, int],
                 train_frequency: tuple[int, int], support: tuple[int, int],
                 decision: Decision | None = None) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.diagnose.missed_nodes` of the run at ``path`` (under ``decision``)."""
    return diagnose.missed_nodes(_view_run(path, stamp, decision), threshold, zero_only, depth, train_frequency,
                                 support)


@st.cache_data(max_entries=64, show_spinner=False)
def missed_csv(path: str, stamp: int, threshold: float, zero_only: bool, depth: tuple[int, int],
               train_frequency: tuple[int, int], support: tuple[int, int],
               decision: Decision | None = None) -> bytes:
    """Cached :func:`hmlc_core.views.diagnose.table_csv` of :func:`missed_table` (the page's download)."""
    return diagnose.table_csv(missed_table(path, stamp, threshold, zero_only, depth, train_frequency, support,
                                           decision))


@st.cache_resource(max_entries=32, show_spinner=False)
def missed_figures(path: str, stamp: int, threshold: float, zero_only: bool, depth: tuple[int, int],
                   train_frequency: tuple[int, int], support: tuple[int, int],
                   decision: Decision | None = None) -> tuple[go.Figure, go.Figure]:
    """Cached recall-vs-frequency and recall-vs-depth figures outlining the nodes of :func:`missed_table`.

    Shared by all sessions: never mutate them.
    """
    run = _view_run(path, stamp, decision)
    shown = missed_table(path, stamp, threshold, zero_only, depth, train_frequency, support, decision).index
    line = 0.0 if zero_only else threshold
    return (diagnose.recall_frequency_figure(run, shown, line), diagnose.recall_depth_figure(run, shown, line))


FIGURE_FORMATS = {"svg": "SVG (vector)", "png": "PNG"}
"""Formats of the charts' download button (the camera of Plotly's modebar), for :func:`chart_config`."""


def chart_config(image_format: str = "svg") -> dict[str, Any]:
    """The ``config`` of ``st.plotly_chart``: no Plotly logo; the modebar's download button saves ``image_format``.

    Plotly's modebar has one download button, in one format (``toImageButtonOptions``); SVG by default,
    since a vector figure scales for a paper. Unknown formats fall back to SVG.
    """
    fmt = image_format if image_format in FIGURE_FORMATS else "svg"
    return {"displaylogo": False, "toImageButtonOptions": {"format": fmt, "scale": 2 if fmt == "png" else 1}}


_CHART_DRAWN_JS = """
export default function ({ setTriggerValue }) {
    const drawn = () => document.querySelector("[data-testid='stPlotlyChart'] .js-plotly-plot .main-svg path.surface");
    let fired = false;
    const fire = () => {
        if (fired) return;
        fired = true;
        clearInterval(poll);
        clearTimeout(limit);
        requestAnimationFrame(() => setTimeout(() => setTriggerValue("drawn", true)));  // after that frame's paint
    };
    const poll = setInterval(() => { if (drawn()) fire(); }, 50);
    const limit = setTimeout(fire, %d);
    return () => { clearInterval(poll); clearTimeout(limit); };
}
"""
CHART_DRAWN_TIMEOUT_S = 10
"""Seconds after which :func:`when_chart_drawn` reports a chart that never showed as drawn (a Plotly error)."""
_chart_drawn = st.components.v2.component("hmlc_chart_drawn", js=_CHART_DRAWN_JS % (CHART_DRAWN_TIMEOUT_S * 1000))


def when_chart_drawn(key: str, on_drawn: Callable[[], None]) -> None:
    """Call ``on_drawn``, and rerun the app, once the browser has drawn a Plotly chart of the page.

    An empty ``st.components.v2`` component (no HTML) whose script waits until the page holds a drawn
    Plotly chart with sectors (``path.surface``: a sunburst, treemap or pie), then for that frame's paint,
    and sends one trigger; after :data:`CHART_DRAWN_TIMEOUT_S` seconds it sends it anyway. A page that
    sends its heavy elements only after this rerun lets the browser load and draw them after the chart,
    not before it. The script is fixed text: no data of the run reaches it.

    Parameters
    ----------
    key : str
        Widget key of the component (one mount per page).
    on_drawn : callable
        Called without arguments before the rerun (sets the page's session state).
    """
    _chart_drawn(key=key, on_drawn_change=on_drawn)


def prepare_node_details(path: str, stamp: int, node: str, threshold: float, color_by: str,
                         decision: Decision) -> None:
    """Compute and cache the explorer's node charts and neighbourhood without drawing them.

    The explorer calls it while the browser draws the overview (:func:`when_chart_drawn`), so the rerun
    that sends them finds them cached. Unreadable test predictions are left to that rerun, which reports them.

    Parameters
    ----------
    path : str
        Run folder.
    stamp : int
        :func:`run_stamp` of ``path``.
    node : str
        The selected node.
    threshold : float
        The node's decision threshold drawn in :func:`member_probs`.
    color_by : str
        Colour quantity of :func:`neighbourhood_html`.
    decision : Decision
        The sidebar's decision rule.
    """
    with contextlib.suppress(RunError):
        member_probs(path, stamp, node, threshold)
        pr_curve(path, stamp, node, decision)
    neighbourhood_html(path, stamp, node, color_by, decision)
    recall_by_depth(path, stamp, decision)


@st.cache_data(max_entries=2, show_spinner=False)
def predictions_csv(path: str, stamp: int, decision: Decision) -> bytes:
    """Cached :func:`hmlc_core.exports.predictions_csv` of the run at ``path`` under ``decision``.

    Large for GO-sized runs: pages pass it to ``st.download_button`` as a deferred callable, so it runs on click.
    """
    run = _load_run(path, stamp)
    return exports.predictions_csv(run, fit_rule(run, decision))


@st.cache_data(max_entries=16, show_spinner=False)
def node_table_csv(path: str, stamp: int, decision: Decision) -> bytes:
    """Every node's metrics under ``decision`` as CSV: :func:`hmlc_core.views.diagnose.table_csv` of
    :func:`hmlc_core.views.explore.node_table` (all nodes, roots included) of :func:`decided_run`."""
    return diagnose.table_csv(explore.node_table(_decided_run(path, stamp, decision), evaluated_only=False))


# ------------------------------------------------------------------------------------------------------------
# Retrain page and run registry: where new runs go, the registry handle, registry names in the run chooser
# ------------------------------------------------------------------------------------------------------------
def runs_dir() -> Path:
    """Where new runs are saved and the run registry lives: the first folder of ``$HMLC_RUNS_DIR``, else ``runs/``."""
    env = env_runs_dirs()
    return env[0] if env else local_runs_dir()


@st.cache_resource(max_entries=4, show_spinner="Opening the run registry…")
def _job_registry(path: str) -> Registry:
    opened = Registry(path)
    jobs.startup(opened)
    return opened


def job_registry() -> Registry:
    """The :class:`~hmlc_core.registry.Registry` of :func:`runs_dir`, shared by all sessions (thread-safe).

    The first call in a server process (per runs folder) imports unregistered
    run folders, marks runs whose worker died as failed and starts queued
    jobs (:func:`hmlc_core.jobs.startup`).

    Raises
    ------
    RegistryError, OSError
        If the registry cannot be opened or created (the failure is not cached).
    """
    return _job_registry(str(runs_dir().expanduser().resolve()))


def run_display_names() -> dict[Path, str]:
    """Registry display names of the runs in :func:`run_roots`, by resolved run directory.

    When :func:`runs_dir` exists, opens :func:`job_registry` first, so the
    app's first page view imports the run folders made outside the app and
    reconciles dead workers (a missing folder has nothing to import; the
    Retrain page creates it). Errors are logged and give no names.
    """
    if runs_dir().is_dir():
        try:
            job_registry()
        except (RegistryError, OSError) as exc:
            log.warning("run registry unavailable: %s", exc)
    return registry.display_names(run_roots())


# ------------------------------------------------------------------------------------------------------------
# Explorer node card and Compare page: cached wrappers of hmlc_core.views.explore / hmlc_core.views.compare
# ------------------------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=64, show_spinner=False)
def member_probs(path: str, stamp: int, node: str, threshold: float = explore.THRESHOLD) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.member_probs_figure` of a node of the run at ``path``, its
    decision threshold ``threshold`` drawn. Shared by all sessions: never mutate it.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read (the failure is not cached).
    """
    return explore.member_probs_figure(_predictions(path, stamp), _load_run(path, stamp).hierarchy, node,
                                       threshold=threshold)


def available_runs() -> dict[str, Path]:
    """The run chooser's runs (key -> run directory).

    :func:`hmlc_core.views.explore.discover_runs` of :func:`demo_runs` and the app's folders.
    """
    return explore.discover_runs(demo_runs(), run_roots())


@st.cache_data(max_entries=512, show_spinner=False)
def _run_config(path: str, stamp: int) -> TrainConfig | None:
    del stamp  # only part of the cache key
    try:
        return read_config(path)
    except RunError as exc:
        log.warning("cannot read the config of run %s: %s", path, exc)
        return None


def run_configs(choices: dict[str, Path]) -> dict[str, TrainConfig]:
    """The training configs of the runs ``choices`` (key -> run directory) whose ``config.json`` loads.

    :func:`hmlc_core.runs.read_config`, cached per (path, :func:`run_stamp`);
    runs whose config cannot be read are left out (and logged). Keys keep the
    order of ``choices``.
    """
    configs = {key: _run_config(str(path), run_stamp(path)) for key, path in choices.items()}
    return {key: config for key, config in configs.items() if config is not None}


RunKey = tuple[str, str, int]
"""A run as a cache key: (display name, run directory, :func:`run_stamp`)."""


def run_keys(choices: dict[str, Path], names: list[str],
             display: Mapping[str, str] | None = None) -> tuple[RunKey, ...]:
    """Cache keys of the runs ``names`` (keys of ``choices``), in that order, named by ``display`` (default: key)."""
    display = display or {}
    return tuple((display.get(name, name), str(choices[name]), run_stamp(choices[name])) for name in names)


def run_names(choices: dict[str, Path]) -> dict[str, str]:
    """Short names of the runs ``choices`` for tables and figures: the registry name, else the key.

    A name that several runs share, or that is another run's key, gets the key appended (``name (key)``),
    so the names stay unique. Plain text: escape before markdown.
    """
    registered = run_display_names()
    raw = {key: registered.get(Path(path).resolve(), key) for key, path in choices.items()}
    counts = Counter(raw.values())
    return {key: name if name == key or (counts[name] == 1 and name not in choices) else f"{name} ({key})"
            for key, name in raw.items()}


def load_runs(keys: tuple[RunKey, ...], decision: Decision | None = None) -> dict[str, Run]:
    """The runs of ``keys`` loaded (cached, shared: never mutate), by display name, under ``decision``.

    ``decision`` None: the runs' saved metrics; else each run's metrics under that rule
    (:func:`decided_run`; the caller checks that every run can use it, :func:`decision_for_runs`).

    Raises
    ------
    RunError
        If a run cannot be loaded (the message names its directory), or ``decision`` cannot be applied to it.
    """
    if decision is None:
        return {name: _load_run(path, stamp) for name, path, stamp in keys}
    return {name: _decided_run(path, stamp, decision) for name, path, stamp in keys}


def decision_for_runs(keys: tuple[RunKey, ...], decision: Decision) -> tuple[Decision, list[str]]:
    """``decision`` if every run of ``keys`` can use it, else the fixed rule at its threshold.

    Returns
    -------
    (Decision, list of str)
        The rule to compare under, and the display names of the runs without held-out predictions
        (empty when ``decision`` is kept).
    """
    if decision[0] == "fixed":
        return decision, []
    lacking = [name for name, path, stamp in keys if not has_held_out(path, stamp)]
    return (("fixed", decision[1], None), lacking) if lacking else (decision, [])


@st.cache_data(max_entries=16, show_spinner=False)
def compare_headline(keys: tuple[RunKey, ...], decision: Decision | None = None) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.headline_table` (under ``decision``)."""
    return compare.headline_table(load_runs(keys, decision))


@st.cache_data(max_entries=16, show_spinner=False)
def compare_configs(keys: tuple[RunKey, ...]) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.config_differences`."""
    return compare.config_differences(load_runs(keys))


@st.cache_data(max_entries=16, show_spinner=False)
def compare_recall_by_depth(keys: tuple[RunKey, ...], decision: Decision | None = None) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.recall_by_depth_figure` (under ``decision``)."""
    return compare.recall_by_depth_figure(load_runs(keys, decision))


@st.cache_data(max_entries=16, show_spinner="Binning recall by training frequency…")
def compare_recall_vs_frequency(keys: tuple[RunKey, ...], decision: Decision | None = None) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.recall_vs_frequency_figure` (under ``decision``)."""
    return compare.recall_vs_frequency_figure(load_runs(keys, decision))


@st.cache_data(max_entries=32, show_spinner="Colouring the hierarchy by the difference…")
def compare_difference_sunburst(base: RunKey, other: RunKey, metric: str, centre: str | None = None,
                                decision: Decision | None = None) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.difference_sunburst` of ``other - base``, centred on ``centre``."""
    runs = load_runs((base, other), decision)
    return compare.difference_sunburst(runs[base[0]], runs[other[0]], metric, names=(base[0], other[0]),
                                       root=centre)


@st.cache_data(max_entries=32, show_spinner=False)
def compare_gained_lost(base: RunKey, other: RunKey, metric: str, threshold: float,
                        decision: Decision | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cached :func:`hmlc_core.views.compare.gained_and_lost` of ``other`` against ``base`` (under ``decision``)."""
    runs = load_runs((base, other), decision)
    return compare.gained_and_lost(runs[base[0]], runs[other[0]], metric, threshold)


@st.cache_data(max_entries=32, show_spinner="Running the paired tests…")
def compare_paired_tests(base: RunKey, other: RunKey, decision: Decision | None = None) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.paired_tests` of ``other`` against ``base`` (under ``decision``)."""
    runs = load_runs((base, other), decision)
    return compare.paired_tests(runs[base[0]], runs[other[0]])


# ------------------------------------------------------------------------------------------------------------
# How it works: cached wrapper of hmlc_core.views.teaching
# ------------------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=8, show_spinner=False)
def member_spread(path: str, stamp: int) -> dict[str, float | int]:
    """Cached :func:`hmlc_core.views.teaching.member_spread` of the run at ``path`` (its saved member probabilities).

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read (the failure is not cached).
    """
    run = _load_run(path, stamp)
    return teaching.member_spread(_predictions(path, stamp)["member_probs"], run.hierarchy.eval_mask)


# ------------------------------------------------------------------------------------------------------------
# Image runs: the node card's and Missed nodes' test images (hmlc_core.views.images), from the run's images.npz
# ------------------------------------------------------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Loading the test images…")
def _run_images(path: str, stamp: int) -> RunImages | None:
    """:meth:`hmlc_core.runs.Run.images` of the run at ``path``, read once per (path, :func:`run_stamp`).

    Shared by all sessions, the thumbnails read-only. Raises :class:`RunError` as ``Run.images`` (not cached).
    """
    images = _load_run(path, stamp).images()
    if images is not None:
        images.thumbnails.flags.writeable = False
    return images


def run_images(run: Run) -> RunImages | None:
    """The test images of the sidebar's ``run``, from its own ``images.npz`` only; None for a tabular run.

    The pages never take an image path from the URL: images are addressed by test row
    (:mod:`hmlc_core.views.images`). An unreadable ``images.npz`` is reported in the page (``st.error``,
    naming the file) and gives None, as does an image run whose ``images.npz`` is missing (``st.warning``).
    """
    path = str(run.path)
    try:
        images = _run_images(path, run_stamp(path))
    except RunError as exc:
        log.warning("cannot read the images of run %s: %s", path, exc)
        st.error(f"Cannot show this run's test images: {md_text(exc)}")
        return None
    if images is None and "images" in run.dataset_info:
        st.warning("This run was trained on images, but its test images (images.npz) are missing: no thumbnails "
                   "can be shown.")
    return images


def _image_inputs(path: str, stamp: int,
                  decision: Decision) -> tuple[Run, dict[str, np.ndarray], list[str], np.ndarray]:
    """The run, its test predictions, its test image names and the predictions of ``decision``.

    Raises
    ------
    RunError
        If the run has no images, they or the predictions cannot be read, or ``decision`` cannot be fitted.
    """
    run = _load_run(path, stamp)
    preds = _predictions(path, stamp)
    images = _run_images(path, stamp)
    if images is None:
        raise RunError("the run has no test images", Path(path) / "images.npz")
    return run, preds, images.names, fit_rule(run, decision).predict(preds["mean_probs"])

@st.cache_data(max_entries=64, show_spinner=False)
def node_image_errors(path: str, stamp: int, node: str, decision: Decision, k: int = image_views.DEFAULT_EXAMPLES,
                      order: str = "confident") -> image_views.NodeErrors:
    """Cached :func:`hmlc_core.views.images.node_errors` of ``node`` in the run at ``path`` under ``decision``.

    Raises
    ------
    RunError
        If the predictions or images cannot be read, or ``decision`` cannot be fitted (not cached).
    """
    run, preds, names, predicted = _image_inputs(path, stamp, decision)
    return image_views.node_errors(preds["y_true"], preds["mean_probs"], predicted, run.hierarchy, node, names, k,
                                   order)


@st.cache_data(max_entries=32, show_spinner="Finding the missed images…")
def missed_image_strips(path: str, stamp: int, nodes: tuple[str, ...],
                        decision: Decision) -> dict[str, image_views.NodeErrors]:
    """Cached :func:`hmlc_core.views.images.missed_examples` of ``nodes`` in the run at ``path`` under ``decision``.

    Raises
    ------
    RunError
        As :func:`node_image_errors`.
    """
    run, preds, names, predicted = _image_inputs(path, stamp, decision)
    return image_views.missed_examples(preds["y_true"], preds["mean_probs"], predicted, run.hierarchy, nodes, names)


def image_strip(images: RunImages, examples: Iterable[image_views.ImageExample]) -> None:
    """Draw ``examples`` side by side, each enlarged (:func:`hmlc_core.views.images.display_image`) with its
    name and probability as caption; nothing when there are none.

    ``st.image`` renders captions as markdown (raw HTML shown as text), so the names, user text, are
    escaped with :func:`md_text`; PNG, not Streamlit's default JPEG, keeps the enlarged pixels sharp.
    """
    examples = list(examples)
    if not examples:
        return
    st.image([image_views.display_image(images.thumbnails[e.row]) for e in examples],
             caption=[md_text(image_views.caption_text(e)) for e in examples], width=image_views.DISPLAY_SIZE,
             output_format="PNG")
