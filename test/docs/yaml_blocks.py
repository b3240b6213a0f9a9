"""The YAML blocks of the docs, loaded as what they are (test/docs/test_docs.py): node
parameters as a ``--params-file``, a model config, a class map."""

from __future__ import annotations

from pathlib import Path

import yaml


def yaml_kind(text: str) -> str | None:
    """What the YAML ``text`` is: ``params``, ``model``, ``class_map``, or None (another kind
    of YAML, or none)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict):
        return None
    if any(isinstance(v, dict) and "ros__parameters" in v for v in data.values()):
        return "params"
    if {"encoder", "head"} <= set(data):
        return "model"
    if isinstance(data.get("classes"), list) and all("members" in c for c in data["classes"]):
        return "class_map"
    return None


def check_yaml(text: str, workdir: Path) -> None:
    """Load the YAML ``text`` (written to ``workdir``) as what :func:`yaml_kind` says it is."""
    path = workdir / "block.yaml"
    path.write_text(text)
    kind = yaml_kind(text)
    if kind == "model":
        from vltseg_ros.config.model_config import load_model_config

        load_model_config(path)
    elif kind == "class_map":
        from vltseg_ros.config.class_map import load_class_map
        from vltseg_ros.config.model_config import load_model_config

        load_class_map(path, load_model_config("tiny").class_set)
    else:
        check_params_file(path)


def check_params_file(path: Path) -> None:
    """``--params-file path`` gives vltseg_node only parameters it declares, each accepted by
    its declaration (type, range, choices) and by the settings' validation (as configure reads
    them; the model is not loaded, the device not opened, the checkpoint not looked for)."""
    import rclpy
    from rclpy.node import Node

    from vltseg_ros.config.options import option_specs
    from vltseg_ros.ros.node.parameters import declare_parameters, read_table
    from vltseg_ros.ros.node.settings import NodeSettings, camera_specs

    context = rclpy.Context()
    rclpy.init(context=context, args=["--ros-args", "--params-file", str(path)])
    try:
        node = Node("vltseg_node", context=context)
        errors = declare_parameters(node)
        assert errors == [], errors
        settings = read_table(node, NodeSettings, errors)
        known = {spec.name for spec in option_specs(NodeSettings)}
        known |= {spec.name for name in settings.cameras for spec in camera_specs(name)}
        given = set(node._parameter_overrides)  # what the file set for this node
        assert given <= known, f"not parameters of vltseg_node: {sorted(given - known)}"
        assert given, "the file sets no parameter of /vltseg_node"
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)
