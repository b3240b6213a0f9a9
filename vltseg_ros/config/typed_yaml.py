"""YAML / JSON mappings into typed, frozen dataclasses, with errors that name the key.

Shared by the model configs (:mod:`vltseg_ros.config.model_config`) and the training run configs
(:mod:`vltseg_ros.training.run_config`): a key the dataclass does not have, or a value of the
wrong type, is a :class:`ConfigError` with its dotted path (``head.num_queries must be an
integer, got 1.5``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
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


def build_dataclass(cls: type, data: Any, path: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a mapping, converting nested dataclasses, tuples
    (from lists, or ``"a,b"`` strings for variable-length tuples), numbers (also numeric
    strings such as YAML's ``1e-4``), ``Literal`` choices and optional fields.

    Args:
        cls: the dataclass.
        data: its fields as a mapping (every key must be a field; missing ones keep defaults).
        path: the dotted path of ``data`` in the document, for error messages ("" = the top).

    Raises:
        ConfigError: an unknown key, a value of the wrong type, or a missing required field.
    """
    where = path or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(names)}")
    prefix = f"{path}." if path else ""
    kwargs = {key: _coerce(hints[key], value, prefix + key) for key, value in data.items()}
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


def _coerce(hint: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, path)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{path} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        return _tuple(args, value, path)
    if hint in (int, float):
        return _number(hint, value, path)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{path} must be true or false, got {value!r}")
    if hint is str and not isinstance(value, str):
        raise ConfigError(f"{path} must be a string, got {value!r}")
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{path} must be a mapping, got {value!r}")
    return value


def _tuple(args: tuple[Any, ...], value: Any, path: str) -> tuple[Any, ...]:
    variadic = not args or args[-1] is Ellipsis
    if isinstance(value, str) and variadic:
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{path} must be a list, got {value!r}")
    if not variadic and len(value) != len(args):
        raise ConfigError(f"{path} must have {len(args)} entries, got {value!r}")
    inner = [args[0] if args else Any] * len(value) if variadic else args
    return tuple(_coerce(a, v, path) for a, v in zip(inner, value, strict=True))


def _number(hint: type, value: Any, path: str) -> int | float:
    """An int or float from a number or a numeric string (YAML 1.1 reads ``1e-4`` as one)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{path} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if hint is int and value != int(value):
        raise ConfigError(f"{path} must be an integer, got {value!r}")
    return hint(value)
