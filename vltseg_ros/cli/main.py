"""Entry point of the ``vltseg`` command: dispatches to one module per subcommand.

SIGTERM is handled like Ctrl-C (SIGINT) in every subcommand: it raises
:class:`KeyboardInterrupt` in the main thread, so what a command was writing is removed
(:mod:`vltseg_ros.io.files`: nothing half-written) and it exits with code 130 and one line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from vltseg_ros.cli import (
    bag_eval,
    calibrate,
    convert_checkpoint,
    evaluate,
    export,
    make_bag,
    make_scenes,
    segment,
    train,
)
from vltseg_ros.errors import VLTSegError

_SUBCOMMANDS = (
    segment,
    make_bag,
    make_scenes,
    bag_eval,
    evaluate,
    calibrate,
    train,
    convert_checkpoint,
    export,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="vltseg", description="Domain-generalized semantic segmentation (VLTSeg)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line. A subcommand that sets the default ``intermixed`` to the name
    of its list of positionals (``train``: its KEY=VALUE overrides) takes them anywhere, also
    after options; any other unknown argument is a usage error (exit 2)."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    target = getattr(args, "intermixed", None)
    unknown = [e for e in extras if target is None or e.startswith("-")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if target is not None:
        setattr(args, target, [*getattr(args, target), *extras])
    return args


def main(argv: list[str] | None = None) -> int:
    """Run ``vltseg``; returns the process exit code (0 ok, 1 some inputs failed, 2 usage,
    130 interrupted by Ctrl-C or SIGTERM)."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        with sigterm_interrupts():
            return int(args.run(args))
    except VLTSegError as exc:
        code, message = 2, f"error: {exc}"
    except OSError as exc:  # an output that cannot be written, a full disk, no permission
        code, message = 2, f"error: {_os_error(exc)}"
    except KeyboardInterrupt as exc:
        code, message = 130, "interrupted" + (f" by {exc.args[0]}" if exc.args else "")
    except Exception as exc:
        if args.verbose:
            raise
        code = 1
        message = (
            f"internal error: {type(exc).__name__}: {exc} (this is a bug, please report it; "
            "-v shows the traceback)"
        )
    # printed after the exception is gone: what it kept alive (a progress bar) is closed then,
    # so this is the last line
    print(f"vltseg {args.command}: {message}", file=sys.stderr)
    return code


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises ``KeyboardInterrupt("SIGTERM")`` in the main thread
    (as Ctrl-C does); the previous handler comes back after it. Off the main thread (where
    Python cannot set handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _os_error(exc: OSError) -> str:
    """E.g. ``File exists: out/report.md``."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
