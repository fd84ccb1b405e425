"""Dataset names the tools accept: the built-in synthetic demo or a dataset in the data directory."""

from __future__ import annotations

from pathlib import Path

from hmlc_core.data import DatasetNotFoundError, HMCDataset, list_datasets, load_dataset, resolve_data_dir
from hmlc_core.synthetic import make_synthetic

__all__ = ["SYNTHETIC", "open_dataset", "available_datasets"]

SYNTHETIC = "synthetic"
"""Name of the deterministic synthetic dataset (:func:`hmlc_core.synthetic.make_synthetic`, seed 0)."""


def open_dataset(name: str, data_dir: str | Path | None = None) -> HMCDataset:
    """Load ``synthetic`` or a named dataset from ``data_dir`` (default ``HMLC_DATA_DIR``).

    Raises
    ------
    DatasetNotFoundError
        If the data directory or the dataset is missing (the message lists
        the datasets found).
    ValueError
        If a file is malformed (the message names file and line).
    """
    if name == SYNTHETIC:
        return make_synthetic(seed=0)
    return load_dataset(name, data_dir)


def available_datasets(data_dir: str | Path | None = None) -> list[str]:
    """``synthetic`` followed by every dataset found in the data directory (none if it is unset or missing)."""
    try:
        found = list_datasets(resolve_data_dir(data_dir))
    except DatasetNotFoundError:
        found = []
    return [SYNTHETIC] + found
