"""Missed nodes page: which evaluated nodes the ensemble misses, and where in the hierarchy.

A node is missed when its test recall (threshold 0.5 on the ensemble-mean
probabilities) is below the chosen value, or is 0. The table can be filtered by
depth, training frequency and test support and downloaded as CSV; two charts
place every node with test positives by recall against training frequency and
depth, coloured by uncertainty, outlining the table's nodes; a heatmap shows
how deep each test example is predicted correctly; and hierarchical precision,
recall and F1 sit next to the flat ones.

URL state: ``run`` (sidebar), ``recall_below``, ``zero_recall``,
``depth_range``, ``freq_range``, ``support_range`` (bound widgets) and
``node`` (the selected table row), so a URL reproduces the view.
"""

from __future__ import annotations

import hashlib

import streamlit as st

from app_pages import common as app_common
from hmlc_core.views import diagnose, explore
from hmlc_core.runs import RunError

COLUMNS = {
    **app_common.METRIC_COLUMNS,
    "path": st.column_config.TextColumn("path (first parents)", width="medium"),
    "uncertainty": st.column_config.NumberColumn("uncert.", format="%.4f",
                                                 help="Mean test-set uncertainty (the run's display mode)."),
}
# Recall first (the page is about it), then precision and F1; the widest column, the path, last.
ORDER = ("recall", "precision", "f1", *app_common.METRIC_ORDER)
SCORE_COLUMNS = {  # short headers: the three columns fit the page's 300 px column at 1280 px
    "hierarchical (hP, hR, hF)": st.column_config.NumberColumn("hier.", format="%.3f",
                                                               help="Hierarchical hP, hR, hF"),
    "flat micro": st.column_config.NumberColumn("micro", format="%.3f", help="Flat, micro-averaged"),
    "flat macro": st.column_config.NumberColumn("macro", format="%.3f", help="Flat, macro-averaged"),
}

run = app_common.current_run()
path = str(run.path)
stamp = app_common.run_stamp(path)
bounds = diagnose.filter_bounds(run)

st.title(f"Missed nodes · {app_common.run_heading(run)}")
st.caption("Evaluated nodes whose test recall (threshold 0.5 on the ensemble-mean probabilities) is below the "
           "chosen value. Filters and the selected node are kept in the URL.")


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

table = app_common.missed_table(path, stamp, float(threshold), bool(zero_only), depth, freq, support)

# -------------------------------------------------------------------- table
n_with_positives = int((run.node_metrics["evaluated"] & (run.node_metrics["support"] > 0)).sum())
rule = "recall = 0" if zero_only else f"recall < {threshold:g}"
st.subheader(f"{len(table)} missed nodes")
st.caption(f"{rule}, depth {depth[0]}–{depth[1]}, training frequency {freq[0]}–{freq[1]}, test support "
           f"{support[0]}–{support[1]}; {n_with_positives} evaluated nodes have a positive test sample. "
           f"Uncertainty: mean over the test set, {explore.uncertainty_label(run)}. Select a row to pick a node.")
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
    "Download table (CSV)", diagnose.table_csv(table), file_name=f"{run.name}_missed_nodes.csv", mime="text/csv",
    key="download_missed", icon="⬇️", on_click="ignore",
)


if selected is not None:
    with c_node:
        st.markdown(f"Selected **{app_common.md_text(selected)}** · {app_common.md_text(table.loc[selected, 'path'])}")
        app_common.link_to(app_common.explorer_url(node=selected), f"Open {selected} in the Hierarchy explorer →")

# ------------------------------------------------------------------- charts
st.subheader("Where the misses are")
fig_freq, fig_depth = app_common.missed_figures(path, stamp, float(threshold), bool(zero_only), depth, freq, support)
left, right = st.columns(2, gap="large")
left.plotly_chart(fig_freq, key="recall_vs_frequency", config={"displaylogo": False})
right.plotly_chart(fig_depth, key="recall_vs_depth", config={"displaylogo": False})
st.caption("One point per evaluated node with a positive test sample; outlined points are the table's nodes. "
           "Colour: mean test uncertainty. Frequency axis: 1 + training frequency, so unseen nodes sit at 1.")

st.subheader("How deep the predictions go")
try:
    scores = app_common.prediction_scores(path, stamp)
except RunError as exc:
    st.warning(f"The test predictions cannot be read: {exc}")
    st.stop()
left, right = st.columns([3, 2], gap="large")
with left:
    st.plotly_chart(app_common.deepest_level(path, stamp), key="deepest_level", config={"displaylogo": False})
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
