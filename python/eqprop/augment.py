"""Data augmentation: random translations of the training images, drawn per epoch.

Each epoch, every training image is moved by an integer offset (dy, dx) drawn
uniformly from ``-shift .. shift`` in each direction, the pixels that leave the
frame dropped and those that enter it zero (MNIST's background). The offsets
come from the trainer's RNG, after the epoch's permutation, so a resumed run
draws the same ones and continues exactly. Validation and test images are never
moved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_image_shape", "check_translate", "translate_images"]


def check_translate(translate: object) -> int:
    """``translate`` as a non-negative int (pixels), or a TypeError/ValueError naming it."""
    if isinstance(translate, bool) or not isinstance(translate, (int, np.integer)):
        raise TypeError(f"translate must be a non-negative integer (pixels); got {type(translate).__name__}")
    if translate < 0:
        raise ValueError(f"translate must be a non-negative integer (pixels); got {translate}")
    return int(translate)


def check_image_shape(image_shape: object, n_features: int, translate: int) -> tuple[int, int, int] | None:
    """The (C, H, W) the flat inputs are images of, checked against ``n_features`` and ``translate``."""
    if image_shape is None:
        return None
    if (not isinstance(image_shape, Sequence) or len(image_shape) != 3
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in image_shape)):
        raise ValueError(f"image_shape must be three positive integers (C, H, W); got {image_shape!r}")
    shape = tuple(int(d) for d in image_shape)
    if shape[0] * shape[1] * shape[2] != n_features:
        raise ValueError(f"image_shape {shape} holds {shape[0] * shape[1] * shape[2]} values; the network's "
                         f"input has {n_features}")
    if translate >= min(shape[1], shape[2]):
        raise ValueError(f"translate must be below the image's height and width ({shape[1]} x {shape[2]}); "
                         f"got {translate}")
    return shape  # type: ignore[return-value]


def translate_images(
    x: np.ndarray,
    image_shape: tuple[int, int, int],
    shift: int,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Every image of ``x`` moved by its own random offset in ``-shift .. shift`` (per axis).

    Parameters
    ----------
    x : ndarray, shape (n, C * H * W)
        Flat images, C order.
    image_shape : (C, H, W)
    shift : int
        The largest offset in pixels, below H and W.
    rng : numpy.random.Generator
        Draws the offsets: ``rng.integers(-shift, shift + 1, size=(n, 2))``.
    out : ndarray, optional
        Where to write the result (shape and dtype of ``x``, not ``x`` itself).

    Returns
    -------
    ndarray
        ``out``: image i moved down by dy_i and right by dx_i, zeros where
        nothing moved in.
    """
    n = x.shape[0]
    channels, height, width = image_shape
    offsets = rng.integers(-shift, shift + 1, size=(n, 2))
    if out is None:
        out = np.empty_like(x)
    if shift == 0:
        np.copyto(out, x)
        return out
    images = x.reshape(n, channels, height, width)
    moved = out.reshape(n, channels, height, width)
    moved.fill(0)
    # one slice assignment per offset: (2 shift + 1)^2 vectorised copies, not one per image
    for dy in range(-shift, shift + 1):
        for dx in range(-shift, shift + 1):
            rows = np.flatnonzero((offsets[:, 0] == dy) & (offsets[:, 1] == dx))
            if rows.size == 0:
                continue
            moved[rows, :, max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
                images[rows, :, max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)]
    return out
