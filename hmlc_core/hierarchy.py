"""Label hierarchies (trees and DAGs) for hierarchical multi-label classification.

A :class:`Hierarchy` fixes an order of the nodes (the column order of every label,
probability and uncertainty matrix in the project) and answers the structural
queries the rest of the package needs: parents, children, ancestors, descendants,
depth, the nodes skipped in evaluation, the ancestor matrix and its sparse pair
list (used by the max-constraint module), label propagation and coherence checks.

Conventions follow C-HMCNN (Giunchiglia & Lukasiewicz, NeurIPS 2020) and the CLUS
HMC datasets (docs/method.md, *Data and hierarchy*): a sample positive for a node is positive for
all of that node's ancestors, and evaluation skips the root(s).
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where used: together 0.3 s of a dashboard server's first page view
    import networkx as nx
    import scipy.sparse as sp

__all__ = ["Hierarchy"]


class Hierarchy:
    """A rooted label hierarchy (tree or DAG) with a fixed node order.

    Edges are given as ``(parent, child)`` pairs. The queries use plain parent and
    child dicts; :attr:`graph`, a :class:`networkx.DiGraph` whose edges point from
    parent to child, is built on first use.

    Parameters
    ----------
    edges : iterable of (str, str)
        ``(parent, child)`` pairs. Duplicates are ignored.
    nodes : iterable of str, optional
        Extra nodes without edges (for example a lone root). Every node that
        appears in ``edges`` is included anyway.
    skip_eval : iterable of str, optional
        Nodes excluded from evaluation and from the training loss. ``None``
        (default) skips the roots (nodes without parents). Names that are not
        nodes of the hierarchy are ignored, so the CLUS GO set
        ``{"root", "GO0003674", "GO0005575", "GO0008150"}`` can be passed for
        any dataset.

    Attributes
    ----------
    nodes : list of str
        Node ids in column order: sorted by (depth, id), so roots come first.
    index : dict of str to int
        Column index of each node id.
    n_nodes : int
        Number of nodes ``C``.
    graph : networkx.DiGraph
        Parent -> child edges (built on first use, then kept; do not modify it).
    roots : list of str
        Nodes without parents.
    depth : numpy.ndarray of int64, shape (C,)
        Length of the shortest path from a root (roots have depth 0). For a
        tree this is the usual depth; for a DAG it is the shortest-path depth
        (docs/method.md, *Data and hierarchy*).
    eval_mask : numpy.ndarray of bool, shape (C,)
        True for nodes that are evaluated (not in ``skip_eval``).

    Raises
    ------
    ValueError
        If the graph is empty, has a cycle (the cycle is named), or an edge
        is a self-loop.
    """

    def __init__(
        self,
        edges: Iterable[tuple[str, str]],
        nodes: Iterable[str] | None = None,
        skip_eval: Iterable[str] | None = None,
    ) -> None:
        # Plain dicts in networkx's insertion order (nodes given, then new edge ends; neighbours in edge order):
        # building a networkx graph of a 111k-node hierarchy took most of a run's load time, so ``graph`` is
        # built from these only when asked for (bench/README.md, *The explorer on a 100k-node run*).
        succ: dict[str, dict[str, None]] = {}
        pred: dict[str, dict[str, None]] = {}
        if nodes is not None:
            for n in nodes:
                n = str(n)
                if n not in succ:
                    succ[n] = {}
                    pred[n] = {}
        pairs = [(str(parent), str(child)) for parent, child in edges]
        for parent, child in pairs:
            if parent == child:
                raise ValueError(f"hierarchy edge {parent!r} -> {child!r} is a self-loop")
            if parent not in succ:
                succ[parent] = {}
                pred[parent] = {}
            if child not in succ:
                succ[child] = {}
                pred[child] = {}
            succ[parent][child] = None
            pred[child][parent] = None
        if not succ:
            raise ValueError("a hierarchy needs at least one node")
        self._succ = succ
        self._pred = pred
        self._edge_pairs = pairs
        self._order, depth_of = self._topological_depths()
        self.roots = sorted(n for n, parents in pred.items() if not parents)
        by_depth: dict[int, list[str]] = {}
        for n, d in depth_of.items():
            by_depth.setdefault(d, []).append(n)
        self.nodes = [n for d in sorted(by_depth) for n in sorted(by_depth[d])]  # by (depth, id)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        self.n_nodes = len(self.nodes)
        self.depth = np.array([depth_of[n] for n in self.nodes], dtype=np.int64)
        skipped = set(self.roots) if skip_eval is None else {str(s) for s in skip_eval}
        self.skipped = sorted(s for s in skipped if s in self.index)
        self.eval_mask = np.array([n not in skipped for n in self.nodes], dtype=bool)
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None  # ancestor_pairs, built on first use
        self._ancestor_csr: sp.csr_matrix | None = None

    def _topological_depths(self) -> tuple[list[str], dict[str, int]]:
        """A topological order (Kahn's algorithm) and each node's shortest-path depth from the roots.

        A node's depth is one more than its shallowest parent's: every parent comes before it in the order,
        so it is final when the node is reached (one pass over the edges).

        Raises
        ------
        ValueError
            If the graph has a cycle; the message names one (networkx's ``find_cycle``).
        """
        succ = self._succ
        waiting = {n: len(parents) for n, parents in self._pred.items() if parents}
        depth_of = {n: 0 for n, parents in self._pred.items() if not parents}
        order = list(depth_of)
        for n in order:  # grows while it is walked
            below = depth_of[n] + 1
            for child in succ[n]:
                if below < depth_of.get(child, below + 1):
                    depth_of[child] = below
                waiting[child] -= 1
                if not waiting[child]:
                    order.append(child)
        if len(order) < len(succ):
            import networkx as nx

            cycle = nx.find_cycle(self.graph)
            path = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
            raise ValueError(f"the hierarchy has a cycle: {path}")
        return order, depth_of

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """Parent -> child edges as a :class:`networkx.DiGraph`, built on first use (then kept).

        Its nodes and each node's neighbours are in the order the constructor met them, as when the graph
        was built there.
        """
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._succ)
        graph.add_edges_from(self._edge_pairs)
        return graph

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self.n_nodes

    def __contains__(self, node: object) -> bool:
        return node in self.index

    def __repr__(self) -> str:
        kind = "tree" if self.is_tree else "DAG"
        return (
            f"Hierarchy({kind}, {self.n_nodes} nodes, {self.n_edges} edges, "
            f"max depth {int(self.depth.max())}, {int(self.eval_mask.sum())} evaluated)"
        )

    def _check(self, node: str) -> str:
        if node not in self.index:
            raise KeyError(f"node {node!r} is not in the hierarchy")
        return node

    def parents(self, node: str) -> list[str]:
        """Direct parents of ``node`` in column order (empty for a root).

        Raises
        ------
        KeyError
            If ``node`` is not in the hierarchy.
        """
        return sorted(self._pred[self._check(node)], key=self.index.__getitem__)

    def children(self, node: str) -> list[str]:
        """Direct children of ``node`` in column order (empty for a leaf)."""
        return sorted(self._succ[self._check(node)], key=self.index.__getitem__)

    def ancestors(self, node: str) -> list[str]:
        """All proper ancestors of ``node`` (every node with a path to it), in column order."""
        return self._reached(node, self._pred)

    def descendants(self, node: str) -> list[str]:
        """All proper descendants of ``node``, in column order."""
        return self._reached(node, self._succ)

    def _reached(self, node: str, links: dict[str, dict[str, None]]) -> list[str]:
        """The nodes reached from ``node`` (not itself) along ``links`` (parents or children), in column order."""
        found: set[str] = set()
        stack = [self._check(node)]
        while stack:
            for other in links[stack.pop()]:
                if other not in found:
                    found.add(other)
                    stack.append(other)
        return sorted(found, key=self.index.__getitem__)

    def siblings(self, node: str) -> list[str]:
        """Other children of ``node``'s parents, in column order."""
        sibs = {c for p in self.parents(node) for c in self._succ[p]} - {node}
        return sorted(sibs, key=self.index.__getitem__)

    def first_parent(self, node: str) -> str | None:
        """The parent of smallest column index (shallowest, then by id); None for a root.

        Used to draw a DAG as a spanning tree (the "first-parent" tree).
        """
        parents = self.parents(node)
        return parents[0] if parents else None

    @property
    def is_tree(self) -> bool:
        """True when every node has at most one parent."""
        return all(len(parents) <= 1 for parents in self._pred.values())

    @property
    def leaves(self) -> list[str]:
        """Nodes without children, in column order."""
        return [n for n in self.nodes if not self._succ[n]]

    @property
    def n_edges(self) -> int:
        """Number of parent -> child edges ``E``."""
        return sum(len(children) for children in self._succ.values())

    def edges(self, among: Collection[str] | None = None) -> list[tuple[str, str]]:
        """The ``(parent, child)`` edges, each once, in the order of ``graph.edges`` (without building ``graph``).

        Parameters
        ----------
        among : collection of str, optional
            Keep only the edges whose two ends are in it (only its nodes' children are walked).

        Returns
        -------
        list of (str, str)
        """
        if among is None:
            return [(p, c) for p, children in self._succ.items() for c in children]
        keep = set(among)
        return [(p, c) for p, children in self._succ.items() if p in keep for c in children if c in keep]

    # ----------------------------------------------------------------- matrices
    def edge_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Column indices of every edge.

        Returns
        -------
        child, parent : numpy.ndarray of int64, shape (E,)
            ``child[e]`` and ``parent[e]`` are the columns of edge ``e``.
        """
        pairs = np.array([(self.index[c], self.index[p]) for p, c in self.edges()], dtype=np.int64)
        pairs = pairs.reshape(-1, 2)
        return pairs[:, 0].copy(), pairs[:, 1].copy()

    def ancestor_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Sparse form of :meth:`ancestor_matrix`, including each node with itself.

        Returns
        -------
        node, ancestor : numpy.ndarray of int64, shape (P,)
            One entry per pair (i, a) where a is i or an ancestor of i;
            ``P = C + sum_i |ancestors(i)|`` (the number of non-zeros of R in
            C-HMCNN). Sorted by ``node`` then ``ancestor``. Built once per hierarchy (the arrays returned
            are copies).
        """
        if self._pairs is None:
            ancestors: dict[str, frozenset[str]] = {}
            for n in self._order:  # every parent's set is complete before its children's
                anc: set[str] = set(self._pred[n])
                for p in self._pred[n]:
                    anc |= ancestors[p]
                ancestors[n] = frozenset(anc)
            rows: list[int] = []
            cols: list[int] = []
            for n in self.nodes:
                i = self.index[n]
                anc_cols = sorted([i] + [self.index[a] for a in ancestors[n]])
                rows.extend([i] * len(anc_cols))
                cols.extend(anc_cols)
            self._pairs = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        return self._pairs[0].copy(), self._pairs[1].copy()

    def ancestor_matrix(self) -> np.ndarray:
        """Dense reflexive ancestor matrix.

        Returns
        -------
        numpy.ndarray of bool, shape (C, C)
            ``A[i, a]`` is True iff ``a == i`` or ``a`` is an ancestor of ``i``.
            C-HMCNN's matrix ``R`` (docs/method.md, *Data and hierarchy*: ``R[j, i] = 1`` iff ``i`` is
            ``j`` or a descendant of ``j``) is ``A.T``. Dense, so O(C^2)
            memory: use :meth:`ancestor_pairs` for large hierarchies.
        """
        a = np.zeros((self.n_nodes, self.n_nodes), dtype=bool)
        rows, cols = self.ancestor_pairs()
        a[rows, cols] = True
        return a

    def max_constraint(self, values: np.ndarray) -> np.ndarray:
        """The max-constraint module in numpy: each node's value becomes the max over itself and its descendants.

        ``out[..., j] = max of values[..., i] over i in {j} and the descendants
        of j`` (C-HMCNN, Giunchiglia & Lukasiewicz 2020; docs/method.md, *MCM
        and MCLoss*), so no node is ever below one of its descendants. The
        same values as :class:`hmlc_core.model.MCM` without torch (no
        gradients), for inference on small inputs and the dashboard.

        Parameters
        ----------
        values : array-like of float, shape (..., C)

        Returns
        -------
        numpy.ndarray of float64, shape (..., C)

        Raises
        ------
        ValueError
            If the last dimension is not C.
        """
        x = np.asarray(values, dtype=np.float64)
        if x.ndim == 0 or x.shape[-1] != self.n_nodes:
            raise ValueError(f"values must have shape (..., {self.n_nodes}), got {x.shape}")
        rows = x.reshape(-1, self.n_nodes).T
        nodes, ancestors = self.ancestor_pairs()
        best = np.full_like(rows, -np.inf)
        np.maximum.at(best, ancestors, rows[nodes])
        return best.T.reshape(x.shape)

    def _ancestor_sparse(self) -> sp.csr_matrix:
        """The reflexive ancestor matrix as int32 CSR, built once (callers must not modify it)."""
        if self._ancestor_csr is None:
            import scipy.sparse as sp

            rows, cols = self.ancestor_pairs()
            data = np.ones(len(rows), dtype=np.int32)
            self._ancestor_csr = sp.csr_matrix((data, (rows, cols)), shape=(self.n_nodes, self.n_nodes))
        return self._ancestor_csr

    # ----------------------------------------------------------- label helpers
    def propagate_sparse(self, labels: np.ndarray) -> sp.csr_matrix:
        """:meth:`propagate` as a sparse matrix: memory in proportion to the positives, not to ``N x C``.

        Parameters
        ----------
        labels : array-like of {0, 1} or bool, shape (N, C)
            Label matrix in column order.

        Returns
        -------
        scipy.sparse.csr_matrix of int32, shape (N, C)
            Positive (a count of the sample's positive descendants-or-self) exactly where the propagated
            label is 1, with no stored zeros.

        Raises
        ------
        ValueError
            If ``labels`` does not have ``C`` columns.
        """
        y = np.asarray(labels)
        if y.ndim != 2 or y.shape[1] != self.n_nodes:
            raise ValueError(f"labels must have shape (N, {self.n_nodes}), got {y.shape}")
        import scipy.sparse as sp

        rows, cols = np.nonzero(y)
        positives = sp.csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=y.shape)
        return positives @ self._ancestor_sparse()

    def propagate(self, labels: np.ndarray) -> np.ndarray:
        """Set every ancestor of a positive node positive (label propagation; docs/method.md, *Data and hierarchy*).

        The product with the ancestor matrix is sparse (:meth:`propagate_sparse`), so the memory beyond the
        input and the result is in proportion to the positives.

        Parameters
        ----------
        labels : array-like of {0, 1} or bool, shape (N, C)
            Label matrix in column order (for example only the most specific
            terms set).

        Returns
        -------
        numpy.ndarray of uint8, shape (N, C)
            The propagated (coherent) label matrix.

        Raises
        ------
        ValueError
            If ``labels`` does not have ``C`` columns.
        """
        prop = self.propagate_sparse(labels).tocoo()
        out = np.zeros(prop.shape, dtype=np.uint8)
        out[prop.row, prop.col] = 1
        return out

    def label_matrix(self, label_sets: Sequence[Iterable[str]], propagate: bool = True) -> np.ndarray:
        """Build an (N, C) uint8 label matrix from per-sample lists of node ids.

        Raises
        ------
        KeyError
            If a sample names a node that is not in the hierarchy (the sample
            index and node are named).
        """
        y = np.zeros((len(label_sets), self.n_nodes), dtype=np.uint8)
        for row, terms in enumerate(label_sets):
            for term in terms:
                if term not in self.index:
                    raise KeyError(f"sample {row}: label {term!r} is not a node of the hierarchy")
                y[row, self.index[term]] = 1
        return self.propagate(y) if propagate else y

    def coherence_violations(self, matrix: np.ndarray, tol: float = 0.0) -> int:
        """Count (sample, edge) pairs where a child scores above its parent.

        Parameters
        ----------
        matrix : array-like, shape (N, C)
            Labels, probabilities or 0/1 predictions in column order.
        tol : float, default 0
            A violation is ``matrix[:, child] > matrix[:, parent] + tol``.

        Returns
        -------
        int
            Number of violations; 0 means the matrix respects the hierarchy
            (the C-HMCNN coherence constraint ``y_parent >= y_child``).
        """
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[1] != self.n_nodes:
            raise ValueError(f"matrix must have shape (N, {self.n_nodes}), got {m.shape}")
        child, parent = self.edge_index()
        columns = np.ascontiguousarray(m.T)  # gathering rows of the transpose reads memory in order
        upper = columns[parent] + tol if tol else columns[parent]
        return int((columns[child] > upper).sum())

    def is_coherent(self, matrix: np.ndarray, tol: float = 0.0) -> bool:
        """True when :meth:`coherence_violations` is 0."""
        return self.coherence_violations(matrix, tol) == 0

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: nodes in column order, (parent, child) edges, skipped nodes."""
        return {
            "nodes": list(self.nodes),
            "edges": [[p, c] for p, c in sorted(self.edges(), key=lambda e: (self.index[e[1]], self.index[e[0]]))],
            "skip_eval": list(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hierarchy:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            If a field is missing, or the stored node order differs from the
            order the edges imply (a corrupted or hand-edited file).
        """
        for field in ("nodes", "edges", "skip_eval"):
            if field not in data:
                raise ValueError(f"hierarchy data lacks the field {field!r}")
        h = cls(data["edges"], nodes=data["nodes"], skip_eval=data["skip_eval"])
        if h.nodes != list(data["nodes"]):
            raise ValueError("hierarchy data: the stored node order does not match the (depth, id) order")
        return h
