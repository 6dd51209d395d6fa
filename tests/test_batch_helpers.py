"""The trainer's compiled per-mini-batch bookkeeping (eqcore._batch) against plain NumPy."""

import numpy as np
import pytest
from eqcore._batch import gather_batch, summarise_free_phase

WIDTHS = [5, 4, 3]  # two hidden layers and a 3-class output


def problem(dtype, n=11, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 6)).astype(dtype)
    labels = rng.integers(0, WIDTHS[-1], n)
    particles = [rng.random((n, w)).astype(dtype) for w in WIDTHS]
    index = rng.permutation(n)[:4]
    return x, labels, particles, index


def buffers(dtype, m):
    return (np.full((m, 6), -1, dtype), np.full((m, WIDTHS[-1]), -1, dtype),
            [np.full((m, w), -1, dtype) for w in WIDTHS])


@pytest.mark.parametrize("persistent", [True, False])
def test_gather_matches_numpy(dtype, persistent):
    x, labels, particles, index = problem(dtype)
    x_out, target_out, state_out = buffers(dtype, len(index))
    gather_batch(x, labels, index, x_out, target_out, particles if persistent else None, state_out)
    np.testing.assert_array_equal(x_out, x[index])
    np.testing.assert_array_equal(target_out, np.eye(WIDTHS[-1], dtype=dtype)[labels[index]])
    for got, source in zip(state_out, particles):
        np.testing.assert_array_equal(got, source[index] if persistent else np.zeros_like(got))


def test_summary_matches_numpy_and_scatters(dtype):
    x, labels, particles, index = problem(dtype)
    rng = np.random.default_rng(5)
    state = [rng.random((len(index), w)).astype(dtype) for w in WIDTHS]
    state[-1][0] = [0.5, 0.5, 0.1]  # a tie: NumPy's argmax takes the first
    target = np.eye(WIDTHS[-1], dtype=dtype)[labels[index]]
    kept = [p.copy() for p in particles]
    finite, errors, cost = summarise_free_phase(state, target, labels, index, particles)
    diff = state[-1] - target
    assert finite
    assert errors == np.count_nonzero(state[-1].argmax(axis=1) != labels[index])
    assert cost == pytest.approx(0.5 * np.einsum("ij,ij->", diff, diff, dtype=np.float64), rel=1e-12)
    for after, before, layer in zip(particles, kept, state):
        expected = before.copy()
        expected[index] = layer
        np.testing.assert_array_equal(after, expected)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_state_is_reported_and_particles_are_kept(dtype, bad):
    x, labels, particles, index = problem(dtype)
    state = [np.full((len(index), w), 0.5, dtype) for w in WIDTHS]
    state[1][2, 1] = bad
    kept = [p.copy() for p in particles]
    target = np.eye(WIDTHS[-1], dtype=dtype)[labels[index]]
    assert summarise_free_phase(state, target, labels, index, particles) == (False, 0, 0.0)
    for after, before in zip(particles, kept):
        np.testing.assert_array_equal(after, before)


def test_out_of_range_index_is_rejected_before_any_copy():
    x, labels, particles, index = problem(np.float64)
    x_out, target_out, state_out = buffers(np.float64, 2)
    with pytest.raises(ValueError, match="out of range"):
        gather_batch(x, labels, np.array([0, 11]), x_out, target_out, particles, state_out)
    assert (x_out == -1).all()
    state = [np.zeros((2, w)) for w in WIDTHS]
    with pytest.raises(ValueError, match="out of range"):
        summarise_free_phase(state, np.zeros((2, 3)), labels, np.array([0, 11]), particles)


def test_mismatched_buffers_are_rejected():
    x, labels, particles, index = problem(np.float64)
    x_out, target_out, state_out = buffers(np.float64, len(index) + 1)
    with pytest.raises(ValueError, match="one row per index"):
        gather_batch(x, labels, index, x_out, target_out, particles, state_out)
    x_out, target_out, state_out = buffers(np.float64, len(index))
    with pytest.raises(ValueError, match="particles"):
        gather_batch(x, labels, index, x_out, target_out, [np.ascontiguousarray(p[:, :2]) for p in particles], state_out)


@pytest.mark.parametrize("width", [1, 15, 16, 17, 100, 510])
def test_every_non_finite_entry_is_found_on_every_instruction_set(dtype, width, kernel):
    """The non-finite count (sparse_rows.h) on whole vectors and their remainders, each ISA."""
    rng = np.random.default_rng(width)
    labels = rng.integers(0, 3, 4)
    index = np.arange(4)
    particles = [rng.random((4, width)).astype(dtype), rng.random((4, 3)).astype(dtype)]
    target = np.eye(3, dtype=dtype)[labels]
    for place in {0, width // 2, width - 1, 2 * width + width - 1}:
        for bad in (np.nan, np.inf, -np.inf):
            state = [np.full((4, width), 0.25, dtype), np.full((4, 3), 0.5, dtype)]
            state[0].flat[place] = bad
            assert summarise_free_phase(state, target, labels, index, particles) == (False, 0, 0.0)
    state = [np.full((4, width), np.finfo(dtype).max, dtype), np.zeros((4, 3), dtype)]
    assert summarise_free_phase(state, target, labels, index, particles)[0]
