"""Streamlit glue shared by ``app.py`` and the pages: run discovery, cached loading, cached views.

Not a page itself: ``app.py`` lists the pages with ``st.navigation``.

The views themselves live in :mod:`hmlc_core.views.explore` (pure, tested without
Streamlit); this module only adds Streamlit caching and the sidebar run chooser.

Session and URL state
---------------------
``st.query_params["run"]``
    Key of the selected run (bound to the sidebar selectbox ``key="run"``).
``st.query_params["node"]``
    Selected node (bound to the Explorer's selectbox ``key="node"``).
``st.session_state[RUN_PATH_KEY]``
    Path (str) of the run chosen in this script run, read by the pages.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from hmlc_core.views import compare, diagnose, explore
from hmlc_core import jobs, registry
from hmlc_core.registry import Registry, RegistryError
from hmlc_core.runs import RUNS_DIR_ENV, Run, RunError, env_runs_dirs, load_run

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent.parent
DEMO_RUN_DIR = APP_DIR / "assets" / "demo_run"
LOCAL_RUNS_DIR = APP_DIR / "runs"
RUN_PATH_KEY = "_hmlc_run_path"
DEMO_COMMAND = "python -m hmlc_core demo"


def run_roots() -> list[Path]:
    """Folders searched for runs: ``runs/`` next to the app, then each folder in ``$HMLC_RUNS_DIR``.

    ``HMLC_RUNS_DIR`` may hold several folders separated by ``os.pathsep``.
    """
    return [LOCAL_RUNS_DIR, *env_runs_dirs()]


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


@st.cache_data(max_entries=32, show_spinner=False)
def sunburst(path: str, stamp: int, color_by: str) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.sunburst_figure` of the run at ``path``."""
    return explore.sunburst_figure(_load_run(path, stamp), color_by)


@st.cache_data(max_entries=32, show_spinner="Drawing the neighbourhood…")
def neighbourhood_html(path: str, stamp: int, node: str, color_by: str) -> str:
    """Cached :func:`hmlc_core.views.explore.pyvis_html` of the run at ``path``."""
    return explore.pyvis_html(_load_run(path, stamp), node, color_by)


@st.cache_data(max_entries=16, show_spinner=False)
def recall_by_depth(path: str, stamp: int) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.recall_by_depth_figure` of the run at ``path``."""
    return explore.recall_by_depth_figure(_load_run(path, stamp))


# Column headers and number formats of the per-node tables (explorer, missed nodes).
METRIC_COLUMNS = {
    "_index": st.column_config.TextColumn("node"),
    "train_frequency": st.column_config.NumberColumn("train freq."),
    "precision": st.column_config.NumberColumn(format="%.3f"),
    "recall": st.column_config.NumberColumn(format="%.3f"),
    "f1": st.column_config.NumberColumn("F1", format="%.3f"),
    "average_precision": st.column_config.NumberColumn("AP", format="%.3f"),
    "uncertainty": st.column_config.NumberColumn(format="%.3f"),
}

RUN_CHANGED_KEY = "_hmlc_run_changed"


def _forget_node() -> None:
    """Run chooser callback: the selected node belongs to the previous run's hierarchy."""
    st.session_state.pop("node", None)
    st.session_state[RUN_CHANGED_KEY] = True


def url_node_is_stale() -> bool:
    """True (once) right after the user switched runs, when a ``node`` left in the URL is expected to be invalid."""
    return bool(st.session_state.pop(RUN_CHANGED_KEY, False))


def choose_run() -> Path | None:
    """Sidebar run chooser. Call it from ``app.py`` before ``pg.run()``.

    Lists the demo run (key ``demo``, the default) and the runs found in
    :func:`run_roots`. The choice is bound to the ``run`` query parameter; a
    ``run`` value in the URL that names no listed run shows a warning and falls
    back to the default. When no run exists at all, shows an error with the
    command that creates the demo run and stops the script.

    Returns
    -------
    pathlib.Path or None
        The chosen run directory (also stored in ``st.session_state[RUN_PATH_KEY]``).
    """
    choices = explore.discover_runs(DEMO_RUN_DIR, run_roots())
    st.session_state[RUN_PATH_KEY] = None
    if "demo" not in choices:
        st.sidebar.error(f"The bundled demo run is missing ({DEMO_RUN_DIR}). Create it with `{DEMO_COMMAND}`.")
    if not choices:
        st.error(
            f"No run found. Create the demo run with `{DEMO_COMMAND}`, train one with "
            f"`python -m hmlc_core train --dataset ... --out runs/NAME`, or point `{RUNS_DIR_ENV}` to a folder of runs."
        )
        st.stop()
    keys = list(choices)
    requested = st.query_params.get("run")
    if requested is not None and requested not in choices:
        resolved = explore.resolve_run_key(requested, choices)
        if resolved is not None:
            st.session_state["run"] = resolved
        else:
            st.warning(f"Run {requested!r} from the URL was not found; showing {keys[0]!r} instead.")
    if st.session_state.get("run") not in (None, *keys):
        del st.session_state["run"]  # a run that disappeared since the last rerun
    key = st.sidebar.selectbox(
        "Run", keys, index=0, key="run", bind="query-params", on_change=_forget_node,
        help=f"The demo run, runs in `runs/`, and runs in `${RUNS_DIR_ENV}`.",
    )
    path = choices[key if key in choices else keys[0]]
    # The registry's display name goes in the caption, not in a format_func: a bound selectbox writes the
    # formatted label into the URL, so renaming a run would break its links.
    name = run_display_names().get(path)
    st.sidebar.caption(f"**{name}** · `{path}`" if name and name != path.name else f"`{path}`")
    st.session_state[RUN_PATH_KEY] = str(path)
    return path


def current_run() -> Run:
    """The run chosen in the sidebar, loaded (cached). Stops the page with an error if it cannot be loaded."""
    path = st.session_state.get(RUN_PATH_KEY)
    if not path:
        st.error("No run selected.")
        st.stop()
    try:
        return cached_run(path)
    except RunError as exc:
        log.warning("cannot load run %s: %s", path, exc)
        st.error(f"Cannot load this run: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


# ------------------------------------------------------------------------------------------------------------
# Overview and Missed-nodes pages: cached wrappers of hmlc_core.views.diagnose, keyed by (run path, run_stamp)
# ------------------------------------------------------------------------------------------------------------
@st.cache_data(max_entries=16, show_spinner="Scoring the test predictions…")
def prediction_scores(path: str, stamp: int) -> diagnose.PredictionScores:
    """Cached :func:`hmlc_core.views.diagnose.score_predictions` of the run's saved test predictions.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read (the failure is not cached).
    """
    run = _load_run(path, stamp)
    preds = run.predictions()
    return diagnose.score_predictions(run.hierarchy, preds["y_true"], preds["mean_probs"])


@st.cache_data(max_entries=16, show_spinner=False)
def deepest_level(path: str, stamp: int) -> go.Figure:
    """Cached :func:`hmlc_core.views.diagnose.deepest_level_figure` of the run at ``path``.

    Raises as :func:`prediction_scores`.
    """
    return diagnose.deepest_level_figure(diagnose.deepest_level_counts(prediction_scores(path, stamp)))


@st.cache_data(max_entries=16, show_spinner=False)
def training_curve(path: str, stamp: int) -> go.Figure:
    """Cached :func:`hmlc_core.views.diagnose.training_curve_figure` of the run's history."""
    return diagnose.training_curve_figure(_load_run(path, stamp).history)


@st.cache_data(max_entries=64, show_spinner=False)
def missed_table(path: str, stamp: int, threshold: float, zero_only: bool, depth: tuple[int, int],
                 train_frequency: tuple[int, int], support: tuple[int, int]) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.diagnose.missed_nodes` of the run at ``path``."""
    return diagnose.missed_nodes(_load_run(path, stamp), threshold, zero_only, depth, train_frequency, support)


@st.cache_data(max_entries=64, show_spinner=False)
def missed_figures(path: str, stamp: int, threshold: float, zero_only: bool, depth: tuple[int, int],
                   train_frequency: tuple[int, int], support: tuple[int, int]) -> tuple[go.Figure, go.Figure]:
    """Cached recall-vs-frequency and recall-vs-depth figures outlining the nodes of :func:`missed_table`."""
    run = _load_run(path, stamp)
    shown = missed_table(path, stamp, threshold, zero_only, depth, train_frequency, support).index
    line = 0.0 if zero_only else threshold
    return (diagnose.recall_frequency_figure(run, shown, line), diagnose.recall_depth_figure(run, shown, line))


# ------------------------------------------------------------------------------------------------------------
# Retrain page and run registry: where new runs go, the registry handle, registry names in the run chooser
# ------------------------------------------------------------------------------------------------------------
def runs_dir() -> Path:
    """Where new runs are saved and the run registry lives: the first folder of ``$HMLC_RUNS_DIR``, else ``runs/``."""
    env = env_runs_dirs()
    return env[0] if env else LOCAL_RUNS_DIR


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
@st.cache_resource(max_entries=2, show_spinner="Loading the test predictions…")
def _member_predictions(path: str, stamp: int) -> dict[str, np.ndarray]:
    preds = _load_run(path, stamp).predictions()
    return {"y_true": preds["y_true"], "member_probs": preds["member_probs"]}


@st.cache_data(max_entries=64, show_spinner=False)
def member_probs(path: str, stamp: int, node: str) -> go.Figure:
    """Cached :func:`hmlc_core.views.explore.member_probs_figure` of a node of the run at ``path``.

    Raises
    ------
    RunError
        If ``predictions.npz`` cannot be read (the failure is not cached).
    """
    return explore.member_probs_figure(_member_predictions(path, stamp), _load_run(path, stamp).hierarchy, node)


def available_runs() -> dict[str, Path]:
    """The run chooser's runs (key -> run directory).

    :func:`hmlc_core.views.explore.discover_runs` of the app's folders.
    """
    return explore.discover_runs(DEMO_RUN_DIR, run_roots())


RunKey = tuple[str, str, int]
"""A run as a cache key: (display name, run directory, :func:`run_stamp`)."""


def run_keys(choices: dict[str, Path], names: list[str]) -> tuple[RunKey, ...]:
    """Cache keys of the runs ``names`` (keys of ``choices``), in that order."""
    return tuple((name, str(choices[name]), run_stamp(choices[name])) for name in names)


def load_runs(keys: tuple[RunKey, ...]) -> dict[str, Run]:
    """The runs of ``keys`` loaded (cached, shared: never mutate), by display name.

    Raises
    ------
    RunError
        If a run cannot be loaded (the message names its directory).
    """
    return {name: _load_run(path, stamp) for name, path, stamp in keys}


@st.cache_data(max_entries=16, show_spinner=False)
def compare_headline(keys: tuple[RunKey, ...]) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.headline_table`."""
    return compare.headline_table(load_runs(keys))


@st.cache_data(max_entries=16, show_spinner=False)
def compare_configs(keys: tuple[RunKey, ...]) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.config_differences`."""
    return compare.config_differences(load_runs(keys))


@st.cache_data(max_entries=16, show_spinner=False)
def compare_recall_by_depth(keys: tuple[RunKey, ...]) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.recall_by_depth_figure`."""
    return compare.recall_by_depth_figure(load_runs(keys))


@st.cache_data(max_entries=16, show_spinner="Binning recall by training frequency…")
def compare_recall_vs_frequency(keys: tuple[RunKey, ...]) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.recall_vs_frequency_figure`."""
    return compare.recall_vs_frequency_figure(load_runs(keys))


@st.cache_data(max_entries=32, show_spinner="Colouring the hierarchy by the difference…")
def compare_difference_sunburst(base: RunKey, other: RunKey, metric: str) -> go.Figure:
    """Cached :func:`hmlc_core.views.compare.difference_sunburst` of ``other - base``."""
    runs = load_runs((base, other))
    return compare.difference_sunburst(runs[base[0]], runs[other[0]], metric, names=(base[0], other[0]))


@st.cache_data(max_entries=32, show_spinner=False)
def compare_gained_lost(base: RunKey, other: RunKey, metric: str,
                        threshold: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cached :func:`hmlc_core.views.compare.gained_and_lost` of ``other`` against ``base``."""
    runs = load_runs((base, other))
    return compare.gained_and_lost(runs[base[0]], runs[other[0]], metric, threshold)


@st.cache_data(max_entries=32, show_spinner="Running the paired tests…")
def compare_paired_tests(base: RunKey, other: RunKey) -> pd.DataFrame:
    """Cached :func:`hmlc_core.views.compare.paired_tests` of ``other`` against ``base``."""
    runs = load_runs((base, other))
    return compare.paired_tests(runs[base[0]], runs[other[0]])
