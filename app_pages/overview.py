"""Overview page: the chosen run at a glance.

The run's story in two sentences (recall by depth, rare nodes never found), a link to
How it works, dataset and hierarchy facts, headline test metrics (micro AUPRC, macro and
hierarchical precision/recall/F1, rare-node recall), the training recipe and
configuration, the training curve, recall by depth, and links to the other
pages. Every precision, recall and F1 is under the sidebar's decision rule. All numbers come from
:mod:`hmlc_core.views.explore` and
:mod:`hmlc_core.views.diagnose` through the cached wrappers of ``app_pages/common.py``.
URL state: only the sidebar's (``run``, ``decision``, ``threshold``, ``shrinkage``).

Exports: the test predictions (:func:`hmlc_core.exports.predictions_csv`, built on click) and every
node's metrics as CSV under the sidebar's rule, and the charts' download format (the modebar's camera:
SVG or PNG, :func:`app_pages.common.chart_config`; widget ``figure_format``, read before the charts).
"""

from __future__ import annotations

from functools import partial

import streamlit as st

from app_pages import common as app_common
from hmlc_core.exports import DEFAULT_MIN_PROBABILITY
from hmlc_core.views import compare, diagnose, explore, teaching
from hmlc_core.runs import RunError

run = app_common.current_run()
path = str(run.path)
stamp = app_common.run_stamp(path)
decision = app_common.current_decision()
chart_config = app_common.chart_config(st.session_state.get("figure_format", "svg"))

st.title(f"Overview · {app_common.run_heading(run)}")
st.caption(diagnose.config_headline(run))
st.info(teaching.run_story(run), icon=":material/lightbulb:")
st.page_link("app_pages/how_it_works.py", label="How it works: the method, explained step by step",
             icon=":material/school:")
if app_common.current_run_key() in compare.DEMO_PAIR:
    st.page_link("app_pages/compare.py", icon=":material/compare_arrows:",
                 label="The demo pair: the same data, seed and budget without and with the paper's weighted "
                       "loss, side by side on Compare")

# ------------------------------------------------------------------ dataset
st.subheader("Dataset and hierarchy")
facts = diagnose.run_facts(run)
# Text, not metric cards: a card cuts a long dataset name or "DAG (1,477 multi-parent)" short.
st.caption(f"Dataset **{app_common.md_text(facts.pop('dataset'))}** · structure: "
           f"{app_common.md_text(facts.pop('structure'))}")
cards = list(facts.items())
for start in range(0, len(cards), 5):
    for column, (label, value) in zip(st.columns(5), cards[start:start + 5], strict=False):
        column.metric(label, value)

# ------------------------------------------------------------------ metrics
st.subheader("Test metrics")
try:
    scores = app_common.prediction_scores(path, stamp, decision)
except RunError as exc:
    scores = None
    st.warning(f"Hierarchical metrics are unavailable: {app_common.md_text(exc)}")
headline = explore.headline_metrics(run)
cards = [(k, headline[k]) for k in ("micro AUPRC", "macro precision", "macro recall", "macro F1")]
cards += list(diagnose.score_metrics(run, scores).items())
for start in (0, 4):
    for column, (label, value) in zip(st.columns(4), cards[start:start + 4], strict=False):
        column.metric(label, value)
st.caption(
    f"Decision: {app_common.md_text(app_common.rule_text(run))} on the ensemble-mean probabilities (sidebar; micro AUPRC is "
    "threshold-free). Macro values are means over all evaluated nodes "
    "(nodes without a positive test sample count as recall 0). Rare-node recall: macro recall of the evaluated "
    "nodes in the bottom quartile of training frequency. Hierarchical precision/recall/F1 (Kiritchenko et al. "
    "2005): each test example's true and predicted sets with their ancestors, pooled over examples, roots excluded. "
    f"Run status: {app_common.md_text(headline['status'])}, epochs {headline['epochs']}."
)

# ------------------------------------------------------------------- charts
left, right = st.columns(2, gap="large")
with left:
    st.plotly_chart(app_common.training_curve(path, stamp), key="training_curve", config=chart_config)
    if "valid_auprc" not in run.history.columns:
        st.caption("No validation AUPRC: this run was trained on train+valid (C-HMCNN's final protocol).")
with right:
    st.plotly_chart(app_common.recall_by_depth(path, stamp, decision), key="overview_recall_by_depth",
                    config=chart_config)
    st.caption("Macro recall of the evaluated nodes at each depth (shortest path from the root).")

# ------------------------------------------------------------------- config
st.subheader("Training configuration")
with st.expander("All settings", expanded=False):
    st.dataframe(diagnose.config_table(run), height=420)

# ------------------------------------------------------------------ exports
st.subheader("Exports")
c_pred, c_nodes, c_format = st.columns(3)
if scores is None:
    c_pred.caption("The predictions and per-node metrics cannot be exported: the test predictions are unreadable.")
else:
    c_pred.download_button(
        "Predictions (CSV)", partial(app_common.predictions_csv, path, stamp, decision),
        file_name="predictions.csv", mime="text/csv", key="download_predictions", icon="⬇️", on_click="ignore",
        help="One row per test sample and node: sample (row of the test split), node, probability, decision (0/1 "
             "under the sidebar's rule); rows with probability below "
             f"{DEFAULT_MIN_PROBABILITY:g} are left out unless decided 1. "
             "The command line also writes the CAFA format: python -m hmlc_core export RUN_DIR --format cafa",
    )
    c_nodes.download_button(
        "Per-node metrics (CSV)", app_common.node_table_csv(path, stamp, decision),
        file_name="node_metrics.csv", mime="text/csv", key="download_node_table", icon="⬇️", on_click="ignore",
        help="Every node's depth, frequencies, counts, precision, recall, F1, AP and uncertainty under the "
             "sidebar's rule.",
    )
c_format.radio("Chart download format", list(app_common.FIGURE_FORMATS), key="figure_format", horizontal=True,
               format_func=app_common.FIGURE_FORMATS.get,
               help="What the camera button in each chart's toolbar saves.")
st.caption(f"Decisions and metrics under {app_common.md_text(app_common.rule_text(run))} (sidebar).")

# ------------------------------------------------------------------ pointers
st.subheader("Where next")
st.page_link("app_pages/explorer.py", label="Hierarchy explorer: the hierarchy coloured by recall, frequency or "
             "uncertainty, with a drill-down per node", icon=":material/account_tree:")
st.page_link("app_pages/missed.py", label="Missed nodes: which nodes the ensemble misses, by depth, frequency and "
             "support, with a CSV export", icon=":material/search:")
st.page_link("app_pages/retrain.py", label="Retrain: train a variant of this run from the browser",
             icon=":material/model_training:")
st.page_link("app_pages/compare.py", label="Compare: runs side by side, per node", icon=":material/compare_arrows:")
