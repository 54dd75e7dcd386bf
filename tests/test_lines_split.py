"""Test lines are made of test digit images only, checked on the pixels, not only on the
indices ``make_lines`` reports (an index can claim the test half while the pixels come from the
training half), and the lines run's test set is built from the test split."""

import numpy as np
import pytest

from mdlstm_np.data import load_digits
from mdlstm_np.data.lines import make_lines

CLEAN = dict(min_digits=1, max_digits=4, heights=[8], widths=[8], gap=(0, 0), jitter=0,
             noise=0.0)


def _blocks(lines):
    """Every digit block of clean 8×8 lines (no gaps, no jitter), with its reported index."""
    for i, L in enumerate(lines.target_lengths):
        for j in range(L):
            yield lines.images[i, :8, 8 * j:8 * j + 8, 0], int(lines.digit_index[i, j])


def _nearest(block, images):
    return float(np.min(np.abs(images[:, :, :, 0] - block).reshape(len(images), -1).max(1)))


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_digit_of_a_line_is_an_image_of_its_own_split(split):
    digits = load_digits("float64")
    own = digits.x_train if split == "train" else digits.x_test
    offset = 0 if split == "train" else len(digits.x_train)
    lines = make_lines(30, split, seed=4, **CLEAN)
    count = 0
    for block, index in _blocks(lines):
        assert offset <= index < offset + len(own)
        np.testing.assert_allclose(block, own[index - offset, :, :, 0], atol=1e-12)
        count += 1
    assert count >= 30


def test_no_test_line_pixel_block_comes_from_a_training_image():
    """The fault this guards against: the test half's labels and indices, the training half's
    pixels. No clean test block may equal a training image unless that image also occurs
    among the test images (scikit-learn's digits hold no such duplicates across the split)."""
    digits = load_digits("float64")
    test = make_lines(40, "test", seed=5, **CLEAN)
    hits = [index for block, index in _blocks(test) if _nearest(block, digits.x_train) < 1e-12]
    assert hits == []


def test_the_lines_run_takes_its_test_lines_from_the_test_split(monkeypatch):
    from mdlstm_np.demo import handwriting

    seen = []
    real = handwriting.make_lines

    def spy(n, split="train", **kw):
        seen.append(split)
        return real(n, split, **kw)

    monkeypatch.setattr(handwriting, "make_lines", spy)
    handwriting.train_lines(1, n_train=4, n_test=3, batch=2, h1=1, f2=1, h2=1,
                            backend="numpy", progress=False, eval_every=1)
    assert seen.count("test") == 1 and set(seen) == {"train", "test"}
