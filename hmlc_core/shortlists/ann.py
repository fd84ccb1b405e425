"""Phases 1 and 2 of LightDXML: label embeddings and per-sample shortlists of hard negative nodes.

Source: Mishra, Dasgupta, Jawanpuria, Mishra & Kumar, *Light-weight Deep Extreme Multilabel
Classification* (LightDXML), IJCNN 2023, arXiv 2304.11045: phase (1) label embeddings, phase (2)
shortlisting labels for negative sampling by approximate nearest neighbour (ANN) search over them
(abstract; our reading of the method is in :mod:`hmlc_core.shortlists`). The label embedding of a node is the
L2-normalised mean of the L2-normalised representations of its training positives, the initialisation of the
label embeddings in the authors' released code; the search is by cosine similarity, as there.

The ANN library is faiss (``faiss-cpu``); why is said in :mod:`hmlc_core.shortlists`. ``ANN_KINDS`` is
defined in the torch-free :mod:`hmlc_core.config` (``TrainConfig.shortlist_ann``) and re-exported here.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np
import scipy.sparse as sp

from hmlc_core.config import ANN_KINDS

__all__ = ["ANN_KINDS", "EXACT_MAX_NODES", "label_embeddings", "LabelIndex", "shortlist_negatives"]

log = logging.getLogger(__name__)

EXACT_MAX_NODES = 4096
"""Largest number of indexed nodes for which ``ann="auto"`` searches exhaustively."""

HNSW_M = 32
"""Neighbours per HNSW graph node (faiss ``M``); 32 is faiss's recommended value for recall above 0.95."""

HNSW_EF_CONSTRUCTION = 100
"""Candidate list size while building the HNSW graph (faiss ``efConstruction``)."""


def _normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero. float32, C-contiguous."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def label_embeddings(representations: np.ndarray, labels: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """Each node's embedding: the normalised mean of its training positives' normalised representations.

    ``e_j = normalise(sum_{i: y_ij = 1} normalise(r_i))`` (LightDXML's label embeddings as initialised in the
    authors' code, by cosine). Cost ``O(nnz(Y) x d)``.

    Parameters
    ----------
    representations : numpy.ndarray of float, shape (N, d)
        Sample representations (the trunk's last hidden layer, members concatenated).
    labels : scipy.sparse matrix or array of {0, 1}, shape (N, C)
        Propagated training labels.

    Returns
    -------
    numpy.ndarray of float32, shape (C, d)
        Unit rows; a node without training positives gets a zero row.

    Raises
    ------
    ValueError
        If the row counts differ.
    """
    r = _normalise(representations)
    y = sp.csr_matrix(labels, dtype=np.float32)
    if y.shape[0] != r.shape[0]:
        raise ValueError(f"labels have {y.shape[0]} rows but representations {r.shape[0]}")
    return _normalise(np.asarray(y.T @ r))


class LabelIndex:
    """A nearest-neighbour index over label embeddings (cosine similarity, via inner products of unit vectors).

    Parameters
    ----------
    embeddings : numpy.ndarray of float, shape (C, d)
        From :func:`label_embeddings`; rows are normalised again here.
    candidates : numpy.ndarray of bool, shape (C,)
        Nodes that may be returned (e.g. evaluated nodes with a non-zero embedding).
    kind : {"auto", "hnsw", "exact"}
        See :data:`ANN_KINDS`.
    threads : int, default 1
        OpenMP threads of faiss for building and searching. An HNSW graph built with one thread is
        deterministic (faiss draws its levels from a fixed seed); with more, insertion order varies and
        so may the graph.

    Attributes
    ----------
    nodes : numpy.ndarray of int64, shape (C_index,)
        Column of each indexed vector.
    kind : str
        ``"hnsw"`` or ``"exact"`` after resolving ``"auto"``.

    Raises
    ------
    ValueError
        On an unknown kind, mismatched shapes, or no candidate node.
    """

    def __init__(self, embeddings: np.ndarray, candidates: np.ndarray, kind: str = "auto", threads: int = 1) -> None:
        if kind not in ANN_KINDS:
            raise ValueError(f"ann kind must be one of {ANN_KINDS}, got {kind!r}")
        e = _normalise(embeddings)
        mask = np.asarray(candidates, dtype=bool)
        if mask.shape != (e.shape[0],):
            raise ValueError(f"candidates must have shape ({e.shape[0]},), got {mask.shape}")
        self.nodes = np.flatnonzero(mask).astype(np.int64)
        if self.nodes.size == 0:
            raise ValueError("no node can be shortlisted: every candidate embedding is missing")
        if kind == "auto":
            kind = "exact" if self.nodes.size <= EXACT_MAX_NODES else "hnsw"
        self.kind = kind
        self.threads = int(threads)
        dim = e.shape[1]
        if kind == "exact":
            self.index = faiss.IndexFlatIP(dim)
        else:
            self.index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        faiss.omp_set_num_threads(self.threads)
        self.index.add(np.ascontiguousarray(e[self.nodes]))

    def __len__(self) -> int:
        return int(self.nodes.size)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` indexed nodes most similar to each query.

        Parameters
        ----------
        queries : numpy.ndarray of float, shape (N, d)
            Normalised here.
        k : int, >= 1
            Capped at ``len(self)``.

        Returns
        -------
        nodes : numpy.ndarray of int64, shape (N, k')
            Columns, most similar first; ``-1`` where HNSW found fewer (``k' = min(k, len(self))``).
        similarity : numpy.ndarray of float32, shape (N, k')
            Cosine similarities (``-inf`` at the ``-1`` entries).
        """
        k = min(int(k), len(self))
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(2 * k, 64)
        faiss.omp_set_num_threads(self.threads)
        sim, pos = self.index.search(_normalise(queries), k)
        nodes = np.where(pos >= 0, self.nodes[np.clip(pos, 0, None)], -1)
        return nodes.astype(np.int64), np.where(pos >= 0, sim, -np.inf).astype(np.float32)


def shortlist_negatives(index: LabelIndex, queries: np.ndarray, labels: sp.csr_matrix, k: int,
                        batch_size: int = 4096) -> np.ndarray:
    """LightDXML's phase 2: each sample's ``k`` hard negative nodes, the nearest label embeddings that are not positive.

    The index is asked for ``k + p`` neighbours, ``p`` the largest number of positives of a sample in the
    batch, so that ``k`` non-positive nodes remain after the positives are removed (unless the index holds
    fewer). Cost: one ANN query per sample, ``O(N x (k + p))`` afterwards.

    Parameters
    ----------
    index : LabelIndex
    queries : numpy.ndarray of float, shape (N, d)
        Sample representations.
    labels : scipy.sparse.csr_matrix of {0, 1}, shape (N, C)
        The samples' propagated labels.
    k : int, >= 1
    batch_size : int
        Queries per ANN call.

    Returns
    -------
    numpy.ndarray of int64, shape (N, k)
        Node columns, most similar first, never a positive of the sample; ``-1`` pads rows with fewer.

    Raises
    ------
    ValueError
        If ``k < 1`` or the shapes disagree.
    """
    if k < 1:
        raise ValueError(f"the shortlist size k must be >= 1, got {k}")
    y = sp.csr_matrix(labels)
    if y.shape[0] != queries.shape[0]:
        raise ValueError(f"labels have {y.shape[0]} rows but queries {queries.shape[0]}")
    out = np.full((y.shape[0], k), -1, dtype=np.int64)
    for first in range(0, y.shape[0], batch_size):
        rows = y[first:first + batch_size]
        most = int(np.diff(rows.indptr).max(initial=0))
        nodes, _ = index.search(queries[first:first + batch_size], k + most)
        sample = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        positive = np.zeros(nodes.shape, dtype=bool)
        if rows.nnz:
            # A (row, node) pair is positive when it is among the row's label columns: match on row * C + node.
            width = y.shape[1]
            pos_keys = np.sort(sample * width + rows.indices)
            keys = np.arange(nodes.shape[0])[:, None] * width + nodes
            at = np.searchsorted(pos_keys, keys).clip(max=pos_keys.size - 1)
            positive = pos_keys[at] == keys
        keep = (nodes >= 0) & ~positive
        rank = np.cumsum(keep, axis=1) - 1
        r, c = np.nonzero(keep & (rank < k))
        out[first + r, rank[r, c]] = nodes[r, c]
    return out
