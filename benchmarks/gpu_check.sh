#!/usr/bin/env bash
# The GPU check, in one run (< 5 min): show the GPU, run the cupy tests, check every cell and
# the default model on cupy against numpy, time them, and run the benchmark. See
# benchmarks/README_gpu.md.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results in $OUT (default gpu_check_out/)
#
# It installs NOTHING and reaches no network: the GPU machine this project is checked on has
# Python 3.12, CuPy 14 for CUDA 13 (cupy-cuda13x), numba, SciPy, PyTorch, pytest and hypothesis,
# and no package registry. The project runs from this source tree (PYTHONPATH; or install it
# first with  pip install --no-deps --no-build-isolation -e . ). array-api-compat, when
# missing, is taken from SciPy's vendored copy (mdlstm_np/backends/cupy.py); tqdm and
# matplotlib are needed only by the demo, whose GPU test is then skipped with the reason.
# Time limits per step (120 + 75 + 45 + 30 s) keep the whole run under 5 minutes.
# Exit status: 0 when every step passed, 1 otherwise (the log says which step failed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PIP_NO_INDEX=1  # belt and braces: nothing below calls pip, and pip could not download
exec > >(tee "$OUT/gpu_check.log") 2>&1
status=0
step() { echo; echo "== $* ($(date +%H:%M:%S))"; }

step "1. python packages (nothing is installed: what is missing is reported)"
"$PY" --version
"$PY" - <<'EOF' || status=1
import importlib
required = ["numpy", "cupy", "numba", "scipy", "torch", "pytest", "hypothesis"]
optional = {"array_api_compat": "SciPy's vendored copy is used instead",
            "tqdm": "the demo's GPU test is skipped", "matplotlib": "the demo's GPU test is skipped"}
missing = []
for name in required + list(optional):
    try:
        m = importlib.import_module(name)
        print(f"  {name:<17} {getattr(m, '__version__', '?')}")
    except Exception as e:  # noqa: BLE001 - any import failure is reported the same way
        note = optional.get(name)
        print(f"  {name:<17} MISSING ({type(e).__name__})" + (f": optional, {note}" if note else ""))
        if note is None:
            missing.append(name)
if missing:
    raise SystemExit(f"gpu_check: required packages missing: {', '.join(missing)}")
EOF
reason=$("$PY" -c "from mdlstm_np.backends.cupy import cupy_unavailable_reason as r; print(r() or 'ok')")
echo "cupy backend: $reason"

step "2. the GPU"
nvidia-smi || echo "nvidia-smi not found"
"$PY" -c "import cupy; print('cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), '| device 0:', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())" || true
if [ "$reason" != "ok" ]; then
    echo "gpu_check: the cupy backend is not usable here: $reason"
    exit 1
fi

step "3. cupy tests (tests/test_cupy.py: host twins of every fused kernel, GPU parity and FD)"
timeout 120 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cupy.py \
    --junitxml="$OUT/test_cupy.xml" || { echo "cupy tests FAILED"; status=1; }

step "4. every cell and the default model on cupy (parity with numpy, M timings)"
timeout 75 "$PY" -m benchmarks.gpu_check --cells "$OUT/cells" | tee "$OUT/cells.txt" \
    || { echo "cell check FAILED"; status=1; }

step "5. benchmark: S, M, L on cupy and on the CPU backend (float32)"
cpu=$("$PY" -c "from mdlstm_np.backends import numba_available as n; print('numba' if n() else 'numpy')")
if [ -f "$ROOT/benchmarks/bench.py" ] && timeout 45 "$PY" -m benchmarks.bench --backends "cupy,$cpu" \
        --configs S,M,L --dtype float32 --repeats 5 --budget 1.5 --no-compile \
        --out "$OUT/bench"; then
    "$PY" -m benchmarks.gpu_check --from-bench "$OUT/bench" | tee "$OUT/table.txt" || status=1
else
    echo "benchmarks.bench missing, failed or slow: timing a full training step here instead"
    timeout 30 "$PY" -m benchmarks.gpu_check --time "$OUT/train_step" --configs S,M \
        | tee "$OUT/table.txt" || status=1
fi
echo
echo "gpu_check: done, status $status; log and results in $OUT"
exit $status
