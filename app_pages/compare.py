"""Compare page: two or more runs on the same hierarchy, side by side and node by node.

Views: headline metrics and the options that differ; macro recall by depth;
recall against training frequency; the hierarchy coloured by the per-node
difference of a metric (compared run minus baseline, diverging scale); the
nodes gained and lost; and a paired Wilcoxon test across nodes (indicative
only). All numbers and figures come from :mod:`hmlc_core.views.compare` through the
cached wrappers of ``app_pages/common.py``.

Without ``runs`` in the URL the page opens on
:func:`hmlc_core.views.compare.default_pair`: the plain demo against the
weighted demo when the sidebar's run is one of them, else the sidebar's run and
another run of its dataset.

Every run is under the sidebar's decision rule (a tuned rule fitted on each run's own held-out
predictions); when one of the runs has none, all are compared at the fixed threshold, with a warning.

URL state: ``runs`` (the runs compared), ``baseline``, ``other`` (the run
compared with the baseline), ``metric`` and ``gain_threshold`` are query
parameters, so a URL reproduces the view.
"""

from __future__ import annotations

import streamlit as st

from app_pages import common as app_common
from hmlc_core.views import compare, explore
from hmlc_core.runs import RunError

CENTRE_KEY = "_hmlc_difference_centre"  # the node last clicked in the difference sunburst

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
configs = app_common.run_configs(choices)
datasets = {key: configs[key].dataset if key in configs else None for key in keys}
default = compare.default_pair(st.session_state.get("run"), datasets)
if "runs" in st.session_state and not set(st.session_state["runs"]) <= set(keys):
    del st.session_state["runs"]  # a run that disappeared since the last rerun
requested = st.query_params.get_all("runs")
unknown = [r for r in requested if r not in choices]
if unknown:
    st.warning(f"Run(s) {', '.join(app_common.md_text(repr(u)) for u in unknown)} from the URL were not found and are "
               "left out.")
labels = app_common.run_labels(choices)
selected = app_common.labelled_choice(
    st, "Runs to compare", keys, labels, key="runs", multiple=True, default=default,
    help="Two or more runs trained on the same hierarchy (same dataset). Starts with the sidebar's run and another "
         "run of its dataset; on the demo runs, with the plain demo against the weighted one.",
)
if len(selected) < 2:
    if len(default) < 2 and list(selected) == default:
        st.info("No other run of the sidebar run's dataset was found. Choose at least two runs trained on the same "
                "dataset to compare.")
    else:
        st.info("Choose at least two runs to compare.")
    st.stop()

names = app_common.run_names(choices)  # how tables, figures and captions name the runs
run_keys = app_common.run_keys(choices, list(selected), names)
try:
    runs = app_common.load_runs(run_keys)
except RunError as exc:
    st.error(f"Cannot load a run: {app_common.md_text(exc)}")
    st.stop()
try:
    hierarchy = compare.check_same_hierarchy(runs)
except ValueError as exc:
    st.error(f"These runs cannot be compared node by node.\n\n{app_common.md_text(exc)}\n\nChoose runs trained on "
             "the same dataset.")
    st.stop()

decision, lacking = app_common.decision_for_runs(run_keys, app_common.requested_decision())
if lacking:
    st.warning(f"The {app_common.requested_decision()[0]} decision rule is tuned on held-out (valid) predictions, "
               "which "
               f"{', '.join(app_common.md_text(name) for name in lacking)} "
               f"{'lacks' if len(lacking) == 1 else 'lack'} (trained on train+valid): every run is compared at the "
               f"fixed threshold {decision[1]:g} instead, so that all follow the same rule.", icon=":material/warning:")
try:
    runs = app_common.load_runs(run_keys, decision)
except RunError as exc:
    st.error(f"Cannot apply the decision rule to a run: {app_common.md_text(exc)}")
    st.stop()
rule_texts = sorted({app_common.rule_text(r) for r in runs.values()})

c1, c2, c3 = st.columns([2, 2, 3])
baseline = app_common.labelled_choice(c1, "Baseline", list(selected), labels, key="baseline",
                                      help="Differences are the compared run minus this run.")
others = [name for name in selected if name != baseline]
other = app_common.labelled_choice(c2, "Compared run", others, labels, key="other")
metric = c3.radio("Per-node metric", list(compare.METRICS), index=0, key="metric", horizontal=True,
                  bind="query-params", help="For the coloured hierarchy and the gained/lost lists.")
key_of = dict(zip(selected, run_keys, strict=True))
base_key, other_key = key_of[baseline], key_of[other]
base_name, other_name = app_common.md_text(names[baseline]), app_common.md_text(names[other])
dataset_name = app_common.md_text(runs[base_key[0]].summary.get("dataset", "the same dataset"))
st.caption(f"{len(selected)} runs on {dataset_name} "
           f"({hierarchy.n_nodes} nodes, {'a tree' if hierarchy.is_tree else 'a DAG'}). "
           f"Differences: **{other_name} − {base_name}**.")

# ---------------------------------------------------------------- headline
st.subheader("Headline metrics")
headline = app_common.compare_headline(run_keys, decision)
decisions = {name: str(run.summary.get("decision", "fixed 0.5")) for name, run in runs.items()}
st.dataframe(compare.headline_text(headline, decisions), key="headline", height=38 + 35 * (len(headline) + 1))
st.caption(f"Every run under the sidebar's decision rule ({app_common.md_text('; '.join(rule_texts))}; a tuned rule "
           "is fitted on each run's own held-out predictions). Macro averages over the evaluated nodes (nodes without "
           "test positives count as 0); rare-node recall: the bottom quartile of training frequency.")
configs = app_common.compare_configs(run_keys)
if configs.empty:
    st.caption("The runs were trained with identical options (different data or seeds only).")
else:
    with st.expander(f"Training options that differ ({len(configs)})", expanded=True):
        st.dataframe(configs, key="configs")

# ------------------------------------------------------------------ curves
left, right = st.columns(2, gap="large")
with left:
    st.plotly_chart(app_common.compare_recall_by_depth(run_keys, decision), key="compare_depth",
                    config=app_common.chart_config())
with right:
    st.plotly_chart(app_common.compare_recall_vs_frequency(run_keys, decision), key="compare_frequency",
                    config=app_common.chart_config())
st.caption("Left: macro recall of the evaluated nodes at each depth. Right: one point per evaluated node with "
           "test positives, and the mean recall per frequency bin (log-spaced bins).")

# ------------------------------------------------------------- node by node
st.subheader(f"Per-node {metric}: compared run − baseline")
st.caption(f"Compared run **{other_name}**, baseline **{base_name}**.")
diff_left, diff_right = st.columns([3, 2], gap="large")
with diff_left:
    # The zoom is the clicked node in session state (the figure's level), so it survives a change of metric or runs.
    if st.session_state.get(CENTRE_KEY) not in hierarchy:
        st.session_state.pop(CENTRE_KEY, None)
    clicked = st.session_state.get(CENTRE_KEY)
    centre = explore.sunburst_centre(hierarchy, clicked) if clicked is not None else None

    # A hierarchy too large to send whole is drawn around its centre only: a new chart per centre (as in the
    # explorer), so the browser's state of an earlier chart never shows a stale zoom.
    if st.session_state.get("_difference_centre") != (base_key, other_key, centre):
        st.session_state["_difference_centre"] = (base_key, other_key, centre)
        st.session_state["_difference_serial"] = st.session_state.get("_difference_serial", 0) + 1
    chart_key = explore.sunburst_chart_key(hierarchy, st.session_state["_difference_serial"], key="difference")

    def _zoom() -> None:
        node = explore.node_from_selection(st.session_state.get(chart_key), hierarchy, centre)
        if node is not None:
            st.session_state[CENTRE_KEY] = node

    st.plotly_chart(app_common.compare_difference_sunburst(base_key, other_key, metric, centre, decision),
                    key=chart_key,
                    on_select=_zoom, selection_mode="points", config=app_common.chart_config(), theme=None)
    note = ("Blue: better in the compared run, red: worse, white: no change; grey: not evaluated or no "
            "positive test sample. Click a sector to zoom in, the centre to go back up.")
    if not hierarchy.is_tree:
        note += " This hierarchy is a DAG: drawn as its first-parent spanning tree."
    st.caption(note)
with diff_right:
    threshold = st.select_slider(
        "Gained / lost above", options=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], value=0.0,
        key="gain_threshold", bind="query-params",
        help=f"A node is gained when its {metric} is at most this in the baseline and above it in the compared "
             "run; lost the other way round. 0: missed entirely versus found at least once.")
    gained, lost = app_common.compare_gained_lost(base_key, other_key, metric, float(threshold), decision)
    # Short headers (the run names are in their help) and the values first: they fit this 300 px column.
    columns = {"_index": st.column_config.TextColumn("node"),
               "base": st.column_config.NumberColumn("baseline", format="%.3f",
                                                     help=f"{metric} in {base_name}"),
               "other": st.column_config.NumberColumn("compared", format="%.3f",
                                                      help=f"{metric} in {other_name}"),
               "difference": st.column_config.NumberColumn("Δ", format="%+.3f", help="compared − baseline"),
               "support": st.column_config.NumberColumn("test pos.", help="Positive test samples."),
               "train_frequency": st.column_config.NumberColumn("train freq.", help="Positive training samples.")}
    order = ["base", "other", "difference", "support", "train_frequency", "depth"]
    st.markdown(f"**Gained: {len(gained)} nodes**")
    st.dataframe(gained, key="gained", height=min(38 + 35 * max(len(gained), 1), 260), column_config=columns,
                 column_order=order)
    st.markdown(f"**Lost: {len(lost)} nodes**")
    st.dataframe(lost, key="lost", height=min(38 + 35 * max(len(lost), 1), 260), column_config=columns,
                 column_order=order)

# --------------------------------------------------------------- paired test
st.subheader("Paired test across nodes")
tests = app_common.compare_paired_tests(base_key, other_key, decision)
st.dataframe(
    compare.paired_tests_text(tests), key="paired_tests",
    column_config={"n_pairs": "nodes (pairs)", "n_nonzero": "pairs that differ", "mean_base": "mean (baseline)",
                   "mean_other": "mean (compared)", "median_difference": "median difference",
                   "statistic": "Wilcoxon W", "p_value": "p-value"},
)
st.caption("Wilcoxon signed-rank test (two-sided) over the evaluated nodes with test positives, pairing each "
           f"node's value in {other_name} with its value in {base_name}; zero "
           "differences are dropped. "
           + compare.PAIRED_TEST_NOTE)
