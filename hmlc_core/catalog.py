"""Dataset names the tools accept: the built-in synthetic demo or a dataset in the data directory."""

from __future__ import annotations

from pathlib import Path

from hmlc_core.data import DatasetNotFoundError, HMCDataset, list_datasets, load_dataset, resolve_data_dir
from hmlc_core.synthetic import make_synthetic
from hmlc_core.tables import find_table_dataset, list_table_datasets, load_table_dataset

__all__ = ["SYNTHETIC", "open_dataset", "available_datasets"]

SYNTHETIC = "synthetic"
"""Name of the deterministic synthetic dataset (:func:`hmlc_core.synthetic.make_synthetic`, seed 0)."""


def open_dataset(name: str, data_dir: str | Path | None = None) -> HMCDataset:
    """Load ``synthetic`` or a named dataset from ``data_dir`` (default ``HMLC_DATA_DIR``).

    An ARFF dataset of that name comes first; otherwise a table dataset
    (``<name>/<name>.csv`` with ``<name>.obo`` or ``<name>.edges.csv``,
    :func:`hmlc_core.tables.list_table_datasets`) is loaded with its defaults.

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
    try:
        return load_dataset(name, data_dir)
    except DatasetNotFoundError:
        files = find_table_dataset(name, data_dir)
        if files is None:
            raise
        return load_table_dataset(**files, name=name)


def available_datasets(data_dir: str | Path | None = None) -> list[str]:
    """``synthetic`` followed by every dataset found in the data directory (ARFF and table datasets; none if it
    is unset or missing)."""
    try:
        folder = resolve_data_dir(data_dir)
        found = sorted(set(list_datasets(folder)) | set(list_table_datasets(folder)), key=lambda s: (s.lower(), s))
    except DatasetNotFoundError:
        found = []
    return [SYNTHETIC] + found
