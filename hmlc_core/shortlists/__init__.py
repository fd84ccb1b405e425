"""Shortlist training for very large hierarchies: LightDXML's label-embedding shortlists with MCLoss.

Source and our reading
----------------------
Mishra, Dasgupta, Jawanpuria, Mishra & Kumar, *Light-weight Deep Extreme Multilabel Classification*
(LightDXML), IJCNN 2023, arXiv 2304.11045. Only the abstract and the authors' released code
(github.com/misterpawan/LightDXML, built on DeepXML) could be read, not the method section, so no section
number is cited. From them: LightDXML cycles through (1) proxy training of label embeddings, (2)
shortlisting labels for negative sampling by nearest-neighbour search with those embeddings (HNSW, cosine,
as in the released configurations) and (3) training the final classifier on the positives and the
shortlisted negatives, and rebuilds the shortlist every few epochs (8 in the released configurations); the
label embeddings start as the mean of the representations of each label's positives. Our version, per phase:

1. label embeddings: each node's normalised mean of its training positives' normalised trunk
   representations, recomputed from the current trunk at every cycle; the "proxy training" is one or more
   epochs of MCLoss on the shallow nodes (a surrogate task whose labels cluster the deeper ones) before the
   first shortlist (:mod:`hmlc_core.shortlists.training`). LightDXML's extra learned map of the label
   embeddings is not used;
2. shortlists: the ``k`` nearest non-positive label embeddings of each training sample's representation
   (:mod:`hmlc_core.shortlists.ann`);
3. MCLoss restricted to each sample's positives (ancestors included, as labels are propagated) and
   shortlisted negatives, optionally with weighted uniform negatives, the hierarchy constraint taken within
   that set (:mod:`hmlc_core.shortlists.scored`, which states the approximation and its cost); the classifier
   rows with SparseAdam or :class:`~hmlc_core.shortlists.optim.CatchUpAdam` (dense Adam's updates).

Prediction scores the ``k`` nearest label embeddings of a sample and their ancestors and returns sparse
scores (:class:`~hmlc_core.shortlists.training.SparseScores`).

:func:`hmlc_core.train.train` runs :func:`train_shortlist` when ``TrainConfig.shortlist`` is set (``python -m
hmlc_core train --shortlist K``, with ``--shortlist-cycle``, ``--shortlist-proxy-epochs`` and
``--shortlist-ann``) and saves the dense ensemble (:meth:`ShortlistNetwork.to_ensemble`) as any run.

The ANN library: faiss
----------------------
``faiss-cpu`` (Meta's faiss, MIT licence, releases every few months) ships binary wheels for every CPython
from 3.10 on (one ``abi3`` wheel), holds exact (``IndexFlatIP``) and HNSW (``IndexHNSWFlat``) indexes
behind one API, searches in batches with BLAS and OpenMP, and builds an HNSW graph over 100,000 vectors of
64 dimensions in about 25 s on two busy cores here. The alternatives: ``hnswlib``, which LightDXML's code
uses, publishes only a source distribution (0.8.0) that needs a C++ compiler, and ``pynndescent`` is pure
Python on numba but JIT-compiles its kernels on first use (seconds to tens of seconds per process) and its
NN-descent graph is randomised.
"""

from hmlc_core.shortlists.ann import ANN_KINDS, LabelIndex, label_embeddings, shortlist_negatives
from hmlc_core.shortlists.network import ShortlistNetwork
from hmlc_core.shortlists.optim import CatchUpAdam
from hmlc_core.shortlists.scored import AncestorLists, ScoredSet, constrained_scored, scored_mc_loss, scored_set
from hmlc_core.shortlists.training import (ROW_OPTIMIZERS, ShortlistResult, SparseScores, build_index, embed,
                                           predict_shortlist, proxy_nodes, train_shortlist)

__all__ = ["ANN_KINDS", "CatchUpAdam", "ROW_OPTIMIZERS", "LabelIndex", "label_embeddings", "shortlist_negatives",
           "ShortlistNetwork", "AncestorLists", "ScoredSet", "constrained_scored", "scored_mc_loss", "scored_set",
           "ShortlistResult", "SparseScores", "build_index", "embed", "predict_shortlist", "proxy_nodes", "train_shortlist"]
