"""Lines of handwritten digits: shapes, padding, labels, the train/test separation, determinism,
and that the lines feed the hierarchy and CTC."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the digits data ship with scikit-learn")

from mdlstm_np import get_backend  # noqa: E402
from mdlstm_np.ctc import ctc_loss, log_softmax, min_input_length  # noqa: E402
from mdlstm_np.data.digits import load_digits  # noqa: E402
from mdlstm_np.data.lines import labels_to_text, make_lines, resize, resize_matrix  # noqa: E402
from mdlstm_np.dense import Dense  # noqa: E402
from mdlstm_np.hierarchy import BlockSubsample, CollapseVertical  # noqa: E402


@pytest.fixture(scope="module")
def train():
    return make_lines(40, "train", seed=3)


def test_shapes_padding_and_labels(train):
    x, sizes, tg, L, idx = train
    N, Hmax, Wmax, _ = x.shape
    assert x.dtype == np.float64 and (N, Hmax, Wmax) == (40, *sizes.max(axis=0))
    assert tg.shape == idx.shape == (40, 8) and L.min() >= 1 and L.max() <= 8
    assert x.min() >= 0 and x.max() <= 1
    assert len(np.unique(sizes[:, 1])) > 5                         # widths vary
    y_all = np.concatenate([load_digits().y_train, load_digits().y_test])
    for i in range(N):
        h, w = sizes[i]
        assert not x[i, h:].any() and not x[i, :, w:].any()       # zero outside the box
        assert x[i, :h, :w].max() > 0.5                            # ink inside
        np.testing.assert_array_equal(tg[i, :L[i]], y_all[idx[i, :L[i]]] + 1)
        assert not tg[i, L[i]:].any() and (idx[i, L[i]:] == -1).all()
        assert sizes[i, 1] >= 6 * L[i]                              # narrowest digit: 6 px


def test_train_and_test_use_disjoint_digit_images(train):
    test = make_lines(40, "test", seed=3)
    used_train = train.digit_index[train.digit_index >= 0]
    used_test = test.digit_index[test.digit_index >= 0]
    assert used_train.max() < 898 and used_test.min() >= 898 and used_test.max() < 1797


def test_seeded_and_options():
    a, b = make_lines(5, seed=1), make_lines(5, seed=1)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(make_lines(5, seed=2).targets, a.targets)
    clean = make_lines(3, seed=0, min_digits=1, max_digits=1, heights=[8], widths=[8], gap=(0, 0),
                       jitter=0, noise=0.0, dtype="float32")
    assert clean.images.dtype == np.float32 and clean.sizes.tolist() == [[8, 8]] * 3
    digits = np.concatenate([load_digits().x_train, load_digits().x_test])
    np.testing.assert_allclose(clean.images, digits[clean.digit_index[:, 0]], atol=1e-7)


def test_resize():
    np.testing.assert_allclose(resize_matrix(8, 8), np.eye(8), atol=1e-15)
    assert np.allclose(resize_matrix(13, 8).sum(axis=1), 1.0)
    np.testing.assert_allclose(resize(np.full((8, 8), 0.3), 12, 6), np.full((12, 6), 0.3))


def test_lines_feed_the_hierarchy_and_ctc(train):
    be = get_backend("numpy")
    x, sizes, tg, L = train.images[:6], train.sizes[:6], train.targets[:6], train.target_lengths[:6]
    rng = np.random.default_rng(0)
    block, ff, collapse = BlockSubsample((4, 2), dtype="float64"), Dense(8, 11, "tanh", dtype="float64"), CollapseVertical(dtype="float64")
    y, _ = block.forward({}, x, sizes)
    s = block.out_sizes(sizes)
    y, _ = ff.forward(ff.init_params(rng), y, s)
    y, _ = collapse.forward({}, y, s)                               # (B, W', 11)
    T_b = collapse.out_sizes(s)[:, 0]
    assert all(T_b[i] >= min_input_length(tg[i, :L[i]]) for i in range(6))
    lp = log_softmax(be, np.transpose(y, (1, 0, 2)))                # (T, B, 11)
    loss, dlp = ctc_loss(be, lp, tg, T_b, L)
    assert np.isfinite(loss) and np.isfinite(dlp).all()


def test_errors_and_text():
    assert labels_to_text([4, 1, 10]) == "309"
    with pytest.raises(ValueError, match="labels: expected classes 1"):
        labels_to_text([0])
    with pytest.raises(ValueError, match="split: expected 'train' or 'test'"):
        make_lines(2, "val")
    with pytest.raises(ValueError, match="max_digits: expected an integer >= 3"):
        make_lines(2, min_digits=3, max_digits=2)
    with pytest.raises(ValueError, match="gap: expected"):
        make_lines(2, gap=(3, 1))
    with pytest.raises(ValueError, match="heights: expected a non-empty list"):
        make_lines(2, heights=[])
    with pytest.raises(ValueError, match="n: expected an integer >= 1"):
        make_lines(0)
