"""Sweeps: train a grid of datasets x configurations x seeds as Dask tasks (``python -m hmlc_core sweep``).

* :mod:`~hmlc_core.sweeps.configs`: the named configurations (:data:`CONFIGS`);
* :mod:`~hmlc_core.sweeps.grid`: the grid spec and its cells (:class:`GridSpec`, :class:`Cell`);
* :mod:`~hmlc_core.sweeps.store`: which cells are done in an output folder (:func:`plan`);
* :mod:`~hmlc_core.sweeps.task`: one task, run on a worker (:func:`train_cell`);
* :mod:`~hmlc_core.sweeps.engine`: the Dask client, submission and registration (:func:`run_sweep`);
* :mod:`~hmlc_core.sweeps.command`: the ``sweep`` command line.

Importing this package imports neither torch nor Dask; :mod:`~hmlc_core.sweeps.engine` imports Dask.
"""

from hmlc_core.sweeps.configs import CONFIGS
from hmlc_core.sweeps.grid import Cell, GridSpec, build_spec, load_spec_file
from hmlc_core.sweeps.store import Plan, plan

__all__ = ["CONFIGS", "Cell", "GridSpec", "build_spec", "load_spec_file", "Plan", "plan"]
