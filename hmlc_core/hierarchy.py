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
import operator
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # imported where used: together 0.3 s of a dashboard server's first page view
    import networkx as nx
    import scipy.sparse as sp

__all__ = ["Hierarchy"]


def _by_parent(parent: np.ndarray, child: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges in ``graph.edges``' order: stably sorted by parent (parents in node order, then as given).

    Parameters
    ----------
    parent, child : numpy.ndarray of int64, shape (E,)

    Returns
    -------
    (parent, child) : tuple of numpy.ndarray of int64, shapes (E,) and (E,)
    """
    by_parent = np.argsort(parent, kind="stable")
    return parent[by_parent], child[by_parent]


def _kahn_levels(n: int, parent: np.ndarray, child: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A topological order and each node's shortest-path depth, by Kahn's algorithm one level at a time.

    Level 0 holds the nodes without parents; level ``k + 1`` the nodes whose last parent is in level ``k``.
    A node's depth is one more than its shallowest parent's: all its parents are in earlier levels, so it is
    final when the node's level is reached. Each level is a few numpy operations, so the cost is
    O(E log E) plus a constant per level (the longest path, about 20 in the Gene Ontology).

    Parameters
    ----------
    n : int
        Number of nodes (ids ``0 .. n - 1``).
    parent, child : numpy.ndarray of int64, shape (E,)
        The edges, each once, sorted by ``parent`` (:func:`_by_parent`, the order the callers keep anyway).

    Returns
    -------
    (order, depth) : tuple of numpy.ndarray of int64, shapes (n,) and (n,), or None
        None when some nodes are never reached (they lie on or below a cycle).
    """
    start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(parent, minlength=n), out=start[1:])
    waiting = np.bincount(child, minlength=n)
    depth = np.full(n, n, dtype=np.int64)
    level = np.flatnonzero(waiting == 0)
    depth[level] = 0
    levels = []
    while level.size:
        levels.append(level)
        counts = start[level + 1] - start[level]
        first = np.repeat(start[level] - (np.cumsum(counts) - counts), counts)
        reached = child[first + np.arange(len(first))]
        np.minimum.at(depth, reached, np.repeat(depth[level] + 1, counts))
        np.subtract.at(waiting, reached, 1)
        level = np.sort(reached[waiting[reached] == 0])  # once per parent in this level: keep one
        level = level[np.diff(level, prepend=-1) != 0]
    order = np.concatenate(levels) if levels else np.zeros(0, dtype=np.int64)
    return (order, depth) if len(order) == n else None


class Hierarchy:
    """A rooted label hierarchy (tree or DAG) with a fixed node order.

    Edges are given as ``(parent, child)`` pairs. They are kept as arrays of column
    indices; the queries walk per-column parent and child lists built from them on
    first use, and :attr:`graph`, a :class:`networkx.DiGraph` whose edges point from
    parent to child, is built only when asked for. :meth:`from_dict` checks a stored
    hierarchy against its own order instead of sorting it again.

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
        met: dict[str, None] = {}  # the nodes in the order met (networkx's insertion order): given, then edge ends
        if nodes is not None:
            met.update((str(n), None) for n in nodes)
        pairs = [(str(parent), str(child)) for parent, child in edges]
        for parent, child in pairs:
            if parent == child:
                raise ValueError(f"hierarchy edge {parent!r} -> {child!r} is a self-loop")
            met[parent] = met[child] = None
        if not met:
            raise ValueError("a hierarchy needs at least one node")
        self._met = list(met)
        self._edge_pairs = pairs
        position = {n: i for i, n in enumerate(self._met)}
        unique = list(dict.fromkeys(pairs))
        parent_at = np.fromiter((position[p] for p, _ in unique), dtype=np.int64, count=len(unique))
        child_at = np.fromiter((position[c] for _, c in unique), dtype=np.int64, count=len(unique))
        parent_at, child_at = _by_parent(parent_at, child_at)
        levels = _kahn_levels(len(self._met), parent_at, child_at)
        if levels is None:
            import networkx as nx

            cycle = nx.find_cycle(self.graph)
            path = " -> ".join([cycle[0][0]] + [v for _, v in cycle])
            raise ValueError(f"the hierarchy has a cycle: {path}")
        order_at, depth_at = levels
        by_depth: dict[int, list[str]] = {}
        for n, d in zip(self._met, depth_at.tolist()):
            by_depth.setdefault(d, []).append(n)
        column_nodes = [n for d in sorted(by_depth) for n in sorted(by_depth[d])]  # by (depth, id)
        column_of = np.fromiter((position[n] for n in column_nodes), dtype=np.int64, count=len(column_nodes))
        column = np.empty_like(column_of)
        column[column_of] = np.arange(len(column_of))
        self._set_structure(column_nodes, depth_at[column_of], column[parent_at], column[child_at],
                            column[order_at], skip_eval)

    @classmethod
    def _from_column_order(cls, nodes: list[Any], edges: list[Any], skip_eval: Iterable[str]) -> Hierarchy | None:
        """The hierarchy of data already in :meth:`to_dict`'s form, without the general constructor's work.

        The stored order is checked, not rebuilt: string ids, each once, every edge between two of them
        (no self-loop, no repeat), no cycle, and ``nodes`` sorted by (shortest-path depth, id). The work is
        a dict of the ids, one pass over the edges and :func:`_kahn_levels` (a 111,111-node run's hierarchy
        reads in 0.10-0.12 s instead of 0.33-0.52 s: bench/README.md, *The explorer on a 100k-node run*).

        Returns
        -------
        Hierarchy or None
            None when the data is not in that form; the constructor then says what is wrong.
        """
        if not nodes or set(map(type, nodes)) != {str}:
            return None
        index = dict(zip(nodes, range(len(nodes))))
        if len(index) != len(nodes):
            return None
        try:
            if set(map(len, edges)) - {2}:
                return None
            parent, child = (np.fromiter(map(index.__getitem__, map(operator.itemgetter(end), edges)),
                                         dtype=np.int64, count=len(edges)) for end in (0, 1))
        except (KeyError, TypeError):
            return None
        n = len(nodes)
        key = np.sort(parent * n + child)
        if (parent == child).any() or (key[1:] == key[:-1]).any():
            return None
        parent, child = _by_parent(parent, child)
        levels = _kahn_levels(n, parent, child)
        if levels is None:
            return None
        order, depth = levels
        step = np.diff(depth)
        same = np.flatnonzero(step == 0).tolist()
        if (step < 0).any() or not all(map(operator.lt, map(nodes.__getitem__, same),
                                           map(nodes.__getitem__, [i + 1 for i in same]))):
            return None
        h = cls.__new__(cls)
        h._met = nodes
        h._edge_pairs = edges  # [parent, child] lists: networkx takes any pair
        h._set_structure(nodes, depth, parent, child, order, skip_eval, index)
        return h

    def _set_structure(self, nodes: list[str], depth: np.ndarray, edge_parent: np.ndarray, edge_child: np.ndarray,
                       order: np.ndarray, skip_eval: Iterable[str] | None, index: dict[str, int] | None = None
                       ) -> None:
        """Set the attributes from the nodes in column order, their depths, the edges (columns, each once, in
        ``graph.edges``' order), a topological order (columns) and, if built already, the nodes' index."""
        self.nodes = nodes
        self.index = dict(zip(nodes, range(len(nodes)))) if index is None else index
        self.n_nodes = len(nodes)
        self.depth = depth.astype(np.int64, copy=False)
        self._edge_parent = edge_parent
        self._edge_child = edge_child
        self._order = order
        has_parent = np.zeros(self.n_nodes, dtype=bool)
        has_parent[edge_child] = True
        self.roots = sorted(nodes[i] for i in np.flatnonzero(~has_parent).tolist())
        skipped = set(self.roots) if skip_eval is None else {str(s) for s in skip_eval}
        self.skipped = sorted(s for s in skipped if s in self.index)
        self.eval_mask = np.ones(self.n_nodes, dtype=bool)
        self.eval_mask[[self.index[s] for s in self.skipped]] = False
        self._pairs: tuple[np.ndarray, np.ndarray] | None = None  # ancestor_pairs, built on first use
        self._ancestor_csr: sp.csr_matrix | None = None

    @functools.cached_property
    def _links(self) -> tuple[list[int], list[int], list[int], list[int]]:
        """Children and parents of each column as CSR lists, in column order (built on first use).

        Returns
        -------
        child_start, child_cols, parent_start, parent_cols : list of int
            The children of column ``i`` are ``child_cols[child_start[i]:child_start[i + 1]]``; parents alike.
        """
        groups = []
        for by, other in ((self._edge_parent, self._edge_child), (self._edge_child, self._edge_parent)):
            start = np.zeros(self.n_nodes + 1, dtype=np.int64)
            np.cumsum(np.bincount(by, minlength=self.n_nodes), out=start[1:])
            groups += [start.tolist(), other[np.lexsort((other, by))].tolist()]
        return groups[0], groups[1], groups[2], groups[3]

    @functools.cached_property
    def graph(self) -> nx.DiGraph:
        """Parent -> child edges as a :class:`networkx.DiGraph`, built on first use (then kept).

        Its nodes and each node's neighbours are in the order the constructor met them, as when the graph
        was built there.
        """
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self._met)
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
        _, _, start, cols = self._links
        i = self.index[self._check(node)]
        return [self.nodes[j] for j in cols[start[i]:start[i + 1]]]

    def children(self, node: str) -> list[str]:
        """Direct children of ``node`` in column order (empty for a leaf)."""
        start, cols, _, _ = self._links
        i = self.index[self._check(node)]
        return [self.nodes[j] for j in cols[start[i]:start[i + 1]]]

    def ancestors(self, node: str) -> list[str]:
        """All proper ancestors of ``node`` (every node with a path to it), in column order."""
        _, _, start, cols = self._links
        return self._reached(node, start, cols)

    def descendants(self, node: str) -> list[str]:
        """All proper descendants of ``node``, in column order."""
        start, cols, _, _ = self._links
        return self._reached(node, start, cols)

    def _reached(self, node: str, start: list[int], cols: list[int]) -> list[str]:
        """The nodes reached from ``node`` (not itself) along one of :attr:`_links`' CSR lists, in column order."""
        found: set[int] = set()
        stack = [self.index[self._check(node)]]
        while stack:
            i = stack.pop()
            for j in cols[start[i]:start[i + 1]]:
                if j not in found:
                    found.add(j)
                    stack.append(j)
        return [self.nodes[j] for j in sorted(found)]

    def siblings(self, node: str) -> list[str]:
        """Other children of ``node``'s parents, in column order."""
        child_start, child_cols, parent_start, parent_cols = self._links
        i = self.index[self._check(node)]
        sibs = {c for p in parent_cols[parent_start[i]:parent_start[i + 1]]
                for c in child_cols[child_start[p]:child_start[p + 1]]} - {i}
        return [self.nodes[j] for j in sorted(sibs)]

    def first_parent(self, node: str) -> str | None:
        """The parent of smallest column index (shallowest, then by id); None for a root.

        Used to draw a DAG as a spanning tree (the "first-parent" tree).
        """
        parents = self.parents(node)
        return parents[0] if parents else None

    @property
    def is_tree(self) -> bool:
        """True when every node has at most one parent."""
        return int(np.bincount(self._edge_child, minlength=self.n_nodes).max(initial=0)) <= 1

    @property
    def leaves(self) -> list[str]:
        """Nodes without children, in column order."""
        has_child = np.zeros(self.n_nodes, dtype=bool)
        has_child[self._edge_parent] = True
        return [self.nodes[i] for i in np.flatnonzero(~has_child).tolist()]

    @property
    def n_edges(self) -> int:
        """Number of parent -> child edges ``E``."""
        return len(self._edge_parent)

    def edges(self, among: Collection[str] | None = None) -> list[tuple[str, str]]:
        """The ``(parent, child)`` edges, each once, in the order of ``graph.edges`` (without building ``graph``).

        Parameters
        ----------
        among : collection of str, optional
            Keep only the edges whose two ends are in it (names that are not nodes are ignored).

        Returns
        -------
        list of (str, str)
        """
        parent, child = self._edge_parent, self._edge_child
        if among is not None:
            keep = np.zeros(self.n_nodes, dtype=bool)
            keep[[self.index[n] for n in set(among) if n in self.index]] = True
            both = keep[parent] & keep[child]
            parent, child = parent[both], child[both]
        nodes = self.nodes
        return [(nodes[p], nodes[c]) for p, c in zip(parent.tolist(), child.tolist())]

    # ----------------------------------------------------------------- matrices
    def edge_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Column indices of every edge, in the order of :meth:`edges`.

        Returns
        -------
        child, parent : numpy.ndarray of int64, shape (E,)
            ``child[e]`` and ``parent[e]`` are the columns of edge ``e``.
        """
        return self._edge_child.copy(), self._edge_parent.copy()

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
            _, _, start, cols = self._links
            ancestors: list[set[int]] = [set()] * self.n_nodes
            for i in self._order.tolist():  # every parent's set is complete before its children's
                parents = cols[start[i]:start[i + 1]]
                anc = set(parents)
                for p in parents:
                    anc |= ancestors[p]
                ancestors[i] = anc
            rows: list[int] = []
            found: list[int] = []
            for i, anc in enumerate(ancestors):
                anc_cols = sorted(anc | {i})
                rows.extend([i] * len(anc_cols))
                found.extend(anc_cols)
            self._pairs = np.asarray(rows, dtype=np.int64), np.asarray(found, dtype=np.int64)
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
        """JSON-serialisable form: nodes in column order, (parent, child) edges by (child, parent) column, skipped
        nodes."""
        by_child = np.lexsort((self._edge_parent, self._edge_child))
        return {
            "nodes": list(self.nodes),
            "edges": [[self.nodes[p], self.nodes[c]] for p, c in zip(self._edge_parent[by_child].tolist(),
                                                                      self._edge_child[by_child].tolist())],
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
        h = cls._from_column_order(list(data["nodes"]), list(data["edges"]), data["skip_eval"])
        if h is None:  # not as to_dict writes it: the constructor names what is wrong
            h = cls(data["edges"], nodes=data["nodes"], skip_eval=data["skip_eval"])
            if h.nodes != list(data["nodes"]):
                raise ValueError("hierarchy data: the stored node order does not match the (depth, id) order")
        return h
