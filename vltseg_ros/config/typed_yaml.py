"""YAML / JSON mappings into typed, frozen dataclasses, with errors that name the key.

Shared by the model configs (:mod:`vltseg_ros.config.model_config`) and the training run configs
(:mod:`vltseg_ros.training.run_config`): a key the dataclass does not have, or a value of the
wrong type, is a :class:`ConfigError` with its dotted path (``head.num_queries must be an
integer, got 1.5``). :func:`coerce` is the one type check of a field's value: the settings
tables (:mod:`vltseg_ros.config.options`) check each option with it too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from vltseg_ros.errors import ConfigError
from vltseg_ros.io.files import require_file


def parse_mapping(text: str, source: str) -> dict[str, Any]:
    """The top-level mapping of a YAML (or, for a ``.json`` source, JSON) text.

    Raises:
        ConfigError: the text does not parse, or its top level is not a mapping.
    """
    try:
        data = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot parse {source}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must hold a mapping at the top level")
    return data


def read_mapping_file(
    path: Path, what: str, missing: type[ConfigError] = ConfigError
) -> dict[str, Any]:
    """The top-level mapping of a YAML / JSON file (see :func:`parse_mapping`).

    Raises:
        ``missing``: nothing at ``path``.
        ConfigError: a folder, an empty or binary (not UTF-8) file, or bad content.
    """
    require_file(path, what, ConfigError, missing)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {str(path)!r} is not a UTF-8 text (YAML / JSON) file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None
    return parse_mapping(text, str(path))


class ValueTypeError(ConfigError):
    """A value not of its field's type: ``<path> must be <expected>, got <value>``.

    Attributes:
        path: the value's dotted path.
        value: the value found.
        expected: what is wanted, as a phrase ("an integer", "a list of 2 entries").
    """

    def __init__(self, path: str, value: Any, expected: str) -> None:
        super().__init__(f"{path} must be {expected}, got {value!r}")
        self.path, self.value, self.expected = path, value, expected

    def __reduce__(self) -> tuple[type, tuple[str, Any, str]]:
        """Pickled by its parts (``args`` holds only the message), e.g. across processes."""
        return type(self), (self.path, self.value, self.expected)


def build_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping, each value converted by :func:`coerce`.

    Args:
        cls: the dataclass.
        data: its fields as a mapping (every key must be a field; missing ones keep defaults).
        path: the dotted path of ``data`` in the document, for error messages ("" = the top).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a missing required field.
    """
    where = path or cls.__name__
    if not isinstance(data, Mapping):
        raise ValueTypeError(where, data, "a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    prefix = f"{path}." if path else ""
    kwargs = {key: coerce(hints[key], value, prefix + key) for key, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_plain(value: Any) -> Any:
    """Tuples to lists, recursively: a structure ``yaml.safe_dump`` / ``json.dumps`` write."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


_PLAIN = {bool: "true or false", str: "a string", dict: "a mapping"}


def coerce(hint: Any, value: Any, path: str, *, strict: bool = False) -> Any:
    """``value`` as type ``hint``: a nested dataclass (:func:`build_dataclass`), an optional
    field, a ``Literal`` choice, a tuple (from any sequence but a string: list, tuple,
    ``array.array`` as rclpy gives arrays), an int or float (ints widen to floats), a bool,
    str or dict; other types pass unchecked.

    Args:
        hint: the type annotation.
        value: the value.
        path: its dotted path, for messages.
        strict: the value comes typed (a node parameter, a command-line flag), not as YAML
            text: no numeric strings or ``"a,b"`` tuples, no floats for ints, only finite floats.

    Raises:
        ValueTypeError: ``value`` is not of the type.
        ConfigError: a nested dataclass's error (:func:`build_dataclass`).
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return coerce(next(a for a in args if a is not type(None)), value, path, strict=strict)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    if origin is Literal:
        if value not in args:
            raise ValueTypeError(path, value, f"one of {list(args)}")
        return value
    if origin is tuple:
        return _tuple(args, value, path, strict)
    if hint in (int, float):
        return _number(hint, value, path, strict)
    plain = origin or hint
    if plain in _PLAIN and not isinstance(value, plain):
        raise ValueTypeError(path, value, _PLAIN[plain])
    return value


def _tuple(args: tuple[Any, ...], value: Any, path: str, strict: bool) -> tuple[Any, ...]:
    variadic = not args or args[-1] is Ellipsis
    if isinstance(value, str) and variadic and not strict:
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueTypeError(path, value, "a list")
    if not variadic and len(value) != len(args):
        raise ValueTypeError(path, value, f"a list of {len(args)} entries")
    inner = [args[0] if args else Any] * len(value) if variadic else args
    return tuple(coerce(a, v, path, strict=strict) for a, v in zip(inner, value, strict=True))


def _number(hint: type, value: Any, path: str, strict: bool) -> int | float:
    """An int or float. From YAML text also a numeric string (YAML 1.1 reads ``1e-4`` as one)
    or an integral float for an int. A strict value is not parsed and must be finite: rclpy and
    argparse give numbers typed, so a string, a float for an int or a NaN there is the user's
    mistake (YAML configs keep their looser reading)."""
    if isinstance(value, str) and not strict:
        try:
            value = float(value)
        except ValueError:
            raise ValueTypeError(path, value, "a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueTypeError(path, value, "a number")
    if hint is int and isinstance(value, float) and (strict or not value.is_integer()):
        raise ValueTypeError(path, value, "an integer")
    if strict and not math.isfinite(value):
        raise ValueTypeError(path, value, "a finite number")
    return hint(value)
