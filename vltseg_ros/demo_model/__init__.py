"""The built-in demo model ``synthetic-scenes-demo``: a toy the project trains itself. NOT VLTSeg.

What it is: the ``synthetic-scenes-demo`` architecture (a 4-block, 64-dim CLIP-style ViT with
patch 8 + a small Mask2Former with 12 queries; 0.72 M parameters, 2.9 MB) trained from scratch
(no CLIP weights) for 800 iterations on 400 flat generated street scenes
(:func:`vltseg_ros.data.scenes.synthetic_street_scene`, seeds 0-399, 1024x512, Cityscapes train
ids: road, sidewalk, building, vegetation, sky, car, pole, traffic sign; plus void objects labelled
ignore, which teach its queries to reject what they do not know). It runs a whole frame at
256x512 in one pass. It exists so that ``make demo``, the docs and tests show learned
segmentation without downloading weights.

Measured (docs/demo_model.md): on 16 held-out scenes (seeds 100000-100015, never trained on)
mIoU 95.5 % over the 8 scene classes (road 99.0, sidewalk 98.6, building 99.0, pole 85.9,
traffic sign 85.0, vegetation 98.7, sky 99.1, car 98.3), 95.4 % on 48 more; a 1024x512 frame
in 0.7-0.8 s (median, one torch thread, AMD EPYC with 2 cores shared with other jobs; 1.4 s
when they were busier). Unseen objects: RbA AUROC 0.998 (docs/trust.md).

Made with (repository root; 12-19 minutes of training on that machine)::

    vltseg make-scenes out/scenes/train --count 400 --seed 0
    vltseg make-scenes out/scenes/heldout --count 16 --seed 100000 --split val
    OMP_NUM_THREADS=1 vltseg train synthetic-scenes-demo --device cpu \\
        --out out/train/synthetic-scenes-demo
    cp out/train/synthetic-scenes-demo/iter_000800.safetensors \\
        vltseg_ros/demo_model/synthetic-scenes-demo.safetensors

It knows only flat generated scenes: it FAILS ON REAL FRAMES (camera images of real streets),
and says nothing about VLTSeg's accuracy or domain generalization. The file is the trainer's
ordinary checkpoint (its architecture in its metadata): ``vltseg segment IMG --checkpoint
DEMO_CHECKPOINT`` and the node's ``checkpoint`` parameter load it without a model name, and its
name alone loads these weights everywhere (``Segmenter.load(model="synthetic-scenes-demo")``,
``--model synthetic-scenes-demo``, ``-p model:=synthetic-scenes-demo``).
"""

from __future__ import annotations

from pathlib import Path

DEMO_MODEL_NAME = "synthetic-scenes-demo"
"""The demo model's architecture (model config) name, also in its checkpoint's metadata."""

DEMO_CHECKPOINT: Path = Path(__file__).resolve().parent / f"{DEMO_MODEL_NAME}.safetensors"
"""The demo model's ``.safetensors`` checkpoint, installed with the package."""

__all__ = ["DEMO_CHECKPOINT", "DEMO_MODEL_NAME", "shipped_checkpoint"]


def shipped_checkpoint(model: object) -> Path | None:
    """The weights shipped with the package for a built-in model name (``model`` as given to
    :meth:`~vltseg_ros.inference.predictor.Segmenter.load`), or None: only the demo model has
    shipped weights; every other name is an architecture without weights."""
    return DEMO_CHECKPOINT if model == DEMO_MODEL_NAME else None
