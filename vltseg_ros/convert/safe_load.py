"""Read MMSegmentation / MMEngine checkpoints without running any code from them.

An MMSegmentation 1.x checkpoint is a ``torch.save`` pickle holding ``state_dict`` (tensors) and
``meta`` / ``message_hub`` (training bookkeeping: ``mmengine.logging.HistoryBuffer`` objects,
numpy arrays, scalars and dtypes, ...). ``torch.load(weights_only=True)`` refuses those
objects. :func:`load_with_inert_metadata` lists the checkpoint's non-tensor globals by reading
the pickle statically (``torch.serialization.get_unsafe_globals_in_checkpoint``, nothing is
executed) and allows exactly those that belong to metadata-only packages, each replaced by an
:class:`InertObject` stand-in that stores what the pickle gives it and runs nothing. Any other
global (``os.system``, ``builtins.eval``, a user class, ...) makes the load fail.

One builtin is let through, guarded: ``builtins.getattr``, which pickle protocol 2 (the one
``torch.save`` uses) writes for a method: ``getattr(HistoryBuffer, "mean")`` for the statistics
methods MMEngine's ``HistoryBuffer`` keeps in training checkpoints' ``message_hub``. The guard
answers exactly that pattern -- a public method name of a :data:`GETATTR_OWNERS` stand-in class
or instance -- with another inert stand-in and refuses every other call (``getattr`` of a
string, of a tensor, of a dunder, of another stand-in ...), so nothing real is ever reached.
"""

from __future__ import annotations

import logging
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from vltseg_ros.errors import CheckpointError, CheckpointNotFoundError
from vltseg_ros.io.files import require_file, require_torch_file

LOG = logging.getLogger(__name__)

METADATA_PACKAGES = ("mmengine", "mmseg", "mmdet", "mmcv", "numpy")
"""Top-level packages whose pickled objects are metadata that conversion ignores."""
GETATTR = "builtins.getattr"
GETATTR_OWNERS = ("mmengine.logging.history_buffer.HistoryBuffer",)
"""Metadata classes whose methods a checkpoint may name through ``builtins.getattr``."""


class InertObject:
    """Stand-in for a class or function named in a checkpoint's metadata; runs nothing.

    The pickle may create it (``NEWOBJ``), call it like the function it replaces (``REDUCE``)
    and give it state (``BUILD``); it only stores ``args`` and ``state``. ``source`` is the
    dotted name it replaces.
    """

    source = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.source}>"


def inert_stand_in(dotted_name: str) -> type[InertObject]:
    """A new :class:`InertObject` subclass named like ``dotted_name`` (``module.qualname``)."""
    module, _, name = dotted_name.rpartition(".")
    return type(
        name or dotted_name,
        (InertObject,),
        {"__module__": module, "__qualname__": name, "source": dotted_name},
    )


class InertGetattr:
    """Stand-in for ``builtins.getattr`` in a checkpoint's pickle; reaches nothing real.

    ``getattr(owner, name)`` where ``owner`` is the stand-in of a :data:`GETATTR_OWNERS` class
    (or an instance of it) and ``name`` a public identifier gives the inert stand-in
    ``<owner>.<name>``; any other call is recorded in ``refused`` and raises
    :class:`pickle.UnpicklingError`.
    """

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __call__(self, obj: Any, name: Any, *default: Any) -> type[InertObject]:
        owner = obj if isinstance(obj, type) else type(obj)
        if (
            issubclass(owner, InertObject)
            and owner.source in GETATTR_OWNERS
            and isinstance(name, str)
            and name.isidentifier()
            and not name.startswith("_")
            and not default
        ):
            return inert_stand_in(f"{owner.source}.{name}")
        if issubclass(owner, InertObject):
            what = owner.source
        elif isinstance(obj, type):
            what = f"class {obj.__module__}.{obj.__qualname__}"
        else:
            what = f"a {owner.__name__}"
        call = f"getattr({what}, {repr(name)[:60]})"
        self.refused.append(call)
        raise pickle.UnpicklingError(f"refused {call}")


def is_metadata_global(dotted_name: str) -> bool:
    """Whether a pickled global belongs to :data:`METADATA_PACKAGES` (gets a stand-in)."""
    return dotted_name.split(".", 1)[0] in METADATA_PACKAGES


def load_with_inert_metadata(path: str | Path) -> tuple[Any, list[str]]:
    """``torch.load(weights_only=True)`` of ``path`` with metadata objects as inert stand-ins.

    Returns:
        The loaded object (tensors memory-mapped from the file, so parts that are never used,
        such as an optimizer state, cost no memory; metadata objects as :class:`InertObject`)
        and the sorted dotted names that were replaced by stand-ins.

    Raises:
        CheckpointNotFoundError: the path does not exist.
        CheckpointError: not a ``torch.save`` zip file, corrupt, or naming a global outside
            :data:`METADATA_PACKAGES` (the message lists them; nothing was executed).
    """
    path = require_file(path, "checkpoint", CheckpointError, CheckpointNotFoundError)
    require_torch_file(path)
    try:
        names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except (ValueError, RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        raise CheckpointError(
            f"cannot read {str(path)!r}: not a PyTorch checkpoint written by torch.save "
            f"(truncated or another format?): {_first_line(e)}"
        ) from e
    refused = [name for name in names if not is_metadata_global(name) and name != GETATTR]
    if refused:
        raise CheckpointError(
            f"refusing to load {str(path)!r}: its pickle names Python callables or classes "
            f"that could run code when unpickled: {', '.join(refused)}. Only metadata objects "
            f"of {', '.join(METADATA_PACKAGES)} are read (as inert stand-ins); nothing was "
            "executed. Use a checkpoint from a source you trust."
        )
    guard = InertGetattr()
    stand_ins = [(guard if n == GETATTR else inert_stand_in(n), n) for n in names]
    try:
        with torch.serialization.safe_globals(stand_ins):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as exc:
        if guard.refused:
            raise CheckpointError(
                f"refusing to load {str(path)!r}: its pickle calls {guard.refused[0]}, not a "
                f"method of {' or '.join(GETATTR_OWNERS)} (MMEngine's training statistics), "
                "and such calls can run code when unpickled; nothing was executed. Use a "
                "checkpoint from a source you trust."
            ) from exc
        raise CheckpointError(
            f"cannot read the metadata of {str(path)!r} safely ({_first_line(exc)}); nothing "
            "was executed. On a machine where you trust the file, keep only its weights: "
            "torch.save({'state_dict': torch.load(IN, weights_only=False)['state_dict']}, OUT)"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read {str(path)!r} (truncated or corrupt?): {_first_line(exc)}"
        ) from exc
    if names:
        LOG.debug("%s: metadata objects read as inert stand-ins: %s", path, ", ".join(names))
    return obj, names


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
