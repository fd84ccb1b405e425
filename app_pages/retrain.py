"""Retrain page: launch training runs in the background, follow them live, cancel, rename and delete runs.

Runs execute outside the Streamlit script, in worker processes running the same
code as the CLI ``train`` (:mod:`hmlc_core.jobs`), and every run is recorded in
the SQLite run registry of the runs folder (:mod:`hmlc_core.registry`), so jobs
survive reruns, page switches and browser refreshes. This page only lays out
widgets and calls those modules.

Session state: the form's widgets use keys ``rt_*``; ``rt_base`` holds the
config chosen under "Start from" (a dict, or None for the defaults);
``rt_active`` the id -> status of the active jobs the page was drawn with (the
jobs panel reruns the whole page when it changes); ``rt_manage_label`` the
label "Manage run" last showed.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
import streamlit as st

from app_pages import common as app_common
from hmlc_core import jobs, uploads
from hmlc_core.catalog import GENERATED, available_datasets
from hmlc_core.config import (ENSEMBLE_KINDS, FOCAL_MODES, FREQUENCY_COUNTINGS, LOSSES, SCHEDULES,
                              UNCERTAINTY_LABELS, WEIGHT_INDEXINGS, WEIGHTING_MODES, TrainConfig)
from hmlc_core.limits import DatasetShape, JobLimits, LimitError
from hmlc_core.registry import (ACTIVE_STATUSES, TERMINAL_STATUSES, RegistryError, RunRecord, default_run_name,
                                runs_table)

REFRESH_S = 1.0
DEFAULTS = "defaults"

# Measured in docs/performance.md, "Full training runs: paper profile against quick profile"
# (cellcycle_FUN, 2 heads, 2 vCPUs, one after the other on an idle machine).
PROFILE_COST = pd.DataFrame(
    [("paper", "plain", 106, 201.0, 0.2546, 0.0123),
     ("paper", "class-wise + bBMA", 106, 202.0, 0.2433, 0.0334),
     ("quick", "plain", 43, 27.2, 0.2551, 0.0120),
     ("quick", "class-wise + bBMA", 43, 26.0, 0.2371, 0.0316)],
    columns=["profile", "loss", "epochs", "wall time (s)", "test AUPRC", "macro recall"],
)

# Form widget key -> TrainConfig field (fields with an on/off toggle are handled separately).
FIELDS = {
    "rt_profile": "profile", "rt_epochs": "epochs", "rt_seed": "seed", "rt_fit_on": "fit_on",
    "rt_valid_fraction": "valid_fraction",
    "rt_patience": "patience", "rt_weighting": "weighting", "rt_omega": "omega", "rt_counting": "counting",
    "rt_weight_indexing": "weight_indexing", "rt_focal": "focal", "rt_focal_k": "focal_k",
    "rt_focal_min": "focal_min", "rt_heads": "heads", "rt_ensemble": "ensemble", "rt_loss": "loss",
    "rt_label_smoothing": "label_smoothing", "rt_schedule": "schedule", "rt_schedule_k": "schedule_k",
    "rt_cb_beta": "cb_beta", "rt_asl_gamma_pos": "asl_gamma_pos", "rt_asl_gamma_neg": "asl_gamma_neg",
    "rt_asl_clip": "asl_clip",
}
OPTIONAL = {"lpros": ("rt_lpros_on", "rt_lpros", 0.1), "mixed_lambda": ("rt_mixed_on", "rt_mixed_lambda", 0.5),
            "logit_adjust": ("rt_logit_adjust_on", "rt_logit_adjust", 1.0)}
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
                "finished": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:"}


# Help texts of the form, by widget key: what the setting does, its range, when to change it, its default and
# why, and where docs/method.md explains it. Figures are those of docs/method.md, *Defaults and why*.
HELP = {
    "rt_dataset":
        "The data to train on. `synthetic` is a small built-in FunCat-like tree (121 nodes) that trains in "
        "seconds; `shapes` is the built-in teaching image dataset (32-pixel shapes on a 93-node taxonomy, trained "
        "with a small CNN); the others are the CLUS HMC benchmarks and your own ARFF datasets found in `$HMLC_DATA_DIR`. "
        "Changing it keeps the other settings; the preset epochs, hidden width and learning rate follow the new "
        "dataset's C-HMCNN values. See docs/method.md, *Data and hierarchy*.",
    "rt_profile":
        "How much compute a run gets. **quick** (the default here): batch 64, 20x the learning rate and 40% of "
        "the epochs (at least 10), about 7.5x faster at an AUPRC within 0.01, for trying things out. **paper**: "
        "C-HMCNN's recipe (batch 4, its tuned epochs); use it for figures you report. Leave \"Epochs\" empty to "
        "get the dataset's number of epochs under the chosen profile. See docs/method.md, *Defaults and why*.",
    "rt_epochs":
        "Passes over the training data, a whole number from 1. Empty (the default) takes the dataset's preset "
        "shown in the box: the number C-HMCNN tuned on the validation split, or 40% of it under the quick "
        "profile. Set 1-5 for a quick check that a setting runs; more than the preset rarely helps. "
        "See docs/method.md, *Defaults and why*.",
    "rt_seed":
        "Random seed of the initial weights, the dropout masks and the batch order; any whole number from 0, "
        "default 0. Runs that differ only in the seed show how much a result varies by chance: compare two "
        "settings over several seeds before trusting a small difference. See docs/method.md, *Defaults and why*.",
    "rt_fit_on":
        "What the final model is trained on: **train** (the default here, so you can watch a run) or "
        "**train+valid** (C-HMCNN's final protocol, the CLI's default). The note below says what each gives. "
        "See docs/method.md, *Data and hierarchy*.",
    "rt_valid_fraction":
        "For a dataset shipped without a validation split (Diatoms, ImCLEF07A/D, your uploaded tables): the share "
        "of its training rows held out as one, from 0 to 0.9, the same rows in every run. With \"Fit on\" = train "
        "the run then shows its validation AUPRC live, can stop early, and the tuned decision rules (global, "
        "per-node) are fitted on those rows. 0 (the default) holds nothing out; about 0.34 matches the share of the "
        "FUN and GO datasets' own validation split. Disabled for a dataset that has its own. "
        "See docs/method.md, *Data and hierarchy*.",
    "rt_patience":
        "Early stopping: stop when the validation AUPRC has not improved for this many epochs and keep the "
        "weights of the best epoch. Empty = off (the default: the presets' epochs are already tuned, and every "
        "run gets the same budget). Needs \"Fit on\" = train; try 10-20 on long paper-profile runs. "
        "See docs/method.md, *Defaults and why*.",
    "rt_name":
        "A name for the new run, shown in the run chooser, on Compare and in the runs table below. Empty: a "
        "name made from the dataset and the main settings (shown greyed out). Pick a name that says what you "
        "changed, e.g. focal k 3.",
    "rt_weighting":
        "Node-wise imbalance weights (Xu et al. 2026): each node's loss is scaled by a weight that grows as the "
        "node gets rarer in the training data, so rare, deep nodes count more. **class-wise** (the default, the "
        "paper's method) uses N / (C f) for a node with f positives among N samples and C nodes; **binary** "
        "uses N / (2 f), with weights up to about 800; **none** is plain C-HMCNN. The weights are then rescaled "
        "to start at \"Omega (minimum weight)\". **class-balanced** is a baseline from outside the paper "
        "(Cui et al. 2019): weights from the effective number of a node's positives, set by \"CB beta\", "
        "averaging 1 over the nodes; omega, counting and indexing do not apply to it. "
        "See docs/method.md, *Node weights* and *Tail-aware baselines*.",
    "rt_cb_beta":
        "Class-balanced weights only (\"Weighting\" = class-balanced): a node with n training positives gets "
        "weight (1 - beta) / (1 - beta^n), then all weights are scaled to average 1. beta = 0 weighs every node "
        "alike; the closer to 1, the closer the weights come to 1 / n, so rare nodes count more. From 0 to "
        "0.9999; default 0.999, a value Cui et al. use. Not measured here yet. "
        "See docs/method.md, *Tail-aware baselines*.",
    "rt_omega":
        "The smallest node weight: after rescaling, the most frequent node gets exactly omega and the rarest "
        "omega plus the largest raw weight. A larger omega flattens the weights (common nodes count more); "
        "0 lets the most frequent node drop out of the loss. Any value from 0; default 0.25, the authors' "
        "value. See docs/method.md, *Node weights*.",
    "rt_counting":
        "How a node's frequency f is counted for its weight. **descendant-sum** (the default, what the "
        "authors' released code computes) adds the counts of all the node's descendants to its own; "
        "**propagated** counts each training sample once per node it is labelled with. They measured the "
        "same within noise (macro recall 2.23x against 2.19x that of plain C-HMCNN). "
        "See docs/method.md, *Node weights*.",
    "rt_weight_indexing":
        "Which targets a node's weight applies to. **released** (the default) does what the authors' released "
        "code does: the weight computed from the node's positives lands on its negative targets; **intended** "
        "puts it on the positive targets, as the paper describes. Measured on three FunCat datasets: released "
        "raises macro recall 2.23x over plain C-HMCNN, intended cuts it to 0.08x. "
        "See docs/method.md, *Node weights*.",
    "rt_focal":
        "The focal factor multiplies each node's loss by `focal_min + u^k`, where u (from 0 to 1) is how "
        "uncertain the ensemble is about that node for that sample, so uncertain cases count more. This picks "
        "how u is measured: **bBMA** (mean confidence; the default, with GMU the paper's best), **GMU** (gated "
        "margin), predictive entropy, aleatoric, or epistemic JS / KL (the members' disagreement: needs "
        "\"Heads\" of 2 or more, and its values are small). **off** drops the factor: on the FunCat datasets "
        "class-wise weights alone recalled more (2.76x against 2.23x). "
        "See docs/method.md, *Focal weighting* and *Uncertainty modes*.",
    "rt_focal_k":
        "The exponent k of the focal factor `focal_min + u^k`. As u lies between 0 and 1, a larger k lowers "
        "the factor of all but the most uncertain cases and so focuses training on those; k = 1 is linear in "
        "u. Any value above 0; default 2, the value of the authors' tabular script. Has no effect when "
        "\"Focal mode\" is off. See docs/method.md, *Focal weighting*.",
    "rt_focal_min":
        "The floor of the focal factor `focal_min + u^k`: what a node's loss keeps when the ensemble is "
        "certain (u = 0). With 0, confidently handled cases stop contributing; larger values weaken the "
        "focusing. Any value from 0; default 0.25, the authors' value. See docs/method.md, *Focal weighting*.",
    "rt_heads":
        "Ensemble members H trained side by side; a whole number from 1. Default 2, the authors' tabular "
        "setting and the fewest that the epistemic modes and GMU need to measure disagreement. Each member is a "
        "network of its own to train, so more members take longer. See docs/method.md, *Ensembles*.",
    "rt_ensemble":
        "How the H members are built. **heads** (the default, the authors' tabular ensemble): H independent "
        "networks. **shared**: one shared first layer with H heads, like the authors' vision model. "
        "**mc-dropout**: one network run H times with different dropout masks, in training and at test; it "
        "saved little time here and lost more AUPRC with the weighted loss. See docs/method.md, *Ensembles*.",
    "rt_loss":
        "The training objective. **mcloss** (the default): C-HMCNN's MCLoss, the loss every published figure "
        "uses. **zlpr**: ZLPR (Su et al. 2022), a ranking loss that asks every positive node to score above "
        "every negative one, on the same hierarchy-constrained scores; not part of Xu et al.'s method and not "
        "measured here yet. **asl**: the asymmetric loss (Ridnik et al. 2021), a baseline from outside the paper: "
        "MCLoss with easy negatives dropped and the others down-weighted, so the many negatives of a rare node "
        "weigh less (see the three ASL settings). Node weights and focal factor apply to all three: for ASL alone "
        "set \"Weighting\" to none and \"Focal mode\" off. See docs/method.md, *MCM and MCLoss*, *ZLPR* "
        "and *Tail-aware baselines*.",
    "rt_asl_gamma_pos":
        "ASL only (\"Loss\" = asl): the exponent gamma+ of the positives' factor (1 - p)^gamma+, which lowers "
        "the loss of positives the model already gets right. Any value from 0; default 0, the paper's: "
        "positives keep their full loss. See docs/method.md, *Tail-aware baselines*.",
    "rt_asl_gamma_neg":
        "ASL only (\"Loss\" = asl): the exponent gamma- of the negatives' factor p_m^gamma-, where p_m is the "
        "node's probability minus \"ASL clip\" (at least 0). Larger values silence more of the easy "
        "negatives, which dominate rare nodes. Any value from 0; default 4, the paper's. "
        "See docs/method.md, *Tail-aware baselines*.",
    "rt_asl_clip":
        "ASL only (\"Loss\" = asl): the margin m. A negative whose probability is at most m leaves the loss "
        "altogether; the others are scored as if their probability were m lower. From 0 (no margin) to 0.99; "
        "default 0.05, the paper's. See docs/method.md, *Tail-aware baselines*.",
    "rt_logit_adjust_on":
        "Logit adjustment (Menon et al. 2021, adapted by us to one yes/no question per node), a baseline from "
        "outside the paper: in training, every node's score is shifted by tau x log(prior / (1 - prior)) of "
        "the node's share of training positives, down for rare nodes; predictions use the unshifted scores, so "
        "rare nodes come out with higher probabilities. Off by default; not measured here yet. "
        "See docs/method.md, *Tail-aware baselines*.",
    "rt_logit_adjust":
        "The strength tau of the logit adjustment, from 0 (no shift: the same run as with it off) upwards; 1 "
        "when first switched on, the paper's choice. Used only when \"Logit adjustment\" is on. "
        "See docs/method.md, *Tail-aware baselines*.",
    "rt_label_smoothing":
        "ZLPR only (set \"Loss\" to zlpr): train towards soft targets y(1 - a) + (1 - y)a instead of 0 and 1, "
        "which keeps the scores from growing without bound. From 0 to 0.49; default 0 (hard targets). "
        "See docs/method.md, *ZLPR*.",
    "rt_lpros_on":
        "LPROS: before training, duplicate training rows whose labels lie on rare (minority) label paths of "
        "the hierarchy, a resampling alternative to the weighted loss. Off by default: measured on three "
        "FunCat datasets it changed nothing alone and lowered the weighted loss's recall gain (1.90x against "
        "2.23x). See docs/method.md, *LPROS, schedules and the mixed loss*.",
    "rt_lpros":
        "How many rows LPROS adds: about S times the number of label annotations of the training split, "
        "from just above 0 to 1. Default 0.1, the authors' value. Used only when \"LPROS oversampling\" is on. "
        "See docs/method.md, *LPROS, schedules and the mixed loss*.",
    "rt_schedule":
        "Within every epoch, move the node weights from their values towards omega: **lin** linearly, **exp** "
        "as a power (see \"Schedule k\"), **alt** on every other batch; the sawtooth restarts each epoch. "
        "**none** (the default, the paper's main method) keeps them fixed. Needs \"Weighting\" other than none. "
        "Reported not to recover the precision the weighting costs; not measured here. "
        "See docs/method.md, *LPROS, schedules and the mixed loss*.",
    "rt_schedule_k":
        "The exponent of the **exp** schedule, (i / (n - 1))^k for batch i of n: above 1 keeps the weights "
        "near their values for longer and drops them late in the epoch. Any value above 0; default 3. Used "
        "only when \"Schedule\" is exp. See docs/method.md, *LPROS, schedules and the mixed loss*.",
    "rt_mixed_on":
        "Mixed loss: lambda x the weighted loss + (1 - lambda) x plain MCLoss (no node weights, no focal "
        "factor), a way to trade recall of rare nodes against precision. Off by default (not part of the "
        "paper's main method; not measured here). MCLoss only. "
        "See docs/method.md, *LPROS, schedules and the mixed loss*.",
    "rt_mixed_lambda":
        "The share lambda of the weighted loss in the mixed loss, from 0 (plain MCLoss only) to 1 (weighted "
        "loss only); 0.5 when first switched on. Used only when \"Mixed loss\" is on. "
        "See docs/method.md, *LPROS, schedules and the mixed loss*.",
}

@st.cache_data(ttl=30, show_spinner=False)
def _cached_datasets(data_dir: str) -> list[str]:
    return available_datasets(data_dir or None)


def _datasets() -> list[str]:
    """:func:`hmlc_core.catalog.available_datasets` of ``$HMLC_DATA_DIR``, cached for 30 s per value."""
    return _cached_datasets(os.environ.get("HMLC_DATA_DIR", ""))


def _upload_panel() -> None:
    """Upload a table and a hierarchy, show :func:`hmlc_core.uploads.validate_upload`'s summary, save it."""
    limit_mb = int(st.get_option("server.maxUploadSize"))
    st.caption(f"A table (CSV or Parquet: feature columns and a `labels` column of `@`-separated node ids) and "
               f"its hierarchy (an OBO file or a `parent,child` edge-list CSV); at most {limit_mb} MB each "
               "(`server.maxUploadSize` in `.streamlit/config.toml`).")
    table = st.file_uploader("Table", type=list(uploads.TABLE_TYPES), key="rt_upload_table")
    hierarchy = st.file_uploader("Hierarchy", type=list(uploads.HIERARCHY_TYPES), key="rt_upload_hierarchy")
    if table is None or hierarchy is None:
        return
    args = (table.getvalue(), table.name, hierarchy.getvalue(), hierarchy.name)
    summary = uploads.validate_upload(*args, max_bytes=limit_mb * 2**20)
    if summary.n_samples is not None:
        st.text(f"{summary.n_samples} samples, {summary.n_features} features; "
                f"{summary.label_coverage:.0%} of the samples have a label")
    if summary.n_nodes is not None:
        st.text(f"{summary.n_nodes} nodes, depth {summary.depth}")
    if summary.nodes_without_positives:
        st.text(f"{len(summary.nodes_without_positives)} nodes without training positives: "
                + ", ".join(summary.nodes_without_positives[:20])
                + (", ..." if len(summary.nodes_without_positives) > 20 else ""))
    for problem in summary.problems:
        st.error(app_common.md_text(problem))
    data_dir = os.environ.get("HMLC_DATA_DIR", "")
    if not data_dir:
        st.info("Set `HMLC_DATA_DIR` to a data folder before starting the app to save uploads.")
    st.button("Save as dataset", key="rt_upload_save", disabled=not (summary.ok and data_dir), on_click=_save_upload,
              args=(data_dir, args, limit_mb * 2**20))
    if "rt_upload_message" in st.session_state:
        kind, text = st.session_state.pop("rt_upload_message")
        (st.error if kind == "error" else st.success)(app_common.md_text(text))


def _save_upload(data_dir: str, args: tuple[bytes, str, bytes, str], max_bytes: int) -> None:
    """"Save as dataset" callback: :func:`hmlc_core.uploads.save_upload`, run before the Dataset list is drawn."""
    try:
        folder = uploads.save_upload(data_dir, *args, max_bytes=max_bytes)
    except (OSError, ValueError) as exc:
        st.session_state["rt_upload_message"] = ("error", f"Not saved: {exc}")
    else:
        _cached_datasets.clear()
        st.session_state["rt_upload_message"] = ("success",
                                                 f"Saved as dataset {folder.name}: choose it under Dataset.")


@st.cache_data(ttl=300, show_spinner=False)
def _cached_shape(dataset: str, data_dir: str) -> DatasetShape | None:
    try:
        return jobs.load_dataset_shape(dataset, data_dir or None)
    except (OSError, ValueError):
        return None  # the launch checks or the worker report the dataset's problem


def _shape(dataset: str) -> DatasetShape | None:
    """:func:`hmlc_core.jobs.load_dataset_shape` of ``dataset``, cached for 5 min; None if it cannot be loaded."""
    return _cached_shape(dataset, "" if dataset in GENERATED else os.environ.get("HMLC_DATA_DIR", ""))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _apply(config: TrainConfig) -> None:
    """Write ``config``'s values into the form widgets' session state."""
    state = st.session_state
    for key, field in FIELDS.items():
        state[key] = getattr(config, field)
    for field, (toggle, value, default) in OPTIONAL.items():
        state[toggle] = getattr(config, field) is not None
        state[value] = default if getattr(config, field) is None else float(getattr(config, field))
    if config.profile not in ("quick", "paper"):
        state["rt_profile"] = "quick"


def _start_from() -> None:
    """"Start from" callback: load the chosen run's config (or the defaults) into the form."""
    choice = st.session_state["rt_start"]
    if choice == DEFAULTS:
        st.session_state["rt_base"] = None
        _apply(jobs.retrain_config(None, st.session_state["rt_dataset"]))
        return
    try:
        config = other_starts[choice] if choice in other_starts else registry.get(choice).train_config()
    except (RegistryError, ValueError) as exc:
        st.session_state["rt_start_error"] = str(exc)
        return
    st.session_state["rt_base"] = config.to_dict()
    if config.dataset in _datasets():
        st.session_state["rt_dataset"] = config.dataset
    else:
        st.session_state["rt_start_error"] = (f"dataset {app_common.md_text(repr(config.dataset))} of that run is not "
                                              "available here (check HMLC_DATA_DIR); its settings were loaded for the "
                                              "current one")
    _apply(config)


def _start_label(key: str) -> str:
    """"Start from" option label: the defaults, a run of the run chooser (by key) or a registry run (by id)."""
    if key == DEFAULTS:
        return "defaults (quick profile, class-wise weights, bBMA focal)"
    if key in other_starts:
        config = other_starts[key]
        return f"{key} · {config.dataset} · weighting {config.weighting}, focal {config.focal}"
    return f"{startable[key].name} · {startable[key].status} · {key}"


def _cancel(run_id: str) -> None:
    try:
        jobs.cancel(registry, run_id)
    except RegistryError as exc:
        st.session_state["rt_message"] = ("warning", app_common.md_text(exc))


def _rename(run_id: str) -> None:
    try:
        record = registry.rename(run_id, st.session_state["rt_new_name"])
    except (RegistryError, ValueError) as exc:
        st.session_state["rt_message"] = ("error", f"Cannot rename: {app_common.md_text(exc)}")
        return
    st.session_state["rt_new_name"] = ""
    st.session_state["rt_message"] = ("success", f"Renamed to **{app_common.md_text(record.name)}**.")


def _delete(run_id: str) -> None:
    try:
        name = registry.get(run_id).name
        registry.delete(run_id)
    except (RegistryError, OSError) as exc:
        st.session_state["rt_message"] = ("error", f"Cannot delete: {app_common.md_text(exc)}")
        return
    st.session_state["rt_confirm_delete"] = False
    st.session_state["rt_message"] = ("success", f"Deleted **{app_common.md_text(name)}** and its folder.")


def _set_concurrency() -> None:
    try:
        jobs.set_concurrency(registry, int(st.session_state["rt_max_concurrent"]), limits)
    except ValueError as exc:
        st.session_state["rt_concurrency_error"] = str(exc)
        return
    jobs.dispatch(registry)


def _form_config(dataset: str) -> TrainConfig:
    """The config the form describes (not validated)."""
    state = st.session_state
    overrides: dict[str, Any] = {field: state[key] for key, field in FIELDS.items()}
    for field, (toggle, value, _) in OPTIONAL.items():
        overrides[field] = float(state[value]) if state[toggle] else None
    for field in ("epochs", "seed", "heads", "patience"):
        if overrides[field] is not None:
            overrides[field] = int(overrides[field])
    # The datasets offered are those of $HMLC_DATA_DIR: record that folder, so the worker reads the same files.
    overrides["data_dir"] = None if dataset in GENERATED else (os.environ.get("HMLC_DATA_DIR") or None)
    base = state.get("rt_base")
    return jobs.retrain_config(None if base is None else TrainConfig.from_dict(base), dataset, **overrides)


def _active_states(active: list[RunRecord]) -> dict[str, str]:
    """Run id -> status of the queued and running jobs: what the page was last drawn with (``rt_active``)."""
    return {record.id: record.status for record in active}


def _jobs_panel() -> None:
    """Queued and running jobs with live progress and a Cancel button, and the runs that ended last."""
    try:
        jobs.dispatch(registry)
        active = list(reversed(registry.runs(ACTIVE_STATUSES)))
        ended = registry.runs(TERMINAL_STATUSES, limit=5)
    except (RegistryError, OSError) as exc:
        st.error(f"Cannot read the run registry: {app_common.md_text(exc)}")
        return
    if st.session_state.get("rt_active", {}) != _active_states(active):
        # A job started, ended or was queued elsewhere: refresh the whole page (the runs table, "Manage run",
        # "Start from"), which also stops this timer once no job is active.
        st.rerun()
    if not active:
        st.caption("No job is queued or running.")
    now = time.time()
    for position, record in enumerate(active, start=1):
        _job_status(record, position, now)
    if ended:
        st.markdown("**Recently ended**")
    for record in ended:
        shown = app_common.md_text(record.name)
        line = f"{STATUS_ICONS[record.status]} **{shown}** · {record.status} · `{record.id}`"
        metrics = {k: float("nan") if record.metrics.get(k) is None else record.metrics[k]
                   for k in ("auprc_micro", "macro_recall")}
        if record.metrics.get("auprc_micro") is not None:
            line += f" · test AUPRC {metrics['auprc_micro']:.4f}, macro recall {metrics['macro_recall']:.4f}"
        line += f" · {_duration(record.elapsed(now))}"
        st.markdown(line)
        if record.error:
            (st.error if record.status == "failed" else st.caption)(app_common.md_text(record.error))


def _job_status(record: RunRecord, position: int, now: float) -> None:
    """One queued or running job: a status box with its progress and a Cancel button."""
    # The epoch is shown in the progress text only: the browser draws the header and the body of a box at
    # different moments, so an epoch in both showed two different counts.
    if record.status == "queued":
        label = f"{app_common.md_text(record.name)} · queued (#{position})"
    else:
        label = f"{app_common.md_text(record.name)} · {'cancelling' if record.cancel_requested else 'running'}"
    # Written through method calls: leaving a "with" block would mark the status complete.
    box = st.status(label, state="running", expanded=True)
    if record.status == "running":
        text = f"epoch {record.epoch}/{record.epochs or '?'}"
        if record.loss is not None:
            text += f" · loss {record.loss:.4f}"
        if record.valid_auprc is not None:
            text += f" · valid AUPRC {record.valid_auprc:.4f}"
        text += f" · {_duration(record.elapsed(now))}"
        box.progress(record.fraction, text=text)
    else:
        box.caption(f"waiting for a free slot · `{record.id}`")
    box.button("Cancel", key=f"rt_cancel_{record.id}", disabled=record.cancel_requested, on_click=_cancel,
               args=(record.id,))


def _runs_section(records: list[RunRecord]) -> None:
    """The runs table, and rename / delete / open for one chosen run."""
    st.dataframe(
        runs_table(records),
        column_config={
            "_index": st.column_config.TextColumn("id"),
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "elapsed_s": st.column_config.NumberColumn("time (s)", format="%.0f"),
            "auprc_micro": st.column_config.NumberColumn("test AUPRC", format="%.4f"),
            "macro_recall": st.column_config.NumberColumn("macro recall", format="%.4f"),
            "macro_f1": st.column_config.NumberColumn("macro F1", format="%.4f"),
        },
        key="rt_runs_table",
    )
    by_id = {r.id: r for r in records}

    def label(run_id: str) -> str:
        return f"{by_id[run_id].name} · {by_id[run_id].status} · {run_id}"

    selected = st.session_state.get("rt_manage")
    if selected not in by_id:
        st.session_state.pop("rt_manage", None)
    elif st.session_state.get("rt_manage_label") != label(selected):
        # A selectbox's value travels as its label text, and the browser keeps the text it shows until the
        # value is set again: set it, so a changed status or name is shown (not "running" after a cancel).
        st.session_state["rt_manage"] = selected
    manage_col, rename_col, delete_col = st.columns([2, 2, 1.4], vertical_alignment="bottom")
    chosen = by_id[manage_col.selectbox("Manage run", list(by_id), key="rt_manage", format_func=label,
                                        help="The run that Rename, Delete and the explorer link below act on.")]
    st.session_state["rt_manage_label"] = label(chosen.id)
    rename_col.text_input("New name", key="rt_new_name", placeholder=chosen.name,
                          help="A new name for the chosen run; its folder and id stay the same, so links keep "
                               "working.")
    rename_col.button("Rename", key="rt_rename", on_click=_rename, args=(chosen.id,),
                      disabled=not st.session_state["rt_new_name"].strip())
    confirm = delete_col.checkbox("Confirm delete", key="rt_confirm_delete",
                                  help="Deletes the registry row and the run folder for good.")
    delete_col.button("Delete", key="rt_delete", on_click=_delete, args=(chosen.id,),
                      disabled=chosen.status == "running" or not confirm)
    if "rt_message" in st.session_state:
        kind, text = st.session_state.pop("rt_message")
        getattr(st, kind)(text)
    if chosen.status == "running":
        st.caption("A running job cannot be deleted: cancel it first.")
    if chosen.status in ("finished", "cancelled") and chosen.path.is_dir():
        app_common.link_to(app_common.explorer_url(run_dir=chosen.path), f"Open {chosen.name} in the explorer →")


# ---------------------------------------------------------------------- page
st.title("Retrain")
st.caption("Train a new run in the background: jobs run in worker processes outside this page (the same code as "
           "`python -m hmlc_core train`), so they keep going when you switch pages, refresh or close the browser. "
           f"New runs are saved to `{app_common.runs_dir()}` and appear in the sidebar's run chooser.")

try:
    with st.spinner("Opening the run registry…"):
        registry = app_common.job_registry()
        registry.sync()
except (RegistryError, OSError) as exc:
    st.error(f"Cannot open the run registry in `{app_common.runs_dir()}`: {app_common.md_text(exc)}. "
             f"Point `{app_common.RUNS_DIR_ENV}` "
             "to a writable folder and reload.")
    st.stop()
if registry.damaged is not None:
    st.warning(f"The run registry was damaged: it was kept aside as {app_common.md_text(registry.damaged)} and a new "
               "one started. The run folders were imported again; queued jobs and run names from before are lost.")
for folder, reason in registry.import_problems.items():
    st.warning(f"Run folder {app_common.md_text(repr(folder))} was not imported: {app_common.md_text(reason)}.")

try:
    limits = JobLimits.from_env()
except LimitError as exc:
    st.error(f"The job limits are misconfigured: {app_common.md_text(exc)}. Fix the variable and restart the app.")
    st.stop()

datasets = _datasets()
if "rt_dataset" not in st.session_state or st.session_state["rt_dataset"] not in datasets:
    st.session_state["rt_dataset"] = datasets[0]
if "rt_profile" not in st.session_state:
    st.session_state["rt_base"] = None
    _apply(jobs.retrain_config(None, st.session_state["rt_dataset"]))

# ---------------------------------------------------------------- the form
st.subheader("New run")
startable = {}
for record in registry.runs():
    try:
        record.train_config()
    except ValueError:
        continue
    startable[record.id] = record
# The run chooser's other runs (the bundled demo pair, runs outside the registry) whose config.json loads.
registered = {record.path.resolve() for record in startable.values()}
other_starts = app_common.run_configs({key: path for key, path in app_common.available_runs().items()
                                       if path not in registered and key not in (DEFAULTS, *startable)})
if st.session_state.get("rt_start") not in (DEFAULTS, *other_starts, *startable):
    st.session_state["rt_start"] = DEFAULTS

data_col, weight_col, model_col = st.columns([1.4, 1, 1], gap="large")
with data_col:
    dataset = st.selectbox("Dataset", datasets, key="rt_dataset", help=HELP["rt_dataset"])
    st.caption("`synthetic` and `shapes` are built in; the others are the datasets found in `$HMLC_DATA_DIR`.")
    if set(datasets) <= GENERATED:
        st.info("Only the built-in datasets are available. To train on the CLUS HMC benchmarks or your own "
                "ARFF files, set `HMLC_DATA_DIR` to their folder before starting the app, e.g. "
                "`HMLC_DATA_DIR=/data/hmc streamlit run app.py` (checked again every 30 s).")
    with st.expander("Upload your own data", key="rt_upload"):
        _upload_panel()
    st.selectbox("Start from", [DEFAULTS, *other_starts, *startable], key="rt_start", on_change=_start_from,
                 format_func=_start_label,
                 help="Load the settings of an earlier run into the form (hidden width, dropout and the other "
                      "settings without a widget are kept from it too).")
    if "rt_start_error" in st.session_state:
        st.warning(st.session_state.pop("rt_start_error"))
    st.radio("Profile", ["quick", "paper"], key="rt_profile", horizontal=True, help=HELP["rt_profile"])
    st.caption("What the quick profile costs against the paper profile (cellcycle_FUN, 2 heads, plain C-HMCNN "
               "or class-wise weights + bBMA focal; measured in `docs/performance.md`, *Full training runs*): "
               "about 7.5x faster, test AUPRC within 0.001 (plain) and 0.007 (weighted + focal).")
    st.table(PROFILE_COST.style.format({"wall time (s)": "{:.1f}", "test AUPRC": "{:.4f}",
                                        "macro recall": "{:.4f}"}).hide(axis="index"))
    preset_epochs = TrainConfig(dataset=dataset, profile=st.session_state["rt_profile"]).resolved().epochs
    st.number_input("Epochs", min_value=1, step=1, value=None, key="rt_epochs", placeholder=f"preset: {preset_epochs}",
                    help=HELP["rt_epochs"])
    st.number_input("Seed", min_value=0, step=1, key="rt_seed", help=HELP["rt_seed"])
    st.radio("Fit on", ["train", "train+valid"], key="rt_fit_on", horizontal=True, help=HELP["rt_fit_on"])
    st.caption("**train** keeps the validation split aside, so the validation micro AUPRC is shown live after "
               "every epoch (and early stopping is possible); **train+valid** is C-HMCNN's final protocol: it "
               "sees a third more data (about 0.01 higher test AUPRC in `docs/performance.md`) but only the loss "
               "can be shown while it trains.")
    st.number_input("Valid share held out of train", min_value=0.0, max_value=0.9, step=0.05, format="%.2f",
                    key="rt_valid_fraction", disabled=jobs.has_valid_split(dataset), help=HELP["rt_valid_fraction"])
    st.number_input("Early-stopping patience", min_value=1, step=1, value=None, key="rt_patience",
                    placeholder="off", help=HELP["rt_patience"])
    name = st.text_input("Run name", key="rt_name", placeholder=default_run_name(_form_config(dataset)),
                         help=HELP["rt_name"])
    taken = registry.named(name.strip() or default_run_name(_form_config(dataset)))
    if taken:
        # Names are labels, not keys: a duplicate is allowed (retraining a configuration under its default
        # name is common), and the run chooser shows each run's key next to its name.
        st.warning(f"A run named **{app_common.md_text(taken[0].name)}** already exists "
                   f"({', '.join(r.id for r in taken)}). The new run gets the same name; the run chooser tells "
                   "them apart by their keys. Type another name to avoid the mix-up.")

with weight_col:
    st.selectbox("Weighting", WEIGHTING_MODES, key="rt_weighting", help=HELP["rt_weighting"])
    st.number_input("Omega (minimum weight)", min_value=0.0, step=0.05, format="%.3f", key="rt_omega",
                    help=HELP["rt_omega"])
    st.number_input("CB beta", min_value=0.0, max_value=0.9999, step=0.001, format="%.4f", key="rt_cb_beta",
                    disabled=st.session_state["rt_weighting"] != "class-balanced", help=HELP["rt_cb_beta"])
    st.selectbox("Counting", FREQUENCY_COUNTINGS, key="rt_counting", help=HELP["rt_counting"])
    st.selectbox("Weight indexing", WEIGHT_INDEXINGS, key="rt_weight_indexing", help=HELP["rt_weight_indexing"])
    st.selectbox("Focal mode", FOCAL_MODES, key="rt_focal",
                 format_func=lambda m: "off" if m == "none" else UNCERTAINTY_LABELS.get(m, m),
                 help=HELP["rt_focal"])
    st.number_input("Focal k", min_value=0.0, step=0.5, format="%.2f", key="rt_focal_k", help=HELP["rt_focal_k"])
    st.number_input("Focal min", min_value=0.0, step=0.05, format="%.3f", key="rt_focal_min",
                    help=HELP["rt_focal_min"])

with model_col:
    st.number_input("Heads", min_value=1, step=1, key="rt_heads", help=HELP["rt_heads"])
    st.selectbox("Ensemble kind", ENSEMBLE_KINDS, key="rt_ensemble", help=HELP["rt_ensemble"])
    st.selectbox("Loss", LOSSES, key="rt_loss", help=HELP["rt_loss"])
    not_asl = st.session_state["rt_loss"] != "asl"
    st.number_input("ASL gamma+", min_value=0.0, step=0.5, format="%.2f", key="rt_asl_gamma_pos", disabled=not_asl,
                    help=HELP["rt_asl_gamma_pos"])
    st.number_input("ASL gamma-", min_value=0.0, step=0.5, format="%.2f", key="rt_asl_gamma_neg", disabled=not_asl,
                    help=HELP["rt_asl_gamma_neg"])
    st.number_input("ASL clip", min_value=0.0, max_value=0.99, step=0.01, format="%.3f", key="rt_asl_clip",
                    disabled=not_asl, help=HELP["rt_asl_clip"])
    st.number_input("Label smoothing", min_value=0.0, max_value=0.49, step=0.05, format="%.2f",
                    key="rt_label_smoothing", help=HELP["rt_label_smoothing"])
    st.toggle("LPROS oversampling", key="rt_lpros_on", help=HELP["rt_lpros_on"])
    st.number_input("LPROS S", min_value=0.0, max_value=1.0, step=0.05, format="%.2f", key="rt_lpros",
                    disabled=not st.session_state["rt_lpros_on"], help=HELP["rt_lpros"])
    st.selectbox("Schedule", SCHEDULES, key="rt_schedule", help=HELP["rt_schedule"])
    st.number_input("Schedule k", min_value=0.0, step=0.5, format="%.2f", key="rt_schedule_k",
                    disabled=st.session_state["rt_schedule"] != "exp", help=HELP["rt_schedule_k"])
    st.toggle("Mixed loss", key="rt_mixed_on", help=HELP["rt_mixed_on"])
    st.number_input("Mixed lambda", min_value=0.0, max_value=1.0, step=0.1, format="%.2f", key="rt_mixed_lambda",
                    disabled=not st.session_state["rt_mixed_on"], help=HELP["rt_mixed_lambda"])
    st.toggle("Logit adjustment", key="rt_logit_adjust_on", help=HELP["rt_logit_adjust_on"])
    st.number_input("Logit adjustment tau", min_value=0.0, step=0.25, format="%.2f", key="rt_logit_adjust",
                    disabled=not st.session_state["rt_logit_adjust_on"], help=HELP["rt_logit_adjust"])

config = _form_config(dataset)
shape = _shape(dataset)
try:
    jobs.check_launchable(config)
    jobs.check_capacity(registry, config, shape, limits)
    problem = None
except ValueError as exc:
    problem = str(exc)

launch_col, message_col = st.columns([1, 4], vertical_alignment="center")
launched = launch_col.button("Launch", type="primary", key="rt_launch", disabled=problem is not None)
if problem is not None:
    message_col.error(f"Cannot launch: {app_common.md_text(problem)}")
elif launched:
    try:
        record = jobs.submit(registry, config, name, shape, limits)
        jobs.dispatch(registry)
    except (RegistryError, ValueError, OSError) as exc:
        message_col.error(f"Cannot launch: {app_common.md_text(exc)}")
    else:
        message_col.success(f"Queued **{app_common.md_text(record.name)}** (`{record.id}`).")

# ---------------------------------------------------------------- the jobs
st.subheader("Jobs")
st.caption(f"Limits on this server: {limits.describe()}. A job over them is refused before it starts.")
st.number_input("Concurrent runs", min_value=1, max_value=limits.max_concurrent, step=1, key="rt_max_concurrent",
                value=min(registry.max_concurrent, limits.max_concurrent), on_change=_set_concurrency,
                help="How many jobs may train at once; the rest wait in the queue (1 suits a 2-core machine). "
                     f"At most {limits.max_concurrent}, set by the server's HMLC_MAX_CONCURRENT_JOBS.")
if "rt_concurrency_error" in st.session_state:
    st.error(app_common.md_text(st.session_state.pop("rt_concurrency_error")))
st.session_state["rt_active"] = _active_states(registry.runs(ACTIVE_STATUSES))
st.fragment(run_every=REFRESH_S if st.session_state["rt_active"] else None)(_jobs_panel)()

# ---------------------------------------------------------------- the runs
st.subheader("Runs")
all_runs = registry.runs()
if all_runs:
    _runs_section(all_runs)
else:
    st.caption("No run is registered yet.")
