"""The IDX reader (mdlstm_np/data/idx.py) on small files the tests write themselves: round
trips for every type code, plain and gzip, MNIST's layout, and one-line errors for missing,
truncated and corrupt files."""

import gzip

import numpy as np
import pytest

from mdlstm_np.data.idx import load_mnist, read_idx, write_idx


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_type(tmp_path, dtype, suffix, rng):
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / f"a.idx{suffix}", a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == (3, 4, 5)
    np.testing.assert_array_equal(a, b)


def test_header_is_big_endian_as_specified(tmp_path):
    write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    raw = (tmp_path / "labels").read_bytes()
    assert raw == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1])
    write_idx(tmp_path / "i16", np.array([[258]], dtype=np.int16))
    assert (tmp_path / "i16").read_bytes()[-2:] == b"\x01\x02"      # 258 big-endian
    # a gzip file is recognised by its content, not its name
    (tmp_path / "no_suffix").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "no_suffix"), [7, 2, 1])


def _write_mnist(folder, n_train=5, n_test=3, gz=False, rng=None):
    rng = rng or np.random.default_rng(0)
    ext = ".gz" if gz else ""
    data = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        lab = rng.integers(0, 10, size=n).astype(np.uint8)
        write_idx(folder / f"{stem}-images-idx3-ubyte{ext}", img)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{ext}", lab)
        data[stem] = (img, lab)
    return data


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_layout_and_scaling(tmp_path, gz):
    data = _write_mnist(tmp_path, gz=gz)
    m = load_mnist(tmp_path)
    assert m.x_train.shape == (5, 28, 28, 1) and m.x_test.shape == (3, 28, 28, 1)
    assert m.x_train.dtype == np.float64 and m.y_train.dtype == np.int64
    np.testing.assert_allclose(m.x_train[..., 0], data["train"][0] / 255.0)
    np.testing.assert_array_equal(m.y_test, data["t10k"][1])
    assert 0.0 <= m.x_train.min() and m.x_train.max() <= 1.0
    assert load_mnist(tmp_path, dtype="float32").x_test.dtype == np.float32


def test_load_mnist_accepts_the_dotted_spelling(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").rename(tmp_path / "train-images.idx3-ubyte")
    assert load_mnist(tmp_path).x_train.shape == (5, 28, 28, 1)


def test_missing_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match="data_dir: .*nope: no such folder.*never downloaded"):
        load_mnist(tmp_path / "nope")
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"t10k-labels-idx1-ubyte: no such file.*\.gz"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent: no such file"):
        read_idx(tmp_path / "absent")


def _one_line(excinfo):
    assert "\n" not in str(excinfo.value)


def test_truncated_and_corrupt_files_name_the_file_and_the_fault(tmp_path):
    write_idx(tmp_path / "good", np.zeros((4, 3), dtype=np.uint8))
    good = (tmp_path / "good").read_bytes()
    cases = {
        "short_header": (good[:3], "truncated IDX header .*at least 4 bytes, got 3"),
        "short_dims": (good[:9], r"truncated IDX header \(expected 12 bytes for 2 dimension"),
        "short_data": (good[:-1], r"truncated IDX data \(expected 12 bytes .*got 11\)"),
        "long_data": (good + b"\0", "corrupt IDX file .*1 bytes more"),
        "bad_magic": (b"\x01" + good[1:], "not an IDX file .*got 01 00"),
        "bad_type": (good[:2] + b"\x07" + good[3:], "corrupt IDX header .*type code.*got 0x07"),
        "zero_dims": (good[:3] + b"\x00", "corrupt IDX header .*at least 1 dimension"),
        "bad_gzip": (gzip.compress(good)[:-6], "corrupt or truncated gzip data"),
    }
    for name, (raw, words) in cases.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match=f"{name}: {words}") as e:
            read_idx(tmp_path / name)
        _one_line(e)


def test_mnist_content_errors(tmp_path, rng):
    _write_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte: expected 5 labels .*got 4"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(5, 10, dtype=np.uint8))
    with pytest.raises(ValueError, match="expected labels 0 … 9, got a 10"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), dtype=np.float32))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: expected uint8 images"):
        load_mnist(tmp_path)


def test_write_idx_rejects_unsupported_arrays(tmp_path):
    with pytest.raises(TypeError, match="array: expected dtype uint8.*got int64"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="array: expected 1 to 255 dimensions, got 0"):
        write_idx(tmp_path / "x", np.array(1, dtype=np.uint8))
