"""``vltseg convert-checkpoint``: turn a VLTSeg reference checkpoint into a vltseg checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from vltseg_ros.convert import SOURCES, convert_vltseg_checkpoint
from vltseg_ros.convert.pipeline import LICENSE_NOTE, MODELS_BY_GRID

_TEST_SCALES = {
    "vltseg-eva02-l-512": "Cityscapes / BDD100K / Mapillary: 1024 512 (default), ACDC: 960 540",
    "vltseg-eva02-l-1024": "Cityscapes / BDD100K / Mapillary: 2048 1024 (default), "
    "ACDC: 1920 1080",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``convert-checkpoint`` subcommand."""
    parser = subparsers.add_parser(
        "convert-checkpoint",
        help="convert a VLTSeg reference (MMSegmentation) checkpoint to .safetensors",
        description="Convert a VLTSeg MMSegmentation checkpoint (e.g. vltseg_checkpoint_gta_1.pth "
        "from Zenodo record 14766160) into a self-describing vltseg .safetensors checkpoint, "
        "then load it back to verify it. The input is read without running code from it.",
    )
    parser.add_argument("input", type=Path, metavar="IN.pth", help="reference checkpoint")
    parser.add_argument("output", type=Path, metavar="OUT.safetensors", help="file to write")
    parser.add_argument(
        "--source", choices=SOURCES, default=SOURCES[0], help="kind of input checkpoint"
    )
    parser.add_argument(
        "--model",
        help="built-in model or model config file (default: from the position-embedding grid: "
        + ", ".join(f"{g}x{g} -> {name}" for g, name in MODELS_BY_GRID.items())
        + ")",
    )
    parser.add_argument(
        "--training-domain",
        help="stored in the checkpoint (default: guessed from the file name, e.g. "
        "..._gta_1.pth -> gta5, ..._cityscapes_2.pth -> cityscapes; else unknown)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Convert, verify and report; errors raise VLTSegError (exit code 2 in main)."""
    result = convert_vltseg_checkpoint(
        args.input, args.output, model=args.model, training_domain=args.training_domain
    )
    how = "inferred from" if result.model_inferred else "given; checkpoint has"
    size_mb = result.output.stat().st_size / 2**20
    lines = [
        f"read {result.source} ({args.source})",
        f"  metadata objects read as inert stand-ins: {', '.join(result.stand_ins) or 'none'}",
        f"model: {result.model_name} ({how} a {result.grid}x{result.grid} position grid)",
        f"mapped {result.backbone_keys} backbone.* and {result.head_keys} decode_head.* keys; "
        f"{result.derived_keys} RoPE tables checked equal to the model's and dropped",
        f"training domain: {result.training_domain}",
        f"wrote {result.output} ({size_mb:.1f} MiB); loaded it back: every weight identical",
        f"license: {LICENSE_NOTE}",
        f"use: vltseg segment --checkpoint {result.output} IMAGE ... --out DIR",
    ]
    if result.model_name in _TEST_SCALES:
        lines.append(f"  --test-scale per target domain: {_TEST_SCALES[result.model_name]}")
    print("\n".join(lines))
    return 0
