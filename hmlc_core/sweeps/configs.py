"""Named training configurations shared by sweeps and ``bench/reproduce.py``.

Each name maps to a description and the :class:`~hmlc_core.config.TrainConfig` fields it overrides; every
field not named keeps TrainConfig's default (2 heads, class-wise weights, bBMA focal). The names are what
``python -m hmlc_core sweep --configs`` and a sweep spec's ``configs`` list accept. Importing this module
does not import torch.
"""

from __future__ import annotations

from typing import Any

from hmlc_core.config import UNCERTAINTY_LABELS, UNCERTAINTY_MODE_NAMES

__all__ = ["CONFIGS", "PLAIN", "CHMCNN", "PAPER", "CLASS_BALANCED", "ASL", "LOGIT_ADJUST", "BASELINES"]

PLAIN = "plain"
CHMCNN = "chmcnn"
PAPER = "weighting-focal"
"""The paper's method: class-wise node weights + the bBMA focal factor (the TrainConfig default)."""
CLASS_BALANCED, ASL, LOGIT_ADJUST = "class-balanced", "asl", "logit-adjust"
BASELINES = (CLASS_BALANCED, ASL, LOGIT_ADJUST)
"""The tail-aware baselines (docs/method.md, *Tail-aware baselines*), each on the plain 2-member backbone."""
_OFF = {"weighting": "none", "focal": "none"}
_WEIGHTED = {"weighting": "class-wise", "focal": "mean"}
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    CHMCNN: ("C-HMCNN, one network (the published setting)", {**_OFF, "heads": 1}),
    PLAIN: ("plain MCLoss, 2-head ensemble", dict(_OFF)),
    "weighting": ("class-wise node weights", {"weighting": "class-wise", "focal": "none"}),
    **{f"focal-{m}": (f"focal only, {UNCERTAINTY_LABELS[m]}", {"weighting": "none", "focal": m})
       for m in UNCERTAINTY_MODE_NAMES},
    "weighting-focal": ("class-wise weights + bBMA focal (the default)", dict(_WEIGHTED)),
    "weighting-focal-intended": ("as weighting-focal, intended weight indexing (docs/method.md, *Node weights*)",
                                 {**_WEIGHTED, "weight_indexing": "intended"}),
    "weighting-focal-propagated": ("as weighting-focal, propagated frequency counting (docs/method.md, *Node weights*)",
                                   {**_WEIGHTED, "counting": "propagated"}),
    "lpros": ("LPROS (S = 0.1), plain loss", {**_OFF, "lpros": 0.1}),
    "lpros-weighting": ("LPROS (S = 0.1) + class-wise weights + bBMA focal", {**_WEIGHTED, "lpros": 0.1}),
    "weighting-focal-mcdropout": ("class-wise weights + bBMA focal, MC-dropout (2 passes)",
                                  {**_WEIGHTED, "ensemble": "mc-dropout"}),
    CLASS_BALANCED: ("tail-aware baseline: class-balanced weights by effective number (Cui et al. 2019, beta 0.999)",
                     {"weighting": "class-balanced", "focal": "none"}),
    ASL: ("tail-aware baseline: asymmetric loss (Ridnik et al. 2021; gamma+ 0, gamma- 4, clip 0.05)",
          {**_OFF, "loss": "asl"}),
    LOGIT_ADJUST: ("tail-aware baseline: logit adjustment by the log prior (Menon et al. 2021, tau 1)",
                   {**_OFF, "logit_adjust": 1.0}),
}
"""Name -> (description, TrainConfig overrides). Anything not overridden is TrainConfig's default (2 heads)."""
