"""Hierarchical image classification: image datasets, CNN encoders and the generated teaching dataset.

An image dataset is an :class:`~hmlc_core.data.HMCDataset` whose features are
normalised pixels (:mod:`hmlc_core.images.sets`), so the same ensembles, losses,
decision rules and run directories serve images and tabular data.
"""

from hmlc_core.images.folders import (find_image_dataset, list_image_datasets, load_image_csv, load_image_folder,
                                      load_images)
from hmlc_core.images.pixels import ImageReadError, read_image
from hmlc_core.images.sets import ImageSet, features_to_pixels, image_dataset, pixels_to_features
from hmlc_core.images.teaching import make_shapes, shapes_hierarchy

__all__ = ["ImageReadError", "ImageSet", "features_to_pixels", "find_image_dataset", "image_dataset",
           "list_image_datasets", "load_image_csv", "load_image_folder", "load_images", "pixels_to_features",
           "read_image", "make_shapes", "shapes_hierarchy"]

_TORCH_EXPORTS = {"CNNEnsemble": "encoders", "SmallCNN": "encoders", "EncoderCheckpointError": "encoders",
                  "build_trunk": "encoders", "load_encoder_checkpoint": "encoders", "cached_features": "features",
                  "frozen_dataset": "features"}
"""Names of the torch encoder modules (:mod:`~hmlc_core.images.encoders`, :mod:`~hmlc_core.images.features`)
served on first use by :func:`__getattr__`, so that importing this package (the dashboard does) never imports
torch; they are left out of ``__all__`` for the same reason."""


def __getattr__(name: str) -> object:
    """The torch encoder names of :data:`_TORCH_EXPORTS`, imported when first asked for."""
    module = _TORCH_EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
