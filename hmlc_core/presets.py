"""Per-dataset hyperparameters of C-HMCNN (docs/method.md, *Defaults and why*).

C-HMCNN chose the hidden width and the number of epochs per dataset on the
validation split; the final models train on train+valid for that many epochs
(docs/method.md, *Data and hierarchy*). The values are those of C-HMCNN's
``main.py`` (github.com/EGiunchiglia/C-HMCNN, dicts ``hidden_dims_*``, ``epochss_*``
and ``lrs_*``): the 8 FUN and 8 GO feature sets cellcycle, derisi, eisen, expr,
gasch1, gasch2, seq and spo, and the ``others`` sets Diatoms, Enron, ImCLEF07A and
ImCLEF07D (learning rate 1e-5). Its recipe is otherwise shared by every dataset
(3 layers, dropout 0.7, weight decay 1e-5: the defaults of :class:`~hmlc_core.config.TrainConfig`;
batch 4: the ``paper`` profile of :data:`PROFILES`).

Names are matched case-insensitively, as :func:`hmlc_core.data.list_datasets` spells
them (``cellcycle_FUN``, ``Diatoms``, ``Enron_corr`` from ``others/Enron_corr_*.arff``)
or as C-HMCNN's command line does (``diatoms_others``, ``enron_others``). Datasets not
in the table get :data:`DEFAULT_PRESET`: a user's own, and church_FUN, pheno_FUN and
pheno_GO, which C-HMCNN's ``HMC_data/`` folder ships but its paper and ``main.py``
never tuned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Preset", "Profile", "PROFILES", "DEFAULT_PRESET", "SYNTHETIC_PRESET", "SHAPES_PRESET",
           "preset_for"]


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
    batch_size : int or None
        The batch size of the ``paper`` profile for this dataset; None: the profile's (C-HMCNN's batch 4,
        a tabular recipe). Image datasets set it: a CNN at batch 4 is several times slower per epoch.
    """

    hidden: int
    epochs: int
    lr: float = 1e-4
    batch_size: int | None = None


_FUN = {"cellcycle": (500, 106), "derisi": (500, 67), "eisen": (500, 110), "expr": (1250, 20),
        "gasch1": (1000, 42), "gasch2": (500, 123), "seq": (2000, 13), "spo": (250, 115)}
_GO = {"cellcycle": (1000, 62), "derisi": (500, 91), "eisen": (500, 123), "expr": (4000, 70),
       "gasch1": (500, 122), "gasch2": (500, 177), "seq": (9000, 45), "spo": (500, 103)}
_OTHERS = {"diatoms": (2000, 474), "enron": (1000, 133), "imclef07a": (1000, 592), "imclef07d": (1000, 588)}
# file-name stems of C-HMCNN's HMC_data/others/ that differ from the table's names
_OTHERS_FILES = {"enron_corr": "enron"}
_OTHERS_SUFFIX = "_others"  # C-HMCNN's --dataset names: diatoms_others, enron_others, ...

DEFAULT_PRESET = Preset(hidden=500, epochs=100)
"""For datasets C-HMCNN did not tune (a user's own): a FUN-like setting."""

SYNTHETIC_PRESET = Preset(hidden=128, epochs=40, lr=1e-3)
"""For :func:`hmlc_core.synthetic.make_synthetic` (small and quick; chosen by us)."""

SHAPES_PRESET = Preset(hidden=128, epochs=60, lr=3e-3, batch_size=32)
"""For the generated teaching images :func:`hmlc_core.images.teaching.make_shapes` (chosen by us): a small
head, batch 32 (1.4-3.3 s per epoch of the CNN ensemble on 2,000 images on a loaded 2-core machine, against
5.5 s at batch 4) and 60 epochs at 3e-3. The CNN trunk (no batch normalisation) sits on a plateau for about
30 epochs before it learns the shapes: in the runs of docs/vision.md (train split only, 3 seeds) the valid
micro AUPRC is 0.29-0.38 at epoch 30, 0.51-0.57 at 60 and 0.59-0.63 at 80, for plain and the paper's
weighted loss alike. 60 epochs is the budget that shows learned shapes within two minutes: the default
``train --dataset shapes`` took 87 s (1.3 s per epoch, test micro AUPRC 0.57) with one other job on the
second core."""


def preset_for(name: str) -> Preset:
    """The C-HMCNN hyperparameters of a dataset name such as ``cellcycle_FUN``, ``Diatoms`` or ``Enron_corr``.

    Case is ignored; C-HMCNN's ``<name>_others`` spelling is accepted. Unknown names
    return :data:`DEFAULT_PRESET`; ``synthetic`` returns :data:`SYNTHETIC_PRESET`, ``shapes``
    :data:`SHAPES_PRESET`.
    """
    key = name.lower()
    if key == "synthetic":
        return SYNTHETIC_PRESET
    if key == "shapes":
        return SHAPES_PRESET
    key = _OTHERS_FILES.get(key, key)
    if key.endswith(_OTHERS_SUFFIX) and key[: -len(_OTHERS_SUFFIX)] in _OTHERS:
        key = key[: -len(_OTHERS_SUFFIX)]
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
        For a preset with its own ``batch_size``, the ``paper`` profile uses the preset's and the others
        keep theirs.
    lr_scale : float
        The learning rate is ``preset.lr * lr_scale``, scaled by ``4 / preset.batch_size`` when the preset
        has its own batch size (``lr_scale`` is relative to C-HMCNN's batch 4): see :meth:`lr`.
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

    def batch(self, preset: Preset) -> int:
        """Batch size for ``preset``: the preset's own under a profile that keeps C-HMCNN's batch 4 (``paper``),
        else the profile's."""
        return preset.batch_size if preset.batch_size is not None and self.batch_size == 4 else self.batch_size

    def lr(self, preset: Preset) -> float:
        """Learning rate for ``preset``: ``preset.lr * lr_scale``, the scale taken relative to the preset's own
        batch size when it has one (``lr_scale * 4 / preset.batch_size``, at least 1)."""
        if preset.batch_size is None:
            return preset.lr * self.lr_scale
        return preset.lr * max(1.0, self.lr_scale * 4 / preset.batch_size)


PROFILES: dict[str, Profile] = {
    "paper": Profile(batch_size=4),
    "quick": Profile(batch_size=64, lr_scale=20.0, epoch_scale=0.4, min_epochs=10),
}
"""``paper``: C-HMCNN's recipe (batch 4). ``quick``: for interactive retraining; 16x larger
batches with a 20x learning rate and 40% of the epochs, on the same train+valid data. Its
quality cost against ``paper`` is measured in docs/performance.md."""
