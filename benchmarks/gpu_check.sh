#!/usr/bin/env bash
# The GPU check, in one run (< 10 min): show the GPU, run the cupy tests, check every cell and
# the default model on cupy against numpy, run the demo on cupy (the default run, and every other
# task at small settings), the torch bridge on CUDA tensors, and print the table: every cell's
# float32 training step on cupy and on numba at S, M, L and XL (256x256, batch 32, hidden 64).
# See benchmarks/README_gpu.md and docs/gpu.md.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; results in $OUT (default gpu_check_out/)
#
# It installs NOTHING and reaches no network: the GPU machine this project is checked on has
# Python 3.12, CuPy 14 for CUDA 13 (cupy-cuda13x), numba, SciPy, PyTorch, pytest and hypothesis,
# and no package registry. The project runs from this source tree (PYTHONPATH; or install it
# first with  pip install --no-deps --no-build-isolation -e . ). array-api-compat, when
# missing, is taken from SciPy's vendored copy (mdlstm_np/backends/cupy.py); tqdm and
# matplotlib are needed only by the demo, whose GPU test is then skipped with the reason.
# Time limits per step (90 + 60 + 100 + 4 x 35 + 50 + 150 s = 590 s) keep the whole run under
# 10 minutes; each step fails on its own (the log says which), the others still run.
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
timeout 90 "$PY" -m pytest -q -rs -p no:cacheprovider tests/test_cupy.py \
    --junitxml="$OUT/test_cupy.xml" || { echo "cupy tests FAILED"; status=1; }

step "4. every cell and the default model on cupy (parity with numpy, M timings)"
timeout 60 "$PY" -m benchmarks.gpu_check --cells "$OUT/cells" | tee "$OUT/cells.txt" \
    || { echo "cell check FAILED"; status=1; }

step "5. python demo.py --backend cupy (the default run: the seed's three models, 1000 steps)"
timeout 100 "$PY" demo.py --backend cupy --no-progress --out "$OUT/demo_diagonal" --overwrite \
    || { echo "demo (diagonal) on cupy FAILED"; status=1; }

step "6. every other demo task on cupy, small settings"
for task in "gaussian --epochs 1 --train 64 --val 32" "digits --epochs 1 --train 128 --val 128" \
            "diagonal3d --epochs 1 --train 32 --val 16" "lines --epochs 1 --train 64 --val 16"; do
    name=${task%% *}
    # shellcheck disable=SC2086  # the task's flags are split on purpose
    timeout 35 "$PY" demo.py --backend cupy --no-progress --task $task --out "$OUT/demo_$name" \
        --overwrite > "$OUT/demo_$name.log" 2>&1 \
        && echo "  $name: ok ($(tail -n 1 "$OUT/demo_$name.log"))" \
        || { echo "  $name on cupy FAILED:"; tail -n 5 "$OUT/demo_$name.log"; status=1; }
done

step "7. the torch bridge on CUDA tensors (gradcheck, DLPack, torch's current stream)"
timeout 50 "$PY" -m benchmarks.gpu_check --torch-cuda || { echo "torch on CUDA FAILED"; status=1; }

step "8. the table: every cell's float32 train step, cupy vs the CPU backend, S M L XL"
timeout 150 "$PY" -m benchmarks.gpu_check --cell-steps "$OUT/cell_steps" --budget 130 \
    | tee "$OUT/table.txt" || { echo "cell-step table FAILED"; status=1; }
echo
echo "gpu_check: done, status $status; log and results in $OUT"
exit $status
