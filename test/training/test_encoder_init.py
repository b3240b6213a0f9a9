"""The encoder's initialization from an open_clip / EVA-CLIP file loads, drops and leaves random
exactly what the VLTSeg reference does (golden key lists: test/golden/vltseg_reference_eva_clip_
init.md), refuses files of another tower, and `vltseg train` from such a file gives a checkpoint
interchangeable with a converted reference one."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import onnx
import pytest
import torch
from safetensors.torch import load_file, save_file

from test.convert.mmseg_fixtures import (
    TINY_MODEL,
    golden,
    reference_state_dict,
    register_fake_mmengine,
    write_reference_checkpoint,
)
from test.model.open_clip_models import tiny_open_clip
from test.training.shapes import shapes_run_config, write_shapes
from vltseg_ros.cli.main import main
from vltseg_ros.config.model_config import EncoderConfig, ModelConfig, load_model_config
from vltseg_ros.convert.vltseg_mmseg import map_keys
from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.checkpoint import read_safetensors_layout
from vltseg_ros.model.encoder import ClipEncoder
from vltseg_ros.model.segmentor import StateLayout, VLTSeg
from vltseg_ros.training.encoder_init import (
    eva_clip_names,
    folded_keys,
    initialize_encoder,
    plan_init,
)
from vltseg_ros.training.model_setup import build_training_model
from vltseg_ros.training.trainer import Trainer

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
TEXT_KEYS = {"logit_scale": torch.ones(()), "text.token_embedding.weight": torch.zeros(4, 8)}


def _golden(name: str) -> dict:
    return json.loads((GOLDEN / f"vltseg_reference_eva_clip_init_{name}.json").read_text())


def _open_clip_tower(config: EncoderConfig) -> EncoderConfig:
    """The open_clip tower ``config`` is derived from: every module on, 224 px (16x16 grid)."""
    data = _dict(config)
    for switch in ("scale_attn_inner", "use_post_transformer_norm"):
        data["timm_kwargs"].pop(switch, None)
    data["vision_cfg"] = {**data["vision_cfg"], "image_size": 224, "timm_proj": None}
    return EncoderConfig(**data)


def _tiny_reference_encoder() -> EncoderConfig:
    """The golden tiny run's tower in our layout: EVA02 width 64, depth 4, 4 heads, patch 14,
    56 px (4x4 grid), RoPE on a 16x16 reference grid, reference switches."""
    return EncoderConfig(
        vision_cfg={
            "image_size": 56,
            "timm_model_name": "eva02_base_patch16_clip_224",
            "timm_pool": "token",
            "timm_proj": "none",
        },
        embed_dim=32,
        timm_kwargs={
            "embed_dim": 64,
            "depth": 4,
            "num_heads": 4,
            "patch_size": 14,
            "scale_attn_inner": False,
            "use_post_transformer_norm": False,
            "ref_feat_shape": [16, 16],
        },
        out_indices=(0, 1, 2, 3),
    )


def _reference_names(keys, renamed: dict[str, str]) -> list[str]:
    """Our encoder names -> the reference's (EVA-CLIP names without ``visual.``)."""
    return sorted(renamed[k].removeprefix("visual.") for k in keys)


@pytest.mark.parametrize("size", ["512", "1024"])
def test_full_size_init_plan_equals_the_reference(size: str) -> None:
    """EVA02-L-14 as open_clip builds it into vltseg-eva02-l-512 / -1024 (meta device: names and
    shapes only): the 459 / 52 / 1 of the reference's own initialization."""
    expected = _golden(f"L_{size}")
    with torch.device("meta"):
        source = StateLayout.of(ClipEncoder(load_model_config("eva02-l-14").encoder))
        config = load_model_config(f"vltseg-eva02-l-{size}").encoder
        layout = StateLayout.of(ClipEncoder(config))
    load, dropped, kept = plan_init(source.shapes, layout, config)
    renamed, rope, unknown = eva_clip_names(expected["checkpoint_visual_keys"])
    assert not unknown and set(renamed) == set(source.shapes)  # the same tower, both namings
    assert _reference_names(load, renamed) == sorted(expected["loaded"])
    assert _reference_names(dropped, renamed) == sorted(expected["unexpected_dropped"])
    assert (len(load), len(dropped)) == (459, 52)
    grid = {"512": 36, "1024": 73}[size]
    assert kept == {"visual.trunk.pos_embed": ((1, 257, 1024), (1, 1 + grid * grid, 1024))}
    mismatched = set(expected["size_mismatch_kept_model_value"])
    assert mismatched == {"pos_embed"} | {k.removeprefix("visual.") for k in rope}
    assert expected["pos_embed_unchanged_by_init"] and expected["rope_equal_recomputed"]
    assert set(layout.shapes) == set(load) | set(kept)  # nothing of the tower left random


def _write(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in {**tensors, **TEXT_KEYS}.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """The tiny tower as open_clip saves it (``visual.trunk.*``) and as EVA-CLIP saves it
    (the golden file's names, with its 16x16-grid RoPE tables)."""
    root = tmp_path_factory.mktemp("eva_clip")
    torch.manual_seed(5)
    tower = ClipEncoder(_open_clip_tower(_tiny_reference_encoder())).state_dict()
    expected = _golden("tiny")
    renamed, rope, _ = eva_clip_names(expected["checkpoint_visual_keys"])
    eva = {"visual." + renamed[k].removeprefix("visual."): v for k, v in tower.items()}
    for key in rope:  # names as the golden file lists them: without "visual."
        eva["visual." + key] = torch.randn(expected["checkpoint_visual_keys"][key])
    shapes = {k.removeprefix("visual."): list(v.shape) for k, v in eva.items()}
    assert shapes == expected["checkpoint_visual_keys"]  # shaped like the reference's file
    return {
        "open_clip": _write(root / "open_clip_model.safetensors", tower),
        "EVA-CLIP": _write(root / "EVA02_CLIP_tiny.safetensors", eva),
    }


@pytest.mark.parametrize("naming", ["open_clip", "EVA-CLIP"])
def test_tiny_init_loads_drops_and_leaves_random_what_the_reference_does(
    tiny_files: dict[str, Path], naming: str
) -> None:
    expected = _golden("tiny")
    config = _tiny_reference_encoder()
    torch.manual_seed(0)
    encoder = ClipEncoder(config)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    init = initialize_encoder(encoder, config, tiny_files[naming])

    renamed, rope, _ = eva_clip_names(expected["checkpoint_visual_keys"])
    assert init.naming == naming
    assert _reference_names(init.loaded, renamed) == sorted(expected["loaded"])
    assert _reference_names(init.dropped, renamed) == sorted(expected["unexpected_dropped"])
    assert init.kept_at_init == {"visual.trunk.pos_embed": ((1, 257, 64), (1, 17, 64))}
    assert init.recomputed == (tuple("visual." + k for k in rope) if naming == "EVA-CLIP" else ())
    assert set(expected["size_mismatch_kept_model_value"]) == {"pos_embed"} | {
        k.removeprefix("visual.") for k in rope
    }
    # values: loaded tensors are the file's, the position embedding is the encoder's own init
    stored = load_file(str(tiny_files["open_clip"]))
    state = encoder.state_dict()
    for key in init.loaded:
        assert torch.equal(state[key], stored[key]), key
    assert torch.equal(state["visual.trunk.pos_embed"], before["visual.trunk.pos_embed"])
    # RoPE: computed for the 4x4 grid from the 16x16 reference grid (ref_feat_shape)
    rope_module = encoder.visual.trunk.rope
    assert tuple(rope_module.get_embed(shape=(4, 4)).shape) == (16, 32)
    # the feature pyramid is not in the file: the reference's fpn1 / fpn2 are our neck
    model_config = ModelConfig.from_dict(
        {**load_model_config(TINY_MODEL).to_dict(), "encoder": _dict(config)}
    )
    neck = {f"neck.{k}" for k in VLTSeg(model_config).neck.state_dict()}
    mapped = map_keys("backbone." + k for k in expected["missing_random"]).mapped
    assert set(mapped.values()) == neck
    summary = "\n".join(init.summary())
    assert f"{len(init.loaded)} tensors loaded" in summary
    assert "visual.trunk.blocks.N.attn.norm.weight x4" in summary
    assert "left at random init: visual.trunk.pos_embed (file (1, 257, 64)" in summary


def _dict(config: EncoderConfig) -> dict:
    return {k: copy.deepcopy(getattr(config, k)) for k in config.__dataclass_fields__}


def test_an_open_clip_vit_file_loads_whole_and_gives_open_clip_features(tmp_path: Path) -> None:
    """A tower with every module of the file (``tiny``, an open_clip ViT): all of it loads,
    nothing is dropped, and the features are open_clip's own."""
    clip = tiny_open_clip(tmp_path)
    for path in (tmp_path / "open_clip_pytorch_model.bin", tmp_path / "clip.safetensors"):
        if path.suffix == ".bin":
            torch.save(clip.state_dict(), path)
        else:
            save_file({k: v.contiguous() for k, v in clip.state_dict().items()}, str(path))
        config = load_model_config("tiny").encoder
        encoder = ClipEncoder(config).eval()
        init = initialize_encoder(encoder, config, path)
        assert init.naming == "open_clip" and not (init.dropped or init.kept_at_init)
        assert set(init.loaded) == set(encoder.state_dict())
        for key, value in clip.visual.state_dict().items():
            assert torch.equal(encoder.state_dict()[f"visual.{key}"], value), key
        x = torch.randn(1, 3, 32, 32)
        with torch.no_grad():
            theirs = clip.visual.forward_intermediates(
                x, indices=[0, 1, 2, 3], intermediates_only=True
            )
            for a, b in zip(encoder(x), theirs["image_intermediates"], strict=True):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def _broken(tiny_files: dict[str, Path], tmp_path: Path, case: str) -> Path:
    tensors = {k: v for k, v in load_file(str(tiny_files["open_clip"])).items()}
    if case == "missing":
        del tensors["visual.trunk.blocks.2.attn.q_proj.weight"]
    elif case == "unknown":
        tensors["visual.trunk.blocks.0.attn.extra.weight"] = torch.ones(3)
    elif case == "wrong shape":
        tensors["visual.trunk.cls_token"] = torch.zeros(1, 1, 32)
    elif case == "another tower":  # a width-32 file: not the tower this config names
        tensors = {k: v[..., :32] if v.dim() else v for k, v in tensors.items()}
    elif case == "not finite":
        tensors["visual.trunk.blocks.1.norm1.weight"] = torch.full((64,), float("nan"))
    elif case == "no tower":
        tensors = dict(TEXT_KEYS)
    elif case == "unknown EVA-CLIP":
        tensors = {k: v for k, v in load_file(str(tiny_files["EVA-CLIP"])).items()}
        tensors["visual.blocks.0.attn.relative_position_bias_table"] = torch.zeros(3)
    return _write(tmp_path / f"{case}.safetensors", tensors)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", r"1 missing key\(s\): visual\.trunk\.blocks\.2\.attn\.q_proj\.weight"),
        ("unknown", r"1 unexpected key\(s\): visual\.trunk\.blocks\.0\.attn\.extra\.weight"),
        (
            "wrong shape",
            r"1 wrong shape key\(s\): visual\.trunk\.cls_token: checkpoint \(1, 1, 32\)",
        ),
        ("another tower", r"does not match the encoder"),
        ("not finite", r"visual\.trunk\.blocks\.1\.norm1\.weight"),
        ("no tower", r"holds no 'visual\.\*' keys"),
        ("unknown EVA-CLIP", r"EVA-CLIP tensor\(s\) this project does not know: visual\.blocks"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_and_nothing_is_loaded(
    tiny_files: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    config = _tiny_reference_encoder()
    encoder = ClipEncoder(config)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    with pytest.raises(CheckpointError, match=message):
        initialize_encoder(encoder, config, _broken(tiny_files, tmp_path, case))
    after = encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_folded_keys_count_blocks() -> None:
    keys = [f"a.blocks.{i}.norm.weight" for i in range(3)] + ["a.norm.bias"]
    assert folded_keys(keys) == ["a.blocks.N.norm.weight x3", "a.norm.bias"]


def _eva_clip_file_of_the_golden_tower(path: Path) -> Path:
    """The golden reference backbone (70 px, 5x5 grid, width 32) as the EVA-CLIP file it would
    have been initialized from: its tensors plus the modules the reference drops, and a
    224 px position embedding and RoPE tables."""
    visual = {
        "visual." + k.removeprefix("backbone."): v.float()
        for k, v in golden().items()
        if k.startswith("backbone.") and ".fpn" not in k
    }
    width = visual["visual.cls_token"].shape[-1]
    for i in range(4):
        visual[f"visual.blocks.{i}.attn.inner_attn_ln.weight"] = torch.ones(width)
        visual[f"visual.blocks.{i}.attn.inner_attn_ln.bias"] = torch.zeros(width)
    visual |= {"visual.norm.weight": torch.ones(width), "visual.norm.bias": torch.zeros(width)}
    visual |= {"visual.head.weight": torch.randn(32, width), "visual.head.bias": torch.zeros(32)}
    visual["visual.pos_embed"] = torch.randn(1, 257, width)
    for key in [k for k in visual if "rope.freqs" in k]:
        visual[key] = torch.randn(256, visual[key].shape[-1])
    return _write(path, visual)


def test_a_trained_checkpoint_is_interchangeable_with_a_converted_one(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    """`vltseg train` of the reference-shaped tiny model from an EVA-CLIP file, and the
    conversion of a reference checkpoint of that model: same tensors and shapes, same model
    name, the same export (graph inputs and outputs, stored config)."""
    init_file = _eva_clip_file_of_the_golden_tower(tmp_path / "EVA02_CLIP_tiny.safetensors")
    data = write_shapes(tmp_path / "data", count=2, size=70)
    run = shapes_run_config(
        data,
        tmp_path / "run",
        70,
        f"model.config={TINY_MODEL}",
        f"model.init={init_file}",
        "train.iterations=1",
        "train.batch_size=1",
        "eval.interval=0",
        "data.targets=[]",
    )
    model, init = build_training_model(run)
    assert init is not None and init.naming == "EVA-CLIP"
    assert len(init.loaded) == 79  # as in the golden tiny run (depth 4)
    state, reference = model.state_dict(), golden()
    for ours, theirs in (
        ("blocks.3.attn.q_proj.bias", "blocks.3.attn.q_bias"),
        ("patch_embed.proj.weight", "patch_embed.proj.weight"),
    ):
        assert torch.equal(
            state[f"encoder.visual.trunk.{ours}"], reference[f"backbone.{theirs}"].float()
        ), ours

    result = Trainer(run, progress=False).fit()
    trained = result.checkpoint
    record = json.loads((tmp_path / "run" / "encoder_init.json").read_text())
    assert record["naming"] == "EVA-CLIP" and "visual.trunk.pos_embed" in record["kept_at_init"]
    assert sorted(record["dropped"]) == sorted(init.dropped) and len(record["dropped"]) == 12

    register_fake_mmengine(monkeypatch)
    reference = write_reference_checkpoint(tmp_path / "ref.pth", reference_state_dict())
    converted = tmp_path / "converted.safetensors"
    assert (
        main(["convert-checkpoint", str(reference), str(converted), "--model", str(TINY_MODEL)])
        == 0
    )

    trained_shapes, trained_meta = read_safetensors_layout(trained)
    converted_shapes, converted_meta = read_safetensors_layout(converted)
    assert trained_shapes == converted_shapes
    assert trained_meta["model_name"] == converted_meta["model_name"] == TINY_MODEL.stem
    exports = {}
    for name, path in (("trained", trained), ("converted", converted)):
        out = tmp_path / f"{name}.onnx"
        assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 0
        graph = onnx.load(str(out), load_external_data=False).graph
        exports[name] = [
            [(v.name, str(v.type.tensor_type.shape)) for v in graph.input],
            [(v.name, str(v.type.tensor_type.shape)) for v in graph.output],
        ]
    assert exports["trained"] == exports["converted"]
