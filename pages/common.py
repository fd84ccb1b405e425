"""Streamlit glue shared by ``app.py`` and the pages: run discovery, cached loading, cached views.

Not a page itself: ``app.py`` lists the pages with ``st.navigation``.

The views themselves live in :mod:`hmlc_core.explore` (pure, tested without
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
import os
from pathlib import Path

import plotly.graph_objects as go
import streamlit as st

from hmlc_core import explore
from hmlc_core.runs import Run, RunError, load_run

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent.parent
DEMO_RUN_DIR = APP_DIR / "assets" / "demo_run"
LOCAL_RUNS_DIR = APP_DIR / "runs"
RUNS_DIR_ENV = "HMLC_RUNS_DIR"
RUN_PATH_KEY = "_hmlc_run_path"
DEMO_COMMAND = "python -m hmlc_core demo"


def run_roots() -> list[Path]:
    """Folders searched for runs: ``runs/`` next to the app, then each folder in ``$HMLC_RUNS_DIR``.

    ``HMLC_RUNS_DIR`` may hold several folders separated by ``os.pathsep``.
    """
    roots = [LOCAL_RUNS_DIR]
    env = os.environ.get(RUNS_DIR_ENV, "")
    roots += [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return roots


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
    """Cached :func:`hmlc_core.explore.sunburst_figure` of the run at ``path``."""
    return explore.sunburst_figure(_load_run(path, stamp), color_by)


@st.cache_data(max_entries=32, show_spinner=False)
def neighbourhood_html(path: str, stamp: int, node: str, color_by: str) -> str:
    """Cached :func:`hmlc_core.explore.pyvis_html` of the run at ``path``."""
    return explore.pyvis_html(_load_run(path, stamp), node, color_by)


@st.cache_data(max_entries=16, show_spinner=False)
def recall_by_depth(path: str, stamp: int) -> go.Figure:
    """Cached :func:`hmlc_core.explore.recall_by_depth_figure` of the run at ``path``."""
    return explore.recall_by_depth_figure(_load_run(path, stamp))


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
    st.sidebar.caption(f"`{path}`")
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
