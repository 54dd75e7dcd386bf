"""A damaged checkpoint is one clear error, whatever byte is damaged.

Every byte of a small checkpoint is XOR-ed with 0x5A in turn (the zip container's local
headers, the npz members' .npy headers and data, the JSON metadata, the central directory and
its end record), and the file is cut at every length. Each damaged file must either be refused
with :class:`CheckpointError` by ``load_checkpoint`` (or by ``restore_training_state``), or —
when the damaged byte is one the reader never uses (a timestamp, an "extra" field) — read back
exactly the original arrays and metadata. Nothing else may escape: before this test, flipping
"version needed" (offset 6 after a central-directory signature PK\\x01\\x02) raised
``NotImplementedError: zip file version``, and "compression method" (offset 10) raised
``NotImplementedError: That compression method is not supported``.
"""

import numpy as np
import pytest

from mdlstm_np.backends import get_backend
from mdlstm_np.optim import Adam
from mdlstm_np.training.checkpoint import (CheckpointError, load_checkpoint,
                                           restore_training_state, save_checkpoint)

CENTRAL = b"PK\x01\x02"


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    be = get_backend("numpy")
    rng = np.random.default_rng(3)
    params = {"rnn.W": rng.standard_normal((2, 3)), "head.b": rng.standard_normal(2)}
    opt = Adam(params, lr=0.01)
    params = opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    path = str(tmp_path_factory.mktemp("fuzz") / "c.npz")
    save_checkpoint(path, be=be, model_name="M", settings={"hidden": 3}, step=2, params=params,
                    optimizer=opt, rng=rng, rows=[{"steps": 1}, {"steps": 2}])
    with open(path, "rb") as f:
        data = f.read()
    return data, load_checkpoint(path), params


def _same(a, b):
    assert a.meta == b.meta
    for key in ("params", "initial_params"):
        x, y = getattr(a, key), getattr(b, key)
        assert x.keys() == y.keys()
        for k in x:
            assert x[k].dtype == y[k].dtype
            np.testing.assert_array_equal(x[k], y[k])


def _outcome(path, reference, params):
    """"refused" or "same"; anything else fails the test."""
    try:
        ckpt = load_checkpoint(path)
        be = get_backend("numpy")
        restore_training_state(ckpt, be=be, dtype="float64",
                               optimizer=Adam({k: v.copy() for k, v in params.items()}, lr=0.01),
                               rng=np.random.default_rng(0))
    except CheckpointError as e:
        assert str(e).startswith(f"checkpoint {path}:") and "\n" not in str(e)
        return "refused"
    _same(ckpt, reference)
    return "same"


def test_every_flipped_byte_is_refused_or_harmless(original, tmp_path):
    data, reference, params = original
    path = str(tmp_path / "d.npz")
    seen = {"refused": 0, "same": 0}
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0x5A
        with open(path, "wb") as f:
            f.write(damaged)
        seen[_outcome(path, reference, params)] += 1
    assert seen["refused"] > len(data) // 2, seen     # most bytes matter


@pytest.mark.parametrize("field", [6, 10], ids=["version-needed", "compression-method"])
def test_the_central_directory_fields_that_escaped_before(original, tmp_path, field):
    data, reference, params = original
    starts = [i for i in range(len(data)) if data.startswith(CENTRAL, i)]
    assert starts, "no central-directory header found"
    for start in starts:
        damaged = bytearray(data)
        damaged[start + field] ^= 0x5A
        path = str(tmp_path / f"d{start}.npz")
        with open(path, "wb") as f:
            f.write(damaged)
        assert _outcome(path, reference, params) == "refused"


def test_every_truncation_is_refused(original, tmp_path):
    data, reference, params = original
    path = str(tmp_path / "t.npz")
    for length in range(0, len(data)):
        with open(path, "wb") as f:
            f.write(data[:length])
        assert _outcome(path, reference, params) == "refused", length


def test_a_foreign_npz_and_a_newer_format_are_refused(tmp_path):
    foreign = str(tmp_path / "foreign.npz")
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(CheckpointError, match="cannot be read|not a"):
        load_checkpoint(foreign)
    import json

    newer = str(tmp_path / "newer.npz")
    meta = {"format": "mdlstm_np checkpoint", "version": 99}
    np.savez(newer, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(newer)
