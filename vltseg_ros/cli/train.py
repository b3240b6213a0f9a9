"""``vltseg train``: train VLTSeg from a run config, on one process or under torchrun."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
from pathlib import Path

from vltseg_ros.parallel.distributed import init_distributed, shutdown_distributed
from vltseg_ros.training.run_config import available_run_configs, load_run_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand."""
    parser = subparsers.add_parser(
        "train",
        help="train a model (VLTSeg recipe) from a run config",
        description="Train VLTSeg (CLIP / EVA-CLIP encoder + Mask2Former) from a run config: "
        "iteration-based AdamW with the reference's lr rules and schedule, Mask2Former losses, "
        "periodic evaluation on the target domains, checkpoints that resume exactly. Multi-GPU "
        "/ multi-node: torchrun --nproc_per_node N -m vltseg_ros.cli.main train CONFIG ...",
    )
    parser.add_argument(
        "config",
        help=f"built-in run config ({', '.join(available_run_configs())}) or a YAML file",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides, e.g. train.iterations=200 data.source=gta5:/data/gta5 "
        "model.init=/ckpt/open_clip_model.safetensors (values are YAML); before or after the "
        "options",
    )
    parser.add_argument("--out", type=Path, help="run folder (default: output_dir of the config)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the run folder's last checkpoint (starts fresh when there is none)",
    )
    parser.add_argument(
        "--resume-from",
        type=Path,
        metavar="PATH",
        help="continue from this .state.pt / .safetensors checkpoint or run folder",
    )
    parser.add_argument(
        "--device", help="cpu or cuda (default: cuda when available); torchrun: cuda:LOCAL_RANK"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run, intermixed="overrides")


def run(args: argparse.Namespace) -> int:
    """Train; returns 0. Under torchrun every process runs this; rank 0 logs and writes."""
    from vltseg_ros.training.trainer import Trainer

    config = load_run_config(args.config, args.overrides)
    if args.out is not None:
        config = dataclasses.replace(config, output_dir=str(args.out))
    if os.environ.get("RANK", "0") != "0":  # torchrun: only rank 0 logs progress
        logging.getLogger().setLevel(logging.WARNING)
    context = init_distributed(args.device)
    try:
        resume = args.resume_from if args.resume_from is not None else args.resume
        trainer = Trainer(config, context, resume=resume, progress=not args.no_progress)
        result = trainer.fit()
    finally:
        shutdown_distributed()
    if context.is_main:
        print(f"trained {config.name} to iteration {result.iteration}: {result.run_dir}")
        if result.checkpoint is not None:
            print(f"last checkpoint: {result.checkpoint}")
        for record in result.metrics:
            print(f"  {record['domain']}: mIoU {100.0 * record['miou']:.2f} %")
    return 0
