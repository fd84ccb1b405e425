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
