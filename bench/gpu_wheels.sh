#!/usr/bin/env bash
# Download, on a machine with network access, the wheels bench/gpu_checks.sh needs on a CUDA
# machine without it, whose Python already has torch (with CUDA), timm, numpy, OpenCV, onnx,
# onnxscript, safetensors, PyYAML, SciPy, tqdm and pytest:
#
#   bash bench/gpu_wheels.sh [PYTHON_VERSION] [DIR] [SPLIT_SIZE]     (default 3.12 .whl none)
#
# open_clip_torch, ftfy, wcwidth, onnxconverter-common and onnxruntime-gpu, at the versions of
# requirements/ and constraints.txt, for CPython PYTHON_VERSION on x86_64 Linux. With
# SPLIT_SIZE (e.g. 60M) every wheel larger than that is cut into DIR/NAME.whl.part-aa, -ab, ...
# (gpu_checks.sh joins them): for transfers that limit a file's or a call's size. Copy DIR into
# the checkout on the GPU machine and run WHEELS=DIR bash bench/gpu_checks.sh there.
set -euo pipefail

cd "$(dirname "$0")/.."
PYVER=${1:-3.12}
DIR=${2:-.whl}
SPLIT=${3:-}
pin() {  # NAME -> NAME==VERSION as pinned in requirements/ or constraints.txt
    grep -hiE "^$1==" requirements/*.txt constraints.txt | head -1
}
mkdir -p "$DIR"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$DIR" \
    "$(pin open_clip_torch)" "$(pin ftfy)" "$(pin wcwidth)" "$(pin onnxconverter-common)" \
    "$(pin onnxruntime-gpu)"
if [ -n "$SPLIT" ]; then
    limit=$(numfmt --from=iec "$SPLIT")
    for wheel in "$DIR"/*.whl; do
        if [ "$(stat -c %s "$wheel")" -gt "$limit" ]; then
            split -b "$SPLIT" "$wheel" "$wheel.part-" && rm "$wheel"
        fi
    done
fi
ls -l "$DIR"
