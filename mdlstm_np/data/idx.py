"""MNIST from the IDX files a user already has on disk (nothing is ever downloaded).

The IDX format (LeCun et al., the MNIST page's "file formats" section), all big-endian:

    bytes 0-1   0x00 0x00                       the magic number's zero half
    byte  2     the element type                0x08 uint8   0x09 int8    0x0B int16
                                                0x0C int32   0x0D float32 0x0E float64
    byte  3     the number of dimensions n      (1 for labels, 3 for images)
    4·n bytes   the n sizes, uint32 each        e.g. 60000, 28, 28
    then        ∏ sizes elements, row-major (the last index changes fastest)

A file may also be gzip-compressed (as distributed, ``train-images-idx3-ubyte.gz``): it is
recognised by gzip's own magic bytes 0x1f 0x8b, whatever its name, and read with ``gzip``.

Every problem is one line naming the file and what was wrong: FileNotFoundError for a missing
file, ValueError for a truncated or corrupt one (bad magic, unknown type code, a header or data
shorter or longer than the header promises, a broken gzip stream).
"""

from __future__ import annotations

import gzip
import os
import zlib
from typing import NamedTuple

import numpy as np

from mdlstm_np.validate import check_dtype_name

# type code -> big-endian numpy dtype
IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"),
             0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"

# The four MNIST files, as distributed; each is looked for as NAME, NAME.gz, and with "-idx"
# spelled ".idx" (the other common spelling, e.g. train-images.idx3-ubyte), plain or .gz.
MNIST_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
               "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def _read_bytes(path: str) -> bytes:
    """The file's content, decompressed when it is a gzip file."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (IDX files are never downloaded here; "
                                f"put them there first)")
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:   # truncated stream, bad header, bad CRC
        raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None


def read_idx(path: str) -> np.ndarray:
    """Read one IDX file (plain or gzip) -> a numpy array in native byte order.

    path : the file. Returns an array of shape (the header's sizes) and the header's type
    (uint8 for MNIST). Raises FileNotFoundError or ValueError (module docstring).
    """
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: truncated IDX header (expected at least 4 bytes, got "
                         f"{len(data)})")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (expected the magic number to start with "
                         f"bytes 00 00, got {data[0]:02x} {data[1]:02x})")
    code, ndim = data[2], data[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise ValueError(f"{path}: corrupt IDX header (expected a type code in {known}, got "
                         f"0x{code:02X})")
    if ndim < 1:
        raise ValueError(f"{path}: corrupt IDX header (expected at least 1 dimension, got 0)")
    start = 4 + 4 * ndim
    if len(data) < start:
        raise ValueError(f"{path}: truncated IDX header (expected {start} bytes for {ndim} "
                         f"dimension sizes, got {len(data)})")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dt = IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    got = len(data) - start
    if got < expected:
        raise ValueError(f"{path}: truncated IDX data (expected {expected} bytes for shape "
                         f"{shape} of {dt.name}, got {got})")
    if got > expected:
        raise ValueError(f"{path}: corrupt IDX file (expected {expected} bytes of data for "
                         f"shape {shape} of {dt.name}, got {got - expected} bytes more)")
    arr = np.frombuffer(data, dtype=dt, offset=start).reshape(shape)
    return arr.astype(dt.newbyteorder("="))                             # native order, a copy


def write_idx(path: str, array) -> str:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ".gz").

    array : numpy array of uint8, int8, int16, int32, float32 or float64, at least 1-D, every
    size < 2³². Returns ``path``. For tests and for converting data; raises TypeError for
    another dtype, ValueError for a 0-d array.
    """
    path = os.fspath(path)
    a = np.asarray(array)
    codes = {dt.newbyteorder("="): c for c, dt in IDX_TYPES.items()}
    key = a.dtype.newbyteorder("=")
    if key not in codes:
        raise TypeError(f"array: expected dtype uint8, int8, int16, int32, float32 or float64, "
                        f"got {a.dtype}")
    if a.ndim < 1 or a.ndim > 255:
        raise ValueError(f"array: expected 1 to 255 dimensions, got {a.ndim}")
    header = bytes([0, 0, codes[key], a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    body = header + np.ascontiguousarray(a, dtype=IDX_TYPES[codes[key]]).tobytes()
    if path.endswith(".gz"):
        body = gzip.compress(body)
    with open(path, "wb") as fh:
        fh.write(body)
    return path


class MnistSplit(NamedTuple):
    x_train: np.ndarray   # (60000, 28, 28, 1) float in [0, 1]
    y_train: np.ndarray   # (60000,) int64
    x_test: np.ndarray    # (10000, 28, 28, 1) float in [0, 1]
    y_test: np.ndarray    # (10000,) int64


def _find(data_dir: str, stem: str) -> str:
    dotted = stem.replace("-idx", ".idx")
    names = [stem, stem + ".gz", dotted, dotted + ".gz"]
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{os.path.join(data_dir, stem)}: no such file (also looked for "
                            f"{', '.join(names[1:])}; MNIST is never downloaded here)")


def _images(path: str, dtype: str) -> np.ndarray:
    a = read_idx(path)
    if a.ndim != 3 or a.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 images of shape (N, height, width), got "
                         f"{a.dtype} {a.shape}")
    x = a.astype(dtype)                                                 # (N, H, W), 0 … 255
    x /= 255.0                                                          # in place: no float64 copy
    return x[..., None]                                                 # (N, H, W, 1) in [0, 1]


def _labels(path: str, n_images: int, images_path: str) -> np.ndarray:
    a = read_idx(path)
    if a.ndim != 1 or a.dtype != np.uint8:
        raise ValueError(f"{path}: expected uint8 labels of shape (N,), got {a.dtype} {a.shape}")
    if a.shape[0] != n_images:
        raise ValueError(f"{path}: expected {n_images} labels (one per image in "
                         f"{images_path}), got {a.shape[0]}")
    if a.size and a.max() > 9:
        raise ValueError(f"{path}: expected labels 0 … 9, got a {int(a.max())}")
    return a.astype(np.int64)


def load_mnist(data_dir: str, dtype="float64") -> MnistSplit:
    """MNIST from ``data_dir`` (the four IDX files, plain or .gz, named as distributed).

    Returns a :class:`MnistSplit`: images (N, 28, 28, 1) scaled from 0 … 255 to [0, 1] in
    ``dtype`` (float64 takes 376 MB for the training images, float32 half), labels int64 (N,).
    Any image size is accepted (a small file written by a test, a resized set); MNIST's is 28×28.
    Raises FileNotFoundError naming the missing file, ValueError naming a corrupt or truncated
    one, TypeError for a bad dtype.
    """
    dtype = check_dtype_name(dtype)
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(f"data_dir: {data_dir}: no such folder (MNIST is never "
                                f"downloaded here; put the four IDX files in it first)")
    paths = {key: _find(data_dir, stem) for key, stem in MNIST_FILES.items()}
    x_train = _images(paths["train_images"], dtype)
    y_train = _labels(paths["train_labels"], x_train.shape[0], paths["train_images"])
    x_test = _images(paths["test_images"], dtype)
    y_test = _labels(paths["test_labels"], x_test.shape[0], paths["test_images"])
    return MnistSplit(x_train, y_train, x_test, y_test)
