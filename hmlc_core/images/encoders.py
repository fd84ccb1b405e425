"""Image encoders: a small CNN trunk, trained end to end with the ensemble's members or frozen.

Two ways to turn the pixel rows of an image dataset (:mod:`hmlc_core.images.sets`) into the features the
C-HMCNN members read (``TrainConfig.encoder``, :data:`hmlc_core.config.ENCODERS`):

- ``cnn``: :class:`CNNEnsemble` with ``encoder="cnn"``, one :class:`SmallCNN` trunk shared by every member
  and trained with them by autograd (the numba kernels of :mod:`hmlc_core.fused` train linear layers only);
  the members are the usual :class:`~hmlc_core.model.HMCEnsemble` layers on the trunk's features, with MCM
  and the same losses on top. This is the shape of the authors' vision model, a shared image backbone with
  H small heads (docs/method.md, *Ensembles*).
- ``frozen``: the same trunk, randomly initialised from the seed (the "suboptimal encoder" of the paper's
  vision experiment) or loaded from a local checkpoint (:func:`load_encoder_checkpoint`), never trained.
  :func:`hmlc_core.images.features.frozen_dataset` computes its features once (cached on disk) and
  standardises them, the members train on that table with the fast tabular path, and
  :meth:`CNNEnsemble.with_frozen_trunk` then packs trunk, standardisation and members into one
  :class:`CNNEnsemble` (``encoder="frozen"``), so the saved run scores new pixel rows by itself.

A trunk is initialised from a ``torch.Generator`` before the members, so the frozen random encoder of seed
``s`` is exactly the starting trunk of the trained CNN of seed ``s``.

Torch only: the dashboard never imports this module.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from hmlc_core.model import HMCEnsemble

__all__ = ["SmallCNN", "CNNEnsemble", "EncoderCheckpointError", "load_encoder_checkpoint", "build_trunk",
           "IMAGE_ENCODERS"]

log = logging.getLogger(__name__)

IMAGE_ENCODERS: tuple[str, ...] = ("cnn", "frozen")
"""The ``encoder`` values a :class:`CNNEnsemble` takes (:data:`hmlc_core.config.ENCODERS` less ``auto``, ``none``)."""


def _check_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or shape[0] != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (3, H, W) with H, W >= 1, got {tuple(image_shape)}")
    return shape  # type: ignore[return-value]


class SmallCNN(nn.Module):
    """A small VGG-style convolutional trunk ending in global average pooling.

    Three stages of a 3x3 convolution (stride 1, padding 1) and a ReLU, with 2x2 max pooling of stride 2
    after the first two: the plain stack of Simonyan & Zisserman 2015 ("Very Deep Convolutional Networks
    for Large-Scale Image Recognition", ICLR, section 2.1), shrunk to one convolution per stage, with the
    fully connected layers replaced by global average pooling (Lin, Chen & Yan 2014, "Network in Network",
    ICLR, section 3.2), so any image size gives the same feature width. Channels double every stage::

        (B, 3, H, W) -> conv 3->w, ReLU, maxpool 2 -> conv w->2w, ReLU, maxpool 2 -> conv 2w->4w, ReLU
                     -> mean over the remaining positions -> (B, 4w)

    A pooling step is skipped where a side is already below 2 pixels. Convolution weights are drawn from
    ``N(0, 2 / fan_in)`` (He et al. 2015, "Delving Deep into Rectifiers", ICCV, section 2.2; ``fan_in = 9 x``
    input channels), biases start at 0, so a random trunk keeps the scale of its input through the ReLUs.
    No batch normalisation and no dropout: the trunk is deterministic, the same in training and eval mode.

    Parameters
    ----------
    image_shape : sequence of 3 ints
        ``(3, H, W)`` of the input images.
    width : int, default 16
        Channels ``w`` of the first convolution, >= 1.
    generator : torch.Generator, optional
        Source of the initial weights.

    Attributes
    ----------
    out_features : int
        ``4 * width``, the width of :meth:`forward`'s output.

    Raises
    ------
    ValueError
        On a shape that is not ``(3, H, W)`` or a width below 1.
    """

    def __init__(self, image_shape: Sequence[int], width: int = 16, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.image_shape = _check_shape(image_shape)
        if int(width) < 1:
            raise ValueError(f"the CNN width must be >= 1, got {width}")
        self.width = int(width)
        channels = [3, self.width, 2 * self.width, 4 * self.width]
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in zip(channels, channels[1:]))
        with torch.no_grad():
            for conv in self.convs:
                fan_in = conv.in_channels * 9
                conv.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
                conv.bias.zero_()
        self.out_features = channels[-1]

    def spec(self) -> dict[str, object]:
        """The constructor arguments (what the feature cache key and checkpoint errors name)."""
        return {"image_shape": list(self.image_shape), "width": self.width}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch of images.

        Parameters
        ----------
        images : torch.Tensor, shape (B, 3, H, W), float32
            Normalised pixels (:func:`hmlc_core.images.sets.features_to_pixels`).

        Returns
        -------
        torch.Tensor, shape (B, out_features), float32, >= 0
        """
        h = images
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h))
            if i < len(self.convs) - 1 and min(h.shape[-2:]) >= 2:
                h = F.max_pool2d(h, 2)
        return h.mean(dim=(-2, -1))


class CNNEnsemble(HMCEnsemble):
    """C-HMCNN members on one shared :class:`SmallCNN` trunk; reads the flattened pixel rows of image datasets.

    ``logits(x)`` views each row of ``x`` as a ``(3, H, W)`` image (the layout of
    :func:`hmlc_core.images.sets.pixels_to_features`), runs the trunk once for all members, standardises
    its features with :attr:`feature_mean` and :attr:`feature_std`, and runs the members' layers
    (:meth:`HMCEnsemble.head_logits`, any ``kind``) on them: ``(B, 3 H W) -> (B, 4 w) -> (H, B, C)``. MCM,
    the losses and the decision rules apply to the output as to any ensemble. There is one set of
    convolution weights (``trunk``), whatever the number of members.

    With ``encoder="cnn"`` the trunk trains with the members (``feature_mean`` 0, ``feature_std`` 1). With
    ``encoder="frozen"`` its parameters do not require gradients, it runs under ``torch.no_grad``, and the
    buffers hold the train split's feature mean and standard deviation (:meth:`with_frozen_trunk`).
    :meth:`spec` and the state dict (trunk, buffers, members) rebuild the whole model
    (:func:`hmlc_core.model.model_from_spec`), so a saved run scores new pixel rows with
    ``Run.load_model()`` and :func:`hmlc_core.train.predict_members`.

    Parameters
    ----------
    image_shape : sequence of 3 ints
        ``(3, H, W)``.
    n_nodes, hidden, n_heads, n_layers, dropout, generator, kind
        As :class:`HMCEnsemble`; the members' input width is the trunk's ``4 * encoder_width``. The
        generator initialises the trunk first, then the members.
    encoder : {"cnn", "frozen"}, default "cnn"
    encoder_width : int, default 16
        :class:`SmallCNN`'s ``width``.

    Attributes
    ----------
    n_features : int
        The input row width ``3 H W`` (the members' own input width is :attr:`feature_width`).
    feature_width : int
        ``4 * encoder_width``.
    image_shape : tuple of int
    trunk : SmallCNN
    feature_mean, feature_std : torch.Tensor, shape (feature_width,), float32
        Buffers (saved in the state dict).

    Raises
    ------
    ValueError
        On an unknown encoder, a bad image shape or width, or any :class:`HMCEnsemble` argument error.

    Notes
    -----
    :meth:`member_network` returns a member's layers only (on standardised trunk features).
    """

    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(
        self,
        image_shape: Sequence[int],
        n_nodes: int,
        hidden: int = 500,
        n_heads: int = 2,
        n_layers: int = 3,
        dropout: float = 0.7,
        generator: torch.Generator | None = None,
        kind: str = "heads",
        encoder: str = "cnn",
        encoder_width: int = 16,
    ) -> None:
        if encoder not in IMAGE_ENCODERS:
            raise ValueError(f"a CNN ensemble's encoder must be one of {list(IMAGE_ENCODERS)}, got {encoder!r}")
        trunk = SmallCNN(image_shape, encoder_width, generator)
        super().__init__(trunk.out_features, n_nodes, hidden, n_heads, n_layers, dropout, generator, kind)
        self.trunk = trunk
        self.encoder = encoder
        self.image_shape = trunk.image_shape
        self.feature_width = trunk.out_features
        self.n_features = int(np.prod(self.image_shape))
        self.register_buffer("feature_mean", torch.zeros(self.feature_width))
        self.register_buffer("feature_std", torch.ones(self.feature_width))
        if encoder == "frozen":
            self.trunk.requires_grad_(False)

    def spec(self) -> dict[str, object]:
        """The constructor arguments; the ``encoder`` key marks an image ensemble
        (:func:`~hmlc_core.model.model_from_spec`)."""
        return {"image_shape": list(self.image_shape), "n_nodes": self.n_nodes, "hidden": self.hidden,
                "n_heads": self.n_heads, "n_layers": self.n_layers, "dropout": self.dropout, "kind": self.kind,
                "encoder": self.encoder, "encoder_width": self.trunk.width}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised trunk features of pixel rows.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 3 H W), float32

        Returns
        -------
        torch.Tensor, shape (B, feature_width), float32
            ``(trunk(x) - feature_mean) / feature_std``; detached for a frozen trunk.

        Raises
        ------
        ValueError
            If ``x`` is not (B, 3 H W).
        """
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"input must have shape (B, {self.n_features}) (images {self.image_shape} "
                             f"flattened), got {tuple(x.shape)}")
        images = x.reshape(x.shape[0], *self.image_shape)
        if self.encoder == "frozen":
            with torch.no_grad():
                raw = self.trunk(images)
        else:
            raw = self.trunk(images)
        return (raw - self.feature_mean) / self.feature_std

    def logits(self, x: torch.Tensor,
               affine: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
        """Member logits of pixel rows, shape (H, B, C): the members' layers on :meth:`features`.

        ``affine`` as :meth:`HMCEnsemble.logits` (applies to the members' layers).
        """
        return self.head_logits(self.features(x), affine)

    @classmethod
    def with_frozen_trunk(cls, trunk: SmallCNN, members: HMCEnsemble, mean: np.ndarray,
                          std: np.ndarray) -> CNNEnsemble:
        """One self-contained model from a frozen trunk and members trained on its standardised features.

        Parameters
        ----------
        trunk : SmallCNN
        members : HMCEnsemble
            Trained on ``(trunk(x) - mean) / std`` (``n_features == trunk.out_features``).
        mean, std : numpy.ndarray, shape (trunk.out_features,)
            The standardisation the members were trained with
            (:func:`hmlc_core.images.features.frozen_dataset`).

        Returns
        -------
        CNNEnsemble
            ``encoder="frozen"``, in eval mode, copies of the weights (the inputs are not modified); its
            ``logits(x)`` equals ``members.logits((trunk(x) - mean) / std)``.

        Raises
        ------
        ValueError
            If the widths do not fit.
        """
        if members.n_features != trunk.out_features or np.shape(mean) != (trunk.out_features,) \
                or np.shape(std) != (trunk.out_features,):
            raise ValueError(f"members of input width {members.n_features} and statistics of shape "
                             f"{np.shape(mean)}, {np.shape(std)} do not fit a trunk of width {trunk.out_features}")
        model = cls(trunk.image_shape, members.n_nodes, members.hidden, members.n_heads, members.n_layers,
                    members.dropout, kind=members.kind, encoder="frozen", encoder_width=trunk.width)
        state = {f"trunk.{k}": v for k, v in trunk.state_dict().items()}
        state.update(members.state_dict())
        state["feature_mean"] = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        state["feature_std"] = torch.as_tensor(np.asarray(std, dtype=np.float32))
        model.load_state_dict(state)
        return model.eval()


class EncoderCheckpointError(ValueError):
    """An encoder checkpoint is missing, unreadable or does not fit the trunk; the message names the file."""


def load_encoder_checkpoint(path: str | Path, trunk: SmallCNN) -> None:
    """Load a local state-dict checkpoint into ``trunk`` (in place), with ``torch.load(..., weights_only=True)``.

    The file holds a mapping of parameter names to tensors: ``torch.save(trunk.state_dict(), path)`` of a
    :class:`SmallCNN` of the same width (``convs.0.weight``, ...), or a CNN run's ``model.pt``, whose
    ``trunk.*`` entries are taken (the members' weights are ignored). Floating tensors are cast to float32.
    ``weights_only=True`` never runs pickled code.

    Parameters
    ----------
    path : path
    trunk : SmallCNN

    Raises
    ------
    EncoderCheckpointError
        If the file is missing, cannot be read by ``torch.load`` with ``weights_only=True``, is not a
        mapping of names to floating tensors, or its names or shapes do not fit ``trunk`` (the message names
        the file, the entries at fault and the trunk's width).
    """
    path = Path(path).expanduser()
    where = f"encoder checkpoint {path}"
    if not path.is_file():
        raise EncoderCheckpointError(f"{where}: no such file")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds (pickle, zip, EOF) on a damaged file
        raise EncoderCheckpointError(f"{where}: not a readable torch state dict ({type(exc).__name__}: "
                                     f"{str(exc)[:300]})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in state.items()):
        raise EncoderCheckpointError(f"{where}: not a state dict (a mapping of parameter names to tensors), "
                                     f"found {type(state).__name__}")
    if any(k.startswith("trunk.") for k in state):
        state = {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")}
    expected = trunk.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    what = f"the encoder (SmallCNN of width {trunk.width}, entries {sorted(expected)})"
    if missing or unexpected:
        raise EncoderCheckpointError(f"{where}: does not fit {what}: missing {missing[:8]}, "
                                     f"unexpected {unexpected[:8]}")
    for name, value in expected.items():
        found = state[name]
        if tuple(found.shape) != tuple(value.shape):
            raise EncoderCheckpointError(f"{where}: entry {name!r} has shape {tuple(found.shape)}, {what} needs "
                                         f"{tuple(value.shape)} (is encoder_width right?)")
        if not found.is_floating_point():
            raise EncoderCheckpointError(f"{where}: entry {name!r} holds {found.dtype}, not floating point numbers")
    with torch.no_grad():
        trunk.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    log.info("loaded the encoder weights from %s", path)


def build_trunk(image_shape: Sequence[int], width: int, seed: int, checkpoint: str | Path | None = None) -> SmallCNN:
    """The frozen encoder: a :class:`SmallCNN` initialised from ``seed``, or loaded from ``checkpoint``.

    The random trunk is drawn from ``torch.Generator().manual_seed(seed)`` first thing, as
    :func:`hmlc_core.train.train` draws a CNN ensemble's trunk, so it equals the untrained trunk of the
    CNN run with the same seed and width.

    Parameters
    ----------
    image_shape : sequence of 3 ints
    width : int
    seed : int
    checkpoint : path, optional
        :func:`load_encoder_checkpoint`.

    Returns
    -------
    SmallCNN
        In eval mode, parameters not requiring gradients.

    Raises
    ------
    EncoderCheckpointError
        From :func:`load_encoder_checkpoint`.
    """
    trunk = SmallCNN(image_shape, width, torch.Generator().manual_seed(int(seed)))
    if checkpoint is not None:
        load_encoder_checkpoint(checkpoint, trunk)
    return trunk.requires_grad_(False).eval()
