"""How it works: the method explained for a class, with small interactive plots.

Six parts, each with plain-language text, a plot computed by
:mod:`hmlc_core.views.teaching` and the matching section of ``docs/method.md``:
the max-constraint module on a toy sample, node weights against training
frequency, the focal factor, the uncertainty modes and their scales, and what
"evaluated" and "rare" nodes are, and why one decision threshold cannot serve
rare and frequent nodes (the micro/macro F1 trade-off of the per-node rule).
The numbers come from the chosen run where a
run has them (training frequencies, per-node uncertainties, member
probabilities). Nothing here imports torch. URL state: only ``run`` (sidebar).
"""

from __future__ import annotations

import streamlit as st

from app_pages import common as app_common
from hmlc_core.config import FREQUENCY_COUNTINGS, UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES
from hmlc_core.runs import RunError
from hmlc_core.views import decision as decision_views
from hmlc_core.views import teaching

run = app_common.current_run()
path = str(run.path)
stamp = app_common.run_stamp(path)
config = run.config
nm = run.node_metrics
hierarchy = run.hierarchy
chart_config = app_common.chart_config()  # no Plotly logo; the camera saves SVG


def method_link(heading: str) -> None:
    """The section of docs/method.md behind a part of the page, folded."""
    with st.expander(f"More in docs/method.md, *{heading}*"):
        text = teaching.method_section(heading)
        st.markdown(text if text else f"See the section *{heading}* of `docs/method.md`.")


st.title("How it works")
st.markdown(
    "Each example (a gene, an image, a document) can carry **several labels at once**, and the labels form a "
    "**hierarchy**: whatever belongs to a node also belongs to all of its ancestors. Deep nodes are specific and "
    "have few training examples, so a network trained the plain way rarely predicts them. This page shows, one "
    "piece at a time, how the method keeps predictions consistent with the hierarchy and how it tries to give the "
    "rare nodes more weight. Plots use the run chosen in the sidebar where they need data."
)
st.info(teaching.run_story(run), icon=":material/lightbulb:")

# ------------------------------------------------------------------------------------------------- 1. MCM
st.header("1 · Coherent predictions: the max-constraint module", divider="gray")
st.markdown(
    "The network gives every node a **raw score** between 0 and 1, one per node, and nothing forces a parent's "
    "score to be at least its child's. The **max-constraint module (MCM)** fixes that: each node's score becomes "
    "the **largest raw score in its sub-tree** (itself and all its descendants). Move the sliders to change one "
    "example's raw scores on a toy hierarchy."
)
toy = teaching.toy_hierarchy()
raw = {}
for parent in toy.roots:
    family = [parent, *toy.children(parent)]
    for column, node in zip(st.columns(len(family)), family, strict=True):
        label = f"raw score of {node}" if node == parent else f"raw score of {node} (child of {parent})"
        raw[node] = column.slider(label, 0.0, 1.0, teaching.TOY_SCORES[node], 0.05, key=f"hiw_raw_{node}")
mcm = teaching.mcm_table(toy, raw)
st.plotly_chart(teaching.mcm_figure(toy, mcm, height=300), key="hiw_mcm", config=chart_config)
st.markdown(teaching.mcm_sentence(mcm))
method_link("MCM and MCLoss")

# ---------------------------------------------------------------------------------------- 2. node weights
st.header("2 · Node weights: rare nodes count more", divider="gray")
st.markdown(
    "A node with few positive training examples adds little to an averaged loss. **Node weights** multiply each "
    "node's loss by about **N / (K·f)**: N training examples, f the node's frequency, K = C (the number of nodes) "
    "for **class-wise** weights or K = 2 for **binary** ones. The weights are then stretched linearly so the most "
    "frequent node gets exactly **ω** (the minimum weight) and the rarest ω + the largest raw weight. Each dot is "
    "one node of this run, with the weight its training would use."
)
left, right = st.columns(2, gap="large")
with left:
    omega = st.slider("ω, the minimum weight", 0.0, 2.0, float(min(max(config.omega, 0.0), 2.0)), 0.05,
                      key="hiw_omega", help="`--omega`: the weight of the most frequent node.")
with right:
    counting = st.radio("Frequency counting", FREQUENCY_COUNTINGS,
                        index=FREQUENCY_COUNTINGS.index(config.counting), key="hiw_counting",
                        help="`--counting`: descendant-sum (the default, as the authors' code) adds the counts of "
                             "all descendants to a node's own; propagated uses the node's own count.",
                        horizontal=True)
n_train = int(run.summary.get("n_train") or 0)
freq = nm["train_frequency"].to_numpy()
if n_train < 1 or (freq < 0).any():
    st.info("This run did not save its training frequencies, so its node weights cannot be shown.")
else:
    weights = teaching.node_weight_table(hierarchy, freq, n_train, omega, counting)
    st.plotly_chart(teaching.node_weight_figure(weights, omega), key="hiw_weights", config=chart_config)
    st.markdown(teaching.node_weight_sentence(weights, n_train, hierarchy.n_nodes, omega))
this_run = ("This run trains without node weights (`--weighting none`)." if config.weighting == "none" else
            f"This run: `{config.weighting}` weights, ω {config.omega:g}, `{config.counting}` counting, "
            f"`{config.weight_indexing}` indexing.")
if config.weighting == "class-balanced":
    this_run = (f"This run uses class-balanced weights instead (Cui et al. 2019, β {config.cb_beta:g}; "
                "docs/method.md, *Tail-aware baselines*), on positive and negative targets alike.")
st.caption(
    "Where the weight lands: with `--weight-indexing released` (the default, as in the authors' code) it "
    "multiplies the loss of a node's **negative** examples and positives keep weight 1; with `intended` it "
    f"multiplies the positives. {this_run}"
)
method_link("Node weights")

# ---------------------------------------------------------------------------------------- 3. focal factor
st.header("3 · The focal factor: focus on uncertain examples", divider="gray")
st.markdown(
    "On top of the node weights, each (example, node) entry of the loss is multiplied by **focal_min + u^k**, "
    "where **u** is the ensemble's uncertainty about that entry (section 4). Confident entries (u near 0) keep "
    "only focal_min of their loss; uncertain ones (u near 1) get up to focal_min + 1. A larger **k** makes the "
    "factor stay low longer and rise late. The red dots are this run's nodes, at their mean uncertainty."
)
controls, plot = st.columns([1, 2], gap="medium")
with controls:
    focal_k = st.slider("k, the focusing exponent", 0.5, 5.0, float(min(max(config.focal_k, 0.5), 5.0)), 0.5,
                        key="hiw_focal_k", help="`--focal-k`")
    focal_min = st.slider("focal_min, the floor", 0.0, 1.0, float(min(max(config.focal_min, 0.0), 1.0)), 0.05,
                          key="hiw_focal_min", help="`--focal-min`")
    default_mode = config.focal if config.focal in UNCERTAINTY_MODE_NAMES else "mean"
    mode = st.selectbox("Uncertainty of the dots", UNCERTAINTY_MODE_NAMES,
                        index=UNCERTAINTY_MODE_NAMES.index(default_mode), format_func=UNCERTAINTY_LABELS.get,
                        key="hiw_focal_mode", help="`--focal`: which uncertainty u the factor uses.")
column = f"uncertainty_{mode}"
node_u = nm.loc[nm["evaluated"].astype(bool), column].to_numpy() if column in nm else None
with plot:
    st.plotly_chart(teaching.focal_figure(focal_k, focal_min, node_u, UNCERTAINTY_LABELS[mode]), key="hiw_focal",
                    config=chart_config)
st.markdown(teaching.focal_sentence(node_u, focal_k, focal_min, UNCERTAINTY_LABELS[mode]))
st.caption("This run trains without the focal factor (`--focal none`)." if config.focal == "none" else
           f"This run: focal factor on {UNCERTAINTY_LABELS.get(config.focal, config.focal)}, k {config.focal_k:g}, "
           f"focal_min {config.focal_min:g}.")
method_link("Focal weighting")

# ------------------------------------------------------------------------------------------ 4. uncertainty
st.header("4 · Uncertainty modes and their scales", divider="gray")
st.markdown(
    "An **ensemble** trains several networks (members) side by side. For each example and node they give "
    "probabilities p₁ … p_H with mean p̄; the six modes turn them into one uncertainty u. Some look at the mean "
    "prediction (is p̄ near 0.5?), some at how unsure each member is, some at how much the members **disagree**. "
    "Their scales differ a lot, as this run shows (per-node means over the test set, log scale)."
)
scales = teaching.uncertainty_scale_table(nm)
shown = scales[["measures", "range", "median", "max"]].copy()
shown["median"] = shown["median"].map(lambda v: f"{v:.2g}")
shown["max"] = shown["max"].map(lambda v: f"{v:.2g}")
shown.columns = ["measures", "range", "median node mean", "largest node mean"]
st.table(shown)
st.plotly_chart(teaching.uncertainty_scale_figure(nm), key="hiw_uncertainty", config=chart_config)
try:
    spread = app_common.member_spread(path, stamp)
except RunError as exc:
    spread = None
    st.caption(f"The members' probabilities are unavailable: {app_common.md_text(exc)}")
st.markdown(teaching.epistemic_explanation(scales, spread))
method_link("Uncertainty modes")

# ------------------------------------------------------------------------------------- 5. evaluated, rare
st.header("5 · Evaluated and rare nodes", divider="gray")
if (freq < 0).any():
    st.info("This run did not save its training frequencies, so its rare nodes cannot be shown.")
else:
    info = teaching.node_sets(hierarchy, freq)
    text, plot = st.columns([1, 1], gap="medium")
    text.markdown(teaching.node_sets_text(info))
    with plot:
        st.plotly_chart(teaching.rare_node_figure(hierarchy, freq), key="hiw_rare", config=chart_config)
method_link("Evaluated nodes")
method_link("Rare nodes")

# ----------------------------------------------------------------------------------- 6. decision rules
st.header("6 · Why one threshold cannot serve rare and frequent nodes", divider="gray")
st.markdown(
    "The network gives probabilities; a **decision rule** turns them into labels. The usual rule predicts a node "
    "when its probability is above 0.5. A rare node's probabilities stay low even on its own positive examples "
    "(the model has seen it a handful of times), so 0.5, or any single cut tuned for the frequent nodes, misses it, "
    "although the node's positives may still be **ranked** above its negatives. Giving each node its own "
    "threshold, tuned on held-out data for that node's F1, finds many of them (macro F1 up), but a threshold "
    "tuned on three held-out positives is noisy: set too low, it floods the node with false positives (micro F1 "
    "down). "
    "Shrinking each node's threshold towards the global one, with a strength **m** counted in pseudo-positives, "
    "trades one for the other. Shrinkage alone would pull a rare node's threshold back above all its "
    "probabilities, so the per-node rule never lets a threshold rise above the one that predicts the node for its "
    "share of the training samples (its prevalence floor), and it predicts every ancestor of a predicted node. "
    "Pick a rule in the sidebar and every page follows it."
)
try:
    tradeoff = app_common.shrinkage_tradeoff(path, stamp)
except RunError as exc:
    tradeoff = None
    st.caption(f"The test predictions are unavailable: {app_common.md_text(exc)}")
if tradeoff is None:
    st.info("This run has no held-out (valid) predictions: it was trained on train+valid, so no threshold can be "
            "tuned on it. The bundled demo runs keep the valid split aside (`--fit-on train`); open one to see the "
            "trade-off.")
else:
    st.plotly_chart(decision_views.tradeoff_figure(tradeoff), key="hiw_tradeoff", config=chart_config)
    best = tradeoff.loc[tradeoff["macro_f1"].idxmax()]
    st.caption(f"This run, test set: macro F1 is highest ({best['macro_f1']:.3f}) under "
               f"{app_common.md_text(best['label'])}; the dotted and dashed lines are the global and fixed rules "
               "(their m does not matter).")
method_link("Decision rules")
