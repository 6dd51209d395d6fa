"""The element-wise step kernels (Euler and exact updates) on every instruction set, NaN and infinities included."""

from __future__ import annotations

import numpy as np
import pytest

import eqcore
from eqcore._relax import state_update


def clip01(v: np.ndarray) -> np.ndarray:
    """clip to [0, 1] letting NaN through (the contract: a NaN reaches the divergence check)."""
    return np.where(v > 1, 1, np.where(v < 0, 0, v))


@pytest.fixture(params=["portable", "avx2", "avx512"])
def isa(request):
    eqcore.set_gemm_path("skinny", request.param)
    yield request.param
    eqcore.set_gemm_path("skinny", "best")


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-14), (np.float32, 1e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("width", [1, 10, 16, 37, 500])  # the scalar tail, one vector, vectors and a tail
@pytest.mark.parametrize("nudged", [False, True])
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("with_drive", [False, True])
def test_state_update_matches_the_equations(isa, dtype, rtol, width, nudged, exact, clip, with_drive):
    rng = np.random.default_rng(width)
    rows = 3
    s = rng.uniform(0, 1, (rows, width)).astype(dtype)
    h = rng.uniform(-2, 3, (rows, width)).astype(dtype)
    b = rng.uniform(-0.5, 0.5, width).astype(dtype)
    flat = h.reshape(-1)
    flat[rng.choice(flat.size, size=min(flat.size, 3), replace=False)] = [np.nan, np.inf, -np.inf][:min(flat.size, 3)]
    t = rng.uniform(0, 1, (rows, width)).astype(dtype) if nudged else None
    drive = rng.uniform(-1, 1, (rows, width)).astype(dtype) if with_drive else None
    eps, beta = dtype(0.5), dtype(0.3)
    if drive is not None:  # the kernel's net input is h + drive
        net_input = h + drive
    else:
        net_input = h
    if exact:
        v = net_input + b if t is None else (net_input + b + beta * t) * (dtype(1) / (dtype(1) + beta))
    else:
        v = s + eps * (net_input + b - s)
        if t is not None:
            v = v + eps * beta * (t - s)
    expected = clip01(v) if clip else v
    with np.errstate(invalid="ignore", over="ignore"):
        state_update(s, h, b, t, float(eps), float(beta), clip, exact, drive)
    np.testing.assert_allclose(s, expected, rtol=rtol, atol=rtol)
    assert np.array_equal(np.isnan(s), np.isnan(expected))  # NaN exactly where the equations give it
    if clip:
        finite = ~np.isnan(s)
        assert ((s[finite] >= 0) & (s[finite] <= 1)).all()


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("width", [1, 10, 16, 37, 500])
@pytest.mark.parametrize("above_units", [1, 10, 64])
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("with_h", [False, True])
@pytest.mark.parametrize("with_drive", [False, True])
def test_fused_top_down_step_matches_the_equations(isa, dtype, rtol, width, above_units, exact, with_h,
                                                   with_drive):
    """Below a narrow layer the step computes [h +] above W^T itself, over above's non-zero units only."""
    from eqcore._relax import top_down_state_update

    rng = np.random.default_rng(width * 100 + above_units)
    rows = 5
    s = rng.uniform(0, 1, (rows, width)).astype(dtype)
    above = rng.uniform(0, 1, (rows, above_units)).astype(dtype)
    above[rng.random(above.shape) < 0.7] = 0  # a clipped output: mostly zeros
    above[1] = 0  # a row with no active unit above
    weights_t = rng.normal(0, 1, (above_units, width)).astype(dtype)
    b = rng.uniform(-0.5, 0.5, width).astype(dtype)
    h = rng.uniform(-2, 3, (rows, width)).astype(dtype) if with_h else None
    drive = rng.uniform(-1, 1, (rows, width)).astype(dtype) if with_drive else None
    if with_h:
        h[2, 0] = np.nan
    eps = dtype(0.5)
    net_input = above.astype(np.float64) @ weights_t.astype(np.float64)
    if with_h:
        net_input = h + net_input
    if with_drive:
        net_input = net_input + drive
    v = net_input + b if exact else s + eps * (net_input + b - s)
    expected = clip01(v)
    with np.errstate(invalid="ignore"):
        top_down_state_update(s, h, above, weights_t, b, float(eps), exact, drive)
    np.testing.assert_allclose(s, expected, rtol=rtol, atol=rtol * above_units)
    assert np.array_equal(np.isnan(s), np.isnan(expected))


def test_fused_top_down_step_rejects_bad_shapes():
    from eqcore._relax import top_down_state_update

    s = np.zeros((2, 8))
    b = np.zeros(8)
    with pytest.raises(ValueError, match="1 to 64 columns"):
        top_down_state_update(s, None, np.zeros((2, 65)), np.zeros((65, 8)), b, 0.5)
    with pytest.raises(ValueError, match="weights_t"):
        top_down_state_update(s, None, np.zeros((2, 3)), np.zeros((4, 8)), b, 0.5)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-13), (np.float32, 2e-6)], ids=["float64", "float32"])
@pytest.mark.parametrize("width", [10, 37, 512])
@pytest.mark.parametrize("active", [0, 1, 2, 3, 10])
@pytest.mark.parametrize("exact", [False, True])
@pytest.mark.parametrize("with_drive", [False, True])
def test_fused_top_down_step_for_each_count_of_active_units_above(isa, dtype, rtol, width, active, exact,
                                                                 with_drive):
    """Rows with 0, 1, 2 active units above take loops of their own (state_update.h), more the general one:
    each count, at the first, last and scattered units of a 10-class output, against the equations."""
    from eqcore._relax import top_down_state_update

    rng = np.random.default_rng(1000 * active + width)
    units = 10
    placements = [np.arange(active), np.arange(units - active, units),
                  np.sort(rng.choice(units, size=active, replace=False))]
    rows = len(placements)
    above = np.zeros((rows, units), dtype=dtype)
    for row, chosen in enumerate(placements):
        above[row, chosen] = rng.uniform(0.05, 1, active)
    s = rng.uniform(0, 1, (rows, width)).astype(dtype)
    weights_t = rng.normal(0, 1, (units, width)).astype(dtype)
    b = rng.uniform(-0.5, 0.5, width).astype(dtype)
    drive = rng.uniform(-1, 1, (rows, width)).astype(dtype) if with_drive else None
    eps = dtype(0.5)
    net_input = above.astype(np.float64) @ weights_t.astype(np.float64)
    if with_drive:
        net_input = net_input + drive
    v = net_input + b if exact else s + eps * (net_input + b - s)
    expected = clip01(v)
    top_down_state_update(s, None, above, weights_t, b, float(eps), exact, drive)
    np.testing.assert_allclose(s, expected, rtol=rtol, atol=rtol * units)
