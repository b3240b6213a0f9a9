#!/usr/bin/env bash
# The main job on a built-in default (`make demo`): make a sample bag, replay it through a real
# vltseg_node process, and write overlays, metrics and an output bag into one folder.
#
#   scripts/demo.sh                     random-weight vit-b-16 (the output is meaningless)
#   CHECKPOINT=weights.safetensors scripts/demo.sh      real weights (architecture included)
#   MODEL=tiny scripts/demo.sh          any built-in model / config YAML; OUT=dir to move it
#
# Frames: the real Cityscapes / ACDC frames of ../shared/data/frames when that folder exists
# (it is not part of the repository), otherwise generated street scenes with exact labels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${OUT:-out/demo}"
FRAMES="${FRAMES:-../shared/data/frames}"
VLTSEG=.venv/bin/vltseg
MODEL_ARGS=()
[[ -n "${CHECKPOINT:-}" ]] && MODEL_ARGS+=(--checkpoint "$CHECKPOINT")
[[ -n "${MODEL:-}" ]] && MODEL_ARGS+=(--model "$MODEL")

rm -rf "$OUT"
mkdir -p "$OUT"
if [[ -d "$FRAMES" ]]; then
    echo "demo: making a bag of the frames in $FRAMES"
    "$VLTSEG" make-bag "$FRAMES" "$OUT/input" --labels "$FRAMES" --rate 2
else
    echo "demo: $FRAMES not found; making a bag of 6 generated street scenes"
    "$VLTSEG" make-bag - "$OUT/input" --synthetic 6 --rate 2
fi
echo "demo: replaying it through vltseg_node (one frame at a time, as fast as the node keeps up)"
"$VLTSEG" bag-eval "$OUT/input" --live --lockstep --save-overlays --out "$OUT" \
    --write-bag "$OUT/segmented" "${MODEL_ARGS[@]}"

echo
echo "demo: done. Results in $(cd "$OUT" && pwd):"
echo "  report.md, report.json, iou.png, confusion.png   metrics"
echo "  overlays/*.png                                   class colors over every frame"
echo "  segmented/                                       bag: input + mask/confidence/overlay/info topics"
echo "  node.log                                         the node's log"
if [[ -z "${CHECKPOINT:-}" ]]; then
    echo "NOTE: no CHECKPOINT was given, so the model had RANDOM weights and the masks and"
    echo "metrics are meaningless. Run with real weights: CHECKPOINT=weights.safetensors make demo"
fi
