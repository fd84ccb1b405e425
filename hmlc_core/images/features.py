"""Frozen-encoder features, computed once and cached on disk.

A frozen encoder (:func:`hmlc_core.images.encoders.build_trunk`) never changes, so its features of a
dataset's images are computed once and stored as ``.npy`` files in a cache folder
(:func:`default_cache_dir`: ``$HMLC_CACHE_DIR``, else ``$XDG_CACHE_HOME/hmlc-lab``, else
``~/.cache/hmlc-lab``; files under its ``features/`` subfolder). A file's name is a SHA-256 of the
encoder's architecture and weights and of the pixel rows (:func:`feature_key`), so any change of either
gives another file, and a file is only ever read for the exact inputs that made it. Files are written
under a temporary name and renamed into place (atomic on one file system); a damaged or mismatched file
is recomputed and replaced. The cache may be deleted at any time.

:func:`frozen_dataset` turns an image dataset into the table of standardised features the members train
on with the ordinary (numba or torch) training step.

Torch only: the dashboard never imports this module.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from hmlc_core.data import HMCDataset, Split
from hmlc_core.images.encoders import SmallCNN

__all__ = ["CACHE_DIR_ENV", "default_cache_dir", "feature_key", "encode", "cached_features", "frozen_dataset"]

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "HMLC_CACHE_DIR"
"""Environment variable naming the cache folder (:func:`default_cache_dir`)."""

KEY_VERSION = b"hmlc-lab frozen features v1"
"""Mixed into every :func:`feature_key`; bump it when the trunk's computation changes."""

MAX_ACTIVATION_FLOATS = 2**24
"""Largest first-stage activation (``rows x width x H x W`` floats, 64 MiB) of one :func:`encode` batch."""


def default_cache_dir() -> Path:
    """The cache folder: ``$HMLC_CACHE_DIR``, else ``$XDG_CACHE_HOME/hmlc-lab``, else ``~/.cache/hmlc-lab``."""
    named = os.environ.get(CACHE_DIR_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "hmlc-lab"


def _rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"pixel rows must be a 2-D array (N, 3*H*W), got shape {x.shape}")
    return x


def feature_key(trunk: SmallCNN, x: np.ndarray) -> str:
    """SHA-256 (hex) of the encoder's architecture and weights and of the pixel rows ``x``.

    Parameters
    ----------
    trunk : SmallCNN
    x : numpy.ndarray of float32, shape (N, 3 H W)
        Normalised pixel rows (:func:`hmlc_core.images.sets.pixels_to_features`).

    Returns
    -------
    str
        64 hex digits. Hashed: :data:`KEY_VERSION`, ``trunk.spec()``, every state-dict entry's name, dtype,
        shape and bytes (in name order), and ``x``'s shape and float32 bytes.
    """
    x = _rows(x)
    h = hashlib.sha256(KEY_VERSION)
    h.update(repr(sorted(trunk.spec().items())).encode())
    for name, value in sorted(trunk.state_dict().items()):
        tensor = value.detach().cpu().contiguous()
        h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        h.update(tensor.numpy().tobytes())
    h.update(f"x|{x.shape}|".encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()


@torch.no_grad()
def encode(trunk: SmallCNN, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """The trunk's features of pixel rows, computed now (in eval mode, batch by batch).

    Parameters
    ----------
    trunk : SmallCNN
    x : numpy.ndarray of float32, shape (N, 3 H W)
    batch_size : int
        Rows per pass, lowered so that the first stage's activation stays within
        :data:`MAX_ACTIVATION_FLOATS`.

    Returns
    -------
    numpy.ndarray of float32, shape (N, trunk.out_features)

    Raises
    ------
    ValueError
        If the rows are not images of ``trunk.image_shape``.
    """
    x = _rows(x)
    shape = trunk.image_shape
    if x.shape[1] != int(np.prod(shape)):
        raise ValueError(f"pixel rows of width {x.shape[1]} are not images of shape {shape}")
    rows = max(1, min(int(batch_size), MAX_ACTIVATION_FLOATS // (trunk.width * shape[1] * shape[2])))
    was_training = trunk.training
    trunk.eval()
    out = np.empty((x.shape[0], trunk.out_features), dtype=np.float32)
    for first in range(0, x.shape[0], rows):
        batch = torch.from_numpy(x[first:first + rows]).reshape(-1, *shape)
        out[first:first + rows] = trunk(batch).numpy()
    trunk.train(was_training)
    return out


def _read_cached(path: Path, n_rows: int, width: int) -> np.ndarray | None:
    try:
        cached = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as exc:
        log.warning("feature cache file %s is unreadable (%s); computing the features again", path, exc)
        return None
    if cached.dtype != np.float32 or cached.shape != (n_rows, width):
        log.warning("feature cache file %s holds %s %s, expected float32 (%d, %d); computing the features again",
                    path, cached.dtype, cached.shape, n_rows, width)
        return None
    return cached


def _write_atomic(path: Path, features: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, features, allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_features(trunk: SmallCNN, x: np.ndarray, cache_dir: str | Path | None = None,
                    batch_size: int = 512) -> np.ndarray:
    """:func:`encode` of ``x``, read from the cache when this trunk has encoded these rows before.

    Parameters
    ----------
    trunk : SmallCNN
    x : numpy.ndarray of float32, shape (N, 3 H W)
    cache_dir : path, optional
        Cache folder (default :func:`default_cache_dir`); the file is
        ``<cache_dir>/features/<feature_key>.npy``.
    batch_size : int

    Returns
    -------
    numpy.ndarray of float32, shape (N, trunk.out_features)
        Equal to a fresh :func:`encode` (the cached array is the one an earlier call computed).

    Raises
    ------
    ValueError
        As :func:`encode`.

    Notes
    -----
    A cache folder that cannot be written is logged and skipped (the features are still returned).
    """
    x = _rows(x)
    folder = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = folder / "features" / f"{feature_key(trunk, x)}.npy"
    cached = _read_cached(path, x.shape[0], trunk.out_features)
    if cached is not None:
        log.info("frozen encoder features of %d images read from the cache %s", x.shape[0], path)
        return cached
    features = encode(trunk, x, batch_size)
    try:
        _write_atomic(path, features)
    except OSError as exc:
        log.warning("cannot write the feature cache %s (%s); the features are not cached", path, exc)
    return features


def frozen_dataset(trunk: SmallCNN, dataset: HMCDataset, cache_dir: str | Path | None = None,
                   batch_size: int = 512) -> tuple[HMCDataset, np.ndarray, np.ndarray]:
    """The table of a frozen encoder's standardised features of an image dataset's splits.

    Each split's features come from :func:`cached_features` and are standardised with the train split's
    per-feature mean and standard deviation (a feature constant on the train split keeps
    ``std = 1``), as the image pixels are standardised with the train split's statistics
    (:func:`hmlc_core.images.sets.image_dataset`).

    Parameters
    ----------
    trunk : SmallCNN
    dataset : HMCDataset
        An image dataset (``dataset.images`` set, its shape ``trunk.image_shape``).
    cache_dir : path, optional
    batch_size : int

    Returns
    -------
    features : HMCDataset
        Same name, hierarchy, labels and sources; ``X`` of each split float32 (N, trunk.out_features);
        ``feature_names`` ``encoder_<i>``; ``images`` None.
    mean, std : numpy.ndarray of float32, shape (trunk.out_features,)
        The standardisation applied (``X = (features - mean) / std``), which
        :meth:`hmlc_core.images.encoders.CNNEnsemble.with_frozen_trunk` stores in the model.

    Raises
    ------
    ValueError
        If the dataset holds no images of the trunk's shape.
    """
    if dataset.images is None or tuple(dataset.images.shape) != trunk.image_shape:
        found = None if dataset.images is None else tuple(dataset.images.shape)
        raise ValueError(f"dataset {dataset.name!r}: a frozen encoder for images {trunk.image_shape} needs an "
                         f"image dataset of that shape, found {found}")
    raw = {name: cached_features(trunk, split.X, cache_dir, batch_size) for name, split in dataset.splits.items()}
    mean = raw["train"].mean(axis=0, dtype=np.float64).astype(np.float32)
    std = raw["train"].std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, std).astype(np.float32)
    splits = {name: Split(X=(values - mean) / std, Y=dataset.splits[name].Y) for name, values in raw.items()}
    table = HMCDataset(name=dataset.name, hierarchy=dataset.hierarchy,
                       feature_names=[f"encoder_{i}" for i in range(trunk.out_features)], train=splits["train"],
                       valid=splits.get("valid"), test=splits["test"], source=dict(dataset.source))
    return table, mean, std
