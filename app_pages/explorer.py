"""Hierarchy explorer page: the label hierarchy coloured by a per-node quantity, with a node card.

The node card shows the node's path from the root, its facts and metrics,
its parents and children, each ensemble member's probabilities on the node's
positive test samples, its precision-recall curve with each decision rule's
operating point, and its uncertainty under every mode. For an image run it also
shows the test images the decision rule misses for the node and those it wrongly
finds (:mod:`hmlc_core.views.images`), taken from the run's own ``images.npz``
by test row, never from a path in the URL. Every precision, recall
and F1 (and the colours by them) is under the sidebar's decision rule.

URL state: ``run`` (sidebar), ``node`` (node selectbox; from
:data:`hmlc_core.views.explore.NODE_SEARCH_MIN_NODES` nodes on, a hidden text box
next to a search box, :func:`hmlc_core.views.explore.search_nodes`), ``color`` (colour
selector) and, for image runs, ``image_order`` are query parameters, so a URL
reproduces the view. A click on a
sunburst sector or a table row selects that node (through the ``node``
selectbox's session state), and the sunburst is centred on the selected node
(:func:`hmlc_core.views.explore.sunburst_centre`), so its zoom follows the
node through every rerun; a click on the centre goes up to the parent.

A hierarchy of :data:`hmlc_core.views.explore.NODE_SEARCH_MIN_NODES` nodes or more
(the 100k-node benchmark) gets a search box instead of the node selectbox, and its
per-node table is built only while its tab is open; above
:data:`hmlc_core.views.explore.SUNBURST_MAX_SECTORS` nodes the sunburst carries
only the sectors it draws around the selected node (bench/README.md, *The
explorer on a 100k-node run*). From
:data:`hmlc_core.views.explore.DETAILS_AFTER_DRAW_MIN_NODES` nodes on, a session's
first view sends the page down to the node card's facts, with the sunburst; the
browser reports when it has drawn the sunburst
(:func:`app_pages.common.when_chart_drawn`), and that rerun sends the rest
(session state ``_explorer_details``), whose charts and neighbourhood the first
run has computed and cached meanwhile.
"""

from __future__ import annotations

import functools

import streamlit as st

from app_pages import common as app_common
from hmlc_core.views import explore
from hmlc_core.views import images as image_views
from hmlc_core.runs import RunError


run = app_common.current_run()
path = str(run.path)
stamp = app_common.run_stamp(path)
decision = app_common.current_decision()
hierarchy = run.hierarchy
nm = run.node_metrics

st.title(f"Hierarchy explorer · {app_common.run_heading(run)}")

# ------------------------------------------------------------------ headline
headline = explore.headline_metrics(run)
# Text, not metric cards: a card cuts a long dataset name or status short ("cellcyc...").
st.caption(f"Dataset **{app_common.md_text(headline.pop('dataset'))}** · status "
           f"**{app_common.md_text(headline.pop('status'))}** · precision, recall and F1 at "
           f"**{app_common.md_text(app_common.rule_text(run))}** (sidebar)")
cards = list(headline.items())
for chunk in (cards[:4], cards[4:]):
    for column, (label, value) in zip(st.columns(4), chunk, strict=False):
        column.metric(label, value)

# ------------------------------------------------------------ node selection
requested = st.query_params.get("node")
just_switched_run = app_common.url_node_is_stale()
if requested is not None and requested not in hierarchy and not just_switched_run:
    st.warning(f"Node {app_common.md_text(repr(requested))} from the URL is not in this run's hierarchy; showing "
               f"{app_common.md_text(repr(hierarchy.nodes[0]))}.")
if "node" in st.session_state and st.session_state["node"] not in hierarchy:
    del st.session_state["node"]  # left over from another run


def _select_from_sunburst(chart_key: str) -> None:
    current = st.session_state.get("node")
    centre = explore.sunburst_centre(hierarchy, current) if current in hierarchy else None
    node = explore.node_from_selection(st.session_state.get(chart_key), hierarchy, centre)
    if node is not None:
        st.session_state["node"] = node


# A large hierarchy's first view in a session sends the overview and the node card's heading first; the browser
# reports when it has drawn the sunburst, and only that rerun sends the rest of the page (its loading and drawing
# delayed the sunburst: bench/README.md, The explorer on a 100k-node run).
DETAILS_KEY = "_explorer_details"


def _show_details() -> None:
    st.session_state[DETAILS_KEY] = True


details_shown = hierarchy.n_nodes < explore.DETAILS_AFTER_DRAW_MIN_NODES or st.session_state.get(DETAILS_KEY, False)

left, right = st.columns([3, 2], gap="large")

def _pick_match() -> None:
    st.session_state["node"] = st.session_state["node_pick"]


# The node is chosen first: the overview is centred on it (plotly's level), so a node picked in the box or the URL
# is where the sunburst opens, and a click, which selects the node, keeps its zoom through every rerun.
with right:
    if hierarchy.n_nodes < explore.NODE_SEARCH_MIN_NODES:
        node = st.selectbox(
            "Node", hierarchy.nodes, index=0, key="node", bind="query-params",
            help="Type to search. Clicking a sector of the overview or a row of the table selects it too.",
        )
    else:
        # A selectbox would send every node id to the browser: the URL's node lives in a hidden text box, and
        # a search box lists the matching nodes.
        st.html("<style>.st-key-node {display: none;}</style>")
        typed = st.text_input("Node", key="node", bind="query-params", label_visibility="collapsed")
        node = typed if typed in hierarchy else hierarchy.nodes[0]
        query = st.text_input(
            "Find a node", key="node_search", placeholder="part of a node id",
            help=f"{hierarchy.n_nodes} nodes: type part of an id, then pick one of the first "
                 f"{explore.NODE_SEARCH_LIMIT} matches. Clicking a sector of the overview or a row of the table "
                 "selects a node too.",
        )
        if query.strip():
            matches, n_matches = explore.search_nodes(hierarchy, query)
            shown = f"{n_matches} matches" + (f", the first {len(matches)} listed" if n_matches > len(matches) else "")
            st.selectbox(f"Matching nodes ({shown})", matches, index=None, key="node_pick", on_change=_pick_match,
                         placeholder="no match" if not matches else "pick a node")

# The overview is drawn next, so the browser can show it while the node card is computed.
with left:
    color_by = st.radio("Colour by", list(explore.COLOR_QUANTITIES), index=0, key="color",
                        horizontal=True, bind="query-params")
    if not hierarchy.is_tree:
        n_multi = int((nm["n_parents"] > 1).sum())
        st.info(
            f"This hierarchy is a DAG ({n_multi} of {hierarchy.n_nodes} nodes have several parents). "
            "The overview draws its first-parent spanning tree; a node's other parents are listed on the right.",
            icon="ℹ️",
        )
    centre = explore.sunburst_centre(hierarchy, node)
    if st.session_state.get("_sunburst_centre") != (path, centre):  # a new chart per centre when pruned
        st.session_state["_sunburst_centre"] = (path, centre)
        st.session_state["_sunburst_serial"] = st.session_state.get("_sunburst_serial", 0) + 1
    chart_key = explore.sunburst_chart_key(hierarchy, st.session_state["_sunburst_serial"])
    st.plotly_chart(
        app_common.sunburst(path, stamp, color_by, centre, decision),
        key=chart_key,
        on_select=functools.partial(_select_from_sunburst, chart_key),
        selection_mode="points", config=app_common.chart_config(), theme=None,
    )
    legend = "Click a sector to zoom in and select it; click the centre to go back up."
    if color_by in ("recall", "precision", "F1", "average precision"):
        legend += " Grey: not evaluated, or no positive test sample."
    if color_by == "ensemble uncertainty":
        legend += f" Uncertainty mode: {explore.uncertainty_label(run)}."
    st.caption(legend)

with right:
    row = nm.loc[node]
    node_threshold = float(row["threshold"]) if "threshold" in row.index else explore.THRESHOLD
    st.subheader(app_common.md_text(node))
    st.caption("Path (first parents): " + " › ".join(map(app_common.md_text, explore.lineage(hierarchy, node))))
    facts = explore.node_facts(run, node)
    uncertainty = facts.pop("uncertainty")
    facts = list(facts.items())
    for chunk in (facts[:4], facts[4:]):  # four short columns a row: the card fits a 300 px column
        st.markdown("| " + " | ".join(k for k, _ in chunk) + " |\n|" + "---|" * len(chunk)
                    + "\n| " + " | ".join(f"**{v}**" for _, v in chunk) + " |")
    st.caption(f"Uncertainty **{uncertainty}**: mean over the test set, {explore.uncertainty_label(run)}. "
               f"Decision threshold of this node: **{explore.threshold_text(node_threshold)}** "
               f"({app_common.md_text(app_common.rule_text(run))}).")
    if not bool(row["evaluated"]):
        st.caption("This node is skipped in evaluation (a root); its metrics are not part of the averages.")
    elif int(row["support"]) == 0:
        st.caption("No positive test sample: recall, F1 and AP are undefined (shown as 0 / n/a).")
    if details_shown:
        relatives = explore.relatives_table(run, node)
        if relatives.empty:
            st.caption("No parents or children.")
        else:
            st.markdown(f"**Parents and children** ({int(row['n_parents'])} / {int(row['n_children'])})")
            st.dataframe(
                relatives, height=min(38 + 35 * len(relatives), 300),
                column_config=app_common.METRIC_COLUMNS,
                column_order=app_common.metric_column_order(relatives.columns,
                                                            ("precision", "recall", "f1", "relation")),
            )
        test_images = app_common.run_images(run)
        if test_images is not None:
            # The labels are the options: a bound widget's URL value is its shown label (Streamlit 1.67).
            shown_order = st.radio("Images", list(image_views.ORDERS.values()), key="image_order", horizontal=True,
                                   bind="query-params",
                                   help="Most confidently wrong first: missed positives with the lowest "
                                        "probability, false positives with the highest. Nearest the threshold "
                                        "first: the near misses.")
            order = {label: key for key, label in image_views.ORDERS.items()}[shown_order]
            try:
                errors = app_common.node_image_errors(path, stamp, node, decision, order=order)
            except RunError as exc:
                st.error(f"Cannot show this node's test images: {app_common.md_text(exc)}")
            else:
                for title, shown, total in (("Missed positives", errors.false_negatives, errors.n_false_negatives),
                                            ("False positives", errors.false_positives, errors.n_false_positives)):
                    cut = f", the first {len(shown)} shown" if len(shown) < total else ""
                    st.markdown(f"**{title}** ({total}{cut})")
                    app_common.image_strip(test_images, shown)
                st.caption(f"Test images of this run (its images.npz) that the decision rule "
                           f"({app_common.md_text(app_common.rule_text(run))}) gets wrong for "
                           f"{app_common.md_text(node)}, with the node's ensemble-mean probability; "
                           f"{image_views.ORDERS[order]}.")
        st.markdown("**Ensemble members on the positive test samples**")
        try:
            st.plotly_chart(app_common.member_probs(path, stamp, node, max(node_threshold, 0.0)), key="member_probs",
                            config=app_common.chart_config())
            st.caption(f"Each member's probability of {app_common.md_text(node)} on the test samples where it is a "
                       "true label, and the ensemble mean that the metrics threshold at the node's decision threshold "
                       f"({explore.threshold_text(node_threshold)}): points below the dashed line are misses. Hover a "
                       "point for its test-sample index (nodes with more than "
                       f"{explore.MAX_STRIP_POINTS} positives show the boxes and outliers only).")
        except RunError as exc:
            st.warning(f"Cannot read this run's test predictions: {app_common.md_text(exc)}")
        st.markdown("**Precision-recall curve and the decision rules**")
        try:
            st.plotly_chart(app_common.pr_curve(path, stamp, node, decision), key="pr_curve",
                            config=app_common.chart_config())
            st.caption("The node's test precision and recall at every threshold, and where each decision rule puts it "
                       "(the sidebar's rule is the large circle). A point at recall 0 on a curve that starts high is a "
                       "threshold failure: the node's positives are ranked first, but no probability clears the rule's "
                       "threshold." + ("" if app_common.has_held_out(path, stamp) else
                                                  " The tuned rules need held-out predictions, which this run lacks."))
        except RunError as exc:
            st.warning(f"Cannot read this run's test predictions: {app_common.md_text(exc)}")
        st.markdown("**Uncertainty by mode**")
        st.dataframe(
            explore.uncertainty_by_mode(run, node), key="uncertainty_modes",
            column_config={
                "mode": None,
                "uncertainty": st.column_config.NumberColumn("mean", format="%.4f", help="Mean over the test set."),
                "percentile": st.column_config.ProgressColumn(
                    "pct.", format="%.0f", min_value=0, max_value=100, width="small",
                    help="Percentile: share of evaluated nodes with at most this node's uncertainty."),
                "display": st.column_config.CheckboxColumn("shown", width="small",
                                                           help="The run's display mode, used in the colours."),
            },
        )
        st.caption("Mean per-sample uncertainty over the whole test set (docs/method.md, *Uncertainty modes*); "
                   "entropies in bits, epistemic (KL) is unbounded. Percentile: rank among the evaluated nodes.")
    else:
        st.caption("The node's parents and children, its charts, its neighbourhood and the per-node table follow "
                   "once the overview is drawn.")
        app_common.when_chart_drawn("explorer_drawn", _show_details)
        app_common.prepare_node_details(path, stamp, node, max(node_threshold, 0.0), color_by, decision)


if details_shown:
    # -------------------------------------------------------------- neighbourhood
    shown = explore.neighbourhood(hierarchy, node)
    total = len(explore.neighbourhood(hierarchy, node, max_nodes=hierarchy.n_nodes))
    st.subheader(f"Neighbourhood of {app_common.md_text(node)}")
    caption = ("Ancestors, children and siblings; colour as above, size grows with training frequency. "
               "Hover a node for its metrics; drag to pan, scroll to zoom.")
    if len(shown) < total:
        caption += f" Showing {len(shown)} of {total} nodes (siblings cut)."
    st.caption(caption)
    st.iframe(app_common.neighbourhood_html(path, stamp, node, color_by, decision), height=560)

    # ------------------------------------------------------------- depth & table
    # A large hierarchy's table (111,111 rows for the 100k-node benchmark) is built only while its tab is open.
    lazy_table = hierarchy.n_nodes >= explore.NODE_SEARCH_MIN_NODES
    tab_depth, tab_table = (st.tabs(["Recall by depth", "Per-node table"], key="table_tab", on_change="rerun")
                            if lazy_table else st.tabs(["Recall by depth", "Per-node table"]))
    with tab_depth:
        st.plotly_chart(app_common.recall_by_depth(path, stamp, decision), key="recall_by_depth",
                        config=app_common.chart_config())
        st.caption("Macro recall over the evaluated nodes at each depth; nodes without a positive test sample "
                   "count as 0.")

    with tab_table:
        if lazy_table and not tab_table.open:
            st.caption("The table is built when this tab is opened.")
        else:
            depth_options = sorted(int(d) for d in nm["depth"].unique())
            c1, c2 = st.columns([3, 1])
            depths = c1.multiselect("Depths", depth_options, default=[], key="table_depths",
                                    placeholder="all depths")
            evaluated_only = c2.toggle("Evaluated nodes only", value=True, key="table_evaluated")
            table = explore.node_table(run, depths, evaluated_only=evaluated_only)

            def _select_from_table() -> None:
                picked = explore.node_from_row_selection(st.session_state.get("node_table"), list(table.index))
                if picked is not None:
                    st.session_state["node"] = picked

            st.caption(f"{len(table)} nodes. Click a column header to sort; select a row to inspect the node.")
            st.dataframe(
                explore.na_text(table, ["average_precision"]), key="node_table", on_select=_select_from_table,
                selection_mode="single-row", height=420, column_config=app_common.METRIC_COLUMNS,
                column_order=app_common.metric_column_order(table.columns),
            )
