"""What an image dataset keeps beside its pixels, and the one pixel layout every encoder reads.

An image dataset is an ordinary :class:`~hmlc_core.data.HMCDataset` whose
splits' ``X`` hold normalised pixels, flattened channel-first: row ``i`` of
``X`` is the image ``(3, H, W)`` raveled, each channel ``c`` standardised as
``(pixel / 255 - mean[c]) / std[c]`` with the mean and standard deviation of the
train split's pixels. The dataset's :attr:`~hmlc_core.data.HMCDataset.images`
(an :class:`ImageSet`) keeps the image shape, the normalisation, a display
name per row and uint8 thumbnails, which the dashboard shows and a run
directory stores (``images.npz``). Pure numpy: the dashboard imports it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hmlc_core.data import HMCDataset, Split
from hmlc_core.hierarchy import Hierarchy

__all__ = ["ImageSet", "pixels_to_features", "features_to_pixels", "image_dataset"]


@dataclass
class ImageSet:
    """The image facts of an image dataset (:func:`image_dataset` builds it).

    Attributes
    ----------
    shape : tuple of int
        ``(3, H, W)``: channels (always RGB), height and width in pixels of every image after resizing.
    mean, std : tuple of float, length 3
        Per-channel mean and standard deviation of the train split's pixels scaled to [0, 1]
        (``std`` floored at 1e-3), used to normalise every split.
    names : dict of str to list of str
        Split name -> a display name per row (the image's path relative to :attr:`root`, or a
        generated name). Plain text chosen by users: escape it wherever it is shown.
    thumbnails : dict of str to numpy.ndarray of uint8, shape (N, H, W, 3)
        Split name -> the decoded, resized RGB images (at least ``"test"``).
    root : str
        The folder or CSV file the images were read from, or ``"generated:<name>"``.
    skipped : list of (str, str)
        ``(file, reason)`` of every image that could not be read and was left out.
    """

    shape: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    names: dict[str, list[str]]
    thumbnails: dict[str, np.ndarray]
    root: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def n_pixels(self) -> int:
        """Features per image, ``3 * H * W``."""
        return int(np.prod(self.shape))


def _check_pixels(pixels: np.ndarray, name: str) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"{name}: images must be a uint8 array of shape (N, H, W, 3), got {pixels.dtype} "
                         f"{pixels.shape}")
    return pixels


def pixels_to_features(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Normalised, channel-first, flattened features of uint8 RGB images.

    Parameters
    ----------
    pixels : numpy.ndarray of uint8, shape (N, H, W, 3)
    mean, std : sequence of 3 floats
        Per-channel statistics of pixels scaled to [0, 1] (``std > 0``).

    Returns
    -------
    numpy.ndarray of float32, shape (N, 3 * H * W)
        Row ``i`` is ``((pixels[i] / 255 - mean) / std)`` transposed to ``(3, H, W)`` and raveled.

    Raises
    ------
    ValueError
        On a wrong dtype or shape, or a non-positive ``std``.
    """
    pixels = _check_pixels(pixels, "pixels")
    mean_a = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std_a = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    if not (std_a > 0).all():
        raise ValueError(f"std must be positive, got {list(np.ravel(std_a))}")
    chw = pixels.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    return ((chw - mean_a) / std_a).reshape(len(pixels), -1)


def features_to_pixels(features: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The ``(N, 3, H, W)`` view of features made by :func:`pixels_to_features` (no copy when contiguous).

    Raises
    ------
    ValueError
        If a row's length is not ``prod(shape)``.
    """
    shape = tuple(int(s) for s in shape)
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != int(np.prod(shape)):
        raise ValueError(f"features of shape {features.shape} are not images of shape {shape}")
    return features.reshape(len(features), *shape)


def image_dataset(name: str, hierarchy: Hierarchy, pixels: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                  names: Mapping[str, Sequence[str]], root: str,
                  skipped: Sequence[tuple[str, str]] = ()) -> HMCDataset:
    """Assemble an image :class:`~hmlc_core.data.HMCDataset` from decoded images and labels.

    Parameters
    ----------
    name : str
        Dataset name.
    hierarchy : Hierarchy
        Fixes the label columns.
    pixels : mapping of split name to numpy.ndarray of uint8, shape (N, H, W, 3)
        ``"train"`` and ``"test"`` required, ``"valid"`` optional; every split the same H, W.
    labels : mapping of split name to numpy.ndarray, shape (N, C)
        0/1 labels in ``hierarchy.nodes`` order (propagated to ancestors here).
    names : mapping of split name to sequence of str
        A display name per row.
    root : str
        Where the images came from (:attr:`ImageSet.root`).
    skipped : sequence of (str, str)
        Images left out, with the reason.

    Returns
    -------
    HMCDataset
        ``X`` of each split from :func:`pixels_to_features` with the train split's per-channel
        statistics; ``Y`` uint8 and coherent; ``images`` an :class:`ImageSet` with the thumbnails of every
        split; ``feature_names`` ``c{channel}_y{row}_x{column}``; ``source`` maps each split to ``root``.

    Raises
    ------
    ValueError
        If a required split is missing or empty, the splits disagree on image size, or a split's
        labels or names do not have one row per image.
    """
    for split in ("train", "test"):
        if split not in pixels or len(pixels[split]) == 0:
            raise ValueError(f"image dataset {name!r}: the {split!r} split has no images")
    checked = {s: _check_pixels(p, f"image dataset {name!r}, split {s!r}") for s, p in pixels.items()}
    sizes = {s: p.shape[1:3] for s, p in checked.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"image dataset {name!r}: the splits have different image sizes {sizes}")
    for s, p in checked.items():
        if s not in labels or len(labels[s]) != len(p) or s not in names or len(names[s]) != len(p):
            raise ValueError(f"image dataset {name!r}, split {s!r}: labels and names need one row per image "
                             f"({len(p)} images)")
    train01 = checked["train"].astype(np.float64) / 255.0
    mean = tuple(float(v) for v in train01.mean(axis=(0, 1, 2)))
    std = tuple(float(max(v, 1e-3)) for v in train01.std(axis=(0, 1, 2)))
    del train01
    splits = {}
    for s, p in checked.items():
        y = hierarchy.propagate(np.asarray(labels[s]).astype(np.uint8)).astype(np.uint8)
        splits[s] = Split(X=pixels_to_features(p, mean, std), Y=y)
    height, width = sizes["train"]
    feature_names = [f"c{c}_y{r}_x{q}" for c in range(3) for r in range(height) for q in range(width)]
    images = ImageSet(shape=(3, int(height), int(width)), mean=mean, std=std,
                      names={s: [str(n) for n in names[s]] for s in checked}, thumbnails=dict(checked),
                      root=str(root), skipped=[(str(f), str(r)) for f, r in skipped])
    return HMCDataset(name=name, hierarchy=hierarchy, feature_names=feature_names, train=splits["train"],
                      valid=splits.get("valid"), test=splits["test"], source={s: str(root) for s in checked},
                      images=images)
