"""What the launch files do with their arguments: strings in, node parameters and remaps out.

``launch/*.launch.py`` read their arguments in an ``OpaqueFunction`` and pass them here; the
tests call the same functions and run the node with the result (``launch`` / ``launch_ros``
cannot be installed everywhere). No launch, launch_ros or rclpy import, no eval.

Topic rule: the node's names are relative. A launch file remaps the inputs of camera
``camera`` (``camera/image_raw``, ``camera/image_raw/compressed``, ``camera/camera_info``) to
the topics named by its arguments and leaves the outputs relative, so they land in the node's
namespace: ``/<namespace>/camera/segmentation/{mask,confidence,overlay,info,camera_info}``,
``/<namespace>/classes``. ``multi_camera.launch.py`` names each camera's inputs through the
per-camera ``<name>.image_topic`` / ``<name>.camera_info_topic`` parameters instead.

The arguments the launch files share are data here (:data:`NODE_ARGUMENTS`,
:data:`CAMERA_ARGUMENTS`); ``vltseg_ros.ros.launch.actions`` declares them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.outputs import output_topic
from vltseg_ros.ros.node.names import CAMERA_NAME, TRANSPORTS

CAMERA = "camera"
IMAGE = f"{CAMERA}/image_raw"
COMPRESSED = f"{IMAGE}/compressed"
CAMERA_INFO = f"{CAMERA}/camera_info"
MASK = output_topic(CAMERA, "mask")
CAMERA_PLACEHOLDER = "{camera}"
NODE = "vltseg_node"
RECORDER = "vltseg_replay_recorder"
_CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


@dataclass(frozen=True)
class LaunchArgument:
    """A launch argument as data: ``actions.declare_arguments`` declares it.

    Attributes:
        name: the argument (``name:=value``).
        default: its default value; None = required. With ``in_share``, a path relative to the
            package's share directory (``config/vltseg.yaml``): the installed file.
        description: what ``ros2 launch --show-args`` shows.
        choices: the only values allowed; None = any.
        in_share: ``default`` names a file of the installed package.
    """

    name: str
    default: str | None
    description: str
    choices: tuple[str, ...] | None = None
    in_share: bool = False


NODE_ARGUMENTS = (  # every launch file: how vltseg_node loads and runs its model
    LaunchArgument(
        "params_file",
        "config/vltseg.yaml",
        "Node parameters (YAML); the arguments override it",
        in_share=True,
    ),
    LaunchArgument(
        "model",
        "",
        "Model name or config YAML; empty = the params file's (default: the checkpoint's "
        "architecture, or vit-b-16)",
    ),
    LaunchArgument(
        "checkpoint",
        "",
        "Weights (.safetensors, or an exported .onnx); empty = the params file's (default: "
        "none, RANDOM weights)",
    ),
    LaunchArgument(
        "backend",
        "",
        "Inference engine: pytorch, or onnxruntime (checkpoint = an exported .onnx file); "
        "empty = the params file's (default: empty, the checkpoint's kind decides)",
        choices=("", "pytorch", "onnxruntime"),
    ),
    LaunchArgument("device", "cpu", "Inference device: cpu, cuda, cuda:N"),
    LaunchArgument("precision", "fp32", "fp32; fp16 or bf16 on CUDA"),
    LaunchArgument(
        "large_data",
        "true",
        "Use the Fast DDS large-data profile (64 MiB shared memory) for camera-sized messages; "
        "processes started outside this launch (camera drivers, viewers) need it in their "
        "environment too",
    ),
)
CAMERA_ARGUMENTS = (  # vltseg.launch.py and multi_camera.launch.py: live cameras
    LaunchArgument(
        "transport",
        "raw",
        "Image transport of every camera: raw (Image) or compressed (CompressedImage)",
        choices=TRANSPORTS,
    ),
    LaunchArgument("use_sim_time", "false", "Use /clock (bag replay, simulation)"),
    LaunchArgument("log_level", "info", "Node log level: debug, info, warn, error, fatal"),
)


@dataclass(frozen=True)
class NodeSetup:
    """How to start vltseg_node: ``--params-file params_file``, then ``parameters`` over it.

    Attributes:
        namespace: the node's namespace ("" = the root).
        params_file: YAML parameter file (keys ``vltseg_node: ros__parameters:``).
        parameters: overrides with dotted names (``camera.transport``); they win over the file.
        remappings: (from, to) topic remapping rules.
        log_level: the node's log level (debug, info, warn, error, fatal).
    """

    namespace: str
    params_file: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...] = ()
    log_level: str = "info"


@dataclass(frozen=True)
class ReplaySetup:
    """The processes of ``bag_replay.launch.py``: node, player and recorder parameters."""

    node: NodeSetup
    player: dict[str, Any]
    recorder: dict[str, Any]
    rviz: bool
    rviz_remappings: tuple[tuple[str, str], ...] = ()


def parse_bool(value: str, name: str) -> bool:
    """A launch argument as a bool: true / false / 1 / 0 (any case), as launch's IfCondition.

    Raises:
        ConfigError: anything else.
    """
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ConfigError(f"launch argument {name}:={value!r} must be true or false")


def camera_names(value: str) -> list[str]:
    """``"front, left,right"`` -> ``["front", "left", "right"]``.

    Raises:
        ConfigError: no name, a duplicate, or a name other than letters, digits and _ (a letter
            first: it becomes a parameter and topic prefix).
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"launch argument cameras:={value!r} names no camera (e.g. front,rear)")
    bad = [name for name in names if not CAMERA_NAME.fullmatch(name)]
    if bad:
        raise ConfigError(
            f"launch argument cameras: {', '.join(map(repr, bad))} is not a valid camera name "
            "(letters, digits and _, starting with a letter)"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"launch argument cameras: duplicate names {', '.join(duplicates)}")
    return names


def single_camera(args: Mapping[str, str]) -> NodeSetup:
    """``vltseg.launch.py``: camera ``camera`` reading the ``image`` and ``camera_info`` topics.

    Both raw and compressed image names are remapped (a remap matches a whole topic name, so
    ``camera/image_raw`` alone would leave ``camera/image_raw/compressed`` unmapped);
    ``camera.transport`` picks which one the node subscribes. An empty ``camera_info``
    argument means no camera_info input.

    Raises:
        ConfigError: an invalid transport or bool argument; an empty image topic, or one
            ending in /compressed (the base topic is expected).
    """
    transport = _transport(args)
    image = args["image"].rstrip("/")
    if not image:
        raise ConfigError("launch argument image must name the camera's image topic")
    if image.endswith("/compressed"):
        raise ConfigError(
            f"launch argument image:={image!r}: give the base topic "
            f"({image.removesuffix('/compressed')}) and transport:=compressed"
        )
    remappings = [(IMAGE, image), (COMPRESSED, f"{image}/compressed")]
    if args["camera_info"]:
        remappings.append((CAMERA_INFO, args["camera_info"]))
    parameters = {
        **_model_parameters(args),
        "cameras": [CAMERA],
        f"{CAMERA}.image_topic": IMAGE,
        f"{CAMERA}.camera_info_topic": CAMERA_INFO if args["camera_info"] else "",
        f"{CAMERA}.transport": transport,
    }
    return _setup(args, parameters, remappings)


def multi_camera(args: Mapping[str, str]) -> NodeSetup:
    """``multi_camera.launch.py``: one node, one model, the cameras of ``cameras``.

    Each camera's input topics are the ``image`` / ``camera_info`` arguments with ``{camera}``
    replaced by its name (defaults ``/{camera}/image_raw``, ``/{camera}/camera_info``); an
    empty ``camera_info`` means none. Outputs: ``<namespace>/<name>/segmentation/...``.

    Raises:
        ConfigError: invalid camera names, transport or bool argument, or an image pattern
            without ``{camera}`` (every camera would read the same topic).
    """
    names = camera_names(args["cameras"])
    transport = _transport(args)
    image, camera_info = args["image"], args["camera_info"]
    patterns = {"image": image, "camera_info": camera_info} if camera_info else {"image": image}
    for name, pattern in patterns.items():
        if CAMERA_PLACEHOLDER not in pattern:
            raise ConfigError(
                f"launch argument {name}:={pattern!r} must contain {CAMERA_PLACEHOLDER}, which "
                "is replaced by each camera name (e.g. /{camera}/image_raw)"
            )
    parameters: dict[str, Any] = {**_model_parameters(args), "cameras": names}
    for name in names:
        parameters[f"{name}.image_topic"] = image.replace(CAMERA_PLACEHOLDER, name)
        parameters[f"{name}.camera_info_topic"] = camera_info.replace(CAMERA_PLACEHOLDER, name)
        parameters[f"{name}.transport"] = transport
    return _setup(args, parameters, [])


def bag_camera(bag: str, image_topic: str | None = None) -> NodeSetup:
    """Camera ``camera`` of a root-namespace node reading a bag's image topic (``image_topic``,
    or the one :func:`vltseg_ros.bag.topics.find_topics` detects, as the player does) and the
    CameraInfo topic beside it if the bag has one: camera parameters and remappings. A
    CompressedImage topic is remapped as it is named, also when not ``<base>/compressed``.

    Raises:
        BagError: the bag is missing or unreadable, or its image topic is not unique.
    """
    from vltseg_ros.bag.topics import find_topics, output_namespace  # rosbags: only here

    topics = find_topics(bag, image_topic)
    info = f"{output_namespace(topics.image_topic)}/camera_info"
    has_info = any(t.name == info and t.msgtype == _CAMERA_INFO_TYPE for t in topics.topics)
    image = COMPRESSED if topics.compressed else IMAGE
    remappings = [(image, topics.image_topic)] + ([(CAMERA_INFO, info)] if has_info else [])
    parameters = {
        "cameras": [CAMERA],
        f"{CAMERA}.image_topic": IMAGE,
        f"{CAMERA}.camera_info_topic": CAMERA_INFO if has_info else "",
        f"{CAMERA}.transport": "compressed" if topics.compressed else "raw",
    }
    return NodeSetup("", "", parameters, tuple(remappings))


def bag_replay(args: Mapping[str, str]) -> ReplaySetup:
    """``bag_replay.launch.py``: player, node and recorder for one bag.

    The node's camera follows :func:`bag_camera`. The player publishes ``/clock`` from the
    bag, so the node runs on the bag's time with ``use_sim_time``; without it, header stamps
    from the recording would all be older than ``max_age`` on the wall clock, so ``max_age``
    is set to 0. The node starts itself (``autostart``); the player waits until it is active
    (``wait_for_node``) and the recorder hears it (``wait_for_recorder``).

    Raises:
        BagError: the bag is missing or unreadable, or its image topic is not unique.
        ConfigError: an invalid rate or bool argument.
    """
    bag = os.path.expanduser(args["bag"])
    camera = bag_camera(bag, args["image_topic"] or None)
    parameters = {**_model_parameters(args), **camera.parameters, "autostart": True}
    if not parameters["use_sim_time"]:
        parameters["max_age"] = 0.0
    node = _setup({**args, "namespace": ""}, parameters, list(camera.remappings))
    image_topic = camera.remappings[0][1]
    player = {
        "bag": bag,
        "rate": _rate(args["rate"]),
        "lockstep": parse_bool(args["lockstep"], "lockstep"),
        "image_topic": image_topic,
        "mask_topic": MASK,
        "wait_for_node": f"/{NODE}",
        "wait_for_recorder": f"/{RECORDER}/ready",
    }
    recorder = {"bag": bag, "out": os.path.expanduser(args["out"]), "camera": CAMERA}
    # RViz's camera display reads /camera/image_raw (raw transport): point it at the bag's.
    raw = camera.parameters[f"{CAMERA}.transport"] == "raw"
    rviz_remappings = ((f"/{IMAGE}", image_topic),) if raw else ()
    return ReplaySetup(node, player, recorder, parse_bool(args["rviz"], "rviz"), rviz_remappings)


def _transport(args: Mapping[str, str]) -> str:
    transport = args["transport"]
    if transport not in TRANSPORTS:
        raise ConfigError(f"launch argument transport:={transport!r} must be raw or compressed")
    return transport


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = float("nan")
    if not rate >= 0:  # also NaN
        raise ConfigError(f"launch argument rate:={value!r} must be a number >= 0")
    return rate


def _model_parameters(args: Mapping[str, str]) -> dict[str, Any]:
    """model / checkpoint / backend (only when given: empty keeps the params file's), device,
    precision, use_sim_time."""
    parameters: dict[str, Any] = {
        "device": args["device"],
        "precision": args["precision"],
        "use_sim_time": parse_bool(args["use_sim_time"], "use_sim_time"),
    }
    if args["model"]:
        parameters["model"] = args["model"]
    if args["checkpoint"]:
        parameters["checkpoint"] = os.path.expanduser(args["checkpoint"])
    if args["backend"]:
        parameters["backend"] = args["backend"]
    return parameters


def _setup(
    args: Mapping[str, str], parameters: dict[str, Any], remappings: list[tuple[str, str]]
) -> NodeSetup:
    return NodeSetup(
        namespace=args["namespace"],
        params_file=os.path.expanduser(args["params_file"]),
        parameters=parameters,
        remappings=tuple(remappings),
        log_level=args.get("log_level", "info"),
    )
