"""Gaussian random fields (mdlstm_np/data/gaussian.py): normalisation, the spectrum's shape,
the anisotropic field's axis-only spectrum, the shifted target, reproducibility."""

import numpy as np
import pytest

from mdlstm_np.data.gaussian import gaussian_field, spectrum_amplitude


@pytest.mark.parametrize("isotropic", [True, False])
@pytest.mark.parametrize("size", [2, 7, 16])
def test_each_field_has_zero_mean_and_unit_variance(size, isotropic):
    x, t = gaussian_field(4, size, np.random.default_rng(0), isotropic=isotropic)
    assert x.shape == t.shape == (4, size, size, 1) and x.dtype == np.float64
    np.testing.assert_allclose(x.mean(axis=(1, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(x.var(axis=(1, 2, 3)), 1.0, rtol=1e-12)


def test_anisotropic_spectrum_is_zero_off_the_axes():
    x, _ = gaussian_field(3, 16, np.random.default_rng(1), isotropic=False)
    spec = np.abs(np.fft.fft2(x[..., 0], axes=(1, 2)))       # (3, 16, 16); [:, 0, :] k_y = 0
    assert spec[:, 1:, 1:].max() <= 1e-12 * spec.max()
    assert spec[:, 0, 1:].min() > 0 and spec[:, 1:, 0].min() > 0   # the axes carry the energy
    # so the field is a column profile plus a row profile: x(y, c) − x(0, c) depends on y only
    f = x[..., 0]
    d = f - f[:, :1, :]
    np.testing.assert_allclose(d, np.broadcast_to(d[:, :, :1], d.shape), atol=1e-12)


def test_isotropic_spectrum_follows_the_amplitude():
    """|f̂(k)| / |ŵ(k)| is A(k) = |k|⁻² up to the normalisation's scale, zero at k = 0."""
    rng = np.random.default_rng(2)
    x, _ = gaussian_field(1, 12, rng)
    w_hat = np.fft.fft2(np.random.default_rng(2).standard_normal((1, 12, 12)), axes=(1, 2))[0]
    f_hat = np.fft.fft2(x[0, ..., 0])
    amp = spectrum_amplitude(12)
    ratio = np.abs(f_hat)[amp > 0] / (np.abs(w_hat)[amp > 0] * amp[amp > 0])
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-9)    # one common scale factor
    assert abs(f_hat[0, 0]) < 1e-12
    assert amp[0, 1] == 1.0 and amp[2, 2] == 1 / 8 and amp[0, 0] == 0.0
    assert spectrum_amplitude(4, isotropic=False)[1, 1] == 0.0


def test_target_is_the_next_value_to_the_right_and_zero_in_the_last_column():
    x, t = gaussian_field(2, 5, np.random.default_rng(3), dtype="float32")
    assert t.dtype == np.float32
    np.testing.assert_array_equal(t[:, :, :-1], x[:, :, 1:])
    assert not t[:, :, -1].any()


def test_same_seed_same_fields():
    a = gaussian_field(3, 8, np.random.default_rng(7))
    b = gaussian_field(3, 8, np.random.default_rng(7))
    c = gaussian_field(3, 8, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.allclose(a[0], c[0])


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="size: expected an integer >= 2, got 1"):
        gaussian_field(1, 1, rng)
    with pytest.raises(ValueError, match="batch: expected an integer >= 1, got 0"):
        gaussian_field(0, 4, rng)
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        gaussian_field(1, 4, 0)
    with pytest.raises(TypeError, match="isotropic: expected True or False, got 'no'"):
        gaussian_field(1, 4, rng, isotropic="no")
