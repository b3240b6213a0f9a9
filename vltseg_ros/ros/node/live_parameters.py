"""Parameters set on a configured node: the live ones checked and put in force, the others
refused with the reason.

A parameter is live when its option in :mod:`vltseg_ros.ros.node.settings` says so (the output
settings, ``diagnostics_period``): the node applies it from the next frame. Every other
parameter of the node (model, engine, cameras, QoS, ...) is read at configure; setting it while
the node is configured or active is refused, so that the parameter server never reports a value
that is not in force. Parameters that are not the node's own (``use_sim_time``) pass through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from vltseg_ros.config.class_map import BoundClassMap, read_class_map
from vltseg_ros.config.options import build, changed, option_specs, values_of
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.ros.node.settings import CameraSettings, NodeSettings


class NamedValue(Protocol):
    """What the node's set-parameters callback receives (``rclpy.parameter.Parameter``)."""

    name: str
    value: Any


@dataclass(frozen=True)
class LiveChange:
    """Live parameters accepted: the settings before and after, and the class map in force
    afterwards (bound to the model's classes; None without one, or while inactive: activate
    binds it)."""

    old: NodeSettings
    new: NodeSettings
    class_map: BoundClassMap | None

    def describe(self) -> str:
        """``confidence_threshold 0.0 -> 0.9, overlay_alpha 0.5 -> 0.3``."""
        before, after = values_of(self.old), values_of(self.new)
        names = [name for name in after if changed(before[name], after[name])]
        return ", ".join(f"{n} {before[n]!r} -> {after[n]!r}" for n in names) or "no change"


def live_change(
    settings: NodeSettings,
    cameras: Sequence[str],
    parameters: Sequence[NamedValue],
    segmenter: Segmenter | None,
    class_map: BoundClassMap | None,
) -> LiveChange | None:
    """What setting ``parameters`` on a configured node changes; None when none is the node's.

    Args:
        settings: the settings in force.
        cameras: the configured camera names (their ``<camera>.*`` parameters are static).
        parameters: the parameters being set.
        segmenter: the loaded model (active), or None (inactive).
        class_map: the class map in force.

    Raises:
        ConfigError: a static parameter (the reason names it and what to do), an invalid
            value, or a class map file that cannot be read or bound to the model's classes.
    """
    specs = {spec.name: spec for spec in option_specs(NodeSettings)}
    per_camera = {
        f"{camera}.{spec.name}" for camera in cameras for spec in option_specs(CameraSettings)
    }
    static = sorted(
        p.name
        for p in parameters
        if p.name in per_camera or (p.name in specs and not specs[p.name].live)
    )
    if static:
        verb = "takes" if len(static) == 1 else "take"
        raise ConfigError(
            f"{', '.join(static)} {verb} effect at configure: deactivate and clean up first, "
            "then set and configure again"
        )
    changes = {p.name: p.value for p in parameters if p.name in specs}
    if not changes:
        return None
    new = build(NodeSettings, {**values_of(settings), **changes}, what="parameters")
    path = new.outputs.class_map
    if path != settings.outputs.class_map:
        if not path:
            class_map = None
        elif segmenter is None:
            read_class_map(path)  # checked now; bound to the model's classes at activate
            class_map = None
        else:
            class_map = new.outputs.load_class_map(segmenter.class_set)
    return LiveChange(settings, new, class_map)
