"""The random-diagonal task: placement of the ones, the rolled target, the relevant position."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdlstm_np.demo.tasks import random_diagonal


@given(batch=st.integers(1, 6), size=st.integers(3, 12), seed=st.integers(0, 2**16))
def test_structure(batch, size, seed):
    x, y, pos = random_diagonal(batch, size, np.random.default_rng(seed))
    assert x.shape == y.shape == (batch, size, size, 1)
    assert pos.shape == (batch, 2) and pos.dtype == np.int64
    assert x.dtype == y.dtype == np.float64
    for b in range(batch):
        ones = np.argwhere(x[b, :, :, 0] == 1.0)             # row-major: first one first
        assert len(ones) == 2
        (r, c), (r2, c2) = ones
        assert 1 <= r <= size - 2 and 1 <= c <= size - 2     # seed: randint(1, size − 1)
        assert (r2, c2) == (r + 1, c + 1)                    # parallel to the main diagonal
        bg = np.delete(x[b].ravel(), [r * size + c, r2 * size + c2])
        assert np.all((bg >= 0) & (bg < 0.1))
        np.testing.assert_array_equal(y[b], np.roll(x[b], -1, axis=1))   # one column left
        assert tuple(pos[b]) == (r + 1, c)
        assert y[b, pos[b, 0], pos[b, 1], 0] == 1.0          # the second one's target
        # … and it is the second of the two ones in the target, as the seed finds it
        assert tuple(np.argwhere(y[b, :, :, 0] == 1.0)[1]) == tuple(pos[b])


def test_every_admissible_position_occurs():
    x, _, pos = random_diagonal(2000, 5, np.random.default_rng(0))
    seen = {tuple(p) for p in pos}
    assert seen == {(r + 1, c) for r in (1, 2, 3) for c in (1, 2, 3)}


def test_reproducible():
    a = random_diagonal(4, 8, np.random.default_rng(42))
    b = random_diagonal(4, 8, np.random.default_rng(42))
    c = random_diagonal(4, 8, np.random.default_rng(43))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("size", [2, 0, -1, 3.0, True])
def test_bad_size(size):
    with pytest.raises(ValueError, match=r"size: expected an integer >= 3, got"):
        random_diagonal(2, size, np.random.default_rng(0))


def test_bad_batch_and_rng():
    with pytest.raises(ValueError, match="batch: expected an integer >= 1, got 0"):
        random_diagonal(0, 8, np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        random_diagonal(2, 8, 0)
