"""Every CUDA kernel of the cupy backend, compiled exactly as CuPy compiles it at run time,
on a machine without a GPU; and every launch's arguments checked against the kernel's
declaration.

How CuPy builds an ``ElementwiseKernel`` (cupy/_core/_kernel.pyx, CuPy 13-14): a call turns
each argument into an ``_ArgInfo`` (kind, dtype, ndim, contiguity, 32- or 64-bit indexing),
decides the type map (``T`` -> float or double) with the kernel's own
``_decide_params_type``, generates the module source with ``_get_elementwise_kernel_code``,
prepends CuPy's headers and options in ``core.compile_with_cache``, and compiles it with NVRTC
for the device's architecture (``-arch=sm_XX``, a cubin). This test calls those same CuPy
functions. Only two things are replaced, because they need a GPU: the device query that picks
``-arch`` (we name sm_80 and sm_90 ourselves) and the loading of the compiled module into the
driver (we keep the binary instead). The arguments are those the real ``FusedSweep`` passes:
the sweep of every cell is run on the host with a recording launcher in place of the GPU.

Then the PTX that NVRTC makes for ``-arch=compute_XX`` (CuPy's own path for architectures
newer than its NVRTC knows) is assembled by ``ptxas -v`` from the CUDA pip wheels, which
reports registers, stack and spills. A kernel fails when NVRTC or ptxas rejects it, when it
spills, or when it cannot run CuPy's default 128-thread blocks (registers · 128 > 65,536).

The same sources go through NVRTC 13 as well (the ``nvidia-cuda-nvrtc`` wheel, through its C
API, since CuPy's bindings are built for one CUDA major version), with ptxas's report taken
from NVRTC's log (``-Xptxas=-v``).

Needs the ``nvrtc`` extra (cupy-cuda12x, nvidia-cuda-nvrtc-cu12, nvidia-cuda-nvcc-cu12 for
ptxas, nvidia-cuda-nvrtc for CUDA 13). Skipped with the reason when it is missing, except under CI (``CI=true``), where a
missing toolchain fails.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
from typing import Dict, List, NamedTuple

import numpy as np
import pytest

from mdlstm_np.backends import Backend
from mdlstm_np.backends import cupy as bc
from mdlstm_np.backends import cupy_kernels as ck
from mdlstm_np.mdlstm import MDLSTM

ARCHS = ("80", "90")
DTYPES = ("float32", "float64")
BLOCK = 128  # CuPy's default block_size for an ElementwiseKernel launch
REGISTERS_PER_BLOCK = 65536
# every cell with fused kernels (MDLSTM keyword arguments), as in tests/test_cupy.py
CELLS = {"graves": dict(cell="graves"), "ln_fixed": dict(ln=True), "ln_seed": dict(ln="seed"),
         "stable": dict(cell="stable"), "leakylp": dict(cell="leakylp"),
         "peephole": dict(cell="graves", peepholes=True)}
REPORT: List[str] = []  # printed at the end of the run (tests/conftest.py)


def _ptxas():
    spec = importlib.util.find_spec("nvidia.cuda_nvcc")
    if spec is not None and spec.submodule_search_locations:
        for root in spec.submodule_search_locations:
            path = pathlib.Path(root) / "bin" / "ptxas"
            if path.exists():
                return str(path)
    return shutil.which("ptxas")


def _toolchain_missing():
    """None when cupy, NVRTC and ptxas are all here, else why not."""
    try:
        import cupy  # noqa: F401
        from cupy.cuda import nvrtc

        nvrtc.getVersion()
    except Exception as error:  # ImportError, or NVRTC's library not found
        return f"cupy with NVRTC is not installed ({type(error).__name__}: {error})"
    if _ptxas() is None:
        return "ptxas is not installed (pip install nvidia-cuda-nvcc-cu12)"
    return None


MISSING = _toolchain_missing()
if MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must compile every kernel with NVRTC, but {MISSING}: install the "
                       f"'nvrtc' extra (see .ci/run)")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")


# --------------------------------------------------------------------------- recorded launches
class Arg(NamedTuple):
    """What a launch passed for one kernel parameter (the host twin of a cupy argument)."""

    kind: str        # "array" or "scalar"
    dtype: str       # numpy dtype name; for a scalar the Python type's name
    ndim: int
    contiguous: bool
    nbytes: int


class Launch(NamedTuple):
    kernel: str
    size: int
    args: Dict[str, Arg]


def _describe(value) -> Arg:
    if isinstance(value, np.ndarray):
        return Arg("array", value.dtype.name, value.ndim, bool(value.flags.c_contiguous),
                   value.nbytes)
    return Arg("scalar", type(value).__name__, 0, True, 0)


class RecordingKernels:
    """The launcher API of ``CupyKernels`` (``launch``, ``contiguous``), on host arrays: each
    launch is recorded, and its outputs are set to zero (nothing is computed)."""

    def __init__(self):
        self.launches: List[Launch] = []

    @staticmethod
    def contiguous(a):
        return np.ascontiguousarray(a)

    def launch(self, ks, size, **kw):
        self.launches.append(Launch(ks.name, int(size), {k: _describe(v) for k, v in kw.items()}))
        for p in ks.out_params.split(","):
            kw[p.split()[-1]][...] = 0


class RecordingBackend(Backend):
    """The numpy backend whose hot loop is the cupy backend's ``FusedSweep``."""

    name = "recording"

    def __init__(self):
        super().__init__()
        self.kernels = RecordingKernels()
        self._fused = bc.fused_sweeps(self, self.kernels)

    fast_sweeps = bc.CupyBackend.fast_sweeps


@pytest.fixture(scope="module")
def launches():
    """Every launch of every cell's forward and backward, both dtypes, with and without sizes
    and initial state, n = 1, 2, 3."""
    be = RecordingBackend()
    rng = np.random.default_rng(0)
    for cell, options in CELLS.items():
        for dtype in DTYPES:
            for n, shape in ((1, (5,)), (2, (3, 4)), (3, (2, 3, 2))):
                layer = MDLSTM(2, 3, ndim=n, backend=be, dtype=dtype, check_finite=False,
                               **options)
                params = layer.init_params(rng)
                x = be.asarray(rng.standard_normal((2, *shape, 2)), dtype=dtype)
                sizes = np.array([shape, [max(1, s - 1) for s in shape]])
                h0 = be.asarray(rng.standard_normal((2, 3)), dtype=dtype)
                for kw in ({}, {"sizes": sizes, "h0": h0, "c0": h0}):
                    out, cache = layer.forward(params, x, **kw)
                    assert cache.hot, f"{cell}: the fused sweep did not run"
                    layer.backward(np.ones_like(out), cache, return_state=True)
    return be.kernels.launches


def _kernel(name):
    return bc._elementwise_kernels()[name]


# --------------------------------------------------------------------------- launch shapes
def test_every_fused_kernel_is_launched(launches):
    names = {launch.kernel for launch in launches}
    assert names == {ks.name for ks in ck.KERNELS}, {ks.name for ks in ck.KERNELS} - names


def test_every_launch_matches_the_kernels_declaration(launches):
    """Names, kinds, dtypes and contiguity of each launch against the kernel's parameters;
    the float types then go through CuPy's own type decision (a mismatch is its TypeError)."""
    sources = {ks.name: ks for ks in ck.KERNELS}
    for launch in launches:
        ks, kern = sources[launch.kernel], _kernel(launch.kernel)
        declared = ck.param_names(ks)
        assert list(launch.args) == list(declared) or set(launch.args) == set(declared), \
            f"{launch.kernel}: passed {sorted(set(launch.args) ^ set(declared))} not declared"
        floats = set()
        for p in (*kern.in_params, *kern.out_params):
            arg = launch.args[p.name]
            where = f"{launch.kernel}({p.name})"
            if p.raw:
                assert arg.kind == "array" and arg.contiguous, f"{where}: {arg}"
                if p.dtype is not None:  # raw int64 index arrays
                    assert arg.dtype == np.dtype(p.dtype).name, f"{where}: {arg.dtype}"
                else:                    # raw T: the layer's float type
                    floats.add(arg.dtype)
            else:                        # int64 scalars (sizes, offsets, flags)
                assert arg.kind == "scalar" and arg.dtype in ("int", "int64"), f"{where}: {arg}"
        assert len(floats) == 1 and floats <= {"float32", "float64"}, f"{launch.kernel}: {floats}"
        ins = tuple(np.dtype(launch.args[p.name].dtype) if launch.args[p.name].kind == "array"
                    else None for p in kern.in_params)
        outs = tuple(np.dtype(launch.args[p.name].dtype) for p in kern.out_params)
        kern._decide_params_type(ins, outs)  # CuPy's check: TypeError on a mismatch


def test_the_launch_check_can_fail(launches):
    """A float64 array in a float32 launch is caught by CuPy's type decision."""
    launch = next(lc for lc in launches if lc.args["zx" if "zx" in lc.args else "h"].dtype
                  == "float32")
    kern = _kernel(launch.kernel)
    ins = [np.dtype(launch.args[p.name].dtype) if launch.args[p.name].kind == "array" else None
           for p in kern.in_params]
    first = next(i for i, p in enumerate(kern.in_params) if p.raw and p.dtype is None)
    ins[first] = np.dtype("float64")
    outs = tuple(np.dtype(launch.args[p.name].dtype) for p in kern.out_params)
    with pytest.raises(TypeError, match="mismatched"):
        kern._decide_params_type(tuple(ins), outs)


# --------------------------------------------------------------------------- NVRTC and ptxas
def _arginfos(kern, launch: Launch, index_32: bool):
    """The ``_ArgInfo`` tuple CuPy's ``ElementwiseKernel.__call__`` builds for this launch
    (kinds 1 ndarray, 2 indexer, 3 scalar, as in cupy/_core/_kernel.pxd). Raw arrays keep
    their ndim (``_reduce_dims`` skips them); scalars take their parameter's dtype."""
    import cupy
    from cupy._core import _carray, _kernel, _scalar

    infos = []
    for p in (*kern.in_params, *kern.out_params):
        arg = launch.args[p.name]
        if arg.kind == "array":
            infos.append(_kernel._ArgInfo(1, cupy.ndarray, np.dtype(arg.dtype), arg.ndim,
                                          arg.contiguous, index_32))
        else:
            infos.append(_kernel._ArgInfo(3, _scalar.CScalar, np.dtype(p.dtype), 0, True,
                                          True))
    infos.append(_kernel._ArgInfo(2, _carray.Indexer, None, 1, True, index_32))
    return tuple(infos)


def _sigmoid_arginfos(kern, dtype: str, index_32: bool):
    """The sigmoid kernel's (non-raw, contiguous: reduced to 1-D) arguments."""
    import cupy
    from cupy._core import _carray, _kernel

    arr = _kernel._ArgInfo(1, cupy.ndarray, np.dtype(dtype), 1, True, index_32)
    return (arr, arr, _kernel._ArgInfo(2, _carray.Indexer, None, 1, True, index_32))


def _variants(launches):
    """(kernel name, dtype, arginfos) for every distinct compiled variant, 32- and 64-bit
    indexing (large grids switch to the latter)."""
    seen = {}
    for launch in launches:
        kern = _kernel(launch.kernel)
        dtype = next(launch.args[p.name].dtype for p in kern.in_params
                     if p.raw and p.dtype is None)
        for index_32 in (True, False):
            infos = _arginfos(kern, launch, index_32)
            seen.setdefault((launch.kernel, infos), (launch.kernel, dtype, index_32, infos))
    for dtype in DTYPES:
        for index_32 in (True, False):
            kern = _kernel(ck.SIGMOID.name)
            infos = _sigmoid_arginfos(kern, dtype, index_32)
            seen.setdefault((ck.SIGMOID.name, infos), (ck.SIGMOID.name, dtype, index_32, infos))
    return list(seen.values())


class _Captured(Exception):
    pass


def _cupy_source(kern, infos, monkeypatch):
    """The module source and NVRTC options CuPy itself produces for this call."""
    import cupy.cuda.compiler as compiler
    from cupy._core import _kernel, core

    in_types = tuple(i.dtype if i.arg_kind == 1 else None for i in infos[:kern.nin])
    out_types = tuple(i.dtype for i in infos[kern.nin:kern.nargs])
    _, _, type_map = kern._decide_params_type(in_types, out_types)
    code = _kernel._get_elementwise_kernel_code(infos, type_map, kern.params, kern.operation,
                                               kern.name, kern.preamble, **kern.kwargs)
    seen = {}

    def capture(source, options=(), **kw):  # where CuPy would compile and load the module
        seen.update(source=source, options=options)
        raise _Captured

    monkeypatch.setattr(compiler, "_compile_module_with_cache", capture)
    with pytest.raises(_Captured):
        core.compile_with_cache(code, tuple(kern.kwargs.get("options", ())), arch="90")
    monkeypatch.undo()
    return seen["source"], seen["options"]


def _nvrtc(source, options, arch, method, monkeypatch):
    """CuPy's ``compile_using_nvrtc`` with the architecture named instead of queried."""
    import cupy.cuda.compiler as compiler

    flag = f"-arch={'sm' if method == 'cubin' else 'compute'}_{arch}"
    monkeypatch.setattr(compiler, "_get_arch_for_options_for_nvrtc",
                        lambda arch=None: (flag, method))
    try:
        binary, _ = compiler.compile_using_nvrtc(source, options, arch=arch)
    finally:
        monkeypatch.undo()
    return binary


PTXAS = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads"
                   r".*?Used (\d+) registers", re.S)


def _ptxas_report(ptx: bytes, arch: str, tmp: pathlib.Path):
    (tmp / "k.ptx").write_bytes(ptx if isinstance(ptx, bytes) else ptx.encode())
    done = subprocess.run([_ptxas(), f"-arch=sm_{arch}", "-v", str(tmp / "k.ptx"), "-o",
                           str(tmp / "k.cubin")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    match = PTXAS.search(done.stdout + done.stderr)
    assert match, done.stdout + done.stderr
    return _usage(match.group(0))


WHEEL_LIBS = {"cuda12": ("cuda_nvrtc", "libnvrtc.so.12"), "cuda13": ("cu13", "libnvrtc.so.13")}


def _nvrtc_library(toolkit):
    """NVRTC of one CUDA major version from its pip wheel (nvidia-cuda-nvrtc-cu12, or
    nvidia-cuda-nvrtc for 13), as a ctypes library; None when the wheel is not installed."""
    folder, name = WHEEL_LIBS[toolkit]
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations if spec else ()):
        path = pathlib.Path(root) / folder / "lib" / name
        if path.exists():
            return ctypes.CDLL(str(path))
    return None


def _nvrtc_c(lib, source, options, flag, ptx=False):
    """NVRTC through its C API (CuPy's bindings load one NVRTC per process, the newest they
    find): CuPy's source and options, CuPy's ``--device-as-default-execution-space``, the
    architecture ``flag``. Returns (binary, log); with ``ptx`` the PTX, else the cubin with
    ptxas's report in the log (``-Xptxas=-v``)."""
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"kern.cu", 0, None,
                                  None) == 0
    opts = [*options, "--device-as-default-execution-space", flag] + ([] if ptx else
                                                                      ["-Xptxas=-v"])
    opts = [o.encode() for o in opts]
    try:
        status = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        text = log.value.decode(errors="replace")
        if status != 0:
            raise RuntimeError(f"NVRTC error {status}: {text}")
        get_size, get = ((lib.nvrtcGetPTXSize, lib.nvrtcGetPTX) if ptx else
                         (lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN))
        get_size(prog, ctypes.byref(size))
        binary = ctypes.create_string_buffer(size.value)
        get(prog, binary)
        return binary.raw, text
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def _usage(text):
    match = PTXAS.search(text)
    assert match, text
    stack, spill_st, spill_ld, regs = map(int, match.groups())
    return dict(registers=regs, stack=stack, spill_stores=spill_st, spill_loads=spill_ld)


def _check(use, where, failures):
    if use["spill_stores"] or use["spill_loads"]:
        failures.append(f"{where}: spills {use}")
    if use["registers"] * BLOCK > REGISTERS_PER_BLOCK:
        failures.append(f"{where}: {use['registers']} registers cannot run {BLOCK}-thread blocks")


def _row(name, dtype, index_32, arch, use):
    return (f"{name:26} {dtype:8} {'i32' if index_32 else 'i64'}  sm_{arch}  "
            f"{use['registers']:4d} regs  {use['stack']:4d} B stack  "
            f"{use['spill_stores']:3d}/{use['spill_loads']:<3d} B spills")


@pytest.mark.parametrize("toolkit", ["cupy", "cuda12", "cuda13"])
def test_every_kernel_compiles_with_nvrtc(toolkit, launches, monkeypatch, tmp_path):
    """cupy: CuPy's own NVRTC call (``compile_using_nvrtc``, a cubin for ``-arch=sm_XX``) for
    every variant a launch uses, with the NVRTC CuPy loads: the run-time path itself.
    cuda12: NVRTC 12 to PTX, assembled by the wheel's ptxas -v. cuda13: NVRTC 13 to a cubin,
    ptxas's report from its log. Both on one variant per kernel, dtype and index width."""
    from cupy.cuda import nvrtc

    lib = None
    if toolkit == "cupy":
        version = ".".join(map(str, nvrtc.getVersion()))
    else:
        lib = _nvrtc_library(toolkit)
        if lib is None:
            reason = f"NVRTC for {toolkit} is not installed (the nvrtc extra)"
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI installs the nvrtc extra, but {reason}")
            pytest.skip(reason)
        major, minor = ctypes.c_int(), ctypes.c_int()
        lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
        version = f"{major.value}.{minor.value}"
    failures, rows, done, compiled = [], [], set(), 0
    for name, dtype, index_32, infos in _variants(launches):
        if toolkit != "cupy" and (name, dtype, index_32) in done:
            continue  # the same kernel with other array ranks
        done.add((name, dtype, index_32))
        source, options = _cupy_source(_kernel(name), infos, monkeypatch)
        for arch in ARCHS:
            where = f"{toolkit} {name} {dtype} {'i32' if index_32 else 'i64'} sm_{arch}"
            try:
                if toolkit == "cupy":
                    assert len(_nvrtc(source, options, arch, "cubin", monkeypatch)) > 0
                    compiled += 1
                    continue
                if toolkit == "cuda12":
                    ptx, _ = _nvrtc_c(lib, source, options, f"-arch=compute_{arch}", ptx=True)
                    use = _ptxas_report(ptx.rstrip(b"\0"), arch, tmp_path)
                else:
                    cubin, log = _nvrtc_c(lib, source, options, f"-arch=sm_{arch}")
                    assert len(cubin) > 0
                    use = _usage(log)
                compiled += 1
            except Exception as error:  # NVRTC's errors, ptxas errors
                failures.append(f"{where}: {type(error).__name__}: {str(error)[:2000]}")
                continue
            rows.append(_row(name, dtype, index_32, arch, use))
            _check(use, where, failures)
    what = ("cubins through CuPy's own compile_using_nvrtc" if toolkit == "cupy" else
            "from the source CuPy generates; registers and spills from ptxas -v")
    REPORT.extend([f"{toolkit}: NVRTC {version}, {compiled} compiles ({len(done)} kernel "
                   f"variants x sm_{', sm_'.join(ARCHS)}), {what}" + (":" if rows else "")]
                  + rows)
    assert not failures, "\n".join(failures)
    assert {key[0] for key in done} == {ks.name for ks in (*ck.KERNELS, ck.SIGMOID)}
    assert compiled >= 2 * len(done)


def test_a_broken_kernel_fails_to_compile(launches, monkeypatch):
    """The compile path reports a kernel that does not compile (so the test above can fail)."""
    from cupy.cuda.compiler import CompileException

    launch = launches[0]
    kern = _kernel(launch.kernel)
    source, options = _cupy_source(kern, _arginfos(kern, launch, True), monkeypatch)
    with pytest.raises(CompileException):
        _nvrtc(source + "\nthis is not C++;\n", options, "90", "cubin", monkeypatch)
