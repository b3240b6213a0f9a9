"""One type check for config values (typed_yaml.coerce): YAML configs read text loosely, the
settings tables (options.build) take typed values strictly, rclpy's arrays included."""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Any

import pytest

from vltseg_ros.config.options import build, option
from vltseg_ros.config.typed_yaml import ValueTypeError, coerce
from vltseg_ros.errors import ConfigError
from vltseg_ros.inference.settings import SegmenterSettings


@dataclass(frozen=True)
class _Settings:
    size: tuple[int, int] = option((0, 0), "A pair.")
    weights: tuple[float, ...] = option((1.0,), "Weights.")
    names: tuple[str, ...] = option(("a",), "Names.")
    rate: float = option(1.0, "A rate.", range=(0.0, 10.0))
    count: int = option(1, "A count.")


def test_rclpy_arrays_are_taken_as_tuples_of_python_numbers() -> None:
    settings = build(SegmenterSettings, {"inference.test_scale": array.array("q", [960, 540])})
    assert settings.inference.test_scale == (960, 540)
    assert all(type(item) is int for item in settings.inference.test_scale)
    values = {"size": array.array("q", [3, 4]), "weights": array.array("d", [0.5, 2.0])}
    built = build(_Settings, {**values, "names": ["x", "y"], "rate": 2})
    assert (built.size, built.weights, built.names) == ((3, 4), (0.5, 2.0), ("x", "y"))
    assert type(built.weights[0]) is float and type(built.rate) is float


def test_build_names_every_badly_typed_option() -> None:
    values = {"size": [1, 2, 3], "names": "x,y", "rate": math.nan, "count": 2.0, "weights": [True]}
    with pytest.raises(ConfigError) as caught:
        build(_Settings, values)
    for phrase in (
        "size: [1, 2, 3] is not a list of 2 entries",
        "names: 'x,y' is not a list",
        "rate: nan is not a finite number",
        "count: 2.0 is not an integer",
        "weights: True is not a number",
    ):
        assert phrase in str(caught.value)


@pytest.mark.parametrize(
    ("hint", "value", "loose", "expected"),
    [
        (float, "1e-4", 1e-4, "a number"),  # YAML 1.1 reads 1e-4 as a string
        (int, 2.0, 2, "an integer"),
        (float, math.inf, math.inf, "a finite number"),
        (tuple[str, ...], "a, b", ("a", "b"), "a list"),
    ],
)
def test_strict_values_are_not_read_as_text(
    hint: Any, value: Any, loose: Any, expected: str
) -> None:
    assert coerce(hint, value, "x") == loose
    with pytest.raises(ValueTypeError, match=f"^x must be {expected}, got "):
        coerce(hint, value, "x", strict=True)


@pytest.mark.parametrize(
    ("hint", "value", "expected"),
    [
        (int, True, "a number"),
        (int, 1.5, "an integer"),
        (bool, "yes", "true or false"),
        (str, 3, "a string"),
        (dict[str, Any], [1], "a mapping"),
        (tuple[int, int], [1], "a list of 2 entries"),
        (tuple[int, ...], {"a": 1}, "a list"),
    ],
)
def test_wrong_types_name_the_path(hint: Any, value: Any, expected: str) -> None:
    for strict in (False, True):
        with pytest.raises(ValueTypeError, match=f"^x.y must be {expected}, got ") as caught:
            coerce(hint, value, "x.y", strict=strict)
        assert (caught.value.path, caught.value.value) == ("x.y", value)
