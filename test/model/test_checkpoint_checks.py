"""A checkpoint is checked against the architecture it declares before anything is built, and
its tensors must be finite floating-point weights; a failed load keeps nothing."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from test.subprocess_json import run_json
from vltseg_ros.config.model_config import InferenceConfig, load_model_config
from vltseg_ros.errors import CheckpointError, ConfigError, DeviceError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.model import checkpoint as checkpoint_module
from vltseg_ros.model.checkpoint import FORMAT, load_model, save_checkpoint
from vltseg_ros.model.segmentor import VLTSeg, build_model

# Loads a checkpoint in a fresh process; prints seconds and the growth of the peak RSS.
_MEASURE = """
import json, resource, sys, time
from vltseg_ros.errors import CheckpointError
from vltseg_ros.inference.predictor import Segmenter
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    Segmenter.load(checkpoint=sys.argv[1])
    message = None
except CheckpointError as exc:
    message = str(exc)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"seconds": time.perf_counter() - start, "grown_mb": grown, "message": message}))
"""


def _forge(path: Path, model_config: dict, tensors: dict[str, torch.Tensor]) -> Path:
    """A tiny .safetensors file whose metadata declares ``model_config``."""
    metadata = {"format": FORMAT, "model_config": json.dumps(model_config)}
    save_file(tensors, str(path), metadata=metadata)
    return path


def _live_models() -> int:
    gc.collect()
    return sum(type(o) is VLTSeg for o in gc.get_objects())


def test_small_file_declaring_a_large_model_is_refused_before_building(tmp_path) -> None:
    """EVA02-L/14 + Mask2Former (1.35 GB of float32 weights, ~15 s to build on 2 cores) declared
    by a 2 KB file holding one tensor: refused from the header, in a fraction of that time and
    without the memory."""
    declared = load_model_config("eva02-l-14").to_dict()
    path = _forge(tmp_path / "forged.safetensors", declared, {"head.x": torch.zeros(4)})
    assert path.stat().st_size < 4096
    result = run_json(_MEASURE, path)
    message = result["message"]
    assert message is not None and "\n" not in message
    assert "does not match the model 'eva02-l-14'" in message
    assert "337.3 M weights; the file has 1 tensor(s), 4 weights" in message
    assert "815 missing key(s)" in message and "1 unexpected key(s): head.x" in message
    assert result["grown_mb"] < 200, result  # building it would take > 1300 MB
    assert result["seconds"] < 10, result


def test_declared_architecture_over_the_bound_is_refused(tmp_path) -> None:
    over = load_model_config("eva02-l-14").to_dict()
    over["encoder"] = {"open_clip_model": "ViT-bigG-14", "out_indices": [9, 19, 29, 47]}
    path = _forge(tmp_path / "big.safetensors", over, {"head.x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"declares \d+ M weights .* bound of 700 M"):
        load_model(path)
    absurd = load_model_config("tiny").to_dict()
    absurd["encoder"]["vision_cfg"]["width"] = 100_000
    path = _forge(tmp_path / "absurd.safetensors", absurd, {"head.x": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"invalid model config: .*width.* bound of 2048"):
        load_model(path)


def test_state_dict_that_does_not_match_is_refused_before_building(tmp_path, monkeypatch) -> None:
    path = tmp_path / "one.pt"
    torch.save({"head.x": torch.zeros(4)}, path)

    def never(*args, **kwargs):
        raise AssertionError("the model was built")

    monkeypatch.setattr(checkpoint_module, "VLTSeg", never)
    with pytest.raises(CheckpointError, match="does not match the model 'eva02-l-14'"):
        load_model(path, load_model_config("eva02-l-14"))


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return dict(build_model("tiny").state_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.fill_(float("nan")), r"NaN or infinite weights: 1 tensor\(s\): {key}"),
        (lambda t: t.fill_(float("inf")), r"NaN or infinite weights: 1 tensor\(s\): {key}"),
        (lambda t: t.to(torch.int8), r"wrong kind .*1 tensor\(s\): {key} \(int8\)"),
        (lambda t: t > 0, r"wrong kind .*1 tensor\(s\): {key} \(bool\)"),
    ],
)
@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_tensors_that_are_not_weights_are_refused(
    tmp_path, tiny_state, change, message, suffix
) -> None:
    key = "head.cls_embed.weight"
    state = {k: v.clone() for k, v in tiny_state.items()}
    state[key] = change(state[key])
    path = tmp_path / f"bad{suffix}"
    if suffix == ".pt":
        torch.save(state, path)
        config = load_model_config("tiny")
    else:
        _forge(path, load_model_config("tiny").to_dict(), state)
        config = None
    with pytest.raises(CheckpointError, match=message.format(key=key.replace(".", r"\."))):
        load_model(path, config)


def test_integer_buffers_stay_integer_and_half_weights_load(tmp_path, tiny_state) -> None:
    counters = [k for k, v in tiny_state.items() if not v.is_floating_point()]
    assert counters and all(k.endswith("num_batches_tracked") for k in counters)
    config = load_model_config("tiny").to_dict()
    half = {k: v.half() if v.is_floating_point() else v for k, v in tiny_state.items()}
    model = load_model(_forge(tmp_path / "half.safetensors", config, half))
    for key, value in half.items():
        assert torch.equal(model.state_dict()[key], value.to(model.state_dict()[key].dtype))
    floating = dict(tiny_state, **{counters[0]: tiny_state[counters[0]].float()})
    with pytest.raises(CheckpointError, match=r"float32, the model's is int64"):
        load_model(_forge(tmp_path / "float_counter.safetensors", config, floating))


def test_a_failed_load_keeps_no_model(tmp_path) -> None:
    """The half-built model is not kept alive by the error's traceback, nor by the engine."""
    before = _live_models()
    with pytest.raises(DeviceError) as failed:  # the model is built, then the device is refused
        Segmenter.load("tiny", device="cuda:99")
    assert _live_models() == before, failed.value  # while the error (and traceback) lives
    good = save_checkpoint(build_model("tiny"), tmp_path / "tiny.safetensors")
    too_small = InferenceConfig(mode="whole", crop_size=(8, 8), stride=(8, 8))
    with pytest.raises(ConfigError, match="smaller than the model's minimum") as failed:
        Segmenter.load(checkpoint=good, inference=too_small)  # engine made, then refused
    assert _live_models() == before, failed.value
    forged = _forge(tmp_path / "forged.safetensors", load_model_config("tiny").to_dict(), {})
    with pytest.raises(CheckpointError, match="missing key"):
        Segmenter.load(checkpoint=forged)
    assert _live_models() == before
