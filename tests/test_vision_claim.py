"""bench/vision_claim.py: the limited-data subset, the resumable training and the report's numbers.

A tiny measurement (a small ``make_shapes``, 2 seeds, 1 epoch, every setting trained in this process) is
run once per module; its tables are checked against the saved runs' test predictions recomputed here with
numpy and scikit-learn, not with the project's metric functions.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import vision_claim as vc  # noqa: E402
from hmlc_core.images.teaching import make_shapes  # noqa: E402

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def base():
    return make_shapes(seed=3, n_train=80, n_valid=40, n_test=60, image_size=16)


@pytest.fixture(scope="module")
def measured(base, tmp_path_factory):
    """(work folder, report text) of the tiny measurement."""
    work = tmp_path_factory.mktemp("vision")
    mp = pytest.MonkeyPatch()
    mp.setenv("HMLC_CACHE_DIR", str(work / "cache"))  # the frozen encoder's feature cache
    try:
        vc.measure(work, SEEDS, epochs=1, in_process=True, base=base, command="test")
    finally:
        mp.undo()
    report = work / "report.md"
    vc.write_report(report, vc.render_tables(vc.collect_all(work), work))
    return work, report.read_text()


def test_limited_subset_keeps_a_seeded_share_of_train_and_the_other_splits_whole(base):
    sub = vc.limited_subset(base, 0.25, seed=5)
    assert sub.name == "shapes-25pct"
    assert sub.train.n_samples == 20
    thumbs = base.images.thumbnails["train"]
    rows = [base.images.names["train"].index(n) for n in sub.images.names["train"]]
    assert rows == sorted(rows) and len(set(rows)) == 20
    np.testing.assert_array_equal(sub.images.thumbnails["train"], thumbs[rows])
    np.testing.assert_array_equal(sub.train.Y, base.train.Y[rows])
    for split in ("valid", "test"):
        np.testing.assert_array_equal(getattr(sub, split).Y, getattr(base, split).Y)
        np.testing.assert_array_equal(sub.images.thumbnails[split], base.images.thumbnails[split])
    # normalised with the subset's own statistics
    mean = thumbs[rows].astype(np.float64).mean(axis=(0, 1, 2)) / 255
    np.testing.assert_allclose(sub.images.mean, mean, rtol=1e-6)
    again = vc.limited_subset(base, 0.25, seed=5)
    assert again.images.names["train"] == sub.images.names["train"]
    assert vc.limited_subset(base, 0.25, seed=6).images.names["train"] != sub.images.names["train"]
    with pytest.raises(ValueError, match="fraction"):
        vc.limited_subset(base, 0.0)


def _table(report: str, title: str) -> dict[str, list[float]]:
    """Metric label -> the means of the table under the heading ``### title``, one per configuration."""
    section = report.split(f"### {title}\n", 1)[1].split("\n### ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.match(r"-?\d", cells[1]):
            rows[cells[0]] = [float(c.split(" ± ")[0]) for c in cells[1:]]
    return rows


def _test_metrics(run_dir: Path, train_y: np.ndarray) -> dict[str, float]:
    """micro AUPRC, macro recall and rare-node recall at 0.5 of a saved run, recomputed from its predictions."""
    with np.load(run_dir / "predictions.npz") as preds:
        y, probs = preds["y_true"].astype(int), preds["mean_probs"].astype(np.float64)
    y, probs, train = y[:, 1:], probs[:, 1:], train_y[:, 1:]  # column 0 is root: not evaluated
    pred = probs > 0.5
    positives = y.sum(axis=0)
    recall = np.where(positives > 0, (pred & (y == 1)).sum(axis=0) / np.maximum(positives, 1), 0.0)
    freq = train.sum(axis=0)
    rare = freq <= np.quantile(freq, 0.25)
    return {"micro AUPRC": float(average_precision_score(y.ravel(), probs.ravel())),
            "macro R @ fixed 0.5": float(recall.mean()), "rare-node R @ fixed 0.5": float(recall[rare].mean())}


def test_report_numbers_match_the_saved_runs(measured, base):
    work, report = measured
    hierarchy_nodes = base.hierarchy.nodes
    assert hierarchy_nodes[0] == "root"
    subset = vc.limited_subset(base)
    for name, setting in vc.SETTINGS.items():
        table = _table(report, setting.title)
        data = subset if setting.limited else base
        for k, config in enumerate(vc.CONFIG_NAMES):
            per_seed = [_test_metrics(work / name / f"{data.name}__{config}__seed-{s}", data.train.Y) for s in SEEDS]
            for label in ("micro AUPRC", "macro R @ fixed 0.5", "rare-node R @ fixed 0.5"):
                expected = np.mean([m[label] for m in per_seed])
                assert table[label][k] == pytest.approx(expected, abs=6e-4), (name, config, label)


def test_paired_effects_match_the_per_seed_differences(measured, base):
    work, report = measured
    frame = vc.collect_all(work)
    sub = frame[frame["setting"] == "frozen"]
    e = vc.effect(sub, (vc.PLAIN, "auprc_micro"), (vc.PAPER, "auprc_micro"))
    ours = [_test_metrics(work / "frozen" / f"shapes__{c}__seed-{s}", base.train.Y)["micro AUPRC"]
            for c in (vc.PLAIN, vc.PAPER) for s in SEEDS]
    diff = np.array(ours[2:]) - np.array(ours[:2])
    np.testing.assert_allclose(e.differences, diff, atol=1e-6)
    assert e.mean == pytest.approx(diff.mean(), abs=1e-6)
    assert e.d_z == pytest.approx(diff.mean() / diff.std(ddof=1), rel=1e-4)
    assert e.ahead == int((diff > 0).sum())
    row = next(line for line in report.splitlines() if line.startswith("| micro AUPRC |") and "d_z" in line)
    frozen_paper = [c.strip() for c in row.strip("|").split("|")][3]  # cnn x2, then frozen: weighting-focal
    assert frozen_paper.startswith(f"{diff.mean():+.4f}")


def test_measurement_is_resumable_and_the_report_keeps_the_hand_written_text(measured, base, tmp_path):
    work, report = measured
    summary = work / "limited" / f"{vc.limited_subset(base).name}__plain__seed-0" / "summary.json"
    before = summary.stat().st_mtime_ns
    cells = vc.setting_cells(vc.SETTINGS["limited"], vc.limited_subset(base).name, SEEDS, 1)
    assert vc.train_here(cells, work / "limited", vc.limited_subset(base)) == []
    assert summary.stat().st_mtime_ns == before
    doc = tmp_path / "vision.md"
    doc.write_text(f"# Title\n\nbefore\n\n{vc.BEGIN}\nold table\n{vc.END}\n\nafter\n")
    vc.write_report(doc, "| new |\n")
    text = doc.read_text()
    assert text.startswith("# Title\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "| new |" in text and "old table" not in text
    # a cell asking for other epochs is a conflict, not a silent reuse
    other = vc.setting_cells(vc.SETTINGS["limited"], vc.limited_subset(base).name, SEEDS, 2)
    with pytest.raises(ValueError, match="epochs"):
        vc.train_here(other, work / "limited", vc.limited_subset(base))
