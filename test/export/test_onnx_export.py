"""ONNX export: ONNX Runtime (CPU) reproduces PyTorch on real crops, metadata round trips, CLI.

The tiny model's export is shared with the engine tests (``tiny_onnx`` in conftest, once per
session); ViT-B/16 is exported once per module (about 40 s of the ~2 minutes this file takes on
2 cores).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from test.conftest import SHARED_FRAMES
from vltseg_ros.cli.main import main
from vltseg_ros.config.model_config import InferenceConfig
from vltseg_ros.data.scenes import synthetic_street_scene
from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError, ConfigError, ExportError
from vltseg_ros.export import onnx_export
from vltseg_ros.export.onnx_export import (
    FORMAT,
    OnnxModelInfo,
    export_onnx,
    exported_config,
    read_onnx_info,
)
from vltseg_ros.inference.preprocess import to_normalized_tensor
from vltseg_ros.inference.tiling import ScoreCanvas, tile
from vltseg_ros.model.checkpoint import save_checkpoint
from vltseg_ros.model.deformable_attention import MultiScaleDeformableAttention
from vltseg_ros.model.segmentor import VLTSeg, build_model

FRAME = "cityscapes_zurich_000087_000019_leftImg8bit_1024x512.png"
SCORE_TOLERANCE = 1e-3
LABEL_AGREEMENT = 0.999
_FLOATS = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)


def _frame() -> np.ndarray:
    """The real 1024x512 Cityscapes frame (RGB), or a generated street scene without it."""
    path = SHARED_FRAMES / FRAME
    if path.is_file():
        return cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].copy()
    return synthetic_street_scene(512, 1024, seed=1)[0]


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _onnx_scores(session: ort.InferenceSession, images: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(session.run(None, {"images": images.numpy()})[0])


def _torch_scores(model: VLTSeg, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images)


def _frame_labels(
    model: VLTSeg, frame: np.ndarray, crop_scores: torch.Tensor, inference: InferenceConfig
) -> torch.Tensor:
    """Labels of the frame from per-crop scores, stitched as the Segmenter does."""
    tiling = tile(_normalized(model, frame), inference)
    canvas = ScoreCanvas(tiling, model.config.class_set.num_classes, torch.device("cpu"))
    for scores in crop_scores:
        canvas.add(scores)
    return canvas.result().argmax(0)


def _normalized(model: VLTSeg, frame: np.ndarray) -> torch.Tensor:
    return to_normalized_tensor(frame, "rgb", model.config.normalization, torch.device("cpu"))


def _assert_agree(got: torch.Tensor, expected: torch.Tensor) -> None:
    """Scores within SCORE_TOLERANCE; argmax over classes equal at >= 99.9 % of the pixels."""
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() < SCORE_TOLERANCE
    agreement = (got.argmax(1) == expected.argmax(1)).float().mean().item()
    assert agreement >= LABEL_AGREEMENT


def _op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


# --- tiny models ------------------------------------------------------------------------------


def test_tiny_onnx_reproduces_pytorch_on_real_frame_crops(tiny_onnx) -> None:
    model, path = tiny_onnx
    frame = _frame()
    # The frame at 256 x 128 (reference test-scale rule): 15 crops instead of 231.
    inference = dataclasses.replace(model.config.inference, test_scale=(256, 128))
    crops = tile(_normalized(model, frame), inference).inputs
    assert crops.shape == (15, 3, 64, 64)  # 64 / 48 windows over 128 x 256
    got = _onnx_scores(_session(path), crops)
    expected = _torch_scores(model, crops)
    _assert_agree(got, expected)
    labels = _frame_labels(model, frame, got, inference)
    assert labels.shape == (128, 256)
    agreement = (labels == _frame_labels(model, frame, expected, inference)).float().mean()
    assert agreement.item() >= LABEL_AGREEMENT


def test_dynamic_batch_of_one_and_three_give_the_same_crops(tiny_onnx) -> None:
    model, path = tiny_onnx
    session = _session(path)
    shape = session.get_inputs()[0].shape
    assert isinstance(shape[0], str) and shape[1:] == [3, 64, 64]  # N dynamic, H W static
    crops = tile(_normalized(model, _frame()), model.config.inference).inputs[100:103]
    together = _onnx_scores(session, crops)
    for i in range(3):
        alone = _onnx_scores(session, crops[i : i + 1])
        torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)
        assert torch.equal(alone[0].argmax(0), together[i].argmax(0))


def test_export_uses_gather_sampling_and_stores_its_description(tiny_onnx) -> None:
    model, path = tiny_onnx
    ops = _op_types(path)
    assert "GridSample" not in ops and {"Gather", "Floor"} <= ops
    info = read_onnx_info(path)
    assert info == OnnxModelInfo(
        config=exported_config(model.config, (64, 64)),
        input_size=(64, 64),
        batch=None,
        patch_size=(8, 8),
        source="",
        fp16=False,
    )
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["vltseg_ros.format"] == FORMAT == "vltseg_ros.onnx.v1"
    assert json.loads(meta["classes"]) == list(model.config.class_set.names)
    assert json.loads(meta["normalization"]) == {
        "mean": [123.675, 116.28, 103.53],
        "std": [58.395, 57.12, 57.375],
    }
    assert (meta["input_size"], meta["patch_size"], meta["batch"]) == (
        "[64, 64]",
        "[8, 8]",
        "dynamic",
    )
    assert (meta["source"], meta["fp16"]) == ("", "false")
    # The stored config rebuilds the model: same weights, same scores.
    rebuilt = VLTSeg(info.config)
    rebuilt.load_state_dict(model.state_dict())
    images = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(_torch_scores(rebuilt, images), _torch_scores(model, images))
    assert all(  # the export switched sampling only while it ran
        m.sampling == "grid_sample"
        for m in model.modules()
        if isinstance(m, MultiScaleDeformableAttention)
    )


def test_tiny_eva_export_round_trip_and_mode_restored(tmp_path: Path) -> None:
    model = build_model("tiny-eva").train()
    path = tmp_path / "eva.onnx"
    info = export_onnx(model, path, input_size=(48, 80), batch=3, source="eva.safetensors")
    assert model.training  # restored
    assert info == read_onnx_info(path)
    assert info.input_size == (48, 80) and info.batch == 3
    assert info.config.inference.crop_size == (48, 80)
    assert info.config.inference.stride == (36, 60)  # 48 / 64 of the crop, scaled with it
    assert info.config.inference.whole_size is None
    assert info.config.encoder == model.config.encoder and info.config.head == model.config.head
    images = torch.randn(3, 3, 48, 80, generator=torch.Generator().manual_seed(3))
    _assert_agree(_onnx_scores(_session(path), images), _torch_scores(model, images))


def test_exported_config_feeds_the_input_size_in_both_modes() -> None:
    config = build_model("tiny").config
    whole = config.replace(
        inference=dataclasses.replace(config.inference, mode="whole", whole_size=(64, 128))
    )
    exported = exported_config(whole, (64, 128))
    assert exported.inference.input_size == (64, 128)
    assert dataclasses.replace(exported.inference, mode="slide").input_size == (64, 128)
    assert exported.inference.stride == (48, 96)
    assert exported_config(config, (64, 64)) == config  # the crop already: nothing changes


# --- fp16, external data, CLI -----------------------------------------------------------------


def test_cli_fp16_export_with_external_weights(tmp_path: Path, monkeypatch, capsys) -> None:
    model = build_model("tiny").eval()
    checkpoint = save_checkpoint(model, tmp_path / "tiny.safetensors")
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_THRESHOLD", 0)  # as for a > 2 GB model
    out = tmp_path / "models" / "tiny16.onnx"
    args = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--batch", "2"]
    assert main([*args, "--fp16"]) == 0
    printed = capsys.readouterr().out
    assert "onnx.checker: ok" in printed and "accuracy check skipped" in printed
    assert "CPUExecutionProvider" in printed
    data = out.with_name("tiny16.onnx.data")
    assert data.is_file() and data.stat().st_size > out.stat().st_size
    graph = onnx.load(str(out), load_external_data=False).graph
    for tensor in graph.initializer:  # every weight of 1 KiB or more lives in the .data file
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        large = int(np.prod(tensor.dims)) * itemsize >= 1024
        assert (tensor.data_location == onnx.TensorProto.EXTERNAL) == large, tensor.name
    info = read_onnx_info(out)
    assert info.fp16 and info.source == "tiny.safetensors" and info.batch == 2
    session = _session(out)  # ONNX Runtime finds the weights next to the model
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in session.get_outputs()] == ["tensor(float)"]
    floats = [t for t in onnx.load(str(out)).graph.initializer if t.data_type in _FLOATS]
    half = sum(len(t.raw_data) for t in floats if t.data_type == onnx.TensorProto.FLOAT16)
    assert half > 0.9 * sum(len(t.raw_data) for t in floats)  # fp32: normalization weights
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    got, expected = _onnx_scores(session, images), _torch_scores(model, images)
    assert (got - expected).abs().max().item() < 1e-2  # float16 compute, fp32 normalization
    assert (got.argmax(1) == expected.argmax(1)).float().mean().item() > 0.99


def test_fp16_keeps_normalization_in_float32(tmp_path: Path) -> None:
    from vltseg_ros.export.fp16 import FLOAT32_OPS, convert_to_fp16

    model = onnx.load(str(_small_fp32(tmp_path)))
    converted = convert_to_fp16(model)
    types = {v.name: v.type.tensor_type.elem_type for v in converted.graph.value_info}
    types |= {t.name: t.data_type for t in converted.graph.initializer}
    norms = [n for n in converted.graph.node if n.op_type in FLOAT32_OPS]
    assert norms
    for node in norms:
        assert types[node.input[0]] == onnx.TensorProto.FLOAT, node.name
        assert types[node.output[0]] == onnx.TensorProto.FLOAT, node.name


def _small_fp32(tmp_path: Path) -> Path:
    """A graph with LayerNormalization and InstanceNormalization, as the exports have."""
    import onnx.helper as h

    nodes = [
        h.make_node("MatMul", ["x", "w"], ["y"]),
        h.make_node("LayerNormalization", ["y", "g", "b"], ["z"], axis=-1),
        h.make_node("Reshape", ["z", "shape"], ["z4"]),
        h.make_node("InstanceNormalization", ["z4", "gi", "bi"], ["n"]),
        h.make_node("Relu", ["n"], ["out"]),
    ]
    f32 = onnx.TensorProto.FLOAT
    inits = [
        h.make_tensor("w", f32, [4, 4], np.ones(16, np.float32)),
        h.make_tensor("g", f32, [4], np.ones(4, np.float32)),
        h.make_tensor("b", f32, [4], np.zeros(4, np.float32)),
        h.make_tensor("shape", onnx.TensorProto.INT64, [4], [1, 2, 2, 2]),
        h.make_tensor("gi", f32, [2], np.ones(2, np.float32)),
        h.make_tensor("bi", f32, [2], np.zeros(2, np.float32)),
    ]
    graph = h.make_graph(
        nodes,
        "g",
        [h.make_tensor_value_info("x", f32, [2, 4])],
        [h.make_tensor_value_info("out", f32, [1, 2, 2, 2])],
        inits,
        value_info=[
            h.make_tensor_value_info("y", f32, [2, 4]),
            h.make_tensor_value_info("z", f32, [2, 4]),
            h.make_tensor_value_info("z4", f32, [1, 2, 2, 2]),
            h.make_tensor_value_info("n", f32, [1, 2, 2, 2]),
        ],
    )
    path = tmp_path / "small.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)]), str(path))
    return path


def test_cli_static_batch_crop_and_grid_sample(tmp_path: Path, capsys) -> None:
    checkpoint = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    out = tmp_path / "tiny.onnx"
    args = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--batch", "2"]
    assert main([*args, "--crop", "48", "64", "--sampling", "grid_sample"]) == 0
    printed = capsys.readouterr().out
    assert "max abs diff" in printed and "N=2 x 3 x 48 x 64" in printed
    diff = float(printed.split("max abs diff ")[1].split()[0])
    assert diff < SCORE_TOLERANCE
    assert "GridSample" in _op_types(out)
    assert _session(out).get_inputs()[0].shape == [2, 3, 48, 64]
    info = read_onnx_info(out)
    assert (info.batch, info.input_size, info.source) == (2, (48, 64), "tiny.safetensors")
    assert not out.with_name("tiny.onnx.data").exists()


# --- ViT-B/16 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vit_b(tmp_path_factory):
    """ViT-B/16 + Mask2Former (random weights) exported with a dynamic batch at its 512 crop,
    and its PyTorch and ONNX Runtime scores of the 3 crops of the 1024x512 frame."""
    torch.manual_seed(0)
    model = build_model("vit-b-16").eval()
    path = tmp_path_factory.mktemp("vit_b") / "vit_b.onnx"
    info = export_onnx(model, path)
    frame = _frame()
    crops = tile(_normalized(model, frame), model.config.inference).inputs
    session = _session(path)
    return {
        "model": model,
        "info": info,
        "frame": frame,
        "crops": crops,
        "session": session,
        "onnx": _onnx_scores(session, crops),
        "torch": _torch_scores(model, crops),
    }


@pytest.mark.slow
def test_vit_b_crops_and_frame_labels_match_pytorch(vit_b) -> None:
    assert vit_b["crops"].shape == (3, 3, 512, 512)
    assert vit_b["info"].input_size == (512, 512) and vit_b["info"].batch is None
    _assert_agree(vit_b["onnx"], vit_b["torch"])
    model, frame = vit_b["model"], vit_b["frame"]
    got = _frame_labels(model, frame, vit_b["onnx"], model.config.inference)
    expected = _frame_labels(model, frame, vit_b["torch"], model.config.inference)
    assert got.shape == (512, 1024)
    assert (got == expected).float().mean().item() >= LABEL_AGREEMENT


@pytest.mark.slow
def test_vit_b_one_crop_alone_equals_the_batch(vit_b) -> None:
    alone = _onnx_scores(vit_b["session"], vit_b["crops"][1:2])
    torch.testing.assert_close(alone[0], vit_b["onnx"][1], atol=1e-4, rtol=1e-4)
    agreement = (alone[0].argmax(0) == vit_b["onnx"][1].argmax(0)).float().mean().item()
    assert agreement >= LABEL_AGREEMENT


# --- bad inputs -------------------------------------------------------------------------------


def test_cli_errors_are_clear(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "m.onnx")
    assert main(["export", "--checkpoint", str(tmp_path / "nope.safetensors"), "--out", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["export", "--model", "tiny", "--crop", "8", "8", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "RANDOM" in err and "8x8 is smaller" in err and "at least 16x16" in err
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["export", "--model", "tiny", "--out", str(blocker / "m.onnx")]) == 2
    assert "cannot write the ONNX model" in capsys.readouterr().err
    assert main(["export", "--model", "tiny", "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    for bad in ("0", "many"):
        with pytest.raises(SystemExit):
            main(["export", "--model", "tiny", "--out", out, "--batch", bad])
    assert not Path(out).exists()


def test_export_argument_errors(tmp_path: Path) -> None:
    model = build_model("tiny")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    out = blocker / "never-written.onnx"
    with pytest.raises(ConfigError, match="batch"):
        export_onnx(model, out, batch=0)
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(model, out, opset=17)
    with pytest.raises(ConfigError, match="sampling"):
        export_onnx(model, out, sampling="bilinear")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="float32"):
        export_onnx(build_model("tiny").half(), out)
    with pytest.raises(ConfigError, match="smaller"):
        export_onnx(model, out, input_size=(64, 15))
    with pytest.raises(ExportError, match="cannot write"):
        export_onnx(model, out)


def test_read_onnx_info_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError):
        read_onnx_info(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\xff not protobuf" * 10)
    with pytest.raises(CheckpointError, match="ONNX"):
        read_onnx_info(garbage)
    plain = _small_fp32(tmp_path)  # a valid ONNX model without vltseg metadata
    with pytest.raises(CheckpointError, match="vltseg export"):
        read_onnx_info(plain)
    model = onnx.load(str(plain))
    meta = {"vltseg_ros.format": FORMAT, "vltseg_ros.model_config": "{}"}
    onnx.helper.set_model_props(model, meta)
    onnx.save(model, str(plain))
    with pytest.raises(CheckpointError, match="invalid vltseg_ros metadata"):
        read_onnx_info(plain)
