#!/usr/bin/env bash
# The main job on a built-in default (`make demo`): generate street scenes, make a bag of them,
# replay it through a real vltseg_node process, and write overlays, metrics and an output bag
# into one folder.
#
#   scripts/demo.sh                     the built-in demo model (vltseg_ros.demo_model: a toy
#                                       trained on generated scenes, NOT VLTSeg) on 6 generated
#                                       scenes it never saw in training (seeds 100000-100005)
#   CHECKPOINT=weights.safetensors scripts/demo.sh      real weights (architecture included)
#   MODEL=vit-b-16 scripts/demo.sh      any built-in model / config YAML, RANDOM weights
#   RANDOM_WEIGHTS=1 scripts/demo.sh    the default architecture with RANDOM weights
#   FRAMES=../shared/data/frames scripts/demo.sh    labeled real frames (Cityscapes / ACDC
#                                       names) instead of generated scenes; the demo model
#                                       fails on them: give a CHECKPOINT
#   OUT=dir scripts/demo.sh             another results folder (default out/demo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT="${OUT:-out/demo}"
FRAMES="${FRAMES:-}"
VLTSEG=.venv/bin/vltseg
SCENE_SEED=100000  # vltseg_ros.data.scenes_dataset.HELD_OUT_SEED: the demo model trained below it
MODEL_ARGS=()
if [[ -n "${CHECKPOINT:-}" ]]; then
    WEIGHTS=checkpoint
    MODEL_ARGS+=(--checkpoint "$CHECKPOINT")
    [[ -n "${MODEL:-}" ]] && MODEL_ARGS+=(--model "$MODEL")
elif [[ -n "${MODEL:-}" || -n "${RANDOM_WEIGHTS:-}" ]]; then
    WEIGHTS=random
    [[ -n "${MODEL:-}" ]] && MODEL_ARGS+=(--model "$MODEL")
else
    WEIGHTS=demo
    DEMO_CHECKPOINT="$(.venv/bin/python -c \
        'from vltseg_ros.demo_model import DEMO_CHECKPOINT; print(DEMO_CHECKPOINT)')"
    MODEL_ARGS+=(--checkpoint "$DEMO_CHECKPOINT")
fi
if [[ -n "$FRAMES" && ! -d "$FRAMES" ]]; then
    echo "demo: FRAMES=$FRAMES is not a folder" >&2
    exit 2
fi

rm -rf "$OUT"
mkdir -p "$OUT"
if [[ -n "$FRAMES" ]]; then
    echo "demo: making a bag of the frames in $FRAMES"
    "$VLTSEG" make-bag "$FRAMES" "$OUT/input" --labels "$FRAMES" --rate 2
else
    echo "demo: generating 6 street scenes (seeds $SCENE_SEED-$((SCENE_SEED + 5))) and a bag of them"
    "$VLTSEG" make-scenes "$OUT/scenes" --count 6 --seed "$SCENE_SEED"
    "$VLTSEG" make-bag "$OUT/scenes" "$OUT/input" --labels "$OUT/scenes" --rate 2
fi
echo "demo: replaying it through vltseg_node (one frame at a time, as fast as the node keeps up)"
"$VLTSEG" bag-eval "$OUT/input" --live --lockstep --save-overlays --out "$OUT" \
    --write-bag "$OUT/segmented" "${MODEL_ARGS[@]}"

echo
echo "demo: done. Results in $(cd "$OUT" && pwd):"
echo "  report.md, report.json, iou.png, confusion.png   metrics"
echo "  overlays/<frame>.png                             class colors over every frame, named after it"
echo "  segmented/                                       bag: input + mask/confidence/overlay/anomaly/info/label_info"
echo "  node.log                                         the node's log"
frames_text="6 generated street scenes (seeds $SCENE_SEED-$((SCENE_SEED + 5)), never trained on)"
[[ -n "$FRAMES" ]] && frames_text="the frames of $FRAMES"
case "$WEIGHTS" in
demo)
    echo "NOTE: this ran the built-in demo model 'synthetic-scenes-demo' (docs/demo_model.md) on"
    echo "$frames_text. It is a toy trained on flat generated scenes, NOT VLTSeg."
    if [[ -n "$FRAMES" ]]; then
        echo "It fails on real frames: these masks and metrics say nothing about VLTSeg."
    fi
    echo "Real VLTSeg weights: CHECKPOINT=weights.safetensors make demo"
    ;;
random)
    echo "NOTE: this ran model '${MODEL:-the default model}' with RANDOM weights (no CHECKPOINT) on"
    echo "$frames_text: the masks and metrics are meaningless."
    echo "Run with real weights: CHECKPOINT=weights.safetensors make demo"
    ;;
checkpoint)
    echo "NOTE: this ran CHECKPOINT=$CHECKPOINT on $frames_text."
    ;;
esac
