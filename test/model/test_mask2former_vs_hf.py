"""The Mask2Former head against an independent implementation: Hugging Face's Mask2Former.

``test/golden/mask2former_hf_small.safetensors`` holds a small head's weights (our key names), a
4-level input pyramid and the outputs of transformers' ``Mask2FormerForUniversalSegmentation``
loaded with those weights (see ``mask2former_hf_small.md`` for the version, the convention
adaptations and how it was made). transformers is not needed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from vltseg_ros.config.model_config import HeadConfig, PixelDecoderConfig, TransformerDecoderConfig
from vltseg_ros.model.mask2former_head import Mask2FormerHead

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "mask2former_hf_small.safetensors"
TOLERANCE = 1e-4

# The sizes the golden file was made with (HF fixes 3 levels and 4 sampling points).
SMALL = HeadConfig(
    feat_channels=32,
    out_channels=32,
    num_queries=8,
    num_levels=3,
    pixel_decoder=PixelDecoderConfig(
        num_layers=2, num_heads=4, num_points=4, ffn_channels=64, num_groups=8
    ),
    transformer_decoder=TransformerDecoderConfig(num_layers=3, num_heads=4, ffn_channels=64),
)


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(GOLDEN), framework="pt") as f:
        meta = f.metadata()
    return load_file(GOLDEN), meta


@pytest.fixture(scope="module")
def run(golden) -> tuple[Mask2FormerHead, list[torch.Tensor], dict[str, torch.Tensor]]:
    tensors, meta = golden
    in_channels = [int(c) for c in meta["in_channels"].split(",")]
    head = Mask2FormerHead(in_channels, int(meta["num_classes"]), SMALL).eval()
    weights = {
        k.removeprefix("weights."): v for k, v in tensors.items() if k.startswith("weights.")
    }
    head.load_state_dict(weights, strict=True)
    feats = [tensors[f"input.feats.{i}"] for i in range(4)]
    expected = {k.removeprefix("hf."): v for k, v in tensors.items() if k.startswith("hf.")}
    return head, feats, expected


def test_golden_is_a_meaningful_reference(golden) -> None:
    tensors, meta = golden
    assert meta["transformers_version"]
    # The deformable-attention matrices mmcv initialises to zero were perturbed, so sampling
    # offsets and attention weights depend on the features.
    for layer in range(SMALL.pixel_decoder.num_layers):
        prefix = f"weights.pixel_decoder.encoder.layers.{layer}.self_attn."
        assert tensors[prefix + "sampling_offsets.weight"].abs().min() > 0
        assert tensors[prefix + "attention_weights.weight"].abs().min() > 0
    batch, queries, h, w = tensors["hf.mask_logits_last"].shape
    assert (batch, queries) == (2, SMALL.num_queries) and h != w


def test_last_layer_logits_match_huggingface(run) -> None:
    head, feats, expected = run
    with torch.no_grad():
        cls_list, mask_list = head(feats)
    torch.testing.assert_close(cls_list[-1], expected["cls_logits_last"], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(mask_list[-1], expected["mask_logits_last"], atol=TOLERANCE, rtol=0)


def test_semantic_scores_match_huggingface_outputs_with_mmseg_formula(run) -> None:
    head, feats, expected = run
    size = tuple(expected["semantic_scores"].shape[-2:])
    with torch.no_grad():
        scores = head.predict_semantic(feats, size)
    torch.testing.assert_close(scores, expected["semantic_scores"], atol=TOLERANCE, rtol=0)
