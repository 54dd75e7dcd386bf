"""The seed's second task: Gaussian random fields, and "predict the next value to the right".

Definition (one S×S field; host numpy, seeded by a ``numpy.random.Generator``)
-----------------------------------------------------------------------------
    1.  w(y, x) ~ N(0, 1) i.i.d.                      white noise on the S×S grid
    2.  ŵ = FFT₂(w)                                   its discrete Fourier transform
    3.  f̂(k) = A(k) ŵ(k),  A(k) = |k|⁻² for k ≠ 0,  A(0) = 0
        k = (k_y, k_x) the integer wave numbers of the DFT bins (``fftfreq(S) · S``: cycles
        per field, −S/2 … S/2 − 1), |k|² = k_y² + k_x²
        isotropic:    every wave vector is kept
        anisotropic:  only the axis-aligned ones: A(k) = 0 unless k_x = 0 or k_y = 0
    4.  f = Re FFT₂⁻¹(f̂)                              A(−k) = A(k) keeps f̂ Hermitian, so
                                                      the imaginary part is rounding only
    5.  x = (f − mean f) / std f                      per field: zero mean, unit variance

The amplitude |k|⁻² makes the power spectrum E|f̂(k)|² ∝ |k|⁻⁴: a smooth, strongly
correlated field, so a value is largely predictable from its neighbours. Removing the zero mode
removes the field's mean (step 5 then only rescales, up to rounding). An anisotropic field has
energy only on the two axes of the spectrum, so it is a column profile plus a row profile,
f(y, x) = g(x) + r(y): stripes along both axes, no oblique structure.

Target: the next value to the right, t(y, x) = x(y, x + 1), and t(y, S − 1) = 0 in the last
column (no wrap-around, unlike the random-diagonal task's ``np.roll``).
"""

from __future__ import annotations

import numpy as np

from mdlstm_np.validate import check_dtype_name, check_positive_int, check_rng


def spectrum_amplitude(size: int, isotropic: bool = True) -> np.ndarray:
    """A(k) (size, size) on the DFT bins of an S×S grid (step 3); axis 0 is k_y, axis 1 k_x."""
    k = np.fft.fftfreq(size, d=1.0 / size)                              # integer wave numbers
    ky, kx = np.meshgrid(k, k, indexing="ij")                           # (S, S) each
    k2 = ky * ky + kx * kx                                              # |k|²
    amp = np.zeros((size, size))
    nonzero = k2 > 0
    amp[nonzero] = 1.0 / k2[nonzero]                                    # |k|⁻², zero mode 0
    if not isotropic:
        amp[(kx != 0) & (ky != 0)] = 0.0                                # keep the two axes only
    return amp


def gaussian_field(batch: int, size: int, rng: np.random.Generator, *, isotropic: bool = True,
                   dtype="float64"):
    """A batch of Gaussian random fields and their "next value to the right" targets.

    batch : int ≥ 1.   size : S, int ≥ 2 (an S = 1 grid has only the removed zero mode).
    rng : numpy.random.Generator (the same seed gives the same fields).
    isotropic : True for every wave vector, False for the axis-aligned ones only.
    dtype : "float32" or "float64".
    Returns (x, target), both (batch, S, S, 1) of ``dtype``: x normalised per field to zero
    mean and unit variance, target[:, :, c] = x[:, :, c + 1] and target[:, :, S − 1] = 0.
    Raises ValueError for a bad batch or size, TypeError for a bad rng, isotropic or dtype.
    """
    batch = check_positive_int(batch, "batch")
    size = check_positive_int(size, "size", 2)
    check_rng(rng)
    if not isinstance(isotropic, (bool, np.bool_)):
        raise TypeError(f"isotropic: expected True or False, got {isotropic!r}")
    dtype = check_dtype_name(dtype)
    amp = spectrum_amplitude(size, bool(isotropic))                     # (S, S)
    w = rng.standard_normal((batch, size, size))                        # 1. white noise
    w_hat = np.fft.fft2(w, axes=(1, 2))                                 # 2. (B, S, S) complex
    f = np.fft.ifft2(w_hat * amp, axes=(1, 2)).real                     # 3-4. filtered field
    f = f - f.mean(axis=(1, 2), keepdims=True)                          # 5. zero mean
    f = f / f.std(axis=(1, 2), keepdims=True)                           # 5. unit variance
    x = f[..., None].astype(dtype)                                      # (B, S, S, 1)
    target = np.zeros_like(x)
    target[:, :, :-1] = x[:, :, 1:]                                     # t(y, x) = x(y, x + 1)
    return x, target
