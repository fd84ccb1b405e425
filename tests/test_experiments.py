"""Multi-seed runs, rare-node recall and the paired Wilcoxon test."""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wilcoxon

from hmlc_core.cli import main
from hmlc_core.experiments import paired_wilcoxon, seed_table
from hmlc_core.metrics import rare_node_recall


def test_rare_node_recall_by_hand():
    recall = np.array([0.0, 0.9, 0.8, 0.1, 0.3, 1.0])
    freq = np.array([100, 50, 40, 1, 2, 3])
    mask = np.array([False, True, True, True, True, True])
    # evaluated frequencies 50, 40, 1, 2, 3: the 25% quantile is 2, so nodes with f <= 2 are rare
    assert rare_node_recall(recall, freq, mask) == pytest.approx((0.1 + 0.3) / 2)
    assert rare_node_recall(recall, freq, mask, quantile=1.0) == pytest.approx(recall[mask].mean())
    with pytest.raises(ValueError, match="quantile"):
        rare_node_recall(recall, freq, mask, quantile=0)


def table(values, seeds=(0, 1, 2, 3, 4, 5)):
    return pd.DataFrame({"dataset": "d", "seed": list(seeds), "run": "", "auprc_micro": values,
                         "macro_precision": values, "macro_recall": values, "macro_f1": values,
                         "rare_node_recall": values})


def test_paired_wilcoxon_matches_scipy_and_pairs_on_seed():
    a = table([0.10, 0.20, 0.30, 0.40, 0.50, 0.60])
    b = table([0.15, 0.22, 0.37, 0.41, 0.58, 0.69])
    result = paired_wilcoxon(a, b, "macro_f1")
    want = wilcoxon(a["macro_f1"], b["macro_f1"])
    assert result.p_value == pytest.approx(want.pvalue) and result.n_pairs == 6
    assert result.median_difference > 0
    shuffled = b.iloc[::-1].reset_index(drop=True)  # pairing uses (dataset, seed), not row order
    assert paired_wilcoxon(a, shuffled, "macro_f1").p_value == pytest.approx(want.pvalue)
    assert paired_wilcoxon(a, a, "macro_f1").p_value == 1.0
    with pytest.raises(ValueError, match="at least 2"):
        paired_wilcoxon(a, table([0.1, 0.2], seeds=(7, 8)), "macro_f1")


def test_seeds_command_and_wilcoxon_command(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--epochs", "1", "--hidden", "16", "--batch-size", "32", "--quiet"]
    assert main(["seeds", *common, "--weighting", "none", "--focal", "none", "--seeds", "0", "1", "2",
                 "--out", str(tmp_path / "plain")]) == 0
    assert main(["seeds", *common, "--seeds", "0", "1", "2", "--out", str(tmp_path / "weighted")]) == 0
    plain = seed_table(tmp_path / "plain")
    assert list(plain["seed"]) == [0, 1, 2] and plain["macro_recall"].between(0, 1).all()
    capsys.readouterr()
    assert main(["wilcoxon", str(tmp_path / "plain"), str(tmp_path / "weighted"), "--metric", "macro_recall"]) == 0
    out = capsys.readouterr().out
    assert "macro_recall" in out and "| 3 |" in out
