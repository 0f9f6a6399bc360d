"""Shapes on clutter: the offline default data set, drawn by the project itself in a few seconds.

Ten classes of small RGB images, one object each, in the spirit of CIFAR-10 (32x32, 50,000 train
and 10,000 test by default), so every experiment of He et al., 2015 (sec. 4.2) runs without a
download. Position, size, aspect, rotation and colour vary; the background is a colour gradient
with smooth blotches, thin distractor strokes, sometimes a stroke across the object, and pixel
noise. Colour carries no label: only shape and texture do.

How hard it is (ResNet-20, SGD lr 0.1, momentum 0.9, batch 64, 5,000 training images, test
accuracy on 1,000 others; chance is 10%): 15%, 14%, 26%, 38% after 50, 100, 150, 200 steps, 66%
after 300. An early version without clutter reached 91% in 200 steps: too easy for depth to show
over a long run, but right for a minute on a CPU: ``clutter=False`` (the data set "shapes-easy")
draws that version for the Train page's CPU presets.

The classes::

    circle, square, triangle, cross, ring, diamond, star        filled in one colour
    horizontal stripes, vertical stripes, checkerboard          textured patches; the gaps show
                                                                the background, so only the
                                                                texture tells them from a square

Square and diamond differ by 45 degrees, so rotation stays within +-15 degrees (stripes too).

Each object is drawn from its signed distance (negative inside, in pixels) with a one-pixel soft
edge, all images of a class at once, so a 60,000-image set is numpy arithmetic on a few chunks,
not a Python loop over pixels or images. The bounding box of every object (the pixels it covers
at all) is kept, so Grad-CAM can check where a model looked.

Everything is drawn from ``numpy.random.SeedSequence(seed)``: the same seed gives the same bytes,
whatever the number of threads; ``load_dataset`` draws the training and test splits from
independent child streams of its seed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

SHAPE_CLASSES = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "diamond",
    "star",
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
)

# Object size as a share of the image side: the radius of the circle that holds most of it.
RADIUS_RANGE = (0.14, 0.30)
MAX_ROTATION_DEGREES = 15.0  # square vs diamond and horizontal vs vertical stripes stay distinct
ASPECT_RANGE = (0.8, 1.25)  # width / height of the object before rotation
STRIPE_PERIOD_RANGE = (2.6, 4.0)  # pixels per light-dark cycle at 32x32
# Background colours stay within this range per channel. Fully random backgrounds made colour the
# dominant nuisance: ResNet-20 at lr 0.1 then sat near chance for 450 steps even without clutter.
BACKGROUND_RANGE = (0.3, 0.7)
# Euclidean RGB distance between object and background near it; the low end makes it hard.
CONTRAST_RANGE = (0.45, 0.85)
BLOTCH_GRID = 5  # coarse noise on a 5x5 grid, upsampled: smooth blotches
BLOTCH_AMPLITUDE = 0.22
STROKES_BEHIND = 5  # thin distractor strokes under the object
STROKE_ORIENTATIONS = 8  # each clutter template serves 8 images: flips and transposes
OCCLUDER_PROBABILITY = 0.5  # a thin stroke across the object in half the images
STROKE_LENGTH_RANGE = (0.12, 0.45)  # share of the side
STROKE_HALF_WIDTH_RANGE = (0.35, 0.9)  # pixels
PIXEL_NOISE_RANGE = (0.0, 0.07)
# Without clutter (``clutter=False``, the data set "shapes-easy"): a gradient background only, a
# stronger contrast and little noise, so that a 20-layer net learns the classes within a minute
# on a CPU and the presets can show depth's effect in that time (bench/results/presets-*).
EASY_CONTRAST_RANGE = (0.6, 0.9)
EASY_PIXEL_NOISE_RANGE = (0.0, 0.03)
# Pixels drawn at once: 2,048 images of 32x32. A float32 plane is then 8 MB, and numpy asks Linux
# to back arrays of 4 MB and more with huge pages: with 256 images, faulting in fresh pages for
# the temporaries took half the time. Each thread holds about 100 MB while it draws.
CHUNK_PIXELS = 2048 * 32 * 32
MAX_THREADS = 4


@dataclass(frozen=True, eq=False)
class ShapeImages:
    """One generated split; ``masks`` (the object's coverage, 0..1) only when asked for."""

    images: np.ndarray  # uint8 (N, H, W, 3)
    labels: np.ndarray  # int64 (N,)
    boxes: np.ndarray  # int32 (N, 4): row0, col0, row1, col1, exclusive ends
    masks: np.ndarray | None = None  # float32 (N, H, W)


def generate_shapes(
    count: int,
    seed: int | np.random.SeedSequence = 0,
    image_size: int = 32,
    *,
    clutter: bool = True,
    return_masks: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ShapeImages:
    """``count`` images with classes balanced to within one, in a seeded random order.

    ``clutter=False`` leaves out the blotches, the strokes and the occluders (see EASY_*).
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if image_size < 16:
        raise ValueError(f"shapes needs an image_size of at least 16 pixels, got {image_size}")
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    chunk_size = max(1, CHUNK_PIXELS // (image_size * image_size))
    parameters_seed, *chunk_seeds = sequence.spawn(1 + -(-count // chunk_size))
    params = _draw_parameters(count, image_size, np.random.default_rng(parameters_seed), clutter)

    images = np.empty((count, image_size, image_size, 3), np.uint8)
    boxes = np.empty((count, 4), np.int32)
    masks = np.empty((count, image_size, image_size), np.float32) if return_masks else None

    def draw(index: int) -> int:
        part = slice(index * chunk_size, min((index + 1) * chunk_size, count))
        chunk = {key: value[part] for key, value in params.items()}
        images[part], coverage = _draw_chunk(chunk, image_size, np.random.default_rng(chunk_seeds[index]), clutter)
        boxes[part] = _bounding_boxes(coverage > 0)
        if masks is not None:
            masks[part] = coverage
        return part.stop

    # numpy releases the GIL in its loops, so threads use every core; each chunk has its own
    # seed and its own slice of the output, so the order in which they finish changes nothing.
    with ThreadPoolExecutor(max_workers=min(MAX_THREADS, os.cpu_count() or 1)) as pool:
        for done in pool.map(draw, range(len(chunk_seeds))):
            if progress is not None:
                progress(done, count)
    return ShapeImages(images, params["label"].astype(np.int64), boxes, masks)


def _draw_parameters(count: int, size: int, rng: np.random.Generator, clutter: bool = True) -> dict[str, np.ndarray]:
    """Every per-image choice, drawn at once for the split; the chunks draw only pixel-level noise."""
    f32 = np.float32
    labels = rng.permutation(np.arange(count) % len(SHAPE_CLASSES))
    radius = rng.uniform(*RADIUS_RANGE, count) * size
    # Keep the whole object inside: a rotated, stretched square reaches ~1.4 radii from its centre.
    margin = np.minimum(1.4 * radius + 0.5, size / 2)
    rotation = np.deg2rad(rng.uniform(-MAX_ROTATION_DEGREES, MAX_ROTATION_DEGREES, count))
    contrast_range = CONTRAST_RANGE if clutter else EASY_CONTRAST_RANGE
    noise_range = PIXEL_NOISE_RANGE if clutter else EASY_PIXEL_NOISE_RANGE
    return {
        "label": labels,
        "radius": radius.astype(f32),
        "cx": (margin + rng.random(count) * (size - 2 * margin)).astype(f32),
        "cy": (margin + rng.random(count) * (size - 2 * margin)).astype(f32),
        "rotation": rotation.astype(f32),
        "aspect": np.exp(rng.uniform(*np.log(ASPECT_RANGE), count)).astype(f32),
        "period": (rng.uniform(*STRIPE_PERIOD_RANGE, count) * size / 32).astype(f32),
        "phase": rng.uniform(0, 2 * np.pi, count).astype(f32),
        "contrast": rng.uniform(*contrast_range, count).astype(f32),
        "direction": _unit_vectors(rng, count),
        "colour0": rng.uniform(*BACKGROUND_RANGE, (count, 3)).astype(f32),
        "colour1": rng.uniform(*BACKGROUND_RANGE, (count, 3)).astype(f32),
        "gradient_angle": rng.uniform(0, 2 * np.pi, count).astype(f32),
        "blotch": rng.uniform(0, BLOTCH_AMPLITUDE if clutter else 0, count).astype(f32),
        "noise": rng.uniform(*noise_range, count).astype(f32),
        "occluded": (rng.random(count) < OCCLUDER_PROBABILITY) & clutter,
    }


def _unit_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    vectors = rng.standard_normal((count, 3), np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def _draw_chunk(p: dict[str, np.ndarray], size: int, rng: np.random.Generator,
                clutter: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Background, strokes behind, the object, maybe an occluding stroke, noise; to uint8.

    Pixels are flattened (planes of shape (n, H*W), colour images (n, 3, H*W)) and layers are
    painted in place: numpy's inner loops then run over a thousand pixels rather than over three
    channels (an (n, H, W, 3) layout was several times slower).
    """
    n = len(p["label"])
    grid = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    yy, xx = np.repeat(grid, size), np.tile(grid, size)  # (H*W,), row-major

    image = _background(p, size, rng)
    # The object's colour contrasts with the background under it, not with a stroke that passes.
    colour = _contrasting_colour(_at_centre(image, p, size), p["direction"] * p["contrast"][:, None])
    scratch = np.empty_like(image)
    if clutter:
        _paint(image, *_clutter(n, size, yy, xx, rng), scratch)

    coverage = _object_coverage(p, yy, xx)
    _paint(image, coverage * _texture(p, yy, xx), colour[:, :, None], scratch)

    occluded = np.flatnonzero(p["occluded"])
    alpha = np.zeros_like(coverage)
    alpha[occluded], stroke_colour = _stroke(len(occluded), size, yy, xx, rng)
    colour[occluded] = stroke_colour
    _paint(image, alpha, colour[:, :, None], scratch)

    # Uniform noise with the drawn standard deviation: a quarter of the cost of Gaussian noise.
    noise = rng.random(image.shape, np.float32, out=scratch)
    noise -= 0.5
    noise *= (np.sqrt(np.float32(12)) * p["noise"])[:, None, None]
    image += noise
    image *= 255
    image += 0.5
    np.clip(image, 0, 255, out=image)
    pixels = image.astype(np.uint8).reshape(n, 3, size, size).transpose(0, 2, 3, 1)
    return pixels, coverage.reshape(n, size, size)


def _clutter(n, size, yy, xx, rng) -> tuple[np.ndarray, np.ndarray]:
    """Distractor strokes: their coverage (n, H*W) and per-pixel colour (n, 3, H*W).

    Drawing five strokes for every image was half the generator's time. Instead a bank of n/8
    templates, each with five strokes, is drawn, and every image takes one template in one of the
    8 orientations of the square (flips and transposes), no two images of a chunk the same, then
    paints its own random colour on each stroke.
    """
    templates = -(-n // STROKE_ORIENTATIONS)
    alpha = np.zeros((templates, len(yy)), np.float32)
    stroke_index = np.zeros((templates, len(yy)), np.uint8)
    for index in range(STROKES_BEHIND):
        stroke, _ = _stroke(templates, size, yy, xx, rng)
        on_top = stroke >= alpha
        stroke_index[on_top & (stroke > 0)] = index
        np.maximum(alpha, stroke, out=alpha)
    choice = rng.permutation(templates * STROKE_ORIENTATIONS)[:n]
    pixels = _orientations(size)[choice % STROKE_ORIENTATIONS]
    pixels += (choice // STROKE_ORIENTATIONS)[:, None] * len(yy)
    # Each image's own colour for each of its strokes, looked up per pixel in a flat palette.
    # Indices are intp and takes use mode="clip": np.take would otherwise copy or buffer them.
    palette = rng.random((3, n * STROKES_BEHIND), np.float32)
    entry = stroke_index.take(pixels, mode="clip").astype(np.intp)
    entry += np.arange(0, n * STROKES_BEHIND, STROKES_BEHIND)[:, None]
    colour = np.empty((n, 3, len(yy)), np.float32)
    for channel in range(3):
        palette[channel].take(entry, out=colour[:, channel], mode="clip")
    return alpha.take(pixels, mode="clip"), colour


@lru_cache(maxsize=8)
def _orientations(size: int) -> np.ndarray:
    """(8, H*W) flat pixel indices of the square's flips and transposes (its symmetry group)."""
    square = np.arange(size * size, dtype=np.intp).reshape(size, size)
    flips = [square, square[::-1], square[:, ::-1], square[::-1, ::-1]]
    return np.stack([view.ravel() for view in flips + [flip.T for flip in flips]])


def _background(p, size, rng) -> np.ndarray:
    """A two-colour linear gradient in a random direction plus smooth blotches, (n, 3, H*W).

    Both live on a coarse grid whose outer points sit on the corner pixels, and one matrix
    product interpolates it bilinearly to full size: a linear gradient survives bilinear
    interpolation exactly, so the gradient costs nothing beyond the blotches.
    """
    n = len(p["label"])
    corner = (np.linspace(0.5, size - 0.5, BLOTCH_GRID, dtype=np.float32) - size / 2) / size
    cos, sin = np.cos(p["gradient_angle"]), np.sin(p["gradient_angle"])
    t = 0.5 + corner[None, :, None] * sin[:, None, None] + corner[None, None, :] * cos[:, None, None]
    t = t.reshape(n, 1, BLOTCH_GRID**2)  # (n, 1, rows*cols of the coarse grid)
    coarse = p["colour0"][:, :, None] + (p["colour1"] - p["colour0"])[:, :, None] * t
    blotches = rng.standard_normal((n, 3, BLOTCH_GRID**2), np.float32)
    coarse += blotches * p["blotch"][:, None, None]
    coarse = coarse.reshape(n * 3, BLOTCH_GRID**2)
    upsample = _upsampling(size)
    image = np.empty((n * 3, size * size), np.float32)
    # Small products: OpenBLAS threads a product of more than ~262,000 multiply-adds, and its
    # threads then spin on the second core that the element-wise work needs (10 s instead of 6.5 s
    # for 60,000 images on two cores, measured with 256-image chunks). Blocks of rows keep every
    # product on one thread.
    rows = max(1, 256_000 // upsample.size)
    for start in range(0, n * 3, rows):
        np.matmul(coarse[start : start + rows], upsample, out=image[start : start + rows])
    return image.reshape(n, 3, size * size)


@lru_cache(maxsize=8)
def _upsampling(size: int) -> np.ndarray:
    """(rows*cols, H*W): bilinear interpolation of the coarse grid to the full image."""
    upsample = _bilinear_matrix(BLOTCH_GRID, size)
    return np.ascontiguousarray(np.kron(upsample, upsample).T)


def _bilinear_matrix(small: int, size: int) -> np.ndarray:
    """(size, small) weights interpolating ``small`` points spread from the first to the last pixel."""
    positions = np.linspace(0, small - 1, size)
    low = np.minimum(np.floor(positions).astype(int), small - 2)
    weight = (positions - low).astype(np.float32)
    matrix = np.zeros((size, small), np.float32)
    matrix[np.arange(size), low] = 1 - weight
    matrix[np.arange(size), low + 1] = weight
    return matrix


def _stroke(n, size, yy, xx, rng) -> tuple[np.ndarray, np.ndarray]:
    """One thin line segment per image, anywhere: its coverage (n, H*W) and colour (n, 3)."""
    start = rng.random((n, 2), np.float32) * size
    length = rng.uniform(*STROKE_LENGTH_RANGE, n).astype(np.float32) * size
    angle = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    ux, uy = np.cos(angle)[:, None], np.sin(angle)[:, None]
    half_width = rng.uniform(*STROKE_HALF_WIDTH_RANGE, n).astype(np.float32)
    colour = rng.random((n, 3), np.float32)
    # Distance from each pixel to the segment: project onto it, clamp to its ends.
    dx, dy = xx - start[:, 0, None], yy - start[:, 1, None]
    along = dx * ux
    along += dy * uy
    np.maximum(along, 0, out=along)
    np.minimum(along, length[:, None], out=along)
    dx -= along * ux
    dy -= along * uy
    distance = _length(dx, dy)
    distance -= half_width[:, None]
    return _soft(distance), colour


def _soft(signed_distance: np.ndarray) -> np.ndarray:
    """Coverage from a signed distance in pixels: a one-pixel ramp across the edge (overwrites it)."""
    coverage = np.subtract(0.5, signed_distance, out=signed_distance)
    np.maximum(coverage, 0, out=coverage)
    return np.minimum(coverage, 1, out=coverage)


def _paint(image: np.ndarray, alpha: np.ndarray, colour: np.ndarray, scratch: np.ndarray) -> None:
    """Blend ``colour`` (n, 3, 1 or H*W) over ``image`` (n, 3, H*W) with coverage ``alpha`` (n, H*W)."""
    np.subtract(colour, image, out=scratch)
    scratch *= alpha[:, None, :]
    image += scratch


def _at_centre(image: np.ndarray, p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """The background colour under each object's centre, (n, 3)."""
    rows = np.clip(p["cy"].astype(int), 0, size - 1)
    cols = np.clip(p["cx"].astype(int), 0, size - 1)
    return image[np.arange(len(rows)), :, rows * size + cols]


def _contrasting_colour(background: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """background + offset or background - offset, whichever stays further away once clipped."""
    plus, minus = np.clip(background + offset, 0, 1), np.clip(background - offset, 0, 1)
    further = np.linalg.norm(plus - background, axis=1) >= np.linalg.norm(minus - background, axis=1)
    return np.where(further[:, None], plus, minus)


def _object_coverage(p: dict[str, np.ndarray], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """How much of each pixel the object's outline covers, (n, H*W); textures come later."""
    coverage = np.empty((len(p["label"]), len(yy)), np.float32)
    for label, name in enumerate(SHAPE_CLASSES):
        members = np.flatnonzero(p["label"] == label)
        if members.size:
            u, v, r = _local_coordinates(p, members, yy, xx)
            coverage[members] = _soft(_SIGNED_DISTANCES[name](u, v, r))
    return coverage


def _local_coordinates(p, members, yy, xx):
    """Pixel coordinates in the object's frame (rotated, stretched), and its radius, (m, 1)."""
    column = lambda key: p[key][members][:, None]  # noqa: E731
    dx, dy = xx - column("cx"), yy - column("cy")
    cos, sin = np.cos(column("rotation")), np.sin(column("rotation"))
    stretch = np.sqrt(column("aspect"))
    u = (cos * dx + sin * dy) / stretch
    v = (cos * dy - sin * dx) * stretch
    return u, v, column("radius")


def _length(x, y):
    """sqrt(x^2 + y^2); np.hypot is several times slower and its overflow care is not needed here."""
    return np.sqrt(x * x + y * y)


def _box(u, v, half_u, half_v):
    """Signed distance to an axis-aligned box (Quilez's formula)."""
    qu, qv = np.abs(u) - half_u, np.abs(v) - half_v
    outside = _length(np.maximum(qu, 0), np.maximum(qv, 0))
    return outside + np.minimum(np.maximum(qu, qv), 0)


def _triangle(u, v, r):
    """Equilateral triangle pointing up (v grows downwards), side 2r, centred (Quilez's formula)."""
    k = np.float32(np.sqrt(3))
    x, y = np.abs(u) - r, -v + r / k
    fold = x + k * y > 0
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * r, 0)
    return -_length(x, y) * np.sign(y)


def _star(u, v, r):
    """Five points: the radius runs linearly between 0.45 r and r; an approximate distance."""
    turns = (np.arctan2(u, -v) * (5 / (2 * np.pi))) % 1  # a point straight up
    edge = r * (0.45 + 0.55 * np.abs(2 * turns - 1))
    return (_length(u, v) - edge) * 0.75


_SIGNED_DISTANCES: dict[str, Callable] = {
    "circle": lambda u, v, r: _length(u, v) - r,
    "square": lambda u, v, r: _box(u, v, 0.85 * r, 0.85 * r),
    "triangle": lambda u, v, r: _triangle(u, v, 1.1 * r),
    "cross": lambda u, v, r: np.minimum(_box(u, v, r, 0.3 * r), _box(u, v, 0.3 * r, r)),
    "ring": lambda u, v, r: np.abs(_length(u, v) - 0.72 * r) - 0.28 * r,
    "diamond": lambda u, v, r: (np.abs(u) + np.abs(v) - 1.15 * r) / np.sqrt(2),
    "star": lambda u, v, r: _star(u, v, 1.15 * r),
    "horizontal stripes": lambda u, v, r: _box(u, v, 0.9 * r, 0.9 * r),
    "vertical stripes": lambda u, v, r: _box(u, v, 0.9 * r, 0.9 * r),
    "checkerboard": lambda u, v, r: _box(u, v, 0.9 * r, 0.9 * r),
}


def _texture(p: dict[str, np.ndarray], yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """1 for solid shapes; stripes or checks (soft-edged, 0 in the gaps) for the patches."""
    texture = np.ones((len(p["label"]), len(yy)), np.float32)
    period, phase = p["period"], p["phase"]
    for name in ("horizontal stripes", "vertical stripes", "checkerboard"):
        members = np.flatnonzero(p["label"] == SHAPE_CLASSES.index(name))
        if not members.size:
            continue
        u, v, _ = _local_coordinates(p, members, yy, xx)
        k = (2 * np.pi / period[members])[:, None]
        shift = phase[members][:, None]
        if name == "horizontal stripes":
            wave = np.sin(k * v + shift)
        elif name == "vertical stripes":
            wave = np.sin(k * u + shift)
        else:
            wave = np.sin(k * u + shift) * np.sin(k * v)
        # A steep ramp around zero: crisp bars, still anti-aliased.
        texture[members] = np.clip(0.5 + 2.5 * wave, 0, 1)
    return texture


def _bounding_boxes(covered: np.ndarray) -> np.ndarray:
    """row0, col0, row1, col1 (exclusive) of the covered pixels of each (H, W) mask."""
    rows, cols = covered.any(axis=2), covered.any(axis=1)
    height, width = covered.shape[1:]
    boxes = np.stack(
        [
            rows.argmax(axis=1),
            cols.argmax(axis=1),
            height - rows[:, ::-1].argmax(axis=1),
            width - cols[:, ::-1].argmax(axis=1),
        ],
        axis=1,
    )
    return boxes.astype(np.int32)
