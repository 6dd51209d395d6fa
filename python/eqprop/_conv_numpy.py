"""The conv connection in NumPy, for what the core does not compute: the energy (a diagnostic).

Cross-correlation with zero padding and 2x2 stride-2 pooling, as in
``eqprop.layers``; the relaxation and the update never come here.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def correlate(below: np.ndarray, weights: np.ndarray, padding: int) -> np.ndarray:
    """(batch, C_in, H, W) x (C_out, C_in, k, k) -> (batch, C_out, H', W')."""
    padded = np.pad(below, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k = weights.shape[-1]
    windows = sliding_window_view(padded, (k, k), axis=(2, 3))  # batch, C_in, H', W', k, k
    return np.einsum("bchwij,ocij->bohw", windows, weights, optimize=True)


def pool(conv: np.ndarray, kind: str | None) -> np.ndarray:
    """2x2 stride-2 max or average pooling (odd last row/column dropped), or none."""
    if kind is None:
        return conv
    b, c, h, w = conv.shape
    blocks = conv[:, :, : h // 2 * 2, : w // 2 * 2].reshape(b, c, h // 2, 2, w // 2, 2)
    return blocks.max(axis=(3, 5)) if kind == "max" else blocks.mean(axis=(3, 5))
