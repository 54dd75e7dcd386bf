#!/usr/bin/env bash
# The GPU check, in one run (< 5 min on a fresh CUDA machine): install what is missing, show
# the GPU, run the cupy tests, benchmark S, M, L, XL on cupy and on the CPU backend, print one
# table with the cupy-vs-CPU ratios. See benchmarks/README_gpu.md.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results in $OUT (default gpu_check_out/)
#
# Offline machines: put wheels in .whl/ at the repository root (README_gpu.md says how); pip
# then installs from there only (--no-index). Exit status: 0 when the cupy tests pass and the
# benchmark ran, 1 otherwise (the log says which step failed).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec > >(tee "$OUT/gpu_check.log") 2>&1
status=0
step() { echo; echo "== $* ($(date +%H:%M:%S))"; }

pip_install() {  # from .whl/ when it exists (offline), else from PyPI
    if [ -d "$ROOT/.whl" ]; then
        "$PY" -m pip install -q --no-index --find-links "$ROOT/.whl" "$@"
    else
        "$PY" -m pip install -q "$@"
    fi
}

step "1. python packages (only what is missing)"
"$PY" --version
missing=()
for pair in numpy:numpy numba:numba pytest:pytest hypothesis:hypothesis tqdm:tqdm \
            matplotlib:matplotlib array_api_compat:array-api-compat \
            array_api_strict:array-api-strict; do
    "$PY" -c "import ${pair%%:*}" 2>/dev/null || missing+=("${pair#*:}")
done
"$PY" -c "import cupy" 2>/dev/null || missing+=("cupy-cuda12x")
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    pip_install "${missing[@]}" || { echo "pip install failed"; status=1; }
fi
probe() { "$PY" -c "from mdlstm_np.backends.cupy import cupy_unavailable_reason as r; print(r() or 'ok')"; }
reason=$(probe)
if [ "$reason" != "ok" ] && [[ "$reason" == *"cannot run a kernel"* ]]; then
    echo "cupy cannot run a kernel ($reason): adding the CUDA 12 libraries (cupy-cuda12x[ctk])"
    pip_install "cupy-cuda12x[ctk]" && reason=$(probe)
fi
echo "cupy backend: $reason"

step "2. the GPU"
nvidia-smi || echo "nvidia-smi not found"
"$PY" -c "import cupy; print('cupy', cupy.__version__, '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(), '| device 0:', cupy.cuda.runtime.getDeviceProperties(0)['name'].decode())" || true
if [ "$reason" != "ok" ]; then
    echo "gpu_check: the cupy backend is not usable here: $reason"
    exit 1
fi

step "3. cupy tests (tests/test_cupy.py)"
"$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cupy.py -x --junitxml="$OUT/test_cupy.xml" \
    || { echo "cupy tests FAILED"; status=1; }

step "4. benchmark: S, M, L, XL on cupy and on the CPU backend (float32)"
cpu=$("$PY" -c "from mdlstm_np.backends import numba_available as n; print('numba' if n() else 'numpy')")
if [ -f "$ROOT/benchmarks/bench.py" ] && timeout 150 "$PY" -m benchmarks.bench --backends "cupy,$cpu" \
        --configs S,M,L,XL --dtype float32 --out "$OUT/bench"; then
    step "5. cupy vs $cpu (from the benchmark suite)"
    "$PY" -m benchmarks.gpu_check --from-bench "$OUT/bench" | tee "$OUT/table.txt" || status=1
else
    echo "benchmarks.bench missing or failed: timing a full training step here instead"
    step "5. cupy vs $cpu, full training step (benchmarks.gpu_check --time)"
    timeout 120 "$PY" -m benchmarks.gpu_check --time "$OUT/train_step" | tee "$OUT/table.txt" \
        || status=1
fi
echo
echo "gpu_check: done, status $status; log and results in $OUT"
exit $status
