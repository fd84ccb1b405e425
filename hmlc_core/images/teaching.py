"""A generated teaching image dataset: coloured shapes with a four-level taxonomy and a long tail.

:func:`make_shapes` draws small RGB images of shapes with Pillow, labelled with
paths in a real taxonomy, so hierarchical image classification can be shown and
measured without downloading anything (``python -m hmlc_core train --dataset
shapes``). Everything is drawn from one :func:`numpy.random.default_rng`
generator seeded with ``seed``, so a seed fixes every pixel and label.

For lecturers: the taxonomy
---------------------------
Node ids are ``/``-joined paths under a single ``root`` (skipped in evaluation),
e.g. ``polygon/triangle/striped/small``. Each level adds one visible property:

=====  ===========  ===========================================================
depth  level        nodes (children in order of frequency)
=====  ===========  ===========================================================
1      family       ``polygon``, ``round``, ``symbol``
2      shape        polygon: ``triangle``, ``square``, ``hexagon``;
                    round: ``circle``, ``ellipse``, ``semicircle``;
                    symbol: ``cross``, ``star``, ``arrow``
3      pattern      ``striped``, ``outline`` (hollow), ``dotted``
4      size         ``small``, ``large``
=====  ===========  ===========================================================

3 + 9 + 27 + 54 = 93 nodes plus ``root`` (C = 94 columns). A label goes only as
deep as the image shows a distinguishing property, as an annotator of seafloor
photographs (BenthicNet) names a genus only when it can be seen: a shape filled
with one plain colour has no pattern node (it is labelled ``round/circle``), and
a patterned shape of ordinary (medium) size has no size node (it is labelled
``round/circle/dotted``). Deeper nodes are rarer for two reasons, as in the real
data: fewer images go that deep, and each level splits its parent's images among
its children, unevenly (a few common children, a tail of rare ones).

Generative process
------------------
**Labels.** Each image walks down from ``root``:

1. at every level the child is drawn with Zipf-like probabilities
   ``z_k ∝ k**(-zipf_exponent)`` for the k-th child in the table's order; with
   the default exponent 0.8, three children get ``z = (0.503, 0.289, 0.209)``
   and two ``z = (0.635, 0.365)``;
2. the walk always reaches depth 2 (every image shows a named shape) and, after
   depths 2 and 3, goes one level deeper with probability ``p_continue``
   (default 0.7), so it reaches depth 3 with probability 0.7 and depth 4 with 0.49;
3. with probability ``p_second`` (default 0.15) the image holds a second shape
   with its own, independent walk (multi-label); the label set is the union of
   both paths plus ``root`` (coherent by construction).

A node at depth ``d`` reached through children ``k_1..k_d`` lies on one path
with probability ``pi = reach_d * prod_i z_{k_i}`` (``reach = 1, 1, 0.7, 0.49``);
it is positive with probability ``1 - (1 - pi) * (1 - p_second * pi)``. With
the defaults this gives, per node and over the 2000 training images (expected
values):

=====  =====  ===============  ===========================  ======================================
depth  nodes  P(walk reaches)  mean positive rate per node  train positives per node (mean / most / least)
=====  =====  ===============  ===========================  ======================================
1      3      1.00             0.364                        729 / 1080 / 467
2      9      1.00             0.125                        251 / 562 / 100
3      27     0.70             0.0297                       59 / 202 / 14.6
4      54     0.49             0.0104                       20.8 / 90 / 3.7
=====  =====  ===============  ===========================  ======================================

so the rarest size nodes (``symbol/arrow/dotted/large``) have a handful of
training images, and the most common one about 24 times as many: a long tail.

**Images.** Each image is drawn at 4x its size and downsampled with a box
filter (anti-aliasing, as a camera integrates light), then Gaussian noise of
standard deviation ``noise`` (default 6, in 0-255 units) is added. The
background is a linear gradient between two random colours of similar
brightness, crossed by 0-2 thin lines of random colour (clutter). A shape
has a uniform random rotation, a random centre that keeps it inside the image
(a second shape is placed at the farthest of 4 candidate centres from the
first, and may overlap it), and a random hue; its brightness differs from the
background's by 0.35-0.65 (HSV value). Its circumradius is 5-6.5 px (``small``),
8-10 px (medium, no node) or 12-14 px (``large``) at 32 px; other image sizes
scale these. Patterns: ``striped`` alternates the shape's colour with a shade
between it and the background in bands of period 4 px at a random angle;
``dotted`` puts dots of the shape's colour (radius 1 px, spacing 4 px) on that
shade; ``outline`` draws only a 1.5 px border. Colour carries no label
information, so a model must see form, texture and size.

**Difficulty.** As a check (defaults, seed 0), one logistic regression per
node (``C=0.01``) on translation-invariant features (the log magnitudes of the
2-D Fourier transforms of the grey image and of its gradient magnitude,
standardised) reaches a test ROC AUC of 0.84 for ``polygon``, 0.87 for
``round`` and 0.78 for ``symbol`` (average precision 0.86, 0.77 and 0.56
against prevalences 0.55, 0.31 and 0.23), and a mean AUC of 0.78, 0.81 and 0.82
at depths 2, 3 and 4 (mean average precision 0.41, 0.24 and 0.25; nodes with at
least 2 training and 1 test positive): well above chance (AUC 0.5), far from
solved. The same model on the raw pixels stays at chance (AUC 0.47-0.51 at
depth 1), since the shapes move, turn and change colour: the task needs features
that a CNN learns.

Images are drawn i.i.d. and split in order: the first ``n_train`` images are
train, the next ``n_valid`` valid, the rest test. Display names are
``<split>/<index>.png`` (six digits).
"""

from __future__ import annotations

import colorsys
import logging
import math

import numpy as np
from PIL import Image, ImageDraw

from hmlc_core.data import HMCDataset
from hmlc_core.hierarchy import Hierarchy
from hmlc_core.images.sets import image_dataset
from hmlc_core.synthetic import check_float, check_int

__all__ = ["FAMILIES", "PATTERNS", "SIZES", "SHAPES_ROOT", "make_shapes", "shapes_hierarchy"]

log = logging.getLogger(__name__)

FAMILIES: dict[str, tuple[str, ...]] = {
    "polygon": ("triangle", "square", "hexagon"),
    "round": ("circle", "ellipse", "semicircle"),
    "symbol": ("cross", "star", "arrow"),
}
"""Depth 1 (family) -> depth 2 (shape), each in order of frequency (most frequent first)."""

PATTERNS: tuple[str, ...] = ("striped", "outline", "dotted")
"""Depth 3, under every shape (a plain fill has no pattern node)."""

SIZES: tuple[str, ...] = ("small", "large")
"""Depth 4, under every pattern (medium size has no size node)."""

SHAPES_ROOT = "generated:shapes"
"""The :attr:`~hmlc_core.images.sets.ImageSet.root` and split source of the generated images."""

_SUPERSAMPLE = 4  # draw at 4x and box-downsample
_RADIUS = {"small": (5.0, 6.5), "medium": (8.0, 10.0), "large": (12.0, 14.0)}  # circumradius at 32 px
_PERIOD = 4.0  # stripe period and dot spacing at 32 px
_DOT_RADIUS = 1.0
_OUTLINE_WIDTH = 1.5
_CIRCLE_POINTS = 48


def _levels() -> list[list[str]]:
    """The node ids of depths 1-4, each in flat order (children of a parent consecutive, in frequency order)."""
    depth1 = list(FAMILIES)
    depth2 = [f"{f}/{s}" for f in FAMILIES for s in FAMILIES[f]]
    depth3 = [f"{s}/{p}" for s in depth2 for p in PATTERNS]
    depth4 = [f"{p}/{z}" for p in depth3 for z in SIZES]
    return [depth1, depth2, depth3, depth4]


def shapes_hierarchy() -> Hierarchy:
    """The taxonomy of :func:`make_shapes`: 93 path-named nodes under ``root`` (skipped in evaluation)."""
    edges = [("root" if "/" not in node else node.rsplit("/", 1)[0], node) for level in _levels() for node in level]
    return Hierarchy(edges, skip_eval={"root"})


# ------------------------------------------------------------ drawing
def _outline(shape: str, rng: np.random.Generator) -> np.ndarray:
    """Vertices (K, 2) of ``shape`` with circumradius about 1, centred on 0, before rotation."""
    if shape in ("triangle", "square", "hexagon"):
        k = {"triangle": 3, "square": 4, "hexagon": 6}[shape]
        t = 2 * np.pi * np.arange(k) / k
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    if shape in ("circle", "ellipse"):
        t = 2 * np.pi * np.arange(_CIRCLE_POINTS) / _CIRCLE_POINTS
        squash = rng.uniform(0.45, 0.6) if shape == "ellipse" else 1.0
        return np.stack([np.cos(t), squash * np.sin(t)], axis=1)
    if shape == "semicircle":
        t = np.pi * np.arange(_CIRCLE_POINTS // 2 + 1) / (_CIRCLE_POINTS // 2)
        # centred on its middle, not on the circle's; scaled so its farthest corners are at distance 1
        return np.stack([np.cos(t), np.sin(t) - 0.4], axis=1) / math.hypot(1.0, 0.4)
    if shape == "cross":
        a = 0.32
        arm = np.array([[a, a], [a, 1.0], [-a, 1.0]])  # one arm of the plus sign; the others are quarter turns
        quarter_turn = np.array([[0.0, -1.0], [1.0, 0.0]])
        arms = [arm @ np.linalg.matrix_power(quarter_turn, q).T for q in range(4)]
        return np.concatenate(arms) / math.hypot(a, 1.0)
    if shape == "star":
        t = np.pi / 2 + np.pi * np.arange(10) / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    if shape == "arrow":
        return np.array([[-1.0, -0.22], [0.15, -0.22], [0.15, -0.6], [1.0, 0.0], [0.15, 0.6], [0.15, 0.22],
                         [-1.0, 0.22]])
    raise ValueError(f"unknown shape {shape!r}")


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """0-255 RGB of a hue, saturation and value in [0, 1] (:func:`colorsys.hsv_to_rgb`)."""
    return tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(h, s, v))  # type: ignore[return-value]


class _Canvas:
    """Pixel coordinates of the supersampled canvas, shared by every image of one size."""

    def __init__(self, image_size: int) -> None:
        self.size = image_size
        self.big = image_size * _SUPERSAMPLE
        self.scale = image_size / 32.0 * _SUPERSAMPLE  # big-canvas pixels per pixel of a 32 px image
        coords = (np.arange(self.big, dtype=np.float32) + 0.5) / self.scale
        self.yy, self.xx = np.meshgrid(coords, coords, indexing="ij")  # in 32 px units
        small = (np.arange(image_size, dtype=np.float32) + 0.5) * np.float32(32.0 / image_size)
        self.y_small, self.x_small = np.meshgrid(small, small, indexing="ij")


def _background(canvas: _Canvas, rng: np.random.Generator) -> tuple[Image.Image, float]:
    """A gradient between two random colours of similar brightness, with 1-3 thin clutter lines."""
    value = rng.uniform(0.1, 0.9)
    c0 = np.array(_rgb(rng.random(), rng.uniform(0.0, 0.6), value), dtype=np.float32)
    c1 = np.array(_rgb(rng.random(), rng.uniform(0.0, 0.6), float(np.clip(value + rng.uniform(-0.1, 0.1), 0, 1))),
                  dtype=np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    cos, sin = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    t = cos * canvas.x_small + sin * canvas.y_small  # in [lo, lo + 32 (|cos| + |sin|)]
    lo = 32.0 * (min(cos, 0.0) + min(sin, 0.0))
    t = (t - np.float32(lo)) / np.float32(32.0 * (abs(cos) + abs(sin)))
    # a linear gradient: computed at the final size and enlarged (bilinear is exact for it away from the edges)
    small = Image.fromarray((c0 + t[..., None] * (c1 - c0)).astype(np.uint8))
    pil = small.resize((canvas.big, canvas.big), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(pil)
    for _ in range(int(rng.integers(0, 3))):
        ends = rng.uniform(0, canvas.big, size=4)
        colour = _rgb(rng.random(), rng.random(), rng.random())
        draw.line([(ends[0], ends[1]), (ends[2], ends[3])], fill=colour, width=max(1, round(canvas.scale * 0.6)))
    return pil, value


def _shape_colours(rng: np.random.Generator, bg_value: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The shape's colour (brightness 0.35-0.65 from the background's, clipped to [0, 1]) and its pattern shade.

    Both as 0-255 RGB; the shade's brightness is halfway between the colour's and the background's.
    """
    gap = rng.uniform(0.35, 0.65)
    brighter = bg_value + gap <= 1.0 and (bg_value - gap < 0.0 or rng.random() < 0.5)
    value = float(np.clip(bg_value + gap if brighter else bg_value - gap, 0.0, 1.0))
    colour = _rgb(rng.random(), rng.uniform(0.3, 1.0), value)
    shade = _rgb(rng.random(), rng.uniform(0.0, 0.5), (value + bg_value) / 2)
    return colour, shade


def _draw_shape(img: Image.Image, canvas: _Canvas, rng: np.random.Generator, shape: str, pattern: str | None,
                size: str, centre: np.ndarray, bg_value: float) -> None:
    """Paint one shape onto the supersampled RGB image ``img`` in place."""
    radius = rng.uniform(*_RADIUS[size])
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (_outline(shape, rng) @ rot.T * radius + centre) * canvas.scale
    colour, shade = _shape_colours(rng, bg_value)
    xy = [tuple(p) for p in points.tolist()]
    draw = ImageDraw.Draw(img)
    if pattern == "outline":
        draw.polygon(xy, outline=colour, width=max(1, round(_OUTLINE_WIDTH * canvas.scale)))
        return
    if pattern is None:
        draw.polygon(xy, fill=colour)
        return
    # striped or dotted: the shape in its shade, then the pattern in its colour, inside the shape's box only
    draw.polygon(xy, fill=shade)
    x0, y0 = np.clip(np.floor(points.min(axis=0)).astype(int), 0, canvas.big)
    x1, y1 = np.clip(np.ceil(points.max(axis=0)).astype(int) + 1, 0, canvas.big)
    mask = Image.new("L", (canvas.big, canvas.big), 0)
    ImageDraw.Draw(mask).polygon(xy, fill=255)
    inside = np.asarray(mask)[y0:y1, x0:x1] > 127
    xx, yy = canvas.xx[y0:y1, x0:x1], canvas.yy[y0:y1, x0:x1]
    theta = rng.uniform(0, np.pi)
    offset = rng.uniform(0, _PERIOD, size=2)
    u = np.cos(theta) * xx + np.sin(theta) * yy + offset[0]
    if pattern == "striped":
        on = (u / _PERIOD) % 1.0 < 0.5
    else:
        v = -np.sin(theta) * xx + np.cos(theta) * yy + offset[1]
        du = (u % _PERIOD) - _PERIOD / 2
        dv = (v % _PERIOD) - _PERIOD / 2
        on = du * du + dv * dv < _DOT_RADIUS**2
    img.paste(colour, (int(x0), int(y0)), Image.fromarray(((inside & on) * 255).astype(np.uint8)))


def _centres(rng: np.random.Generator, sizes: list[str]) -> list[np.ndarray]:
    """Shape centres in 32 px units: inside the image; a second shape far from the first (best of 4)."""
    out: list[np.ndarray] = []
    for k, size in enumerate(sizes):
        margin = _RADIUS[size][1] + 0.5
        low, high = margin, 32.0 - margin
        if k == 0:
            out.append(rng.uniform(low, high, size=2))
        else:
            candidates = rng.uniform(low, high, size=(4, 2))
            out.append(candidates[int(np.argmax(np.linalg.norm(candidates - out[0], axis=1)))])
    return out


def _render(canvas: _Canvas, rng: np.random.Generator, objects: list[tuple[str, str | None, str]],
            noise: float) -> np.ndarray:
    """One uint8 image (size, size, 3) showing ``objects`` (shape, pattern or None, size class)."""
    img, bg_value = _background(canvas, rng)
    for (shape, pattern, size), centre in zip(objects, _centres(rng, [o[2] for o in objects])):
        _draw_shape(img, canvas, rng, shape, pattern, size, centre, bg_value)
    small = img.resize((canvas.size, canvas.size), Image.Resampling.BOX)
    out = np.asarray(small, dtype=np.float32) + rng.normal(0.0, noise, size=(canvas.size, canvas.size, 3))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_shapes(
    seed: int = 0,
    n_train: int = 2000,
    n_valid: int = 500,
    n_test: int = 1000,
    image_size: int = 32,
    *,
    p_continue: float = 0.7,
    zipf_exponent: float = 0.8,
    p_second: float = 0.15,
    noise: float = 6.0,
) -> HMCDataset:
    """Generate the ``shapes`` teaching image dataset (taxonomy, process and expected counts: the module docstring).

    Parameters
    ----------
    seed : int, default 0
        Seed of the :func:`numpy.random.default_rng` generator (>= 0). The same
        arguments give identical pixels and labels.
    n_train, n_valid, n_test : int, default 2000, 500, 1000
        Images per split; each >= 1.
    image_size : int, default 32
        Height and width in pixels (>= 16); shape sizes, stripe period and
        outline width scale with it.
    p_continue : float in [0, 1], default 0.7
        Probability of going one level deeper after depths 2 and 3.
    zipf_exponent : float >= 0, default 0.8
        Skew of the child choice at every level (0 = uniform).
    p_second : float in [0, 1], default 0.15
        Probability that an image holds a second shape (a second label path).
    noise : float >= 0, default 6.0
        Standard deviation of the Gaussian pixel noise, in 0-255 units.

    Returns
    -------
    HMCDataset
        ``name="shapes"``, from :func:`hmlc_core.images.sets.image_dataset`: ``hierarchy``
        :func:`shapes_hierarchy`; each split's ``X`` float32 ``(N, 3 * image_size**2)`` normalised
        pixels and ``Y`` uint8 ``(N, 94)`` coherent; ``images.thumbnails`` uint8
        ``(N, image_size, image_size, 3)``; ``images.root`` and every split's source
        :data:`SHAPES_ROOT`; display names ``<split>/<index:06d>.png``.

    Raises
    ------
    ValueError
        If an argument has the wrong type or is out of range (the message names the argument).
    """
    seed = check_int("seed", seed, 0)
    n_train = check_int("n_train", n_train, 1)
    n_valid = check_int("n_valid", n_valid, 1)
    n_test = check_int("n_test", n_test, 1)
    image_size = check_int("image_size", image_size, 16)
    p_continue = check_float("p_continue", p_continue, 0.0, 1.0)
    zipf_exponent = check_float("zipf_exponent", zipf_exponent, 0.0)
    p_second = check_float("p_second", p_second, 0.0, 1.0)
    noise = check_float("noise", noise, 0.0)

    hierarchy = shapes_hierarchy()
    levels = _levels()
    columns = [np.array([hierarchy.index[n] for n in ids], dtype=np.int64) for ids in levels]
    branching = [len(FAMILIES), len(next(iter(FAMILIES.values()))), len(PATTERNS), len(SIZES)]
    if any(len(v) != branching[1] for v in FAMILIES.values()):
        raise ValueError("every family needs the same number of shapes")
    rng = np.random.default_rng(seed)

    # ------------------------------------------------------------ labels
    n = n_train + n_valid + n_test
    zipf = [np.arange(1, b + 1, dtype=np.float64) ** (-zipf_exponent) for b in branching]
    zipf = [z / z.sum() for z in zipf]
    Y = np.zeros((n, hierarchy.n_nodes), dtype=np.uint8)
    Y[:, hierarchy.index["root"]] = 1

    def walk() -> tuple[np.ndarray, np.ndarray]:
        """Per image, the child chosen at each depth (n, 4) and the depth reached (2-4)."""
        choices = np.stack([rng.choice(b, size=n, p=z) for b, z in zip(branching, zipf)], axis=1)
        goes_on = rng.random((n, 2)) < p_continue
        return choices, 2 + np.cumprod(goes_on, axis=1).sum(axis=1)

    paths = [walk()]
    second = rng.random(n) < p_second
    paths.append(walk())
    objects: list[list[tuple[str, str | None, str]]] = [[] for _ in range(n)]
    for k, (choices, length) in enumerate(paths):
        rows = np.ones(n, dtype=bool) if k == 0 else second
        flat = np.zeros(n, dtype=np.int64)
        for d in range(4):
            flat = flat * branching[d] + choices[:, d]
            on = rows & (length >= d + 1)
            Y[on, columns[d][flat[on]]] = 1
        for i in np.flatnonzero(rows):
            fam, shp, pat, siz = (int(c) for c in choices[i])
            family = list(FAMILIES)[fam]
            objects[i].append((FAMILIES[family][shp], PATTERNS[pat] if length[i] >= 3 else None,
                               SIZES[siz] if length[i] >= 4 else "medium"))

    # ------------------------------------------------------------ images
    canvas = _Canvas(image_size)
    pixels = np.stack([_render(canvas, rng, objs, noise) for objs in objects])
    bounds = np.cumsum([n_train, n_valid])
    names = ("train", "valid", "test")
    split_pixels = dict(zip(names, np.split(pixels, bounds)))
    split_labels = dict(zip(names, np.split(Y, bounds)))
    split_names = {s: [f"{s}/{i:06d}.png" for i in range(len(split_pixels[s]))] for s in names}
    log.debug("generated %d shapes images of %d px (seed %d)", n, image_size, seed)
    return image_dataset("shapes", hierarchy, split_pixels, split_labels, split_names, SHAPES_ROOT)

