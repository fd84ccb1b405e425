"""Dataset names the tools accept: the built-in ``synthetic`` and ``shapes`` datasets or a dataset in the data directory."""

from __future__ import annotations

from pathlib import Path

from hmlc_core.data import (DatasetNotFoundError, HMCDataset, hold_out_valid, list_datasets, load_dataset,
                            resolve_data_dir)
from hmlc_core.images.folders import find_image_dataset, list_image_datasets, load_images
from hmlc_core.images.teaching import make_shapes
from hmlc_core.synthetic import make_synthetic
from hmlc_core.tables import find_table_dataset, list_table_datasets, load_table_dataset

__all__ = ["SYNTHETIC", "SHAPES", "GENERATED", "open_dataset", "available_datasets"]

SYNTHETIC = "synthetic"
"""Name of the deterministic synthetic dataset (:func:`hmlc_core.synthetic.make_synthetic`, seed 0)."""

SHAPES = "shapes"
"""Name of the generated teaching image dataset (:func:`hmlc_core.images.teaching.make_shapes`, seed 0)."""

GENERATED = frozenset({SYNTHETIC, SHAPES})
"""The built-in datasets: generated in memory, with a valid split, needing no data directory."""


def open_dataset(name: str, data_dir: str | Path | None = None, valid_fraction: float = 0.0) -> HMCDataset:
    """Load ``synthetic``, ``shapes`` or a named dataset from ``data_dir`` (default ``HMLC_DATA_DIR``).

    An ARFF dataset of that name comes first; otherwise a table dataset
    (``<name>/<name>.csv`` with ``<name>.obo`` or ``<name>.edges.csv``,
    :func:`hmlc_core.tables.list_table_datasets`) is loaded with its defaults, else an image dataset
    (``<name>/images.csv`` or ``<name>/images/``, :func:`hmlc_core.images.folders.list_image_datasets`) with
    the defaults of :func:`hmlc_core.images.folders.load_images`.

    Parameters
    ----------
    name : str
    data_dir : str or pathlib.Path, optional
    valid_fraction : float in [0, 1), default 0
        A run's ``TrainConfig.valid_fraction``: the share of the training rows held out as the valid split
        when the dataset has none (:func:`hmlc_core.data.hold_out_valid`).

    Raises
    ------
    DatasetNotFoundError
        If the data directory or the dataset is missing (the message lists
        the datasets found).
    ValueError
        If a file is malformed (the message names file and line), or from :func:`hmlc_core.data.hold_out_valid`.
    """
    return hold_out_valid(_open(name, data_dir), valid_fraction)


def _open(name: str, data_dir: str | Path | None) -> HMCDataset:
    if name == SYNTHETIC:
        return make_synthetic(seed=0)
    if name == SHAPES:
        return make_shapes(seed=0)
    try:
        return load_dataset(name, data_dir)
    except DatasetNotFoundError:
        files = find_table_dataset(name, data_dir)
        if files is not None:
            return load_table_dataset(**files, name=name)
        images = find_image_dataset(name, data_dir)
        if images is None:
            raise
        return load_images(images, name=name)


def available_datasets(data_dir: str | Path | None = None) -> list[str]:
    """``synthetic`` and ``shapes`` followed by every dataset found in the data directory (ARFF, table and image
    datasets, :func:`hmlc_core.images.folders.list_image_datasets`; none if it is unset or missing)."""
    try:
        folder = resolve_data_dir(data_dir)
        found = sorted(set(list_datasets(folder)) | set(list_table_datasets(folder)) | set(list_image_datasets(folder)),
                       key=lambda s: (s.lower(), s))
    except DatasetNotFoundError:
        found = []
    return [SYNTHETIC, SHAPES] + [n for n in found if n not in GENERATED]
