"""Missed nodes page: which evaluated nodes the ensemble misses, and where in the hierarchy.

A node is missed when its test recall (under the sidebar's decision rule, on the
ensemble-mean probabilities) is below the chosen value, or is 0. The nodes with
recall 0 are split into threshold failures, ranking failures and nodes without
training data, with the rules that would recover them
(:func:`hmlc_core.views.diagnose.miss_kinds`), and a last chart shows the micro /
macro F1 trade-off of the per-node rule over its shrinkage. The table can be filtered by
depth, training frequency and test support and downloaded as CSV; two charts
place every node with test positives by recall against training frequency and
depth, coloured by uncertainty, outlining the table's nodes; a heatmap shows
how deep each test example is predicted correctly; and hierarchical precision,
recall and F1 sit next to the flat ones. For an image run, a toggle shows a strip of
missed test images per missed node (:mod:`hmlc_core.views.images`), taken from the
run's own ``images.npz`` by test row, never from a path in the URL.

URL state: ``run`` (sidebar), ``recall_below``, ``zero_recall``,
``depth_range``, ``freq_range``, ``support_range``, ``show_images`` (bound widgets) and
``node`` (the selected table row), so a URL reproduces the view.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from app_pages import common as app_common
from hmlc_core.views import diagnose, explore
from hmlc_core.views import images as image_views
from hmlc_core.runs import RunError

COLUMNS = {
    **app_common.METRIC_COLUMNS,
    "path": st.column_config.TextColumn("path (first parents)", width="medium"),
    "uncertainty": st.column_config.NumberColumn("uncert.", format="%.4f",
                                                 help="Mean test-set uncertainty (the run's display mode)."),
}
# Recall first (the page is about it), then precision and F1; the widest column, the path, last.
ORDER = ("recall", "precision", "f1", *app_common.METRIC_ORDER)
KIND_TITLES = {"threshold failure": "threshold failures", "ranking failure": "ranking failures",
               "no training data": "no training data"}
KIND_HELP = {
    "threshold failure": "Ranked well, yet no test probability clears the node's threshold: a lower threshold "
                         "could find it.",
    "ranking failure": "The positives are not ranked above the negatives: no threshold finds them cheaply.",
    "no training data": "No positive training example: the model never saw the node.",
}
KIND_COLUMNS = {
    "_index": st.column_config.TextColumn("node"),
    "kind": st.column_config.TextColumn("kind"),
    "recovered_by": st.column_config.TextColumn("recovered by", help="Rules under which the node's recall is > 0."),
    "average_precision": st.column_config.NumberColumn("AP", format="%.3f", help="Test average precision."),
    "lift": st.column_config.NumberColumn("AP / base", format="%.1f", help="AP over the base rate."),
    "base_rate": st.column_config.NumberColumn("base rate", format="%.3f", help="Test positives / test examples."),
    "support": st.column_config.NumberColumn("test pos.", help="Positive test samples."),
    "train_frequency": st.column_config.NumberColumn("train freq.", help="Positive training samples."),
    "depth": st.column_config.NumberColumn("depth"),
}
TRADEOFF_TEXT = (
    "Test micro and macro F1 of this run's predictions under the per-node rule at each shrinkage m, with the fixed "
    "and global rules as flat lines. One global threshold is the best single cut for the frequent nodes, which "
    "carry most of the micro F1; a rare node's scores sit lower, so that cut misses it. Small m gives every node "
    "its own held-out threshold: macro F1 (every node counts once) rises, micro F1 pays for the noisy thresholds "
    "of nodes with few held-out positives. Larger m pulls those thresholds back towards the global one, never "
    "above each node's prevalence floor (docs/method.md, *Decision rules*)."
)
SCORE_COLUMNS = {  # short headers: the three columns fit the page's 300 px column at 1280 px
    "hierarchical (hP, hR, hF)": st.column_config.NumberColumn("hier.", format="%.3f",
                                                               help="Hierarchical hP, hR, hF"),
    "flat micro": st.column_config.NumberColumn("micro", format="%.3f", help="Flat, micro-averaged"),
    "flat macro": st.column_config.NumberColumn("macro", format="%.3f", help="Flat, macro-averaged"),
}

run = app_common.current_run()
path = str(run.path)
stamp = app_common.run_stamp(path)
decision = app_common.current_decision()
bounds = diagnose.filter_bounds(run)

st.title(f"Missed nodes · {app_common.run_heading(run)}")
st.caption(f"Evaluated nodes whose test recall (at {app_common.md_text(app_common.rule_text(run))} on the "
           "ensemble-mean probabilities; the decision rule is in the sidebar) is below the chosen value. Filters and "
           "the selected node are kept in the URL.")


def _range_slider(column: st.delta_generator.DeltaGenerator, label: str, key: str, lo: int, hi: int,
                  default: tuple[int, int], help_text: str) -> tuple[int, int]:
    """A bound integer range slider; a single-valued range is shown as text (a slider needs lo < hi)."""
    if lo >= hi:
        column.caption(f"{label}: {lo} (all nodes)")
        return lo, hi
    value = st.session_state.get(key)
    if value is not None and not (lo <= value[0] <= value[1] <= hi):
        del st.session_state[key]  # left over from another run
    low, high = column.slider(label, lo, hi, default, step=1, key=key, bind="query-params", help=help_text)
    return int(low), int(high)


c_recall, c_depth, c_freq, c_support = st.columns([1.2, 1, 1, 1], gap="medium")
with c_recall:
    zero_only = st.toggle("Only recall = 0", value=False, key="zero_recall", bind="query-params",
                          help="List only nodes that the ensemble never finds in the test set.")
    threshold = st.slider("Recall below", 0.0, 1.0, 0.5, step=0.05, key="recall_below", bind="query-params",
                          disabled=zero_only, help="A node is missed when its test recall is below this value.")
depth = _range_slider(c_depth, "Depth", "depth_range", *bounds["depth"], bounds["depth"],
                      "Shortest-path depth from the root.")
freq = _range_slider(c_freq, "Training frequency", "freq_range", *bounds["train_frequency"],
                     bounds["train_frequency"], "Number of training examples positive for the node.")
support_lo, support_hi = bounds["support"]
support = _range_slider(c_support, "Test support", "support_range", support_lo, support_hi,
                        (min(max(support_lo, 1), support_hi), support_hi),
                        "Number of test examples positive for the node. Nodes with 0 have no recall to miss.")

table = app_common.missed_table(path, stamp, float(threshold), bool(zero_only), depth, freq, support, decision)

# -------------------------------------------------------------------- table
n_with_positives = int((run.node_metrics["evaluated"] & (run.node_metrics["support"] > 0)).sum())
rule = "recall = 0" if zero_only else f"recall < {threshold:g}"
st.subheader(f"{len(table)} missed nodes")
st.caption(f"{rule}, depth {depth[0]}–{depth[1]}, training frequency {freq[0]}–{freq[1]}, test support "
           f"{support[0]}–{support[1]}; {n_with_positives} evaluated nodes have a positive test sample. "
           f"Uncertainty: mean over the test set, {explore.uncertainty_label(run)}. Select a row to pick a node; "
           "*Why they are missed*, below, tells threshold failures from ranking failures.")
table_key = "missed_table_" + hashlib.sha1("\n".join(table.index).encode("utf-8")).hexdigest()[:12]
nodes = list(table.index)
selected = st.query_params.get("node")
selected = selected if selected in table.index else None


def _select_row() -> None:
    picked = explore.node_from_row_selection(st.session_state.get(table_key), nodes)
    if picked is not None:
        st.query_params["node"] = picked


st.dataframe(
    explore.na_text(table, ["average_precision"]), key=table_key, on_select=_select_row, selection_mode="single-row",
    height=380, column_config=COLUMNS, column_order=app_common.metric_column_order(table.columns, ORDER, ["path"]),
    selection_default={"selection": {"rows": [nodes.index(selected)]}} if selected else None,
)
c_download, c_node = st.columns([1, 3])
c_download.download_button(
    "Download table (CSV)",
    app_common.missed_csv(path, stamp, float(threshold), bool(zero_only), depth, freq, support, decision),
    file_name=f"{run.name}_missed_nodes.csv", mime="text/csv",
    key="download_missed", icon="⬇️", on_click="ignore",
)


if selected is not None:
    with c_node:
        st.markdown(f"Selected **{app_common.md_text(selected)}** · {app_common.md_text(table.loc[selected, 'path'])}")
        app_common.link_to(app_common.explorer_url(node=selected), f"Open {selected} in the Hierarchy explorer →")

# ----------------------------------------------------------- image runs
test_images = app_common.run_images(run)
if test_images is not None:
    show_images = st.toggle("Show missed images", value=False, key="show_images", bind="query-params",
                            help="For each node of the table (the first "
                                 f"{image_views.MAX_STRIP_NODES}), test images it is a true label of that the "
                                 "decision rule misses, most confidently missed first.")
    if show_images:
        try:
            strips = app_common.missed_image_strips(path, stamp, tuple(table.index), decision)
        except RunError as exc:
            st.error(f"Cannot show the missed images: {app_common.md_text(exc)}")
        else:
            for strip_node, errors in strips.items():
                if errors.false_negatives:
                    st.markdown(f"**{app_common.md_text(strip_node)}**: {errors.n_false_negatives} missed")
                    app_common.image_strip(test_images, errors.false_negatives)
            st.caption(f"Up to {image_views.STRIP_EXAMPLES} missed test images (this run's images.npz) per node, for "
                       f"the table's first {image_views.MAX_STRIP_NODES} nodes, with the node's ensemble-mean "
                       "probability.")

# ------------------------------------------------------------------- charts
st.subheader("Where the misses are")
fig_freq, fig_depth = app_common.missed_figures(path, stamp, float(threshold), bool(zero_only), depth, freq, support,
                                                decision)
left, right = st.columns(2, gap="large")
left.plotly_chart(fig_freq, key="recall_vs_frequency", config=app_common.chart_config())
right.plotly_chart(fig_depth, key="recall_vs_depth", config=app_common.chart_config())
st.caption("One point per evaluated node with a positive test sample; outlined points are the table's nodes. "
           "Colour: mean test uncertainty. Frequency axis: 1 + training frequency, so unseen nodes sit at 1.")

st.subheader("How deep the predictions go")
try:
    scores = app_common.prediction_scores(path, stamp, decision)
except RunError as exc:
    st.warning(f"The test predictions cannot be read: {app_common.md_text(exc)}")
    st.stop()
left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(app_common.deepest_level(path, stamp, decision), key="deepest_level",
                    config=app_common.chart_config())
    stats = diagnose.deepest_level_stats(scores)
    if stats["n_examples"]:
        st.caption(
            f"{stats['share_full_depth']:.1%} of the {stats['n_examples']} test examples with an evaluated label are "
            f"predicted correctly down to their deepest true level; on average the deepest correct node is "
            f"{stats['mean_gap']:.2f} levels above it, and {stats['share_none']:.1%} get no label right. "
            "Depth: shortest path from the root; level 0 means no evaluated node is both true and predicted."
        )
with right:
    st.markdown("**Hierarchical vs flat precision, recall and F1**")
    st.dataframe(diagnose.comparison_table(scores), column_config=SCORE_COLUMNS)
    st.caption(
        "Hierarchical (Kiritchenko et al. 2005): each example's true and predicted node sets with their ancestors, "
        "pooled over examples. Flat micro pools every (example, node) decision; flat macro averages the per-node "
        "values, so rare nodes weigh as much as frequent ones."
        + (" Labels are propagated and this run's predictions are hierarchy-coherent, so the hierarchical and flat "
           "micro values coincide; the gap to the macro values shows how much the rare nodes are missed."
           if run.summary.get("coherence_violations") == 0 else "")
    )

# ------------------------------------------------------------ why missed
st.subheader("Why they are missed")
try:
    kinds = app_common.miss_kinds(path, stamp, decision)
except RunError as exc:
    kinds = None
    st.warning(f"The misses cannot be diagnosed: {app_common.md_text(exc)}")
if kinds is not None:
    kinds = kinds[kinds.index.isin(table.index)]
    counts = diagnose.miss_kind_counts(kinds)
    for column, kind in zip(st.columns(3), diagnose.FAILURE_KINDS, strict=True):
        column.metric(KIND_TITLES[kind], counts[kind]["nodes"])
        recovered = [f"{app_common.md_text(label)}: {n}" for label, n in counts[kind].items() if label != "nodes"]
        column.caption(KIND_HELP[kind] + (" Recovered (recall > 0) by " + ", ".join(recovered) + "."
                                          if recovered and counts[kind]["nodes"] else ""))
    st.caption(f"The table's nodes with recall 0 at {app_common.md_text(app_common.rule_text(run))}. A good ranking: "
               f"test AP at least {diagnose.GOOD_RANKING_LIFT:g} x the node's base rate (test positives / test "
               f"examples, the AP of a random ranking) and at least {diagnose.GOOD_RANKING_AP:g}."
               + ("" if app_common.has_held_out(path, stamp) else
                  " This run has no held-out predictions, so the tuned rules cannot be tried on it."))
    if not kinds.empty:
        st.dataframe(kinds, key="miss_kinds", height=min(38 + 35 * len(kinds), 300), column_config=KIND_COLUMNS,
                     column_order=list(KIND_COLUMNS)[1:])

# ---------------------------------------------------------- the trade-off
st.subheader("Why one threshold cannot serve rare and frequent nodes")
try:
    tradeoff = app_common.tradeoff_chart(path, stamp)
except RunError as exc:
    tradeoff = None
    st.warning(f"The test predictions cannot be read: {app_common.md_text(exc)}")
if tradeoff is None:
    st.caption("This run has no held-out (valid) predictions (trained on train+valid), so no threshold can be tuned "
               "on it; retrain with `--fit-on train` to see the trade-off of the tuned rules.")
else:
    left, right = st.columns([3, 2], gap="large")
    left.plotly_chart(tradeoff, key="tradeoff", config=app_common.chart_config())
    right.caption(TRADEOFF_TEXT)
