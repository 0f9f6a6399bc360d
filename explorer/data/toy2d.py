"""Two-class point sets in the plane, for deep MLPs in the playground.

Small enough to watch a plain and a residual MLP bend a decision boundary, in the style of the
TensorFlow Playground. Every set has two classes of equal size (to within one) and coordinates in
about [-1, 1]^2 before noise; ``noise`` is the standard deviation of Gaussian noise added to both
coordinates, in the same units.

    spiral      two interleaved arms, 1.5 turns each
    circles     a disc (radius < 0.5) inside a ring (0.7 < radius < 1)
    xor         uniform in the square; the class is whether x and y share a sign
    gaussians   two round blobs (std 0.2) centred at (-0.5, -0.5) and (0.5, 0.5)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from explorer.data.base import POINT_DATASETS, PointDataset

SPIRAL_TURNS = 1.5
CIRCLES_INNER_RADIUS = 0.5
CIRCLES_OUTER_RADII = (0.7, 1.0)
BLOB_CENTRE = 0.5
BLOB_STD = 0.2

# In the order of POINT_DATASETS: spiral, circles, xor, gaussians.
CLASS_NAMES = dict(zip(POINT_DATASETS, (
    ["arm 1", "arm 2"],
    ["inner", "outer"],
    ["same sign", "opposite signs"],
    ["lower left", "upper right"],
), strict=True))


def _spiral(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    t = rng.random(len(labels))
    radius = 0.05 + 0.95 * t
    angle = t * SPIRAL_TURNS * 2 * np.pi + labels * np.pi
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _circles(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # sqrt of a uniform variable spreads points evenly over the area of the disc or ring.
    low = np.where(labels == 0, 0.0, CIRCLES_OUTER_RADII[0])
    high = np.where(labels == 0, CIRCLES_INNER_RADIUS, CIRCLES_OUTER_RADII[1])
    radius = np.sqrt(low**2 + rng.random(len(labels)) * (high**2 - low**2))
    angle = rng.uniform(0, 2 * np.pi, len(labels))
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _xor(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Draw |x| and |y|, then give them signs that agree for class 0 and differ for class 1.
    magnitude = rng.random((len(labels), 2))
    sign_x = rng.choice([-1.0, 1.0], len(labels))
    sign_y = np.where(labels == 0, sign_x, -sign_x)
    return magnitude * np.stack([sign_x, sign_y], axis=1)


def _gaussians(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    centre = np.where(labels == 0, -BLOB_CENTRE, BLOB_CENTRE)[:, None]
    return centre + BLOB_STD * rng.standard_normal((len(labels), 2))


_GENERATORS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = dict(
    zip(POINT_DATASETS, (_spiral, _circles, _xor, _gaussians), strict=True)
)


def sample_points(
    name: str, count: int, noise: float = 0.1, seed: int | np.random.SeedSequence = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points (float32 (count, 2)) and labels (int64), classes balanced, shuffled."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown 2-D data set {name!r}; valid: {', '.join(POINT_DATASETS)}")
    if count < 1:
        raise ValueError(f"a 2-D data set needs at least 1 point, got {count}")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % 2)
    points = _GENERATORS[name](labels, rng)
    points = points + noise * rng.standard_normal(points.shape)
    return points.astype(np.float32), labels.astype(np.int64)


def make_points(
    name: str, *, seed: int = 0, train_size: int = 1000, test_size: int = 1000, noise: float = 0.1
) -> PointDataset:
    """Train and test sets from independent child streams of one seed."""
    train_seed, test_seed = np.random.SeedSequence(seed).spawn(2)
    x_train, y_train = sample_points(name, train_size, noise, train_seed)
    x_test, y_test = sample_points(name, test_size, noise, test_seed)
    return PointDataset(name, x_train, y_train, x_test, y_test, list(CLASS_NAMES[name]))
