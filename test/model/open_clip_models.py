"""A whole open_clip CLIP model (image and text tower) with the ``tiny`` config's vision tower:
the kind of file ``model.init`` of ``vltseg train`` takes, and ``load_model`` refuses."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch

from vltseg_ros.config.model_config import load_model_config

TINY_CLIP = "tiny-clip-test"


def tiny_open_clip(folder: Path) -> torch.nn.Module:
    """open_clip's ``create_model`` of :data:`TINY_CLIP` (its config registered from a JSON
    written to ``folder``), seeded, in eval mode."""
    model_cfg = {
        "embed_dim": 32,
        "vision_cfg": dict(load_model_config("tiny").encoder.vision_cfg),
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 100,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    path = folder / f"{TINY_CLIP}.json"
    path.write_text(json.dumps(model_cfg))
    open_clip.add_model_config(path)
    torch.manual_seed(1)
    return open_clip.create_model(TINY_CLIP, pretrained=None).eval()
