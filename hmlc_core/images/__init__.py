"""Hierarchical image classification: image datasets, CNN encoders and the generated teaching dataset.

An image dataset is an :class:`~hmlc_core.data.HMCDataset` whose features are
normalised pixels (:mod:`hmlc_core.images.sets`), so the same ensembles, losses,
decision rules and run directories serve images and tabular data.
"""

from hmlc_core.images.sets import ImageSet, features_to_pixels, image_dataset, pixels_to_features

__all__ = ["ImageSet", "features_to_pixels", "image_dataset", "pixels_to_features"]
