"""Entry point of the ``vltseg`` command: dispatches to one module per subcommand."""

from __future__ import annotations

import argparse
import logging
import sys

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


def main(argv: list[str] | None = None) -> int:
    """Run ``vltseg``; returns the process exit code (0 ok, 1 some inputs failed, 2 usage)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.run(args))
    except VLTSegError as exc:
        print(f"vltseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written, a full disk, no permission
        print(f"vltseg {args.command}: error: {_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vltseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(
            f"vltseg {args.command}: internal error: {type(exc).__name__}: {exc} (this is a "
            "bug, please report it; -v shows the traceback)",
            file=sys.stderr,
        )
        return 1


def _os_error(exc: OSError) -> str:
    """E.g. ``File exists: out/report.md``."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
