"""Command-line flags made from settings dataclasses, and the model options every subcommand
that runs a model shares.

A flag is its node parameter's name with ``_`` written ``-``: ``batch_size`` is
``--batch-size``, ``onnxruntime.cache_dir`` is ``--onnxruntime.cache-dir``, with the same
default, description, choices and range (:mod:`vltseg_ros.config.options`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta
from typing import Any, TypeVar

from vltseg_ros.config.model_config import available_models
from vltseg_ros.config.options import build, option_specs
from vltseg_ros.inference.predictor import Segmenter
from vltseg_ros.inference.settings import SegmenterSettings
from vltseg_ros.parallel.distributed import (
    DistributedContext,
    init_distributed,
    launched_world_size,
)

Settings = TypeVar("Settings")
_PAIR_NAMES = {"test_scale": ("LONG", "SHORT")}
EVALUATION_TIMEOUT = timedelta(hours=24)
"""How long a process that finished its share of an evaluation waits for the others."""


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    names: tuple[str, ...] | None = None,
) -> None:
    """One flag per option of ``cls`` (or of those named), as the module docstring says."""
    for spec in option_specs(cls):
        if names is not None and spec.name not in names:
            continue
        kwargs: dict[str, Any] = {"dest": _dest(spec.name), "default": spec.default}
        help_text = spec.description
        if spec.kind is bool:
            kwargs["action"] = "store_true"
        elif spec.kind is tuple:
            leaf = spec.name.rsplit(".", 1)[-1]
            kwargs |= {"type": int, "nargs": 2, "metavar": _PAIR_NAMES.get(leaf, ("H", "W"))}
        else:
            kwargs |= {"type": spec.kind, "metavar": spec.name.rsplit(".", 1)[-1].upper()}
            if spec.choices is not None:
                kwargs |= {"choices": spec.choices, "metavar": "{" + ",".join(spec.choices) + "}"}
            default = "not given" if spec.nan_allowed else repr(spec.default)
            help_text += f" (default {default})"
        parser.add_argument(f"--{spec.name.replace('_', '-')}", help=help_text, **kwargs)


def options_from(args: argparse.Namespace, cls: type[Settings]) -> Settings:
    """The ``cls`` instance the parsed flags give.

    Raises:
        ConfigError: naming every invalid flag (by its option name).
    """
    values = {
        spec.name: getattr(args, _dest(spec.name))
        for spec in option_specs(cls)
        if hasattr(args, _dest(spec.name))
    }
    return build(cls, values)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The :class:`SegmenterSettings` flags (model, weights, backend, device, precision,
    batch size, backend options, inference overrides)."""
    group = parser.add_argument_group(f"model (built-in models: {', '.join(available_models())})")
    add_options(group, SegmenterSettings)


def load_segmenter(args: argparse.Namespace, *, warn: bool = True) -> Segmenter:
    """The Segmenter the model flags describe; warns loudly when its weights are random (and
    ``warn``)."""
    segmenter = options_from(args, SegmenterSettings).load()
    if segmenter.random_weights and warn:
        warn_random_weights(segmenter.config.name)
    return segmenter


def join_processes(args: argparse.Namespace) -> DistributedContext:
    """Under torchrun (``WORLD_SIZE`` > 1): join the process group (gloo, whatever the device:
    the processes only exchange counts; collectives wait up to :data:`EVALUATION_TIMEOUT`),
    set ``args.device`` to this process's device (``cuda`` -> ``cuda:LOCAL_RANK``) and keep
    the log to warnings on ranks other than 0. In a single process: a one-process context, no
    process group, ``args`` unchanged.

    Raises:
        ConfigError: malformed launcher variables.
        DeviceError: CUDA requested but unavailable, ``cuda:N`` under torchrun, or fewer GPUs
            than local ranks.
    """
    if launched_world_size() == 1:
        return DistributedContext()
    context = init_distributed(args.device, backend="gloo", timeout=EVALUATION_TIMEOUT)
    args.device = str(context.device)
    if not context.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    return context


def warn_random_weights(model: str) -> None:
    """A banner on stderr: without a checkpoint every output is meaningless."""
    print(
        "\n" + "!" * 78 + "\n"
        f"!! WARNING: no --checkpoint given. Model '{model}' has RANDOM\n"
        "!! weights: every output below is meaningless noise. Pass --checkpoint FILE\n"
        "!! (a vltseg .safetensors checkpoint) for real segmentation.\n" + "!" * 78 + "\n",
        file=sys.stderr,
    )


def _dest(name: str) -> str:
    return name.replace(".", "__")
