"""Retrain page: launch training runs in the background, follow them live, cancel, rename and delete runs.

Runs execute outside the Streamlit script, in worker processes running the same
code as the CLI ``train`` (:mod:`hmlc_core.jobs`), and every run is recorded in
the SQLite run registry of the runs folder (:mod:`hmlc_core.registry`), so jobs
survive reruns, page switches and browser refreshes. This page only lays out
widgets and calls those modules.

Session state: the form's widgets use keys ``rt_*``; ``rt_base`` holds the
config chosen under "Start from" (a dict, or None for the defaults).
"""

from __future__ import annotations

import os
import time
from typing import Any

import pandas as pd
import streamlit as st

from pages import common as app_common
from hmlc_core import jobs
from hmlc_core.catalog import SYNTHETIC, available_datasets
from hmlc_core.config import (ENSEMBLE_KINDS, FOCAL_MODES, FREQUENCY_COUNTINGS, LOSSES, SCHEDULES,
                              UNCERTAINTY_LABELS, WEIGHT_INDEXINGS, WEIGHTING_MODES, TrainConfig)
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
    "rt_patience": "patience", "rt_weighting": "weighting", "rt_omega": "omega", "rt_counting": "counting",
    "rt_weight_indexing": "weight_indexing", "rt_focal": "focal", "rt_focal_k": "focal_k",
    "rt_focal_min": "focal_min", "rt_heads": "heads", "rt_ensemble": "ensemble", "rt_loss": "loss",
    "rt_label_smoothing": "label_smoothing", "rt_schedule": "schedule", "rt_schedule_k": "schedule_k",
}
OPTIONAL = {"lpros": ("rt_lpros_on", "rt_lpros", 0.1), "mixed_lambda": ("rt_mixed_on", "rt_mixed_lambda", 0.5)}
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/directions_run:",
                "finished": ":material/check_circle:", "failed": ":material/error:", "cancelled": ":material/cancel:"}


@st.cache_data(ttl=30, show_spinner=False)
def _cached_datasets(data_dir: str) -> list[str]:
    return available_datasets(data_dir or None)


def _datasets() -> list[str]:
    """:func:`hmlc_core.catalog.available_datasets` of ``$HMLC_DATA_DIR``, cached for 30 s per value."""
    return _cached_datasets(os.environ.get("HMLC_DATA_DIR", ""))


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
        config = registry.get(choice).train_config()
    except (RegistryError, ValueError) as exc:
        st.session_state["rt_start_error"] = str(exc)
        return
    st.session_state["rt_base"] = config.to_dict()
    if config.dataset in _datasets():
        st.session_state["rt_dataset"] = config.dataset
    else:
        st.session_state["rt_start_error"] = (f"dataset {config.dataset!r} of that run is not available here "
                                              "(check HMLC_DATA_DIR); its settings were loaded for the current one")
    _apply(config)


def _cancel(run_id: str) -> None:
    try:
        jobs.cancel(registry, run_id)
    except RegistryError as exc:
        st.session_state["rt_message"] = ("warning", str(exc))


def _rename(run_id: str) -> None:
    try:
        record = registry.rename(run_id, st.session_state["rt_new_name"])
    except (RegistryError, ValueError) as exc:
        st.session_state["rt_message"] = ("error", f"Cannot rename: {exc}")
        return
    st.session_state["rt_new_name"] = ""
    st.session_state["rt_message"] = ("success", f"Renamed to **{record.name}**.")


def _delete(run_id: str) -> None:
    try:
        name = registry.get(run_id).name
        registry.delete(run_id)
    except (RegistryError, OSError) as exc:
        st.session_state["rt_message"] = ("error", f"Cannot delete: {exc}")
        return
    st.session_state["rt_confirm_delete"] = False
    st.session_state["rt_message"] = ("success", f"Deleted **{name}** and its folder.")


def _set_concurrency() -> None:
    registry.set_max_concurrent(int(st.session_state["rt_max_concurrent"]))
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
    overrides["data_dir"] = None if dataset == SYNTHETIC else (os.environ.get("HMLC_DATA_DIR") or None)
    base = state.get("rt_base")
    return jobs.retrain_config(None if base is None else TrainConfig.from_dict(base), dataset, **overrides)


def _jobs_panel() -> None:
    """Queued and running jobs with live progress and a Cancel button, and the runs that ended last."""
    try:
        jobs.dispatch(registry)
        active = list(reversed(registry.runs(ACTIVE_STATUSES)))
        ended = registry.runs(TERMINAL_STATUSES, limit=5)
    except (RegistryError, OSError) as exc:
        st.error(f"Cannot read the run registry: {exc}")
        return
    if st.session_state.get("rt_active") and not active:
        st.session_state["rt_active"] = False
        st.rerun()  # the last job ended: refresh the whole page (runs table) and stop the timer
    if not active:
        st.caption("No job is queued or running.")
    now = time.time()
    for position, record in enumerate(active, start=1):
        _job_status(record, position, now)
    if ended:
        st.markdown("**Recently ended**")
    for record in ended:
        line = f"{STATUS_ICONS[record.status]} **{record.name}** · {record.status} · `{record.id}`"
        metrics = {k: float("nan") if record.metrics.get(k) is None else record.metrics[k]
                   for k in ("auprc_micro", "macro_recall")}
        if record.metrics.get("auprc_micro") is not None:
            line += f" · test AUPRC {metrics['auprc_micro']:.4f}, macro recall {metrics['macro_recall']:.4f}"
        line += f" · {_duration(record.elapsed(now))}"
        st.markdown(line)
        if record.error:
            (st.error if record.status == "failed" else st.caption)(record.error)


def _job_status(record: RunRecord, position: int, now: float) -> None:
    """One queued or running job: a status box with its progress and a Cancel button."""
    if record.status == "queued":
        label = f"{record.name} · queued (#{position})"
    else:
        label = f"{record.name} · epoch {record.epoch}/{record.epochs or '?'}"
    # Written through method calls: leaving a "with" block would mark the status complete.
    box = st.status(label, state="running", expanded=True)
    if record.status == "running":
        text = f"epoch {record.epoch}/{record.epochs or '?'}"
        if record.loss is not None:
            text += f" · loss {record.loss:.4f}"
        if record.valid_auprc is not None:
            text += f" · valid AUPRC {record.valid_auprc:.4f}"
        text += f" · {_duration(record.elapsed(now))}"
        if record.cancel_requested:
            text += " · cancelling…"
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
    if st.session_state.get("rt_manage") not in by_id:
        st.session_state.pop("rt_manage", None)
    manage_col, rename_col, delete_col = st.columns([2, 2, 1.4], vertical_alignment="bottom")
    chosen = by_id[manage_col.selectbox("Manage run", list(by_id), key="rt_manage",
                                        format_func=lambda k: f"{by_id[k].name} · {by_id[k].status} · {k}")]
    rename_col.text_input("New name", key="rt_new_name", placeholder=chosen.name)
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
        st.page_link("pages/explorer.py", label=f"Open {chosen.name} in the explorer", icon=":material/account_tree:",
                     query_params={"run": chosen.folder})


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
    st.error(f"Cannot open the run registry in `{app_common.runs_dir()}`: {exc}. Point `{app_common.RUNS_DIR_ENV}` "
             "to a writable folder and reload.")
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
if st.session_state.get("rt_start") not in (DEFAULTS, *startable):
    st.session_state["rt_start"] = DEFAULTS

data_col, weight_col, model_col = st.columns([1.4, 1, 1], gap="large")
with data_col:
    # No help= on "Dataset" and "Epochs": its tooltip button is labelled "Help for ...", which browser tests
    # looking the widget up by its label would also match.
    dataset = st.selectbox("Dataset", datasets, key="rt_dataset")
    st.caption("`synthetic` is the built-in demo; the others are the datasets found in `$HMLC_DATA_DIR`.")
    if datasets == [SYNTHETIC]:
        st.info("Only the synthetic demo dataset is available. To train on the CLUS HMC benchmarks or your own "
                "ARFF files, set `HMLC_DATA_DIR` to their folder before starting the app, e.g. "
                "`HMLC_DATA_DIR=/data/hmc streamlit run app.py` (checked again every 30 s).")
    st.selectbox("Start from", [DEFAULTS, *startable], key="rt_start", on_change=_start_from,
                 format_func=lambda k: "defaults (quick profile, class-wise weights, bBMA focal)" if k == DEFAULTS
                 else f"{startable[k].name} · {startable[k].status} · {k}",
                 help="Load the settings of an earlier run into the form (hidden width, dropout and the other "
                      "settings without a widget are kept from it too).")
    if "rt_start_error" in st.session_state:
        st.warning(st.session_state.pop("rt_start_error"))
    st.radio("Profile", ["quick", "paper"], key="rt_profile", horizontal=True,
             help="quick: batch 64, 20x learning rate, 40% of the preset's epochs; paper: C-HMCNN's batch 4. "
                  "Leave the number of passes below empty for the dataset's C-HMCNN value under this profile.")
    st.caption("What the quick profile costs against the paper profile (cellcycle_FUN, 2 heads, plain C-HMCNN "
               "or class-wise weights + bBMA focal; measured in `docs/performance.md`, *Full training runs*): "
               "about 7.5x faster, test AUPRC within 0.001 (plain) and 0.007 (weighted + focal).")
    st.table(PROFILE_COST.style.format({"wall time (s)": "{:.1f}", "test AUPRC": "{:.4f}",
                                        "macro recall": "{:.4f}"}).hide(axis="index"))
    preset_epochs = TrainConfig(dataset=dataset, profile=st.session_state["rt_profile"]).resolved().epochs
    st.number_input("Epochs", min_value=1, step=1, value=None, key="rt_epochs", placeholder=f"preset: {preset_epochs}")
    st.number_input("Seed", min_value=0, step=1, key="rt_seed")
    st.radio("Fit on", ["train", "train+valid"], key="rt_fit_on", horizontal=True,
             help="What the final model is trained on.")
    st.caption("**train** keeps the validation split aside, so the validation micro AUPRC is shown live after "
               "every epoch (and early stopping is possible); **train+valid** is C-HMCNN's final protocol: it "
               "sees a third more data (about 0.01 higher test AUPRC in `docs/performance.md`) but only the loss "
               "can be shown while it trains.")
    st.number_input("Early-stopping patience", min_value=1, step=1, value=None, key="rt_patience",
                    placeholder="off", help="Stop when the validation AUPRC has not improved for this many "
                                            "passes over the data (needs Fit on = train).")
    name = st.text_input("Run name", key="rt_name", placeholder=default_run_name(_form_config(dataset)))

with weight_col:
    st.selectbox("Weighting", WEIGHTING_MODES, key="rt_weighting",
                 help="Node-wise imbalance weights (Xu et al. 2026, METHOD.md D2).")
    st.number_input("Omega (minimum weight)", min_value=0.0, step=0.05, format="%.3f", key="rt_omega")
    st.selectbox("Counting", FREQUENCY_COUNTINGS, key="rt_counting", help="Node frequency counting (D1).")
    st.selectbox("Weight indexing", WEIGHT_INDEXINGS, key="rt_weight_indexing",
                 help="released: as the authors' code applies the weights; intended: as the paper states (D5).")
    st.selectbox("Focal mode", FOCAL_MODES, key="rt_focal",
                 format_func=lambda m: "off" if m == "none" else UNCERTAINTY_LABELS.get(m, m),
                 help="Uncertainty u of the focal factor focal_min + u^k (E1, E2).")
    st.number_input("Focal k", min_value=0.0, step=0.5, format="%.2f", key="rt_focal_k")
    st.number_input("Focal min", min_value=0.0, step=0.05, format="%.3f", key="rt_focal_min")

with model_col:
    st.number_input("Heads", min_value=1, step=1, key="rt_heads", help="Ensemble members H.")
    st.selectbox("Ensemble kind", ENSEMBLE_KINDS, key="rt_ensemble")
    st.selectbox("Loss", LOSSES, key="rt_loss", help="mcloss: C-HMCNN's MCLoss; zlpr: ZLPR on the same "
                                                      "hierarchy-constrained scores.")
    st.number_input("Label smoothing", min_value=0.0, max_value=0.49, step=0.05, format="%.2f",
                    key="rt_label_smoothing", help="ZLPR only.")
    st.toggle("LPROS oversampling", key="rt_lpros_on", help="Oversample minority label paths (METHOD.md F1).")
    st.number_input("LPROS S", min_value=0.0, max_value=1.0, step=0.05, format="%.2f", key="rt_lpros",
                    disabled=not st.session_state["rt_lpros_on"])
    st.selectbox("Schedule", SCHEDULES, key="rt_schedule", help="Weighted-to-unweighted schedule within each "
                                                                "pass (METHOD.md F2); needs weighting.")
    st.number_input("Schedule k", min_value=0.0, step=0.5, format="%.2f", key="rt_schedule_k",
                    disabled=st.session_state["rt_schedule"] != "exp")
    st.toggle("Mixed loss", key="rt_mixed_on", help="lambda x weighted + (1 - lambda) x plain MCLoss (F3).")
    st.number_input("Mixed lambda", min_value=0.0, max_value=1.0, step=0.1, format="%.2f", key="rt_mixed_lambda",
                    disabled=not st.session_state["rt_mixed_on"])

config = _form_config(dataset)
try:
    jobs.check_launchable(config)
    problem = None
except ValueError as exc:
    problem = str(exc)

launch_col, message_col = st.columns([1, 4], vertical_alignment="center")
launched = launch_col.button("Launch", type="primary", key="rt_launch", disabled=problem is not None)
if problem is not None:
    message_col.error(f"Cannot launch: {problem}")
elif launched:
    try:
        record = registry.submit(config, name)
        jobs.dispatch(registry)
    except (RegistryError, ValueError, OSError) as exc:
        message_col.error(f"Cannot launch: {exc}")
    else:
        message_col.success(f"Queued **{record.name}** (`{record.id}`).")

# ---------------------------------------------------------------- the jobs
st.subheader("Jobs")
st.number_input("Concurrent runs", min_value=1, step=1, key="rt_max_concurrent",
                value=registry.max_concurrent, on_change=_set_concurrency,
                help="How many jobs may train at once; the rest wait in the queue (1 suits a 2-core machine).")
active_now = bool(registry.runs(ACTIVE_STATUSES, limit=1))
st.session_state["rt_active"] = active_now
st.fragment(run_every=REFRESH_S if active_now else None)(_jobs_panel)()

# ---------------------------------------------------------------- the runs
st.subheader("Runs")
all_runs = registry.runs()
if all_runs:
    _runs_section(all_runs)
else:
    st.caption("No run is registered yet.")
