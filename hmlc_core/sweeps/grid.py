"""The sweep grid: datasets x configurations x seeds, from a spec file and/or command-line flags.

A *configuration* is a name and the :class:`~hmlc_core.config.TrainConfig` fields it sets. Configurations
come from three places, combined:

* ``configs``: names of :data:`hmlc_core.sweeps.configs.CONFIGS` (or of ``define``);
* ``define``: your own named configurations, ``NAME = {field = value, ...}``;
* ``options``: option lists, ``field = [value, ...]``; every combination of them is applied on top of each
  configuration above (or alone, when there is none) and named ``BASE,field=value,...``.

``profile``, ``epochs`` and ``fit_on`` are the sweep's training budget, the same for every cell; a
configuration may still set them. A spec file is TOML (``.toml``, read with :mod:`tomllib`) or JSON
(``.json``) with the keys of :data:`SPEC_KEYS`, for example::

    datasets = ["cellcycle_FUN", "derisi_FUN"]
    configs = ["chmcnn", "plain"]
    seeds = [0, 1, 2]
    profile = "paper"
    fit_on = "train"

    [define.plain-3heads]
    weighting = "none"
    focal = "none"
    heads = 3

    [options]
    decision = ["fixed", "per-node"]

Each cell (dataset, configuration, seed) is one run folder ``OUT/DATASET__CONFIG__seed-S``
(:attr:`Cell.folder`): a flat name, because the run registry (and so the dashboard) lists the run folders
directly inside a runs folder. Importing this module does not import torch or Dask.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hmlc_core.config import TrainConfig
from hmlc_core.sweeps.configs import CONFIGS

__all__ = ["SPEC_KEYS", "AXIS_FIELDS", "FOLDER_SEPARATOR", "Cell", "GridSpec", "load_spec_file", "build_spec",
           "parse_option", "split_folder"]

SPEC_KEYS = ("datasets", "configs", "define", "options", "seeds", "profile", "epochs", "fit_on", "data_dir")
"""The keys a spec file may hold."""

AXIS_FIELDS = ("dataset", "seed", "data_dir")
"""TrainConfig fields set by the grid itself, which a configuration or option list may not set."""

FOLDER_SEPARATOR = "__"
"""Separates dataset, configuration and seed in a run folder name; no name may contain it."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=,+-]*")
_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _check_name(kind: str, name: Any, where: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name) or FOLDER_SEPARATOR in name:
        raise ValueError(f"{where}: {kind} name {name!r} is not usable in a folder name (letters, digits and "
                         f"._=,+- only, starting with a letter or digit, no {FOLDER_SEPARATOR!r})")
    return name


def _check_overrides(overrides: Any, where: str) -> dict[str, Any]:
    if not isinstance(overrides, Mapping):
        raise ValueError(f"{where}: expected a table of TrainConfig fields, got {overrides!r}")
    for key in overrides:
        if key not in _FIELDS:
            raise ValueError(f"{where}: {key!r} is not a TrainConfig field")
        if key in AXIS_FIELDS:
            raise ValueError(f"{where}: {key!r} is set by the grid (datasets, seeds, data_dir), not by a configuration")
    return dict(overrides)


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True)
class Cell:
    """One training run of a sweep: a configuration on a dataset with a seed.

    Attributes
    ----------
    dataset : str
    config_name : str
        The configuration's name (a :data:`~hmlc_core.sweeps.configs.CONFIGS` name, a ``define`` name, or a
        combination of option values).
    overrides : tuple of (str, object)
        The TrainConfig fields the configuration sets, sorted by field name.
    seed : int
    profile : str
    epochs : int or None
        None: the dataset's preset under ``profile``.
    fit_on : str
    data_dir : str or None
        Where the workers find the data; None: each worker's ``HMLC_DATA_DIR``. Not part of :attr:`cell_id`.
    """

    dataset: str
    config_name: str
    overrides: tuple[tuple[str, Any], ...]
    seed: int
    profile: str = "paper"
    epochs: int | None = None
    fit_on: str = "train+valid"
    data_dir: str | None = None

    @property
    def folder(self) -> str:
        """The run folder's name inside the sweep's output folder: ``DATASET__CONFIG__seed-S``."""
        return FOLDER_SEPARATOR.join((self.dataset, self.config_name, f"seed-{self.seed}"))

    @property
    def cell_id(self) -> str:
        """A stable id (12 hex digits): a hash of everything that decides what is trained, the same in any
        process and across runs of the sweep."""
        doc = {"dataset": self.dataset, "config": self.config_name, "overrides": [list(kv) for kv in self.overrides],
               "seed": self.seed, "profile": self.profile, "epochs": self.epochs, "fit_on": self.fit_on}
        return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        """``dataset config seed S``, for logs."""
        return f"{self.dataset} {self.config_name} seed {self.seed}"

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` this cell trains (not resolved), with one torch thread; a ``profile``,
        ``epochs`` or ``fit_on`` of the configuration wins over the sweep's."""
        budget = {"profile": self.profile, "epochs": self.epochs, "fit_on": self.fit_on}
        return TrainConfig(dataset=self.dataset, data_dir=self.data_dir, seed=self.seed,
                           **{**budget, **dict(self.overrides), "threads": 1})


@dataclass(frozen=True)
class GridSpec:
    """A sweep grid: every dataset x configuration x seed.

    Attributes
    ----------
    datasets : tuple of str
    configs : tuple of (str, dict)
        Configuration name -> TrainConfig overrides, in order.
    seeds : tuple of int
    profile, epochs, fit_on, data_dir
        As :class:`Cell`.
    source : str
        Where the grid came from (the spec file, or "command line"), named in error messages.
    """

    datasets: tuple[str, ...]
    configs: tuple[tuple[str, Mapping[str, Any]], ...]
    seeds: tuple[int, ...]
    profile: str = "paper"
    epochs: int | None = None
    fit_on: str = "train+valid"
    data_dir: str | None = None
    source: str = "command line"

    def cells(self) -> list[Cell]:
        """The cells, seed-major (every dataset and configuration of seed 0 first, so early seeds finish first).

        Raises
        ------
        ValueError
            If a cell's TrainConfig is invalid (:meth:`TrainConfig.validate`, naming the field), naming the
            source and the cell.
        """
        cells = []
        for seed in self.seeds:
            for dataset in self.datasets:
                for name, overrides in self.configs:
                    cell = Cell(dataset, name, tuple(sorted(overrides.items())), seed, self.profile, self.epochs,
                                self.fit_on, self.data_dir)
                    try:
                        cell.train_config().resolved().validate()
                    except (TypeError, ValueError) as exc:
                        raise ValueError(f"{self.source}: configuration {name!r} on {dataset!r}: {exc}") from exc
                    cells.append(cell)
        return cells


def split_folder(name: str) -> tuple[str, str, int] | None:
    """``(dataset, configuration, seed)`` of a run folder name ``DATASET__CONFIG__seed-S``; None for another name.

    The inverse of :attr:`Cell.folder`, for reports that read a sweep's output folder.
    """
    parts = name.split(FOLDER_SEPARATOR)
    if len(parts) != 3 or not parts[2].startswith("seed-") or not parts[2][5:].isdigit():
        return None
    if not all(_NAME.fullmatch(p) for p in parts[:2]):
        return None
    return parts[0], parts[1], int(parts[2][5:])


def load_spec_file(path: str | Path) -> dict[str, Any]:
    """Read a spec file: TOML (``.toml``) or JSON (``.json``), a table with the keys of :data:`SPEC_KEYS`.

    Raises
    ------
    ValueError
        On another suffix, a syntax error (naming the file and, for JSON, the line), a top level that is not a
        table, or an unknown key (naming it and the file).
    OSError
        If the file cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            raise ValueError(f"{path}: a sweep spec must be a .toml or .json file")
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON at line {exc.lineno} ({exc.msg})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the spec must be a table (a JSON object)")
    unknown = sorted(set(data) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; allowed: {list(SPEC_KEYS)}")
    return data


def parse_option(text: str) -> tuple[str, list[Any]]:
    """Parse a command-line option list ``FIELD=V1,V2,...``; each value is read as JSON, else kept as text.

    Examples: ``heads=1,2`` -> ``("heads", [1, 2])``; ``focal=none,mean`` -> ``("focal", ["none", "mean"])``.

    Raises
    ------
    ValueError
        Without ``=`` or with no value.
    """
    field, sep, values = text.partition("=")
    if not sep or not field.strip() or not values.strip():
        raise ValueError(f"--option {text!r}: expected FIELD=VALUE[,VALUE...]")
    parsed = []
    for value in values.split(","):
        try:
            parsed.append(json.loads(value))
        except json.JSONDecodeError:
            parsed.append(value)
    return field.strip(), parsed


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(f"{where}: 'seeds' must be a non-empty list of whole numbers >= 0, got {value!r}")
    for seed in value:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"{where}: seed {seed!r} is not a whole number >= 0")
    if len(set(value)) != len(value):
        raise ValueError(f"{where}: 'seeds' lists a seed twice: {list(value)}")
    return tuple(value)


def _names(value: Any, key: str, where: str) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(f"{where}: {key!r} must be a non-empty list of names, got {value!r}")
    names = [_check_name(key.rstrip("s"), v, where) for v in value]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: {key!r} lists a name twice: {names}")
    return names


def _configurations(spec: Mapping[str, Any], where: str) -> list[tuple[str, dict[str, Any]]]:
    define = spec.get("define") or {}
    if not isinstance(define, Mapping):
        raise ValueError(f"{where}: 'define' must be a table of NAME = {{field = value}}")
    known = {name: dict(overrides) for name, (_, overrides) in CONFIGS.items()}
    for name, overrides in define.items():
        known[_check_name("configuration", name, f"{where}, define")] = _check_overrides(
            overrides, f"{where}, define.{name}")
    if spec.get("configs") is not None:
        names = _names(spec["configs"], "configs", where)
    else:
        names = list(define)
    missing = [n for n in names if n not in known]
    if missing:
        raise ValueError(f"{where}: unknown configuration(s) {missing}; named ones: {sorted(CONFIGS)}, or define "
                         "your own under 'define'")
    bases: list[tuple[str | None, dict[str, Any]]] = [(n, known[n]) for n in names]
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise ValueError(f"{where}: 'options' must be a table of field = [values]")
    _check_overrides(options, f"{where}, options")
    for field, values in options.items():
        if not isinstance(values, Sequence) or isinstance(values, str) or not values:
            raise ValueError(f"{where}: options.{field} must be a non-empty list of values, got {values!r}")
    if not bases:
        if not options:
            raise ValueError(f"{where}: no configuration: give configs (named: {sorted(CONFIGS)}), define or options")
        bases = [(None, {})]
    out = []
    for base_name, overrides in bases:
        for combo in itertools.product(*options.values()):
            chosen = dict(zip(options, combo))
            parts = ([base_name] if base_name else []) + [f"{k}={_value_text(v)}" for k, v in chosen.items()]
            name = _check_name("configuration", ",".join(parts), where)
            out.append((name, {**overrides, **chosen}))
    names_out = [n for n, _ in out]
    if len(set(names_out)) != len(names_out):
        raise ValueError(f"{where}: two configurations share a name: {names_out}")
    return out


def build_spec(spec_file: str | Path | None = None, *, datasets: Sequence[str] | None = None,
               configs: Sequence[str] | None = None, options: Sequence[str] | None = None,
               seeds: Sequence[int] | None = None, profile: str | None = None, epochs: int | None = None,
               fit_on: str | None = None, data_dir: str | None = None) -> GridSpec:
    """The grid of a spec file (:func:`load_spec_file`) with command-line values put over it.

    Parameters
    ----------
    spec_file : path, optional
    datasets, configs, seeds, profile, epochs, fit_on, data_dir : optional
        Replace the spec file's value when given. ``profile`` defaults to ``"paper"`` and ``fit_on`` to
        TrainConfig's default; ``seeds`` to ``[0]``.
    options : sequence of str, optional
        ``FIELD=V1,V2`` (:func:`parse_option`), added to (and replacing the same field of) the file's options.

    Returns
    -------
    GridSpec

    Raises
    ------
    ValueError
        Naming the file (or "command line") and the key at fault: no datasets, an unknown configuration, a
        name unusable in a folder name, a field TrainConfig does not have, bad seeds.
    """
    spec: dict[str, Any] = load_spec_file(spec_file) if spec_file is not None else {}
    where = str(spec_file) if spec_file is not None else "command line"
    flags = {"datasets": datasets, "configs": configs, "seeds": seeds, "profile": profile, "epochs": epochs,
             "fit_on": fit_on, "data_dir": data_dir}
    spec.update({k: list(v) if isinstance(v, (list, tuple)) else v for k, v in flags.items() if v is not None})
    if options:
        spec["options"] = {**(spec.get("options") or {}), **dict(parse_option(o) for o in options)}
    if not spec.get("datasets"):
        raise ValueError(f"{where}: no datasets: give --datasets or 'datasets' in the spec")
    ds = _names(spec["datasets"], "datasets", where)
    epochs_value = spec.get("epochs")
    if epochs_value is not None and (isinstance(epochs_value, bool) or not isinstance(epochs_value, int)
                                     or epochs_value < 1):
        raise ValueError(f"{where}: 'epochs' must be a whole number >= 1, got {epochs_value!r}")
    default = TrainConfig(dataset="")
    return GridSpec(datasets=tuple(ds), configs=tuple(_configurations(spec, where)),
                    seeds=_seeds(spec.get("seeds", [0]), where), profile=str(spec.get("profile", default.profile)),
                    epochs=epochs_value, fit_on=str(spec.get("fit_on", default.fit_on)),
                    data_dir=None if spec.get("data_dir") is None else str(spec["data_dir"]), source=where)
