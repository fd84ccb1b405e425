"""Image runs on the dashboard: a node's missed and wrongly found test images, and how they are drawn.

For a run trained on an image dataset (:mod:`hmlc_core.images`), the node card
of the Hierarchy explorer shows the test images the ensemble misses for a node
(false negatives: the node is a true label, the decision rule does not predict
it) and those it wrongly finds (false positives), each with the node's
ensemble-mean probability; the Missed nodes page shows a strip of missed
images per missed node.

Where the images come from
--------------------------
Only from the run's own ``images.npz``, read by :meth:`hmlc_core.runs.Run.images`
(which checks the file before reading it), and addressed by **test row index**:
row ``i`` of ``RunImages.thumbnails`` is row ``i`` of ``predictions.npz``.
Nothing here takes a file name or path, so no URL or query parameter can make a
page read a file: the pages pass a node id (checked against the hierarchy) and
the rows these functions return.

Which examples come first
-------------------------
``order="confident"`` (the default) puts the most confidently wrong first, as a
"top losses" view: missed positives by ascending probability (the images the
ensemble is surest are *not* in the node: what it fails to recognise, or a
mislabelled image), false positives by descending probability. This is the
order of the per-example binary cross-entropy of the node, ``-log p`` for a
missed positive and ``-log(1 - p)`` for a false positive, from largest to
smallest. ``order="borderline"`` reverses both, so the near misses come first:
missed positives just under the threshold (a lower threshold would find them,
a *threshold failure*, docs/method.md, *Decision rules*) and false positives
just over it. Ties are broken by test row, so the order is deterministic.

Display names are user text (file names): :func:`caption_text` returns plain
text that the pages escape (``app_pages.common.md_text``) before Streamlit
renders it as markdown.

Pure numpy and Pillow; no Streamlit, no torch.
"""

from __future__ import annotations

import math

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from hmlc_core.hierarchy import Hierarchy

__all__ = ["ImageExample", "NodeErrors", "ORDERS", "DEFAULT_EXAMPLES", "STRIP_EXAMPLES", "DISPLAY_SIZE",
           "MAX_STRIP_NODES", "node_errors", "missed_examples", "display_image", "caption_text"]

ORDERS = {"confident": "most confidently wrong first", "borderline": "nearest the threshold first"}
"""Orders of :func:`node_errors` -> how the pages name them (module docstring, *Which examples come first*)."""
DEFAULT_EXAMPLES = 12
"""How many missed positives and false positives the node card shows."""
DISPLAY_SIZE = 96
"""Longest side of a displayed image in pixels (:func:`display_image`)."""
STRIP_EXAMPLES = 8
"""How many missed positives the Missed nodes page shows per node."""
MAX_STRIP_NODES = 20
"""Most missed nodes the Missed nodes page draws an image strip for (the table's first ones)."""


@dataclass(frozen=True)
class ImageExample:
    """One test image shown for a node.

    Attributes
    ----------
    row : int
        Its test row: the index into ``RunImages.thumbnails`` and the rows of ``predictions.npz``.
    name : str
        Its display name (user text: escape it where it is shown).
    probability : float
        The node's ensemble-mean probability on it, in [0, 1].
    """

    row: int
    name: str
    probability: float


@dataclass(frozen=True)
class NodeErrors:
    """A node's wrongly decided test images under a decision rule (:func:`node_errors`).

    Attributes
    ----------
    node : str
    false_negatives : list of ImageExample
        Missed positives (true label, not predicted), at most ``k``, in the chosen order.
    false_positives : list of ImageExample
        Predicted but not a true label, at most ``k``, in the chosen order.
    n_false_negatives, n_false_positives : int
        How many there are in all (the lists may be cut at ``k``).
    """

    node: str
    false_negatives: list[ImageExample]
    false_positives: list[ImageExample]
    n_false_negatives: int
    n_false_positives: int


def _check(y_true: np.ndarray, probs: np.ndarray, predicted: np.ndarray, hierarchy: Hierarchy,
           names: Sequence[str], k: int, order: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y_true, probs, predicted = np.asarray(y_true), np.asarray(probs), np.asarray(predicted)
    shape = (len(names), hierarchy.n_nodes)
    for label, array in (("y_true", y_true), ("probs", probs), ("predicted", predicted)):
        if array.shape != shape:
            raise ValueError(f"{label} has shape {array.shape}; {len(names)} test images and {hierarchy.n_nodes} "
                             f"nodes need {shape}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}; choose one of {', '.join(ORDERS)}")
    return y_true, probs, predicted


def _ranked(rows: np.ndarray, p: np.ndarray, ascending: bool, names: Sequence[str], k: int) -> list[ImageExample]:
    """The first ``k`` of ``rows`` by probability (ascending or descending), ties by row."""
    key = p[rows] if ascending else -p[rows]
    chosen = rows[np.lexsort((rows, key))][:k]
    return [ImageExample(int(r), str(names[r]), float(p[r])) for r in chosen]


def node_errors(y_true: np.ndarray, probs: np.ndarray, predicted: np.ndarray, hierarchy: Hierarchy, node: str,
                names: Sequence[str], k: int = DEFAULT_EXAMPLES, order: str = "confident") -> NodeErrors:
    """A node's missed positives and false positives on the test images, most instructive first.

    Parameters
    ----------
    y_true : numpy.ndarray of 0/1, shape (N, C)
        Test labels (``predictions.npz`` ``y_true``), columns in ``hierarchy.nodes`` order.
    probs : numpy.ndarray of float, shape (N, C)
        Ensemble-mean test probabilities (``mean_probs``), in [0, 1].
    predicted : numpy.ndarray of 0/1, shape (N, C)
        The decision rule's test predictions (:meth:`hmlc_core.decision.DecisionRule.predict` of ``probs``).
    hierarchy : Hierarchy
    node : str
        A node of ``hierarchy``.
    names : sequence of str, length N
        Display name of each test image (``RunImages.names``).
    k : int, default :data:`DEFAULT_EXAMPLES`
        Most examples of each kind returned (>= 1).
    order : {"confident", "borderline"}
        Module docstring, *Which examples come first*.

    Returns
    -------
    NodeErrors
        False negatives: rows with ``y_true == 1`` and ``predicted == 0`` in the node's column;
        false positives: ``y_true == 0`` and ``predicted == 1``.

    Raises
    ------
    KeyError
        If ``node`` is not in ``hierarchy``.
    ValueError
        If the arrays are not (N, C) with N = ``len(names)``, ``k < 1``, or ``order`` is unknown.
    """
    y_true, probs, predicted = _check(y_true, probs, predicted, hierarchy, names, k, order)
    if node not in hierarchy.index:
        raise KeyError(f"node {node!r} is not in the hierarchy")
    j = hierarchy.index[node]
    truth, decided, p = y_true[:, j] != 0, predicted[:, j] != 0, probs[:, j].astype(np.float64)
    fn_rows, fp_rows = np.flatnonzero(truth & ~decided), np.flatnonzero(~truth & decided)
    confident = order == "confident"
    return NodeErrors(node=node, false_negatives=_ranked(fn_rows, p, confident, names, k),
                      false_positives=_ranked(fp_rows, p, not confident, names, k),
                      n_false_negatives=len(fn_rows), n_false_positives=len(fp_rows))


def missed_examples(y_true: np.ndarray, probs: np.ndarray, predicted: np.ndarray, hierarchy: Hierarchy,
                    nodes: Iterable[str], names: Sequence[str], k: int = STRIP_EXAMPLES,
                    order: str = "confident") -> dict[str, NodeErrors]:
    """:func:`node_errors` of each of ``nodes`` (the Missed nodes page's strips), in the given order.

    Parameters and errors as :func:`node_errors`; the first :data:`MAX_STRIP_NODES` distinct nodes
    only, so a page never draws more strips than that.

    Returns
    -------
    dict of str to NodeErrors
        Node -> its errors, in the order of ``nodes``.
    """
    chosen = list(dict.fromkeys(nodes))[:MAX_STRIP_NODES]
    y_true, probs, predicted = _check(y_true, probs, predicted, hierarchy, names, k, order)
    return {node: node_errors(y_true, probs, predicted, hierarchy, node, names, k, order) for node in chosen}


def display_image(thumbnail: np.ndarray, size: int = DISPLAY_SIZE) -> np.ndarray:
    """A thumbnail scaled for display: crisp nearest-neighbour enlargement, or a box-filtered reduction.

    Parameters
    ----------
    thumbnail : numpy.ndarray of uint8, shape (H, W, 3)
    size : int, default :data:`DISPLAY_SIZE`
        Target longest side in pixels (>= 1).

    Returns
    -------
    numpy.ndarray of uint8, shape (H', W', 3)
        When ``max(H, W) <= size``: every pixel repeated ``f = size // max(H, W)`` times along both
        axes (an integer factor, so every source pixel becomes an ``f x f`` block), ``(f H, f W, 3)``;
        otherwise reduced with Pillow's box filter so the longest side is ``size``, keeping the aspect.

    Raises
    ------
    ValueError
        On a wrong dtype or shape, or ``size < 1``.
    """
    thumbnail = np.asarray(thumbnail)
    if thumbnail.dtype != np.uint8 or thumbnail.ndim != 3 or thumbnail.shape[2] != 3 or 0 in thumbnail.shape:
        raise ValueError(f"a thumbnail must be a uint8 array of shape (H, W, 3), got {thumbnail.dtype} "
                         f"{thumbnail.shape}")
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    height, width = thumbnail.shape[:2]
    side = max(height, width)
    if side <= size:
        factor = size // side
        return np.repeat(np.repeat(thumbnail, factor, axis=0), factor, axis=1)
    from PIL import Image  # imported here: 0.2 s of a dashboard server's first page view, for image runs only

    scale = size / side
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(thumbnail, mode="RGB").resize(shape, Image.Resampling.BOX))


def caption_text(example: ImageExample, max_chars: int = 32) -> str:
    """Plain-text caption of an image: the last part of its name (at most ``max_chars``) and its probability.

    ``"img007.png · 0.430"`` (three decimals, truncated, so that a miss just under 0.5 never reads 0.500); a longer file name keeps its end, after ``…``. Not escaped: the page escapes it.
    """
    base = example.name.replace("\\", "/").rsplit("/", 1)[-1] or example.name
    if len(base) > max_chars:
        base = "…" + base[-(max_chars - 1):]
    shown = math.floor(example.probability * 1000) / 1000  # truncated: a miss at 0.4996 must not read 0.500
    return f"{base} · {shown:.3f}"
