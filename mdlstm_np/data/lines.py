"""Lines of real handwriting for CTC: scikit-learn's handwritten digits written side by side.

Each line holds 1 … 8 digit images from ``digits.load_digits`` (real 8×8 scans, 1,797 of them).
Every digit is resized (bilinear) to a height and a width drawn from a few choices, placed after
a random gap with a small vertical jitter, and the line gets a little Gaussian noise. Lines thus
differ in width (and in height: the tallest digit sets it), which is what the ``sizes`` masks of
the layers and CTC's per-sample lengths are for.

Labels follow CTC's convention: digit d is class d + 1 (1 … 10), class 0 is the blank.

Train and test never share a digit image: train lines use only the images of
``load_digits``'s train half (indices 0 … 897 in scikit-learn's order), test lines only those of
its test half (898 … 1796). The random choices come from ``numpy.random.default_rng((seed, s))``
with s = 0 for train and 1 for test, so both sets are fixed by ``seed`` and independent.

What ``make_lines`` returns (host numpy arrays; ``be.asarray`` moves them to a backend)
---------------------------------------------------------------------------------------
    images          (N, Hmax, Wmax, 1) float in [0, 1], line i in the box [0, sizes[i]),
                    zero outside (Hmax, Wmax: the largest line of the set)
    sizes           (N, 2) int64 (height, width) of each line
    targets         (N, max_digits) int64 labels 1 … 10, padded with 0 after target_lengths[i]
    target_lengths  (N,) int64 in [min_digits, max_digits]
    digit_index     (N, max_digits) int64: the scikit-learn index of every digit image, -1 pad

Geometry of one line: digit j has height h_j ∈ ``heights`` and width w_j ∈ ``widths``; the line
is H = max_j h_j + 2·jitter high; digit j's top row is (H − h_j)/2 + u_j, u_j uniform in
[−jitter, jitter]; gaps before, between and after the digits are uniform in ``gap`` (inclusive).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from mdlstm_np.validate import check_dtype_name, check_positive_int

from .digits import load_digits

SPLITS = ("train", "test")


class Lines(NamedTuple):
    images: np.ndarray          # (N, Hmax, Wmax, 1) float in [0, 1]
    sizes: np.ndarray           # (N, 2) int64 (height, width)
    targets: np.ndarray         # (N, max_digits) int64, labels 1 … 10, 0-padded
    target_lengths: np.ndarray  # (N,) int64
    digit_index: np.ndarray     # (N, max_digits) int64 scikit-learn image index, -1 padded


def resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) bilinear interpolation weights, pixel centres aligned.

    Output pixel i samples the input at u = (i + ½)·n_in/n_out − ½ (clipped to [0, n_in − 1]):
    weight 1 − (u − ⌊u⌋) on ⌊u⌋ and u − ⌊u⌋ on ⌊u⌋ + 1. Rows sum to 1; n_out = n_in gives I.
    """
    u = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(u).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), lo), 1.0 - (u - lo))
    np.add.at(R, (np.arange(n_out), hi), u - lo)
    return R


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D image: R_h image R_wᵀ, (h, w) -> (height, width)."""
    return resize_matrix(height, image.shape[0]) @ image @ resize_matrix(width, image.shape[1]).T


def _check_choices(values: Sequence[int], name: str, minimum: int = 1) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer) \
            or (arr < minimum).any():
        raise ValueError(f"{name}: expected a non-empty list of integers >= {minimum}, got "
                         f"{values!r}")
    return arr.astype(np.int64)


def make_lines(n, split="train", *, seed=0, min_digits=1, max_digits=8, heights=(8, 12, 16),
               widths=(6, 8, 10), gap=(0, 4), jitter=2, noise=0.05, dtype="float64") -> Lines:
    """``n`` lines of handwritten digits from the ``split`` half of the digits (module docstring).

    n                      number of lines, >= 1
    split                  "train" or "test": which half of the digit images the lines use
    seed                   fixes the set (train and test draw from independent streams)
    min_digits, max_digits digits per line, uniform in [min_digits, max_digits]
    heights, widths        the sizes a digit image is resized to (one drawn per digit)
    gap                    (low, high): gaps in pixels, uniform in [low, high]
    jitter                 maximum vertical shift of a digit, in pixels (>= 0)
    noise                  standard deviation of the Gaussian noise added inside the line, the
                           result clipped to [0, 1] (0 for clean lines)
    dtype                  "float32" or "float64", the images' dtype
    Returns :class:`Lines`. Raises ValueError / TypeError naming a bad argument, ImportError
    without scikit-learn.
    """
    n = check_positive_int(n, "n")
    if split not in SPLITS:
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    min_digits = check_positive_int(min_digits, "min_digits")
    max_digits = check_positive_int(max_digits, "max_digits", minimum=min_digits)
    heights, widths = _check_choices(heights, "heights"), _check_choices(widths, "widths")
    gap = _check_choices(gap, "gap", minimum=0)
    if gap.size != 2 or gap[0] > gap[1]:
        raise ValueError(f"gap: expected (low, high) with 0 <= low <= high, got {tuple(gap)}")
    jitter = check_positive_int(jitter, "jitter", minimum=0)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: expected a finite number >= 0, got {noise!r}")
    dtype = check_dtype_name(dtype)

    digits = load_digits("float64")
    images, labels = (digits.x_train, digits.y_train) if split == "train" else \
        (digits.x_test, digits.y_test)
    offset = 0 if split == "train" else len(digits.x_train)            # scikit-learn index
    rng = np.random.default_rng((seed, SPLITS.index(split)))

    lines, sizes = [], np.zeros((n, 2), dtype=np.int64)
    targets = np.zeros((n, max_digits), dtype=np.int64)
    index = np.full((n, max_digits), -1, dtype=np.int64)
    lengths = rng.integers(min_digits, max_digits + 1, size=n)
    for i, L in enumerate(lengths):
        pick = rng.integers(0, len(images), size=L)                     # which digit images
        h, w = rng.choice(heights, size=L), rng.choice(widths, size=L)
        gaps = rng.integers(gap[0], gap[1] + 1, size=L + 1)            # before, between, after
        shift = rng.integers(-jitter, jitter + 1, size=L)
        H = int(h.max()) + 2 * jitter
        W = int(w.sum() + gaps.sum())
        line = np.zeros((H, W))
        col = int(gaps[0])
        for j in range(L):
            top = (H - h[j]) // 2 + shift[j]
            line[top:top + h[j], col:col + w[j]] = resize(images[pick[j], :, :, 0], h[j], w[j])
            col += int(w[j] + gaps[j + 1])
        if noise > 0:
            line = np.clip(line + noise * rng.standard_normal(line.shape), 0.0, 1.0)
        lines.append(line)
        sizes[i] = (H, W)
        targets[i, :L] = labels[pick] + 1                                # digit d -> class d + 1
        index[i, :L] = pick + offset

    out = np.zeros((n, int(sizes[:, 0].max()), int(sizes[:, 1].max()), 1), dtype=dtype)
    for i, line in enumerate(lines):
        out[i, :line.shape[0], :line.shape[1], 0] = line
    return Lines(out, sizes, targets, lengths.astype(np.int64), index)


def labels_to_text(labels: Sequence[int]) -> str:
    """CTC classes 1 … 10 -> the digit string ("3" for class 4); the blank 0 is not allowed."""
    labels = [int(k) for k in labels]
    if any(not 1 <= k <= 10 for k in labels):
        raise ValueError(f"labels: expected classes 1 … 10 (digit + 1), got {labels}")
    return "".join(str(k - 1) for k in labels)
