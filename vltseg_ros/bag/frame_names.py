"""The names of a bag's frames: which input frame each image message holds.

``vltseg make-bag`` stores them in the bag's ``metadata.yaml``, under ``custom_data`` key
:data:`FRAME_NAMES_KEY`: a JSON object from header stamp (ns since the epoch, as a string) to
the frame's name, the image file's stem (``aachen_000000_000019_leftImg8bit``; a stem that
repeats gets ``_2``, ``_3`` ..., as ``vltseg segment`` names its results) or, with
``--synthetic``, the scene's name (``scenes_100000_000000``, as ``vltseg make-scenes`` names
that scene). The header stamp identifies the frame (its ``frame_id`` stays the camera's). The
live replay names its overlays after them (``overlays/<name>.png``; a bag without the table,
e.g. one recorded on a robot: ``overlays/<stamp ns>.png``), and ``bag-eval --write-bag`` copies
the table into the bag it writes.

The table comes from a file anyone can edit: a name that is not a plain file name (letters,
digits, ``.``, ``_``, ``-``; starting with a letter, a digit or ``_``; at most 200 characters),
or two frames of one name, make the whole table ignored (with a warning), so a name never
leads a file outside its folder.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path

from vltseg_ros.bag.topics import open_bag

LOG = logging.getLogger(__name__)

FRAME_NAMES_KEY = "vltseg_ros.frame_names"
"""The ``custom_data`` key of the name table in a bag's metadata.yaml."""
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


def encode_frame_names(names: Mapping[int, str]) -> str:
    """The ``custom_data`` value of a stamp (ns) -> name table.

    Raises:
        ValueError: a name that is not a plain file name, or a name given twice.
    """
    problem = _problem(names)
    if problem:
        raise ValueError(problem)
    return json.dumps({str(stamp): name for stamp, name in names.items()}, separators=(",", ":"))


def read_frame_names(bag: Path | str) -> dict[int, str]:
    """The stamp (ns) -> name table of ``bag`` ({} when it has none or an invalid one).

    Raises:
        BagError: the bag cannot be opened.
    """
    with open_bag(bag) as reader:
        metadata = getattr(reader.storage, "metadata", None)  # a single-file bag has none
        custom = getattr(metadata, "custom", None) or {}
    text = custom.get(FRAME_NAMES_KEY) if isinstance(custom, dict) else None
    if text is None:
        return {}
    try:
        table = json.loads(text)
        names = {int(stamp): name for stamp, name in table.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        LOG.warning(
            "%s: %s is not a JSON object of stamps and names (%s)", bag, FRAME_NAMES_KEY, exc
        )
        return {}
    problem = _problem(names)
    if problem:
        LOG.warning("%s: %s: %s; frames are named by stamp", bag, FRAME_NAMES_KEY, problem)
        return {}
    return names


def frame_name(stamp_ns: int, names: Mapping[int, str]) -> str:
    """The name of the frame with header stamp ``stamp_ns``: its entry in ``names``, else the
    stamp in ns."""
    return names.get(stamp_ns) or str(stamp_ns)


def _problem(names: Mapping[int, str]) -> str:
    """What is wrong with a name table ("" when nothing)."""
    bad = [n for n in names.values() if not isinstance(n, str) or not _NAME.fullmatch(n)]
    if bad:
        return f"{bad[0]!r} is not a plain file name (letters, digits, '.', '_', '-')"
    if len(set(names.values())) != len(names):
        return "two frames have the same name"
    return ""
