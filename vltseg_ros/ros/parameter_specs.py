"""Every global parameter of vltseg_node: name, default, description and range, as data.

``config/vltseg.yaml`` lists the same parameters with their defaults (a test keeps the two
equal); :mod:`vltseg_ros.ros.parameters` declares them on the node and reads them into typed
settings. Per-camera parameters are made there from the camera names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vltseg_ros.config import DEFAULT_MODEL
from vltseg_ros.image_files import MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ParameterSpec:
    """One node parameter: name, default (its type is the parameter's), description shown by
    ``ros2 param describe``, a constraints text and an optional integer or float range."""

    name: str
    default: Any
    description: str
    constraints: str = ""
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None


UNSET_PAIR = [0, 0]
"""The value of a pair parameter (crop size, stride ...) that keeps the model config's."""

PARAMETER_SPECS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "autostart", True, "Configure and activate the node at start-up (plain ros2 run)."
    ),
    ParameterSpec(
        "model",
        "",
        "Built-in model name or model config YAML path; empty = the architecture stored in "
        f"the .safetensors checkpoint, or {DEFAULT_MODEL} without a checkpoint.",
        "vltseg_ros.available_models()",
    ),
    ParameterSpec(
        "checkpoint",
        "",
        "Weights file (.safetensors, or .pt with 'model'; the .onnx file with backend "
        "onnxruntime); empty = RANDOM weights, output meaningless.",
    ),
    ParameterSpec(
        "backend",
        "pytorch",
        "Inference engine: pytorch, or onnxruntime (TensorRT / CUDA / CPU execution providers) "
        "running the exported .onnx file given as checkpoint.",
        "pytorch, onnxruntime",
    ),
    ParameterSpec("device", "cpu", "Inference device.", "cpu, cuda or cuda:N"),
    ParameterSpec("precision", "fp32", "Numeric precision.", "fp32; fp16 or bf16 on CUDA"),
    ParameterSpec("batch_size", 4, "Network inputs (crops) per forward pass.", "", (1, 256)),
    ParameterSpec(
        "pytorch.channels_last",
        False,
        "Backend pytorch: convolutions in channels-last memory format (may help on GPUs).",
    ),
    ParameterSpec(
        "pytorch.compile",
        False,
        "Backend pytorch: torch.compile the model (compiled during activation's warm-up; "
        "batches padded to batch_size so that it compiles once).",
    ),
    ParameterSpec(
        "onnxruntime.providers",
        "",
        "Backend onnxruntime: execution providers in priority order, comma-separated; empty = "
        "every available one for the device (tensorrt, cuda on a GPU; cpu).",
        "tensorrt, cuda, cpu",
    ),
    ParameterSpec(
        "onnxruntime.cache_dir",
        "",
        "Backend onnxruntime: TensorRT engine cache folder (the first build takes minutes, later "
        "activations reuse it); empty = no cache.",
    ),
    ParameterSpec(
        "onnxruntime.threads",
        0,
        "Backend onnxruntime: CPU threads per inference; 0 = ONNX Runtime's default.",
        "",
        (0, 1024),
    ),
    ParameterSpec(
        "inference.mode", "", "'slide' or 'whole'; empty = the model config's.", "slide, whole"
    ),
    ParameterSpec(
        "inference.crop_size",
        UNSET_PAIR,
        "Slide window [H, W] in pixels; [0, 0] = the model config's.",
    ),
    ParameterSpec(
        "inference.stride", UNSET_PAIR, "Slide stride [H, W]; [0, 0] = the model config's."
    ),
    ParameterSpec(
        "inference.test_scale",
        UNSET_PAIR,
        "Rescale frames, keeping aspect, to fit [LONG, "
        "SHORT] before sliding; [0, 0] = the model config's.",
    ),
    ParameterSpec(
        "inference.whole_size",
        UNSET_PAIR,
        "Network input [H, W] in whole mode; [0, 0] = the model config's.",
    ),
    ParameterSpec(
        "confidence_threshold",
        0.0,
        "Pixels whose winning-class probability is below this get mask value 255.",
        "",
        None,
        (0.0, 1.0),
    ),
    ParameterSpec(
        "output_resolution",
        "input",
        "Resolution of the outputs: the input image's, or the "
        "model's (the frame after test_scale, or whole_size).",
        "input, model",
    ),
    ParameterSpec(
        "upsample",
        "scores",
        "How outputs reach the input resolution: resize class scores "
        "before the argmax (as the reference evaluates) or resize labels (cheaper).",
        "scores, labels",
    ),
    ParameterSpec(
        "confidence_encoding",
        "32FC1",
        "Confidence image encoding: 32FC1 probability or mono8 (probability x 255).",
        "32FC1, mono8",
    ),
    ParameterSpec(
        "overlay_alpha",
        0.5,
        "Weight of the class colors in the overlay image.",
        "",
        None,
        (0.0, 1.0),
    ),
    ParameterSpec(
        "max_age",
        0.5,
        "Frames older than this (header stamp to inference start) are "
        "dropped as stale [s]; 0 disables.",
        "",
        None,
        (0.0, 3600.0),
    ),
    ParameterSpec(
        "batch_window",
        0.01,
        "Once one camera's frame is waiting, wait up to this long for the other cameras' "
        "frames so they run as one batch [s]; 0 disables.",
        "",
        None,
        (0.0, 1.0),
    ),
    ParameterSpec("warmup", True, "Run one inference on a blank frame during activation."),
    ParameterSpec(
        "max_image_pixels",
        MAX_IMAGE_PIXELS,
        "Largest input frame (height x width) accepted; larger frames are refused, compressed "
        "ones from their header, before decoding (decompression bombs). Default 8K UHD.",
        "",
        (1, 1 << 31),
    ),
    ParameterSpec(
        "cameras",
        ["camera"],
        "Camera names; each has <name>.image_topic, "
        "<name>.camera_info_topic and <name>.transport parameters.",
    ),
    ParameterSpec(
        "qos.input.reliability",
        "best_effort",
        "Input QoS reliability (REP 2003: sensor data is best effort).",
        "best_effort, reliable",
    ),
    ParameterSpec("qos.input.depth", 1, "Input QoS history depth.", "", (1, 100)),
    ParameterSpec(
        "qos.output.reliability", "reliable", "Output QoS reliability.", "best_effort, reliable"
    ),
    ParameterSpec("qos.output.depth", 1, "Output QoS history depth.", "", (1, 100)),
    ParameterSpec(
        "diagnostics_period", 1.0, "Seconds between /diagnostics messages.", "", None, (0.1, 60.0)
    ),
)
