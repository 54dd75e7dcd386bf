"""Real data and synthetic fields for the layers, as host numpy arrays (B, *grid, channels).

``digits.load_digits``      scikit-learn's bundled 8×8 handwritten digits (1,797 images), with
                            a fixed train/test split; needs ``pip install scikit-learn``
``digits.random_shift``     random translations by up to m pixels (the augmentation used)
``idx.load_mnist``          MNIST from IDX files the user already has on disk (plain or .gz)
``idx.read_idx``, ``write_idx``   the IDX file format itself
``gaussian.gaussian_field`` the seed's second task: Gaussian random fields (k⁻² amplitude),
                            isotropic or axis-aligned, with "the next value to the right" targets

Nothing here ever downloads anything. Every loader returns host numpy arrays; move them to a
backend with ``be.asarray(x, dtype)``.
"""

from .digits import DigitsSplit, load_digits, random_shift
from .gaussian import gaussian_field
from .idx import MnistSplit, load_mnist, read_idx, write_idx

__all__ = ["DigitsSplit", "load_digits", "random_shift", "gaussian_field", "MnistSplit",
           "load_mnist", "read_idx", "write_idx"]
