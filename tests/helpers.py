"""Small builders shared by several test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""

import numpy as np

from hmlc_core.hierarchy import Hierarchy


def random_dag(n_nodes: int, seed: int) -> Hierarchy:
    """A GO-like DAG: node i links to 1-3 of the nodes before it, so many nodes have several parents."""
    rng = np.random.default_rng(seed)
    edges = []
    for i in range(1, n_nodes):
        for p in rng.choice(i, size=min(i, int(rng.integers(1, 4))), replace=False):
            edges.append((f"n{p}", f"n{i}"))
    return Hierarchy(edges)
