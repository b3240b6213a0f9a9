"""Class maps: the consumer's ontology (its class ids, or a few merged classes) over the model's.

A class map file (YAML, or JSON for a ``.json`` file) lists output classes, each merging model
classes by name; model classes it does not list go to its ``default`` class, or to 255
(unlabeled) without one:

    name: traversability
    default: obstacle               # optional
    classes:
      - {name: traversable, id: 0, members: [road, sidewalk, terrain]}
      - {name: obstacle, id: 1, members: [car, person], color: [220, 20, 60]}

:func:`read_class_map` reads and checks it on its own (:class:`ClassMapConfig`: names, ids,
colors, default); :meth:`ClassMapConfig.bind` checks it against a model's class set and gives
a :class:`BoundClassMap`: the lookup table of labels, the index that merges probabilities and
the output class set everything downstream uses (overlay colors, info arrays, ClassSet,
reports). Ids may have gaps (Autoware's need not be contiguous): arrays indexed by id have a
placeholder class ``unused_<id>`` (black) at each id no class has; it never occurs in a mask,
so its share is 0 and its IoU n/a. Nothing here imports torch.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from vltseg_ros.config.model_config import ClassSetConfig
from vltseg_ros.config.typed_yaml import build_dataclass, read_mapping_file
from vltseg_ros.errors import ConfigError

UNLABELED = 255
"""Mask value of unlabeled pixels: below the threshold, or of a model class the map drops."""
MAX_ID = 254
UNUSED = "unused_{}"
"""Name of the placeholder class at an id no output class has."""
_BLACK = (0, 0, 0)


@dataclass(frozen=True)
class OutputClass:
    """One class of the consumer's ontology.

    Attributes:
        name: unique name.
        id: its value in masks, 0-254 (255 is unlabeled), unique.
        members: names of the model classes it merges (empty: a class the model never
            predicts, kept for the consumer's id table).
        color: RGB 0-255 display color; None: the color of its first member (a default class
            without members: of the first model class it receives; else black).
    """

    name: str
    id: int
    members: tuple[str, ...] = ()
    color: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class ClassMapConfig:
    """A class map as read from its file (:func:`read_class_map`), not yet bound to a model.

    Attributes:
        classes: the output classes.
        name: the map's name (default: the file's stem).
        default: name of the output class every unlisted model class goes to; None: those
            classes are unlabeled (255).
        description: free text.
    """

    classes: tuple[OutputClass, ...]
    name: str = ""
    default: str | None = None
    description: str = ""

    def validate(self) -> None:
        """Raise :class:`ConfigError` for duplicate names or ids, ids outside 0-254, bad
        colors, a member listed twice in one class, or an unknown default."""
        if not self.classes:
            raise ConfigError("classes: give at least one output class")
        for what, values in (("name", [c.name for c in self.classes]), ("id", self._ids())):
            twice = sorted({v for v, n in Counter(values).items() if n > 1}, key=str)
            if twice:
                raise ConfigError(f"output class {what}(s) {twice} used twice: make them unique")
        for entry in self.classes:
            where = f"class {entry.name!r}"
            if not entry.name.strip():
                raise ConfigError(f"class with id {entry.id}: give it a name")
            if not 0 <= entry.id <= MAX_ID:
                raise ConfigError(f"{where}: id {entry.id} is outside 0-{MAX_ID} (255: unlabeled)")
            if entry.color is not None and not all(0 <= c <= 255 for c in entry.color):
                raise ConfigError(f"{where}: color {list(entry.color)} is not RGB 0-255")
            repeated = sorted(m for m, n in Counter(entry.members).items() if n > 1)
            if repeated:
                raise ConfigError(f"{where} lists {repeated} twice")
        names = [c.name for c in self.classes]
        if self.default is not None and self.default not in names:
            raise ConfigError(f"default {self.default!r} is none of the output classes {names}")

    def bind(self, model_classes: ClassSetConfig, source: str = "") -> BoundClassMap:
        """The map applied to a model's classes (``source``: where it was read from).

        Raises:
            ConfigError: an invalid map (:meth:`validate`), a member that is no model class,
                or a model class in two output classes; each message names the class map and
                what to change.
        """
        self.validate()
        where = f"class map {source or self.name!r}"
        model = list(model_classes.names)
        owner: dict[str, str] = {}
        for entry in self.classes:
            for member in entry.members:
                if member not in model:
                    close = difflib.get_close_matches(member, model, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    raise ConfigError(
                        f"{where}: class {entry.name!r} lists {member!r}, which is not a class of "
                        f"{model_classes.name!r}; {hint}its classes: {', '.join(model)}"
                    )
                if member in owner:
                    raise ConfigError(
                        f"{where}: {member!r} is in both {owner[member]!r} and {entry.name!r}; "
                        "a model class may belong to one output class only"
                    )
                owner[member] = entry.name
        ids = {c.name: c.id for c in self.classes}
        default = UNLABELED if self.default is None else ids[self.default]
        index = np.array([ids[owner[m]] if m in owner else default for m in model], np.int64)
        index[index == UNLABELED] = -1
        lut = np.full(256, UNLABELED, np.uint8)
        lut[: len(model)] = np.where(index >= 0, index, UNLABELED)
        classes = self._output_set(model_classes, index, where)
        return BoundClassMap(self, model_classes, classes, lut, index, source)

    def _ids(self) -> list[int]:
        return [c.id for c in self.classes]

    def _output_set(
        self, model_classes: ClassSetConfig, index: np.ndarray, where: str
    ) -> ClassSetConfig:
        """Names and palette indexed by output id 0..max id (placeholders in the gaps)."""
        size = max(self._ids()) + 1
        names = [UNUSED.format(i) for i in range(size)]
        palette = [_BLACK] * size
        for entry in self.classes:
            received = np.flatnonzero(index == entry.id)
            first = model_classes.names.index(entry.members[0]) if entry.members else None
            if first is None and received.size:
                first = int(received[0])
            names[entry.id] = entry.name
            palette[entry.id] = entry.color or (
                _BLACK if first is None else tuple(model_classes.palette[first])
            )
        taken = sorted(n for n, count in Counter(names).items() if count > 1)
        if taken:
            raise ConfigError(
                f"{where}: output class {taken[0]!r} is named like the placeholder of an unused "
                "id: rename it"
            )
        return ClassSetConfig(self.name, tuple(names), tuple(palette), UNLABELED)


@dataclass(frozen=True, eq=False)
class BoundClassMap:
    """A class map bound to a model's class set (:meth:`ClassMapConfig.bind`).

    Attributes:
        config: the map.
        model_classes: the model's class set (C classes).
        classes: the output class set: names and RGB palette indexed by output id 0..K-1
            (K = the largest id + 1; ``unused_<id>``, black, where no class has the id),
            ignore index 255. Use it wherever the model's class set would be used.
        lut: (256,) uint8 lookup table model train id -> output id: 255 for model classes the
            map leaves unlabeled, for values that are no model class, and for 255.
        index: (C,) int64 output id of each model class, -1 where unlabeled.
        source: the file the map was read from ("" when built in code).
    """

    config: ClassMapConfig
    model_classes: ClassSetConfig
    classes: ClassSetConfig
    lut: np.ndarray
    index: np.ndarray
    source: str = ""

    @property
    def num_classes(self) -> int:
        """K: the length of every array indexed by output id."""
        return self.classes.num_classes

    @property
    def membership(self) -> np.ndarray:
        """(K, C) float32 0/1 matrix: output-class probabilities = ``membership @ probs``."""
        matrix = np.zeros((self.num_classes, len(self.index)), np.float32)
        mapped = np.flatnonzero(self.index >= 0)
        matrix[self.index[mapped], mapped] = 1.0
        return matrix

    def labels(self) -> tuple[tuple[int, str], ...]:
        """(id, name) of the declared output classes by id (no placeholders): a LabelInfo's
        class map."""
        return tuple(sorted((c.id, c.name) for c in self.config.classes))

    def describe(self) -> str:
        """``traversability (config/class_maps/traversability.yaml)``, for reports."""
        return f"{self.config.name} ({self.source})" if self.source else self.config.name

    def map_labels(self, labels: np.ndarray) -> np.ndarray:
        """(H, W) uint8 model train ids (255 = ignore) -> (H, W) uint8 output ids (255 stays).

        Raises:
            ValueError: a value that is neither a model class id nor 255.
        """
        labels = np.asarray(labels)
        count = len(self.index)
        bad = np.unique(labels[(labels >= count) & (labels != UNLABELED)])
        if bad.size:
            raise ValueError(
                f"labels hold values {bad.tolist()[:10]} that are neither class ids "
                f"0-{count - 1} of {self.model_classes.name!r} nor 255 (train ids expected)"
            )
        return np.take(self.lut, labels)


def read_class_map(path: str | Path) -> ClassMapConfig:
    """Read and check a class map file (module docstring); its name defaults to the file stem.

    Raises:
        ConfigError: a missing, empty or unreadable file, bad YAML, unknown keys, wrong types
            or invalid content (:meth:`ClassMapConfig.validate`); one line naming the file.
    """
    path = Path(path)
    try:
        data = read_mapping_file(path, "class map file")
        entries = data.get("classes")
        if not isinstance(entries, list):
            raise ConfigError(
                f"classes must be a list of {{name, id, members, color}} entries, got {entries!r}"
            )
        classes = tuple(
            build_dataclass(OutputClass, entry, f"classes[{i}]") for i, entry in enumerate(entries)
        )
        config = build_dataclass(ClassMapConfig, {**data, "classes": []}, "class map")
        config = replace(config, classes=classes, name=config.name or path.stem)
        config.validate()
    except ConfigError as exc:
        message = _one_line(exc, path)
        shown = message if str(path) in message else f"class map {path}: {message}"
        raise ConfigError(shown) from None
    return config


def _one_line(error: ConfigError, path: Path) -> str:
    """The error's message on one line (the CLIs print one); a YAML syntax error as its
    problem and place."""
    cause = error.__cause__
    if isinstance(cause, yaml.MarkedYAMLError) and cause.problem_mark is not None:
        mark = cause.problem_mark
        return (
            f"cannot parse {path}: {cause.problem} at line {mark.line + 1}, column "
            f"{mark.column + 1}"
        )
    return " ".join(str(error).split())


def load_class_map(path: str | Path, model_classes: ClassSetConfig) -> BoundClassMap:
    """:func:`read_class_map` bound to ``model_classes`` (:meth:`ClassMapConfig.bind`)."""
    return read_class_map(path).bind(model_classes, source=str(path))
