"""Compare page: two or more runs on the same hierarchy, side by side and node by node.

Views: headline metrics and the options that differ; macro recall by depth;
recall against training frequency; the hierarchy coloured by the per-node
difference of a metric (compared run minus baseline, diverging scale); the
nodes gained and lost; and a paired Wilcoxon test across nodes (indicative
only). All numbers and figures come from :mod:`hmlc_core.views.compare` through the
cached wrappers of ``pages/common.py``.

URL state: ``runs`` (the runs compared), ``baseline``, ``other`` (the run
compared with the baseline), ``metric`` and ``gain_threshold`` are query
parameters, so a URL reproduces the view.
"""

from __future__ import annotations

import streamlit as st

from pages import common as app_common
from hmlc_core.views import compare
from hmlc_core.runs import RunError

st.title("Compare runs")

choices = app_common.available_runs()
keys = list(choices)
if len(keys) < 2:
    st.info(
        f"Comparing needs at least two runs; {len(keys)} found. Train another one on the **Retrain** page or with "
        f"`python -m hmlc_core train --dataset ... --out runs/NAME`, or point `${app_common.RUNS_DIR_ENV}` to a "
        "folder of runs."
    )
    st.stop()

# ------------------------------------------------------------------ choice
sidebar_key = st.session_state.get("run")
if sidebar_key not in choices:
    sidebar_key = keys[0]
default = [sidebar_key] + [k for k in keys if k != sidebar_key][:1]
if "runs" in st.session_state and not set(st.session_state["runs"]) <= set(keys):
    del st.session_state["runs"]  # a run that disappeared since the last rerun
requested = st.query_params.get_all("runs")
unknown = [r for r in requested if r not in choices]
if unknown:
    st.warning(f"Run(s) {', '.join(map(repr, unknown))} from the URL were not found and are left out.")
selected = st.multiselect(
    "Runs to compare", keys, default=default, key="runs", bind="query-params",
    help="Two or more runs trained on the same hierarchy (same dataset). Starts with the sidebar's run and one more.",
)
if len(selected) < 2:
    st.info("Choose at least two runs to compare.")
    st.stop()

run_keys = app_common.run_keys(choices, list(selected))
try:
    runs = app_common.load_runs(run_keys)
except RunError as exc:
    st.error(f"Cannot load a run: {exc}")
    st.stop()
try:
    hierarchy = compare.check_same_hierarchy(runs)
except ValueError as exc:
    st.error(f"These runs cannot be compared node by node.\n\n{exc}\n\nChoose runs trained on the same dataset.")
    st.stop()

c1, c2, c3 = st.columns([2, 2, 3])
baseline = c1.selectbox("Baseline", selected, index=0, key="baseline", bind="query-params",
                        help="Differences are the compared run minus this run.")
others = [name for name in selected if name != baseline]
other = c2.selectbox("Compared run", others, index=0, key="other", bind="query-params")
metric = c3.radio("Per-node metric", list(compare.METRICS), index=0, key="metric", horizontal=True,
                  bind="query-params", help="For the coloured hierarchy and the gained/lost lists.")
key_of = dict(zip(selected, run_keys, strict=True))
base_key, other_key = key_of[baseline], key_of[other]
st.caption(f"{len(selected)} runs on {runs[baseline].summary.get('dataset', 'the same dataset')} "
           f"({hierarchy.n_nodes} nodes, {'a tree' if hierarchy.is_tree else 'a DAG'}). "
           f"Differences: **{other} − {baseline}**.")

# ---------------------------------------------------------------- headline
st.subheader("Headline metrics")
headline = app_common.compare_headline(run_keys)
st.dataframe(compare.headline_text(headline), key="headline", height=38 + 35 * len(headline))
st.caption("Macro averages over the evaluated nodes at threshold 0.5 (nodes without test positives count as 0); "
           "rare-node recall: the bottom quartile of training frequency.")
configs = app_common.compare_configs(run_keys)
if configs.empty:
    st.caption("The runs were trained with identical options (different data or seeds only).")
else:
    with st.expander(f"Training options that differ ({len(configs)})", expanded=True):
        st.dataframe(configs, key="configs")

# ------------------------------------------------------------------ curves
left, right = st.columns(2, gap="large")
with left:
    st.plotly_chart(app_common.compare_recall_by_depth(run_keys), key="compare_depth",
                    config={"displaylogo": False})
with right:
    st.plotly_chart(app_common.compare_recall_vs_frequency(run_keys), key="compare_frequency",
                    config={"displaylogo": False})
st.caption("Left: macro recall of the evaluated nodes at each depth. Right: one point per evaluated node with "
           "test positives, and the mean recall per frequency bin (log-spaced bins).")

# ------------------------------------------------------------- node by node
st.subheader(f"Per-node {metric}: {other} − {baseline}")
diff_left, diff_right = st.columns([3, 2], gap="large")
with diff_left:
    st.plotly_chart(app_common.compare_difference_sunburst(base_key, other_key, metric), key="difference",
                    config={"displaylogo": False}, theme=None)
    note = ("Blue: better in the compared run, red: worse, white: no change; grey: not evaluated or no "
            "positive test sample. Click a sector to zoom in.")
    if not hierarchy.is_tree:
        note += " This hierarchy is a DAG: drawn as its first-parent spanning tree."
    st.caption(note)
with diff_right:
    threshold = st.select_slider(
        "Gained / lost above", options=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], value=0.0,
        key="gain_threshold", bind="query-params",
        help=f"A node is gained when its {metric} is at most this in the baseline and above it in the compared "
             "run; lost the other way round. 0: missed entirely versus found at least once.")
    gained, lost = app_common.compare_gained_lost(base_key, other_key, metric, float(threshold))
    columns = {"_index": st.column_config.TextColumn("node"),
               "train_frequency": st.column_config.NumberColumn("train freq."),
               "base": st.column_config.NumberColumn(f"{metric} · {baseline}", format="%.3f"),
               "other": st.column_config.NumberColumn(f"{metric} · {other}", format="%.3f"),
               "difference": st.column_config.NumberColumn("difference", format="%+.3f")}
    st.markdown(f"**Gained: {len(gained)} nodes**")
    st.dataframe(gained, key="gained", height=min(38 + 35 * max(len(gained), 1), 260), column_config=columns)
    st.markdown(f"**Lost: {len(lost)} nodes**")
    st.dataframe(lost, key="lost", height=min(38 + 35 * max(len(lost), 1), 260), column_config=columns)

# --------------------------------------------------------------- paired test
st.subheader("Paired test across nodes")
tests = app_common.compare_paired_tests(base_key, other_key)
st.dataframe(
    tests, key="paired_tests",
    column_config={"n_pairs": st.column_config.NumberColumn("nodes (pairs)"),
                   "n_nonzero": st.column_config.NumberColumn("pairs that differ"),
                   "mean_base": st.column_config.NumberColumn(f"mean · {baseline}", format="%.4f"),
                   "mean_other": st.column_config.NumberColumn(f"mean · {other}", format="%.4f"),
                   "median_difference": st.column_config.NumberColumn("median difference", format="%+.4f"),
                   "statistic": st.column_config.NumberColumn("Wilcoxon W", format="%.1f"),
                   "p_value": st.column_config.NumberColumn("p-value", format="%.3g")},
)
st.caption("Wilcoxon signed-rank test (two-sided) over the evaluated nodes with test positives, pairing each "
           f"node's value in {other} with its value in {baseline}; zero differences are dropped. "
           + compare.PAIRED_TEST_NOTE)
