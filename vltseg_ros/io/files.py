"""Checks of the files a user names before anything reads them, and writing outputs all or
nothing.

:func:`require_file`: the path exists, is a regular file and is not empty; each failure has
its own message (a folder is not reported as missing) and is raised as the caller's exception
type, so that the CLIs and the node report it like any other bad input.
:func:`require_torch_file`: a ``.pt`` / ``.pth`` file really is one before it is unpickled.

Nothing half-written: every output (a PNG, a report, a checkpoint, an ONNX file, a bag folder)
is written under a staging folder ``<folder>/<name>.partial-<pid>`` beside its destination and
renamed into place once complete (:class:`StagedOutputs`, :func:`staged`, :func:`atomic_path`,
:func:`write_bytes`). An error or an interrupt (Ctrl-C, SIGTERM) removes the staging folder, so
the destination holds either the previous content, nothing, or the complete new output; only a
process killed outright (SIGKILL, power loss) leaves a ``*.partial-<pid>`` folder, which no
later run mistakes for a result. A write error is raised as an :class:`OSError` that names the
destination (not the staging path).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from vltseg_ros.errors import CheckpointError, VLTSegError

PARTIAL = ".partial-"
"""What the staging folders' names hold: ``<name>.partial-<pid>``."""

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")


def require_file(
    path: str | Path,
    what: str,
    error: type[VLTSegError],
    missing: type[VLTSegError] | None = None,
) -> Path:
    """``path`` as a :class:`Path` when it names a non-empty regular file.

    Args:
        path: the file.
        what: how messages name it ("checkpoint", "model config file", ...).
        error: raised for a folder, a special file or an empty file.
        missing: raised when nothing exists at ``path`` (default ``error``).

    Raises:
        ``missing`` or ``error``, with a message naming ``what``, the path and the problem.
    """
    path = Path(path)
    shown = f"{what} {str(path)!r}"
    if path.is_dir():
        raise error(f"{shown} is a folder, not a file")
    if not path.exists():
        raise (missing or error)(f"{shown} does not exist")
    if not path.is_file():
        raise error(f"{shown} is not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise error(f"cannot read {shown}: {exc.strerror or exc}") from None
    if size == 0:
        raise error(f"{shown} is empty (0 bytes)")
    return path


def require_torch_file(path: Path) -> None:
    """Refuse a file that is neither a ``torch.save`` zip archive nor a legacy pickle (a
    text file renamed ``.pth``, an image ...) before the unpickler sees it.

    Raises:
        CheckpointError: naming the file and its first bytes.
    """
    with path.open("rb") as handle:
        head = handle.read(4)
    if head.startswith(_ZIP_MAGIC) or (head[:1] == b"\x80" and head[1:2] in _PICKLE_PROTOCOLS):
        return
    raise CheckpointError(
        f"{str(path)!r} is not a PyTorch checkpoint: it starts with {head!r}, not a torch.save "
        "zip archive or pickle (expected a .safetensors file, or a .pt / .pth written by "
        "torch.save)"
    )


class StagedOutputs:
    """A staging folder ``<folder>/<tag>.partial-<pid>`` whose entries :meth:`commit` moves
    into ``folder`` together (the module docstring says why).

    Args:
        folder: where the outputs belong (created when missing).
        tag: names the staging folder (e.g. the output's or the input's name).
    """

    def __init__(self, folder: str | Path, tag: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / f"{tag}{PARTIAL}{os.getpid()}"
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.path, ignore_errors=True)  # left by a killed process of this pid
        self.path.mkdir()

    def commit(self, last: str | None = None) -> list[Path]:
        """Move every entry of the staging folder into ``folder`` (a file replaces the file of
        its name; a folder needs a free name), ``last`` after the others, and remove the
        staging folder. Returns the destinations.

        Raises:
            OSError: a move failed (naming its destination); the entries already moved are
                removed again, and the staging folder too.
        """
        names = sorted(os.listdir(self.path), key=lambda name: (name == last, name))
        moved: list[Path] = []
        try:
            for name in names:
                target = self.folder / name
                try:
                    os.replace(self.path / name, target)
                except OSError as exc:
                    raise type(exc)(exc.errno, exc.strerror, str(target)) from None
                moved.append(target)
        except BaseException:
            for target in moved:
                _remove(target)
            self.discard()
            raise
        self.path.rmdir()
        return moved

    def discard(self) -> None:
        """Remove the staging folder and everything in it."""
        _remove(self.path)

    def destination(self, exc: OSError) -> OSError:
        """``exc`` naming the destination of the staged file it names, or ``folder`` when it
        names no file (unchanged when it names another one)."""
        name = exc.filename
        if name is None and exc.errno is not None:
            return type(exc)(exc.errno, exc.strerror, str(self.folder))
        if name is None or not str(name).startswith(str(self.path)):
            return exc
        target = self.folder / os.path.relpath(name, self.path)
        return type(exc)(exc.errno, exc.strerror, str(target))


@contextlib.contextmanager
def staged(folder: str | Path, tag: str, last: str | None = None) -> Iterator[Path]:
    """Write outputs that belong together into the yielded staging folder; they move into
    ``folder`` when the block ends without an error (:meth:`StagedOutputs.commit`), and are
    removed when it raises (an :class:`OSError` then names the destination).

    Example: ``with staged(out, "frame1") as stage: write_bytes(stage / "a.png", data)``.
    """
    staging = StagedOutputs(folder, tag)
    try:
        yield staging.path
    except OSError as exc:
        staging.discard()
        raise staging.destination(exc) from exc
    except BaseException:
        staging.discard()
        raise
    staging.commit(last)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A path to write ``path`` at (in a staging folder, with ``path``'s name, so that
    libraries that choose the format by suffix work): moved to ``path`` when the block ends
    without an error, removed otherwise. Files written beside it (an ONNX model's external
    ``.data``) move with it, before it.

    Raises:
        OSError: from the block or the move, naming ``path`` (also when the library raised it
            without a file name, or as the context of another exception).
    """
    path = Path(path)
    staging = StagedOutputs(path.parent, path.name)
    try:
        yield staging.path / path.name
    except BaseException as exc:
        staging.discard()
        error = _os_error_in(exc)
        if error is None or isinstance(exc, VLTSegError):
            raise
        if error.filename is None:
            raise type(error)(error.errno, error.strerror, str(path)) from exc
        raise staging.destination(error) from exc
    staging.commit(last=path.name)


def write_bytes(path: str | Path, data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` all or nothing; returns ``path``.

    Raises:
        OSError: naming ``path`` (a full disk, no permission ...).
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` all or nothing (as :func:`write_bytes`)."""
    return write_bytes(path, text.encode("utf-8"))


def _os_error_in(exc: BaseException) -> OSError | None:
    """``exc`` or the first OSError it was raised from (torch.save raises a RuntimeError whose
    context is the OSError of a full disk); None for an interrupt."""
    if not isinstance(exc, Exception):
        return None
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, OSError) and exc.errno is not None:
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()
