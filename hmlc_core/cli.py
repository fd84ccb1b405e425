"""Command line: ``python -m hmlc_core {train,evaluate,export,demo,datasets,seeds,wilcoxon,worker,sweep}``.

``train`` fits an ensemble and writes a run directory; ``evaluate`` prints a
run's headline metrics; ``export`` writes a run's test predictions as CSV or a CAFA submission
(:mod:`hmlc_core.exports`); ``demo`` regenerates the dashboard's bundled demo pair;
``datasets`` lists what the data directory holds; ``worker`` runs one job of a
runs folder's registry (the dashboard's Retrain page starts it; see
:mod:`hmlc_core.jobs`), through the same function as ``train``; ``sweep`` trains a grid of runs as Dask
tasks (:mod:`hmlc_core.sweeps`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import signal
import sys
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from hmlc_core.catalog import SHAPES, SYNTHETIC, available_datasets, open_dataset
from hmlc_core.checkpoint import CHECKPOINT_SECONDS, checkpoint_beside
from hmlc_core.config import ANN_KINDS, ENCODERS, KERNELS
from hmlc_core.data import DatasetNotFoundError, HMCDataset
from hmlc_core.decision import DECISION_RULES, DEFAULT_SHRINKAGE
from hmlc_core.exports import DEFAULT_MIN_PROBABILITY, cafa_submission, predictions_csv
from hmlc_core.experiments import SEED_METRICS, describe, paired_wilcoxon, seed_table, train_seeds
from hmlc_core.jobs import run_worker, train_and_save
from hmlc_core.losses import FOCAL_MODES, FREQUENCY_COUNTINGS, LOSSES, SCHEDULES, WEIGHT_INDEXINGS, WEIGHTING_MODES
from hmlc_core.model import ENSEMBLE_KINDS
from hmlc_core.registry import Registry, RegistryError, default_folder_name, imported_run_name
from hmlc_core.runs import RunError, env_runs_dirs, evaluate_run, load_run
from hmlc_core.sweeps.command import SWEEP_HELP, add_sweep_options, run_sweep_command
from hmlc_core.tables import LABEL_COLUMN, TEST_FRACTION, load_table_dataset
from hmlc_core.train import TrainConfig, TrainingDiverged

__all__ = ["main", "build_parser", "DEMO_RUN_DIR", "DEMO_WEIGHTED_RUN_DIR", "DEMO_RUNS"]

log = logging.getLogger("hmlc_core")

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
"""Where ``demo`` writes the demo pair by default."""

DEMO_RUN_DIR = ASSETS_DIR / "demo_run"
"""The plain demo run, the dashboard's default run (run chooser key ``demo``)."""

DEMO_WEIGHTED_RUN_DIR = ASSETS_DIR / "demo_weighted_run"
"""The weighted demo run (run chooser key ``demo-weighted``)."""

DEMO_WEIGHTED_CONFIG = TrainConfig(dataset=SYNTHETIC, heads=3, seed=0, fit_on="train")
"""The weighted demo run: the paper's method as this project's defaults set it (class-wise node weights
times the bBMA focal factor ``0.25 + u**2``; docs/method.md, *Node weights*, *Focal weighting* and
*Defaults and why*), 3 members, seed 0, on the synthetic data at its preset budget (40 epochs of batch 4,
:data:`hmlc_core.presets.SYNTHETIC_PRESET`), trained on the train split only (``fit_on="train"``) so that
the run keeps held-out valid predictions and the dashboard can show the tuned decision rules on it
(docs/method.md, *Decision rules*).

That budget shows the method at work. Measured with ``python -m hmlc_core demo`` (seed 0), at the fixed
0.5 rule: macro recall 0.068 (plain) against 0.107 (weighted), recall at depth 2 0.42 against 0.64 and at
depth 3 0.07 against 0.15, for a micro AUPRC of 0.75 against 0.72. The depth-4 nodes (about 3 training
positives each) stay missed by both, so rare-node recall, whose bottom quartile by training frequency
holds only depth-4 nodes, is 0 in both runs. The decision matters as much as the loss here: the per-node
rule (m = 5) on the *plain* run reaches macro recall 0.146 and recall 0.26 at depth 3."""

DEMO_CONFIG = dataclasses.replace(DEMO_WEIGHTED_CONFIG, weighting="none", focal="none")
"""The plain demo run: :data:`DEMO_WEIGHTED_CONFIG` without node weights and focal factor, i.e. plain
C-HMCNN (MCM + MCLoss) with 3 members, so its deep nodes are missed."""

DEMO_RUNS: dict[str, tuple[Path, TrainConfig]] = {
    "demo": (DEMO_RUN_DIR, DEMO_CONFIG),
    "demo-weighted": (DEMO_WEIGHTED_RUN_DIR, DEMO_WEIGHTED_CONFIG),
}
"""The matched demo pair ``demo`` regenerates: run chooser key -> (bundled folder, config)."""


def _text(*paragraphs: str) -> str:
    """Plain-text help for ``argparse.RawDescriptionHelpFormatter``: one-line paragraphs wrapped at 79
    columns, paragraphs of several lines (example commands) kept as written."""
    return "\n\n".join(p if "\n" in p else textwrap.fill(p, 79, break_on_hyphens=False) for p in paragraphs)


_DESCRIPTION = _text(
    "Train and evaluate hierarchy-coherent neural ensembles for hierarchical multi-label classification: "
    "C-HMCNN networks (max-constraint module and MCLoss) with the rare-node weighted loss of Xu et al. 2026. "
    "Every run is saved as a folder that the dashboard (streamlit run app.py) opens.",
    "Run 'python -m hmlc_core COMMAND --help' for the options of a command.",
)
_EPILOG = _text(
    "examples:\n"
    "  export HMLC_DATA_DIR=/path/to/hmc     # folder with datasets_FUN/, datasets_GO/, others/\n"
    "  python -m hmlc_core datasets\n"
    "  python -m hmlc_core train --dataset cellcycle_FUN --heads 1 --weighting none --focal none\n"
    "  python -m hmlc_core train --dataset cellcycle_FUN --weighting class-wise --focal mean\n"
    "  python -m hmlc_core evaluate runs/RUN_DIR --json",
    "The method, its formulas and the reason for every default: docs/method.md.",
)
_COMMAND_TEXTS: dict[str, tuple[str, str | None]] = {
    "train": (_text(
        "Train an ensemble on one dataset and save a run folder (settings, model, test predictions and per-node "
        "metrics) that the dashboard can open. Every option has a default: with only --dataset you get the "
        "paper's method (class-wise node weights times the bBMA focal factor) on C-HMCNN's training recipe, "
        "and '--weighting none --focal none' is plain C-HMCNN.",
        "On a terminal a progress bar counts the epochs. Ctrl-C stops after the current step and saves the run "
        "marked 'interrupted'; a second Ctrl-C aborts without saving.",
    ), _text(
        "example:\n  python -m hmlc_core train --dataset cellcycle_FUN --profile quick --fit-on train",
        "What each option does and why its default was chosen: docs/method.md, section 'Defaults and why'.",
    )),
    "evaluate": (_text(
        "Print the headline test metrics of a saved run, recomputed from its saved test predictions: micro "
        "AUPRC over the evaluated nodes, macro precision, recall and F1, the number of evaluated nodes and the "
        "macro recall at each depth, micro F1, rare-node recall, macro AUPRC, Fmax and the coherence violations "
        "of the predictions. With --json, one JSON object.",
        "Predictions follow a decision rule (--decision): the run's own by default. 'global' and 'per-node' are "
        "tuned on the run's held-out valid predictions, which only runs trained with --fit-on train have.",
    ), _text(
        "example:\n  python -m hmlc_core evaluate runs/RUN_DIR --decision per-node --shrinkage 2 --json",
    )),
    "demo": (_text(
        "Regenerate the dashboard's bundled demo runs on the synthetic dataset, replacing the folders there.",
    ), None),
    "seeds": (_text(
        "Train one configuration once per seed, each into OUT/seed-S, then print a table of the seeds' test "
        "metrics. Two such folders (say, plain and weighted) are what 'wilcoxon' compares.",
    ), None),
    "wilcoxon": (_text(
        "Paired Wilcoxon signed-rank test between two folders of seed runs (as written by 'seeds'): runs pair up "
        "on (dataset, seed), and each metric's paired differences are tested for a shift away from zero.",
    ), None),
    "datasets": (_text(
        "List the datasets found in the data directory (--data-dir, else $HMLC_DATA_DIR), one name a line; the "
        f"built-in datasets '{SYNTHETIC}' (a generated table) and '{SHAPES}' (generated images) are always "
        "there.",
    ), None),
    "worker": (_text(
        "Run one queued job of a runs folder's registry to its end. The dashboard's Retrain page starts this "
        "command in the background; there is no need to run it by hand. Its output goes to "
        "RUNS_DIR/.logs/RUN_ID.log.",
    ), None),
}
"""Subcommand -> (description, epilog) shown by ``python -m hmlc_core COMMAND --help``."""


def _add_train_options(p: argparse.ArgumentParser, dataset_required: bool = True) -> None:
    d = TrainConfig(dataset="")
    p.add_argument("--dataset", required=dataset_required,
                   help=f"dataset name: a built-in one ('{SYNTHETIC}', a generated table; '{SHAPES}', generated "
                        "images), a CLUS HMC name such as cellcycle_FUN / cellcycle_GO / "
                        "Diatoms, or your own folder in the data dir (see 'datasets')")
    p.add_argument("--data-dir", default=None, help="folder with the ARFF files (default: $HMLC_DATA_DIR)")
    p.add_argument("--out", default=None,
                   help="run directory to write (default: the first folder of $HMLC_RUNS_DIR, or ./runs; a new folder named after the "
                        "dataset and settings)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory at --out")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: C-HMCNN's value for the dataset)")
    p.add_argument("--heads", type=int, default=d.heads, help="ensemble members H (default %(default)s)")
    p.add_argument("--ensemble", choices=ENSEMBLE_KINDS, default=d.ensemble,
                   help="heads: H independent networks; shared: a shared first layer; mc-dropout: one network "
                        "sampled H times with dropout, also at test time (default %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    p.add_argument("--hidden", type=int, default=None, help="hidden width (default: C-HMCNN's value)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 1e-4, 1e-5 for 'others')")
    p.add_argument("--profile", choices=("paper", "quick"), default=d.profile,
                   help="'paper': C-HMCNN's recipe (batch 4); 'quick': batch 64, 20x learning rate, 40%% of the "
                        "epochs, for fast retraining (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size (default: 4, or 64 with --profile quick)")
    p.add_argument("--patience", type=int, default=None,
                   help="early stopping on validation AUPRC after this many epochs without improvement "
                        "(needs --fit-on train)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="default %(default)s")
    p.add_argument("--dropout", type=float, default=d.dropout, help="default %(default)s")
    p.add_argument("--weighting", choices=WEIGHTING_MODES, default=d.weighting,
                   help="node-wise imbalance weights (Xu et al. 2026), or 'class-balanced': the inverse effective "
                        "number of positives (Cui et al. 2019), a tail-aware baseline (default %(default)s)")
    p.add_argument("--cb-beta", type=float, default=d.cb_beta, metavar="BETA",
                   help="class-balanced weights only: beta of (1 - beta) / (1 - beta^n) for a node with n "
                        "training positives, in [0, 1); 0 weighs every node alike, close to 1 approaches 1 / n "
                        "(default %(default)s)")
    p.add_argument("--omega", type=float, default=d.omega, help="minimum node weight (default %(default)s)")
    p.add_argument("--counting", choices=FREQUENCY_COUNTINGS, default=d.counting,
                   help="node frequency counting for the weights (default %(default)s)")
    p.add_argument("--weight-indexing", choices=WEIGHT_INDEXINGS, default=d.weight_indexing,
                   help="'released': weights as the authors' code applies them (the positive-frequency weight "
                        "lands on negative targets); 'intended': on positive targets (default %(default)s)")
    p.add_argument("--focal", choices=FOCAL_MODES, default=d.focal,
                   help="uncertainty of the focal factor focal_min + u^k: mean = bBMA, pcs = GMU, "
                        "epistemic = JS divergence, ... (default %(default)s)")
    p.add_argument("--focal-k", type=float, default=d.focal_k, help="focal exponent k (default %(default)s)")
    p.add_argument("--focal-min", type=float, default=d.focal_min, help="focal floor (default %(default)s)")
    p.add_argument("--loss", choices=LOSSES, default=d.loss,
                   help="training objective: C-HMCNN's MCLoss, ZLPR (Su et al.) on the same hierarchy-"
                        "constrained scores, or asl: the asymmetric loss (Ridnik et al.) on MCLoss's constrained "
                        "outputs (default %(default)s)")
    p.add_argument("--asl-gamma-pos", type=float, default=d.asl_gamma_pos, metavar="G",
                   help="--loss asl only: focusing exponent of the positives, (1 - p)^G (default %(default)s)")
    p.add_argument("--asl-gamma-neg", type=float, default=d.asl_gamma_neg, metavar="G",
                   help="--loss asl only: focusing exponent of the negatives, max(p - clip, 0)^G (default "
                        "%(default)s)")
    p.add_argument("--asl-clip", type=float, default=d.asl_clip, metavar="M",
                   help="--loss asl only: negatives with probability at most M are dropped from the loss, the "
                        "others shifted down by M; in [0, 1) (default %(default)s)")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help="ZLPR only: soft targets y(1-a) + (1-y)a (default %(default)s)")
    p.add_argument("--schedule", choices=SCHEDULES, default=d.schedule,
                   help="move the node weights towards omega within every epoch: lin, exp or alt (default "
                        "%(default)s; needs --weighting)")
    p.add_argument("--schedule-k", type=float, default=d.schedule_k, help="exponent of --schedule exp "
                   "(default %(default)s)")
    p.add_argument("--mixed-lambda", type=float, default=None,
                   help="mixed loss: lambda * weighted + (1 - lambda) * plain MCLoss (default: off)")
    p.add_argument("--lpros", type=float, default=None, metavar="S",
                   help="LPROS: oversample minority label paths of the train split, creating about S x the "
                        "number of annotations (the released default is 0.1; default: off)")
    p.add_argument("--logit-adjust", type=float, nargs="?", const=1.0, default=None, metavar="TAU",
                   help="logit adjustment (Menon et al. 2021, adapted to one yes/no problem per node): train on "
                        "logits shifted by TAU * log(prior / (1 - prior)) of each node, predict with the unshifted "
                        "ones, so rare nodes get higher probabilities (default: off; TAU 1 when given alone)")
    p.add_argument("--reduction", choices=("mean", "sum"), default=d.reduction,
                   help="loss reduction (default %(default)s)")
    p.add_argument("--fit-on", choices=("train+valid", "train"), default=d.fit_on,
                   help="'train' keeps the valid split aside and reports its AUPRC each epoch (default %(default)s)")
    p.add_argument("--valid-fraction", type=float, default=None, metavar="F",
                   help="share of the training rows held out as the valid split when the data has none (Diatoms, "
                        "ImCLEF07A/D, --table, --images), the same rows for every run (seed 0); needed there by "
                        "--fit-on train and the tuned decision rules; ignored by a dataset with its own valid "
                        "split (default 0; 0.15 for --images, as for an image dataset in the data dir)")
    _add_decision_options(p, d.decision, "the run's default decision rule, stored with it; 'global' and 'per-node' "
                                         "are tuned on the valid split and need --fit-on train")
    p.add_argument("--threads", type=int, default=d.threads, help="torch threads (default %(default)s)")
    p.add_argument("--kernel", choices=KERNELS, default=d.kernel,
                   help="training step: fused numba kernels or plain torch autograd + Adam, the same update "
                        "(default %(default)s; a CNN trains with torch)")
    p.add_argument("--encoder", choices=ENCODERS, default=d.encoder,
                   help="image datasets: cnn, a small CNN shared by the members and trained with them; frozen, "
                        "the same CNN never trained (random from --seed, or --encoder-checkpoint), its features "
                        "computed once and cached ($HMLC_CACHE_DIR, default ~/.cache/hmlc-lab); none, the "
                        "members read the pixels; auto: cnn for images, none for tables (default %(default)s)")
    p.add_argument("--encoder-checkpoint", default=None, metavar="FILE",
                   help="state dict of the CNN (torch.save(trunk.state_dict()), or a CNN run's model.pt) that "
                        "initialises it: the frozen encoder's weights, or the trained CNN's start (default: "
                        "random from --seed)")
    p.add_argument("--encoder-width", type=int, default=d.encoder_width, metavar="W",
                   help="channels of the CNN's first convolution; its features are 4 x W wide (default "
                        "%(default)s)")
    about = _text(
        "MCLoss on each sample's positives and its K hardest negative nodes, found by nearest-neighbour search "
        "over label embeddings, instead of on every node. Trains plain MCLoss: add --weighting none --focal none; "
        "LPROS, schedules, the mixed loss, logit adjustment, early stopping, 'shared' and 'mc-dropout' ensembles "
        "and image encoders are refused. --epochs counts the proxy epochs too. The saved run is scored on every "
        "node, like any other.")
    g = p.add_argument_group("shortlist training, for very large hierarchies (LightDXML; hmlc_core.shortlists)",
                             about)
    g.add_argument("--shortlist", type=int, default=d.shortlist, metavar="K",
                   help="train on the positives and K shortlisted negatives per sample (default: off, full training)")
    g.add_argument("--shortlist-cycle", type=int, default=d.shortlist_cycle, metavar="N",
                   help="rebuild label embeddings, index and shortlists every N epochs (default %(default)s)")
    g.add_argument("--shortlist-proxy-epochs", type=int, default=d.shortlist_proxy_epochs, metavar="N",
                   help="first N epochs: MCLoss on the shallow nodes only, to learn a representation before the "
                        "first shortlist (default %(default)s)")
    g.add_argument("--shortlist-ann", choices=ANN_KINDS, default=d.shortlist_ann,
                   help="nearest-neighbour index: hnsw (approximate, faiss), exact (brute force), auto (exact for "
                        "a few thousand nodes, hnsw above; default %(default)s)")
    g.add_argument("--shortlist-uniform", type=int, default=d.shortlist_uniform, metavar="M",
                   help="also M negatives per sample drawn uniformly from all nodes at every step, weighted so the "
                        "loss estimates MCLoss over every node (default %(default)s: hard negatives only)")
    g.add_argument("--shortlist-full-epochs", type=int, default=d.shortlist_full_epochs, metavar="N",
                   help="last N epochs: full MCLoss on every node, which puts the nodes' scores on one scale "
                        "(each costs an epoch of full training; default %(default)s)")


def _add_table_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own table (instead of --dataset; hmlc_core.tables)")
    g.add_argument("--table", default=None, metavar="FILE",
                   help="CSV or Parquet table: numeric feature columns and a label column of '@'-separated node ids")
    g.add_argument("--hierarchy", default=None, metavar="FILE",
                   help="edge-list CSV with the header 'parent,child', or an OBO ontology (.obo; is_a relations, "
                        "obsolete terms dropped)")
    g.add_argument("--label-column", default=LABEL_COLUMN, metavar="NAME", help="default %(default)s")
    g.add_argument("--part-of", action="store_true", help="OBO only: part_of relations become edges too")
    g.add_argument("--test-table", default=None, metavar="FILE",
                   help="test table with the same columns (default: hold out --test-fraction of --table, seed 0)")
    g.add_argument("--test-fraction", type=float, default=TEST_FRACTION, help="default %(default)s")


def _add_image_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own images (instead of --dataset; hmlc_core.images.folders)")
    g.add_argument("--images", default=None, metavar="PATH",
                   help="a folder tree whose folder levels are taxonomy levels (ROOT/Echinodermata/Asteroidea/a.jpg), "
                        "or a CSV file with a 'path' and a 'labels' column ('/'-separated taxonomy paths, several "
                        "joined by '@'); split with --test-fraction and --valid-fraction (seed 0) unless the folder "
                        "has train/ and test/ subfolders; unreadable images are skipped and logged")
    g.add_argument("--image-size", type=int, default=32, metavar="N",
                   help="side in pixels of every image after centre-cropping and resizing (default %(default)s)")


IMAGE_VALID_FRACTION = 0.15
"""``--valid-fraction`` of ``train --images`` when omitted: the loaders' default, so the tuned decision rules and
``--fit-on train`` work on a user's images as on an image dataset of the data directory."""


def _table_dataset(args: argparse.Namespace) -> HMCDataset | None:
    """The dataset of ``train --table`` or ``train --images`` (setting ``args.dataset`` to its name), or None
    for ``--dataset``."""
    if args.images is not None:
        if args.dataset is not None or args.table is not None:
            raise ValueError("--images takes neither --dataset nor --table")
        from hmlc_core.images.folders import load_images

        args.valid_fraction = IMAGE_VALID_FRACTION if args.valid_fraction is None else args.valid_fraction
        dataset = load_images(args.images, size=args.image_size, valid_fraction=args.valid_fraction,
                              test_fraction=args.test_fraction)
        args.dataset = dataset.name
        return dataset
    if args.table is None:
        if args.dataset is None:
            raise ValueError("train needs --dataset NAME, --table FILE with --hierarchy FILE, or --images PATH")
        return None
    if args.dataset is not None or args.hierarchy is None:
        raise ValueError("--table needs --hierarchy FILE and no --dataset")
    dataset = load_table_dataset(args.table, args.hierarchy, label_column=args.label_column,
                                 test_table=args.test_table, test_fraction=args.test_fraction,
                                 valid_fraction=args.valid_fraction or 0.0,
                                 relations=("is_a", "part_of") if args.part_of else ("is_a",))
    args.dataset = dataset.name
    return dataset


def _add_decision_options(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("--decision", choices=DECISION_RULES, default=default,
                   help=f"{what}: fixed threshold; one global threshold tuned for micro F1; per-node thresholds "
                        "tuned for each node's F1, shrunk towards the global one (docs/method.md, 'Decision rules'; "
                        "default %(default)s)")
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="threshold of --decision fixed (default 0.5)")
    p.add_argument("--shrinkage", type=float, default=None, metavar="M",
                   help=f"shrinkage m of --decision per-node, in pseudo-positives (default {DEFAULT_SHRINKAGE:g})")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m hmlc_core``."""
    parser = argparse.ArgumentParser(prog="python -m hmlc_core", description=_DESCRIPTION, epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train", help="train an ensemble and save a run directory")
    _add_train_options(p_train, dataset_required=False)
    _add_table_options(p_train)
    _add_image_options(p_train)
    p_train.add_argument("--quiet", action="store_true", help="no progress bar")
    p_train.add_argument("--checkpoint", action="store_true",
                         help="for long runs: write a training checkpoint beside --out (.NAME.checkpoint.pt, at most "
                              "every 5 minutes, removed once the run is saved); the same command run again after "
                              "the process was killed goes on from its last finished epoch (not with --shortlist)")
    p_train.add_argument("--checkpoint-every", type=float, default=CHECKPOINT_SECONDS, metavar="SECONDS",
                         help="least seconds between two checkpoints of --checkpoint (default %(default)g)")
    p_eval = sub.add_parser("evaluate", help="print a run's test metrics")
    p_eval.add_argument("run_dir", help="a run directory written by 'train'")
    p_eval.add_argument("--json", action="store_true", help="print one JSON object")
    _add_decision_options(p_eval, None, "decision rule (default: the run's own, 'fixed' for older runs)")
    p_export = sub.add_parser("export", help="write a run's test predictions as CSV or a CAFA submission file")
    p_export.add_argument("run_dir", help="a run directory written by 'train'")
    p_export.add_argument("--format", choices=("csv", "cafa"), default="csv",
                          help="csv: sample,node,probability,decision rows (probability >= "
                               f"{DEFAULT_MIN_PROBABILITY:g} or decided 1); cafa: the CAFA 2/3 prediction format, "
                               "targets named T + test row (default %(default)s)")
    p_export.add_argument("--out", default=None, help="file to write (default: standard output)")
    _add_decision_options(p_export, None, "decision rule of the csv format's decision column (default: the run's "
                                          "own)")
    p_demo = sub.add_parser("demo", help="regenerate the bundled demo pair (plain and weighted, synthetic data)")
    p_demo.add_argument("--out", default=str(ASSETS_DIR),
                        help=f"folder that receives the pair as {DEMO_RUN_DIR.name}/ (plain C-HMCNN) and "
                             f"{DEMO_WEIGHTED_RUN_DIR.name}/ (class-wise weights + bBMA focal), replacing them "
                             "(default: %(default)s)")
    p_demo.add_argument("--epochs", type=int, default=None, help="for both runs (default: the synthetic preset)")
    p_demo.add_argument("--quiet", action="store_true", help="no progress bar")
    p_seeds = sub.add_parser("seeds", help="train one configuration with several seeds into OUT/seed-S")
    _add_train_options(p_seeds)
    p_seeds.add_argument("--seeds", type=int, nargs="+", required=True, help="for example --seeds 0 1 2")
    p_seeds.add_argument("--quiet", action="store_true", help="no progress bar")
    p_wil = sub.add_parser("wilcoxon", help="paired Wilcoxon signed-rank test between two folders of seed runs")
    p_wil.add_argument("runs_a", help="folder of runs (configuration A), e.g. written by 'seeds'")
    p_wil.add_argument("runs_b", help="folder of runs (configuration B); runs pair up on (dataset, seed)")
    p_wil.add_argument("--metric", choices=SEED_METRICS, action="append",
                       help="metric(s) to test (default: all)")
    p_data = sub.add_parser("datasets", help="list the datasets found in the data directory")
    p_data.add_argument("--data-dir", default=None, help="default: $HMLC_DATA_DIR")
    p_work = sub.add_parser("worker", help="run one queued job of a runs folder's registry (started by the "
                                           "dashboard's Retrain page; logs to RUNS_DIR/.logs/RUN_ID.log there)")
    p_work.add_argument("run_id", help="the job's id in RUNS_DIR/registry.sqlite")
    p_work.add_argument("--runs-dir", required=True, help="the runs folder holding registry.sqlite")
    add_sweep_options(sub.add_parser("sweep", help=SWEEP_HELP))
    for name, command in sub.choices.items():
        command.description, command.epilog = _COMMAND_TEXTS.get(name, (command.description, command.epilog))
        command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


class _StopFlag:
    """First Ctrl-C (or SIGTERM) asks training to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.stop = False

    def __call__(self) -> bool:
        return self.stop

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop = True
        signal.signal(signal.SIGINT, signal.default_int_handler)
        log.warning("stopping after the current step; the run is saved as 'interrupted' (Ctrl-C again to abort)")

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)


def _default_out(config: TrainConfig) -> Path:
    root = next(iter(env_runs_dirs()), Path("runs"))
    return root / default_folder_name(config, time.strftime("%Y%m%d-%H%M%S"))


def _warn_if_name_taken(config: TrainConfig, out: Path) -> None:
    """Warn when the registry of ``out``'s folder already lists a run under the name ``out`` will be imported as.

    Names are labels (the dashboard shows each run's key next to it), so this warns and goes on.
    """
    name = imported_run_name(out.name, config)
    try:
        registry = Registry(out.parent, create=False)
        clashes = registry.named(name)
        registry.close()
    except (RegistryError, OSError):
        return  # no registry there yet: nothing to clash with
    if clashes:
        log.warning("a run named %r already exists in %s (%s); the dashboard will list both under that name, each "
                    "with its key: rename one on the Retrain page", name, out.parent, ", ".join(r.id for r in clashes))


@contextmanager
def _interactive(quiet: bool, epochs: int) -> Iterator[tuple[Any, _StopFlag]]:
    """Progress reporting and the Ctrl-C flag for one training command; closes the bar at the end.

    While the bar is drawn, log records go through ``tqdm.write`` (``logging_redirect_tqdm``), which prints
    them on their own line above the bar instead of after it on the bar's line.
    """
    progress, bar = _progress_printer(quiet, epochs)
    flag = _StopFlag()
    flag.install()
    with ExitStack() as stack:
        if bar is not None:
            from tqdm.contrib.logging import logging_redirect_tqdm

            stack.enter_context(logging_redirect_tqdm())
            stack.callback(bar.close)
        yield progress, flag


def _progress_printer(quiet: bool, epochs: int) -> tuple[Any, Any]:
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=epochs, unit="epoch", file=sys.stderr)

    def progress(event: dict[str, Any]) -> None:
        extra = f" valid AUPRC {event['valid_auprc']:.4f}" if "valid_auprc" in event else ""
        if bar is not None:
            bar.update(event["epoch"] - bar.n)  # a run resumed from a checkpoint starts after its first epochs
            bar.set_postfix_str(f"loss {event['loss']:.4f}{extra}")
        elif not quiet:
            log.info("epoch %d/%d loss %.4f (%.1f s)%s", event["epoch"], event["epochs"], event["loss"],
                     event["seconds"], extra)

    return progress, bar


def _run_training(config: TrainConfig, out: Path, overwrite: bool, quiet: bool,
                  dataset: HMCDataset | None = None, checkpoint: bool = False,
                  checkpoint_seconds: float = CHECKPOINT_SECONDS) -> Path:
    saved = checkpoint_beside(out) if checkpoint else None
    with _interactive(quiet, config.resolved().epochs) as (progress, flag):
        run = train_and_save(config, out, overwrite=overwrite, progress=progress, should_stop=flag, dataset=dataset,
                             checkpoint=saved, checkpoint_seconds=checkpoint_seconds)
    summary = run.summary
    log.info("saved %s run to %s: auprc_micro %.4f, macro recall %.4f, %.1f s/epoch", summary["status"], run.path,
             summary["auprc_micro"], summary["macro_recall"], summary["seconds_per_epoch"])
    return run.path


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs, heads=args.heads, ensemble=args.ensemble,
        hidden=args.hidden,
        dropout=args.dropout, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
        profile=args.profile, patience=args.patience,
        seed=args.seed, weighting=args.weighting, omega=args.omega, counting=args.counting,
        weight_indexing=args.weight_indexing, focal=args.focal, focal_k=args.focal_k, focal_min=args.focal_min,
        reduction=args.reduction, loss=args.loss, label_smoothing=args.label_smoothing, schedule=args.schedule,
        schedule_k=args.schedule_k, mixed_lambda=args.mixed_lambda, lpros=args.lpros, fit_on=args.fit_on,
        valid_fraction=args.valid_fraction or 0.0,
        cb_beta=args.cb_beta, asl_gamma_pos=args.asl_gamma_pos, asl_gamma_neg=args.asl_gamma_neg,
        asl_clip=args.asl_clip, logit_adjust=args.logit_adjust,
        threads=args.threads, kernel=args.kernel, decision=args.decision, encoder=args.encoder,
        encoder_checkpoint=args.encoder_checkpoint, encoder_width=args.encoder_width, shortlist=args.shortlist,
        shortlist_cycle=args.shortlist_cycle, shortlist_proxy_epochs=args.shortlist_proxy_epochs,
        shortlist_ann=args.shortlist_ann, shortlist_uniform=args.shortlist_uniform,
        shortlist_full_epochs=args.shortlist_full_epochs,
        decision_threshold=0.5 if args.threshold is None else args.threshold, decision_shrinkage=args.shrinkage,
    )


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, so the output is strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _format_metrics(result: dict[str, Any]) -> str:
    lines = [f"run               {result['run']}", f"dataset           {result['dataset']}",
             f"decision          {result['decision']}"]
    for key in ("auprc_micro", "macro_auprc", "fmax", "micro_f1", "macro_precision", "macro_recall", "macro_f1",
                "rare_node_recall"):
        lines.append(f"{key:<18}{result[key]:.4f}")
    lines.append(f"coherence_viol.   {result['coherence_violations']}")
    lines.append(f"n_eval_nodes      {result['n_eval_nodes']} ({result['n_eval_nodes_with_positives']} with test "
                 "positives)")
    lines.append("recall_by_depth   " + ", ".join(f"{d}: {r:.3f}" for d, r in result["recall_by_depth"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 when training diverged, 2 for a user error).

    A user error includes a config value out of range and an output folder that is not writable or too
    full for the run (checked before training, :func:`hmlc_core.limits.check_output_dir`).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    try:
        if args.command == "train":
            dataset = _table_dataset(args)
            config = _config_from_args(args)
            config.resolved().validate()
            out = Path(args.out) if args.out else _default_out(config)
            _warn_if_name_taken(config, out)
            if args.checkpoint and config.shortlist is not None:
                raise ValueError("--checkpoint: shortlist training writes no checkpoint")
            if args.checkpoint_every < 0:
                raise ValueError(f"--checkpoint-every must be >= 0 seconds, got {args.checkpoint_every:g}")
            print(_run_training(config, out, args.overwrite, args.quiet, dataset, checkpoint=args.checkpoint,
                                checkpoint_seconds=args.checkpoint_every))
        elif args.command == "demo":
            for folder, config in DEMO_RUNS.values():
                config = dataclasses.replace(config, epochs=args.epochs)
                path = _run_training(config, Path(args.out) / folder.name, overwrite=True, quiet=args.quiet)
                print(path)
                if load_run(path).summary["status"] != "finished":
                    break  # Ctrl-C: the run was saved marked interrupted; do not start the next one
        elif args.command == "evaluate":
            result = evaluate_run(load_run(args.run_dir), args.decision, args.threshold, args.shrinkage)
            if args.json:
                print(json.dumps(_json_safe(result)))
            else:
                print(_format_metrics(result))
        elif args.command == "export":
            run = load_run(args.run_dir)
            if args.format == "csv":
                data = predictions_csv(run, run.decision_rule(args.decision, args.threshold, args.shrinkage))
            else:
                data = cafa_submission(run).encode("utf-8")
            if args.out:
                try:
                    Path(args.out).write_bytes(data)
                except OSError as exc:
                    raise ValueError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
            else:
                sys.stdout.buffer.write(data)
        elif args.command == "seeds":
            config = _config_from_args(args)
            config.resolved().validate()
            if not args.out:
                raise ValueError("'seeds' needs --out DIR (each seed is saved as DIR/seed-S)")
            dataset = open_dataset(config.dataset, config.data_dir, config.valid_fraction)
            with _interactive(args.quiet, config.resolved().epochs * len(args.seeds)) as (progress, flag):
                paths = train_seeds(config, dataset, args.seeds, args.out, progress=progress, should_stop=flag)
            print(seed_table(args.out).drop(columns="run").to_string(index=False) if paths else "no seed finished")
        elif args.command == "wilcoxon":
            a, b = seed_table(args.runs_a), seed_table(args.runs_b)
            print(describe([paired_wilcoxon(a, b, m) for m in (args.metric or SEED_METRICS)]))
        elif args.command == "worker":
            return run_worker(args.runs_dir, args.run_id)
        elif args.command == "sweep":
            return run_sweep_command(args)
        elif args.command == "datasets":
            for name in available_datasets(args.data_dir):
                print(name)
    except (DatasetNotFoundError, FileExistsError, RunError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TrainingDiverged as exc:
        print(f"error: {exc}; nothing was saved", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aborted; nothing was saved", file=sys.stderr)
        return 130
    return 0
