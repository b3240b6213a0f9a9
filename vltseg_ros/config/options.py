"""Settings as data: one dataclass field per option, with its default, description, choices
and range, from which node parameters, command-line flags, the shipped YAML and the
documentation tables are all made.

    @dataclass(frozen=True)
    class TorchOptions:
        compile: bool = option(False, "torch.compile the model")

A field whose type is itself such a dataclass is a section: its options are named
``section.option`` (``pytorch.compile``), and its default instance gives the defaults (so two
sections of one class can differ); a :func:`section` adds its options without a prefix. A
float option whose default is NaN accepts NaN beside its range: "not given", with a meaning the
option defines (``anomaly_threshold``: the anomaly method's own default).
:func:`option_specs` lists every option of a class (sections expanded); :func:`build` makes an
instance from option values, checking types (with
:func:`vltseg_ros.config.typed_yaml.coerce`), choices and ranges, and reports every invalid
option at once. Nothing here imports ROS or torch.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vltseg_ros.config.typed_yaml import ValueTypeError, coerce
from vltseg_ros.errors import ConfigError

Number = int | float


def option(
    default: Any,
    description: str,
    *,
    choices: Sequence[Any] | None = None,
    range: tuple[Number, Number] | None = None,
    unit: str = "",
    live: bool = False,
) -> Any:
    """A dataclass field that is an option: ``default`` (immutable; lists become tuples) and
    its ``description``; ``choices`` (the only allowed values) or ``range`` (inclusive bounds
    of a number); ``unit`` for documentation ("s", "Hz"); ``live``: a running node applies a
    new value from the next frame on (else the value takes effect when the node is
    configured)."""
    if isinstance(default, list):
        default = tuple(default)
    if dataclasses.is_dataclass(default):
        kwargs = {"default_factory": lambda: default}
    else:
        kwargs = {"default": default}
    metadata = {
        "description": description,
        "choices": choices,
        "range": range,
        "unit": unit,
        "live": live,
    }
    return dataclasses.field(metadata=metadata, **kwargs)


def section(default: Any, *, live: bool = False) -> Any:
    """A field holding a settings dataclass whose options join the enclosing class's names
    (no ``section.`` prefix); ``live``: all of them are live (see :func:`option`)."""
    metadata = {"description": "", "flat": True, "live": live}
    return dataclasses.field(default_factory=lambda: default, metadata=metadata)


@dataclass(frozen=True)
class OptionSpec:
    """One option of a settings class, sections expanded.

    Attributes:
        name: dotted name (``onnxruntime.cache_dir``).
        hint: the field's type: bool, int, float, str, or a tuple (``tuple[int, int]``,
            ``tuple[str, ...]``).
        default: the default value.
        description: what it does (a section's description comes first).
        choices: allowed values, or None.
        range: inclusive (low, high) of a number, or None.
        unit: unit of a number, for documentation.
        live: a running node applies a new value at once (see :func:`option`).
    """

    name: str
    hint: Any
    default: Any
    description: str
    choices: tuple[Any, ...] | None = None
    range: tuple[Number, Number] | None = None
    unit: str = ""
    live: bool = False

    def __post_init__(self) -> None:
        _kind(self.hint)  # an unsupported type fails when the table is made

    @property
    def kind(self) -> type:
        """The value type: bool, int, float, str, or tuple (a list of int or str)."""
        return _kind(self.hint)

    @property
    def nan_allowed(self) -> bool:
        """A float option whose default is NaN takes NaN too: "not given", its meaning
        defined by the option (``anomaly_threshold``: the anomaly method's default)."""
        return isinstance(self.default, float) and math.isnan(self.default)

    @property
    def explained(self) -> str:
        """The description with the choices, range and unit, as the documentation shows it."""
        text = self.description
        if self.choices is not None:
            text += " One of: " + ", ".join(repr(c) if c == "" else str(c) for c in self.choices)
            text += "."
        if self.range is not None:
            text += f" Range {self.range[0]} to {self.range[1]}"
            text += f" {self.unit}." if self.unit else "."
        elif self.unit:
            text += f" Unit: {self.unit}."
        return text

    def checked(self, value: Any) -> Any:
        """``value`` as this option's value: of its type (a tuple from any sequence but a
        string, a float from an int), one of its choices, within its range.

        Raises:
            ConfigError: why not, naming the option (``qos.input.depth: 0 is outside [1, 100]``).
        """
        if self.nan_allowed and isinstance(value, float) and math.isnan(value):
            return value  # "not given" (coerce refuses non-finite numbers)
        try:
            # strict: option values come typed (rclpy parameters, argparse flags), not as text
            value = coerce(self.hint, value, self.name, strict=True)
        except ValueTypeError as exc:
            raise ConfigError(f"{exc.path}: {exc.value!r} is not {exc.expected}") from None
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ConfigError(f"{self.name}: {value!r} is not one of {allowed}")
        if self.range is not None and not (self.range[0] <= value <= self.range[1]):
            low, high = self.range
            raise ConfigError(f"{self.name}: {value!r} is outside [{low}, {high}]")
        return value


def option_specs(
    cls_or_instance: Any, prefix: str = "", context: str = "", live: bool = False
) -> list[OptionSpec]:
    """Every option of a settings dataclass (or of an instance: its values are the defaults),
    in field order, sections expanded (an option of a ``live`` section is live)."""
    instance = cls_or_instance if not isinstance(cls_or_instance, type) else cls_or_instance()
    hints = typing.get_type_hints(type(instance))
    specs = []
    for field in dataclasses.fields(instance):
        if "description" not in field.metadata:
            continue
        meta, value = field.metadata, getattr(instance, field.name)
        description = f"{context} {meta['description']}".strip()
        if dataclasses.is_dataclass(value):
            inner = prefix if meta.get("flat") else f"{prefix}{field.name}."
            specs.extend(option_specs(value, inner, description, live or meta.get("live", False)))
            continue
        choices = tuple(meta["choices"]) if meta["choices"] is not None else None
        specs.append(
            OptionSpec(
                f"{prefix}{field.name}",
                hints[field.name],
                value,
                description,
                choices,
                meta["range"],
                meta["unit"],
                live or meta["live"],
            )
        )
    return specs


def build(
    cls: type,
    values: Mapping[str, Any],
    errors: list[str] | None = None,
    prefix: str = "",
    what: str = "settings",
) -> Any:
    """An instance of ``cls`` from dotted option values (missing ones keep their defaults;
    with ``prefix``, every name starts with it).

    Any sequence but a string (a list; an ``array.array``, as rclpy gives array parameters) is
    taken as a tuple, an int as a float where a float is wanted (:meth:`OptionSpec.checked`).
    Raises :class:`ConfigError` ("invalid <what>: ...") naming every invalid option, after
    adding ``errors`` (the caller's own findings) to the message; unknown names are errors too.
    """
    errors = list(errors or [])
    specs = {spec.name: spec for spec in option_specs(cls, prefix)}
    unknown = sorted(set(values) - set(specs))
    errors.extend(f"{name}: unknown option" for name in unknown)
    checked: dict[str, Any] = {}
    for name, spec in specs.items():
        try:
            checked[name] = spec.checked(values.get(name, spec.default))
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise ConfigError(f"invalid {what}: " + "; ".join(errors))
    try:
        return _instance(cls(), checked, prefix)
    except ConfigError as exc:  # a section's own check (__post_init__)
        raise ConfigError(f"invalid {what}: {exc}") from None


def changed(before: Any, after: Any) -> bool:
    """Whether an option value changed (NaN, "not given", equals NaN here)."""
    nan = isinstance(before, float) and isinstance(after, float)
    return before != after and not (nan and math.isnan(before) and math.isnan(after))


def values_of(instance: Any) -> dict[str, Any]:
    """The dotted option values of a settings instance (the inverse of :func:`build`)."""
    return {spec.name: spec.default for spec in option_specs(instance)}


def _instance(default: Any, values: Mapping[str, Any], prefix: str) -> Any:
    changes = {}
    for field in dataclasses.fields(default):
        if "description" not in field.metadata:
            continue
        current = getattr(default, field.name)
        if dataclasses.is_dataclass(current):
            inner = prefix if field.metadata.get("flat") else f"{prefix}{field.name}."
            changes[field.name] = _instance(current, values, inner)
        else:
            changes[field.name] = values[f"{prefix}{field.name}"]
    return dataclasses.replace(default, **changes)


def _kind(hint: Any) -> type:
    if typing.get_origin(hint) is tuple:
        return tuple
    if hint not in (bool, int, float, str):
        raise TypeError(f"option type {hint} is not supported: use bool, int, float, str, tuple")
    return hint
