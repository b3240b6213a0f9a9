"""Checks of the files a user names, before anything reads them.

:func:`require_file`: the path exists, is a regular file and is not empty; each failure has
its own message (a folder is not reported as missing) and is raised as the caller's exception
type, so that the CLIs and the node report it like any other bad input.
:func:`require_torch_file`: a ``.pt`` / ``.pth`` file really is one before it is unpickled.
"""

from __future__ import annotations

from pathlib import Path

from vltseg_ros.errors import CheckpointError, VLTSegError

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
