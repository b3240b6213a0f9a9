#!/usr/bin/env bash
# The GPU checks in one run: CUDA tests, engine latency and the node's stage breakdown on CUDA.
#
#   bash bench/gpu_checks.sh [OUT_DIR]        (default out/gpu)
#
# For a CUDA machine where `python3` (or $PYTHON) already has a CUDA build of torch, e.g. a
# bare GPU server or container without network access: it needs no .venv and no ROS 2. Packages
# that Python lacks come as wheel files in $WHEELS (default .whl/), installed with pip --no-index
# into a private folder ($SITE, default /tmp/vltseg_site) that goes first on PYTHONPATH; nothing
# is downloaded. A wheel too large to move in one piece may come split (`split -b 60M F.whl
# F.whl.part-`): the parts are joined first. Prepare the wheels on a machine with network access
# with bench/gpu_wheels.sh (docs/benchmarks.md, "On a GPU machine").
#
# Environment: PARTS (default "tests engines stages"; any subset, to split the work over calls),
# MODELS (engine latency; default "tiny vit-b-16 eva02-l-14"), STAGE_MODELS (default
# "vit-b-16"), ENGINES (default "pytorch onnxruntime"), COMPILE=1 (adds PyTorch fp16 with
# torch.compile), REPEATS (crop rounds, default 5), FRAME_REPEATS (default 3), DEVICE (default
# cuda; cpu only to try this script out).
#
# Writes OUT_DIR/env.txt (GPU, driver, packages, ONNX Runtime providers), OUT_DIR/tests.log and
# OUT_DIR/benchmarks.md (the sections to copy into docs/benchmarks.md). Exits non-zero when a
# test failed or a benchmark broke off; every part runs regardless.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT_DIR=${1:-out/gpu}
PYTHON=${PYTHON:-python3}
WHEELS=${WHEELS:-.whl}
SITE=${SITE:-/tmp/vltseg_site}
PARTS=${PARTS:-tests engines stages}
MODELS=${MODELS:-tiny vit-b-16 eva02-l-14}
STAGE_MODELS=${STAGE_MODELS:-vit-b-16}
ENGINES=${ENGINES:-pytorch onnxruntime}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1

shopt -s nullglob
wheels=("$WHEELS"/*.whl "$WHEELS"/*.whl.part-*)
if [ ${#wheels[@]} -gt 0 ] && ! (ls -l "${wheels[@]}" | cmp -s - "$SITE/.wheels"); then
    joined=$(mktemp -d)
    for first in "$WHEELS"/*.whl.part-aa; do
        cat "${first%aa}"?? >"$joined/$(basename "${first%.part-aa}")"
    done
    echo "installing the wheels of $WHEELS into $SITE: $(cd "$WHEELS" && echo *.whl*)"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$WHEELS"/*.whl "$joined"/*.whl && ls -l "${wheels[@]}" >"$SITE/.wheels"
    rm -rf "$joined"
fi
[ -d "$SITE" ] && export PYTHONPATH="$SITE:${PYTHONPATH:-}"
export PYTHONPATH="$PWD:${PYTHONPATH:-}"

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    "$PYTHON" - <<'EOF'
import importlib
import sys

import torch

print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")
for name in ("open_clip", "timm", "onnx", "onnxscript", "onnxruntime", "onnxconverter_common",
             "numpy", "cv2"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"), module.__file__)
    except ImportError as error:
        print(name, "MISSING:", error)
try:
    import onnxruntime
    print("onnxruntime providers:", onnxruntime.get_available_providers())
except ImportError:
    pass
EOF
} 2>&1 | tee "$OUT_DIR/env.txt"

status=0
run() {  # run a step, keep going, remember a failure
    echo "== $*"
    "$@" || { echo "== FAILED ($?): $*"; status=1; }
}
for part in $PARTS; do
    case $part in
    tests)
        run "$PYTHON" -m pytest -v -p no:cacheprovider test/gpu \
            test/inference/test_predictor.py 2>&1 | tee "$OUT_DIR/tests.log"
        grep -q "== FAILED" "$OUT_DIR/tests.log" && status=1
        ;;
    engines)
        # shellcheck disable=SC2086  # word splitting of the lists is intended
        run "$PYTHON" bench/engine_latency.py --device "$DEVICE" --models $MODELS \
            --engines $ENGINES ${COMPILE:+--compile} --repeats "${REPEATS:-5}" \
            --frame-repeats "${FRAME_REPEATS:-3}" --write "$OUT_DIR/benchmarks.md"
        ;;
    stages)
        # shellcheck disable=SC2086
        run "$PYTHON" bench/frame_stages.py --device "$DEVICE" --models $STAGE_MODELS \
            --repeats "${REPEATS:-5}" --write "$OUT_DIR/benchmarks.md"
        ;;
    *)
        echo "unknown part $part (tests, engines, stages)"
        status=2
        ;;
    esac
done
echo "gpu_checks: results in $OUT_DIR (status $status)"
exit $status
