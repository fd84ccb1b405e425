"""Per-dataset hyperparameters of C-HMCNN (docs/method.md, *Defaults and why*).

C-HMCNN chose the hidden width and the number of epochs per dataset on the
validation split; the final models train on train+valid for that many epochs
(docs/method.md, *Data and hierarchy*). Datasets not in the table (a user's own) get
:data:`DEFAULT_PRESET`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Preset", "Profile", "PROFILES", "DEFAULT_PRESET", "SYNTHETIC_PRESET", "preset_for"]


@dataclass(frozen=True)
class Preset:
    """Hyperparameters of one dataset.

    Attributes
    ----------
    hidden : int
        Hidden width of the C-HMCNN(h) network.
    epochs : int
        Training epochs on train+valid.
    lr : float
        Adam learning rate (1e-4 for FUN/GO, 1e-5 for the "others" datasets).
    """

    hidden: int
    epochs: int
    lr: float = 1e-4


_FUN = {"cellcycle": (500, 106), "derisi": (500, 67), "eisen": (500, 110), "expr": (1250, 20),
        "gasch1": (1000, 42), "gasch2": (500, 123), "seq": (2000, 13), "spo": (250, 115)}
_GO = {"cellcycle": (1000, 62), "derisi": (500, 91), "eisen": (500, 123), "expr": (4000, 70),
       "gasch1": (500, 122), "gasch2": (500, 177), "seq": (9000, 45), "spo": (500, 103)}
_OTHERS = {"diatoms": (2000, 474), "enron": (1000, 133), "imclef07a": (1000, 592), "imclef07d": (1000, 588)}

DEFAULT_PRESET = Preset(hidden=500, epochs=100)
"""For datasets C-HMCNN did not tune (a user's own): a FUN-like setting."""

SYNTHETIC_PRESET = Preset(hidden=128, epochs=40, lr=1e-3)
"""For :func:`hmlc_core.synthetic.make_synthetic` (small and quick; chosen by us)."""


def preset_for(name: str) -> Preset:
    """The C-HMCNN hyperparameters of a dataset name such as ``cellcycle_FUN`` or ``Diatoms``.

    Unknown names return :data:`DEFAULT_PRESET`; ``synthetic`` returns
    :data:`SYNTHETIC_PRESET`.
    """
    key = name.lower()
    if key == "synthetic":
        return SYNTHETIC_PRESET
    if key in _OTHERS:
        hidden, epochs = _OTHERS[key]
        return Preset(hidden, epochs, lr=1e-5)
    base, _, family = key.rpartition("_")
    table = {"fun": _FUN, "go": _GO}.get(family)
    if table is not None and base in table:
        hidden, epochs = table[base]
        return Preset(hidden, epochs)
    return DEFAULT_PRESET


@dataclass(frozen=True)
class Profile:
    """A training budget applied on top of a dataset's :class:`Preset`.

    Attributes
    ----------
    batch_size : int
    lr_scale : float
        The learning rate is ``preset.lr * lr_scale``.
    epoch_scale : float
        The epochs are ``max(min_epochs, ceil(preset.epochs * epoch_scale))``.
    min_epochs : int
    """

    batch_size: int
    lr_scale: float = 1.0
    epoch_scale: float = 1.0
    min_epochs: int = 1

    def epochs(self, preset: Preset) -> int:
        """Number of epochs for ``preset`` under this profile."""
        return max(self.min_epochs, math.ceil(preset.epochs * self.epoch_scale))


PROFILES: dict[str, Profile] = {
    "paper": Profile(batch_size=4),
    "quick": Profile(batch_size=64, lr_scale=20.0, epoch_scale=0.4, min_epochs=10),
}
"""``paper``: C-HMCNN's recipe (batch 4). ``quick``: for interactive retraining; 16x larger
batches with a 20x learning rate and 40% of the epochs, on the same train+valid data. Its
quality cost against ``paper`` is measured in docs/performance.md."""
