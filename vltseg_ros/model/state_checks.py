"""Checks of a checkpoint's tensors against the model they are for, before the model is built.

:func:`check_layout` compares the names and shapes of a checkpoint's tensors (for a
``.safetensors`` file, from its header: no tensor read yet) with the model's
:class:`~vltseg_ros.model.segmentor.StateLayout` (a build on the ``meta`` device: no memory).
:func:`check_values` refuses tensors that are not weights: a non-floating tensor where the model
has a floating one (int8 or bool would be cast in silence by ``load_state_dict``), a floating one
where the model counts (``num_batches_tracked``), and NaN or infinite values. Each raises one
:class:`CheckpointError` line naming the first offending tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from vltseg_ros.errors import CheckpointError
from vltseg_ros.model.segmentor import StateLayout

_NAMED = 5
"""Offending tensors named in a message (the rest are counted)."""
_SUMMABLE = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_layout(
    expected: StateLayout,
    shapes: Mapping[str, Sequence[int]],
    path: str | Path,
    model: str = "the model",
) -> None:
    """Refuse a checkpoint whose tensor names or shapes differ from the model's.

    Args:
        expected: the model's layout.
        shapes: name -> shape of every tensor of the checkpoint.
        path: the checkpoint, for the message; ``model`` names the model there.

    Raises:
        CheckpointError: missing, unexpected or wrongly shaped tensors (the first few named,
            with both sizes in weights).
    """
    found = {k: tuple(int(n) for n in v) for k, v in shapes.items()}
    missing = sorted(set(expected.shapes) - set(found))
    unexpected = sorted(set(found) - set(expected.shapes))
    wrong = sorted(
        f"{k}: checkpoint {found[k]} vs model {expected.shapes[k]}"
        for k in set(expected.shapes) & set(found)
        if found[k] != expected.shapes[k]
    )
    if not (missing or unexpected or wrong):
        return
    held = StateLayout(found, {}).weights
    raise CheckpointError(
        f"{str(path)!r} does not match {model} ({len(expected.shapes)} tensors, "
        f"{_millions(expected.weights)} weights; the file has {len(found)} tensor(s), "
        f"{_millions(held)} weights): {_summary('missing', missing)}"
        f"{_summary('unexpected', unexpected)}{_summary('wrong shape', wrong)}".rstrip("; ")
    )


def check_values(expected: StateLayout, tensors: Mapping[str, Tensor], path: str | Path) -> None:
    """Refuse tensors that are not weights (of a checkpoint whose layout matches ``expected``).

    Floating-point model tensors need floating-point values (any precision), finite ones;
    integer model tensors (``num_batches_tracked``) need integers.

    Raises:
        CheckpointError: naming the first offending tensors and their dtypes.
    """
    wrong_type, non_finite = [], []
    for key in sorted(tensors):
        tensor, want = tensors[key], expected.dtypes[key]
        if want.is_floating_point:
            if not tensor.is_floating_point():
                wrong_type.append(f"{key} ({_name(tensor.dtype)})")
            elif not _finite(tensor):
                non_finite.append(key)
        elif tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
            wrong_type.append(f"{key} ({_name(tensor.dtype)}, the model's is {_name(want)})")
    if wrong_type:
        raise CheckpointError(
            f"{str(path)!r} holds tensors of the wrong kind for the model's weights (floating "
            f"point, or integer counters): {_summary('', wrong_type)}"
            "they are not weights; use a checkpoint written by save_checkpoint or "
            "`vltseg convert-checkpoint`"
        )
    if non_finite:
        raise CheckpointError(
            f"{str(path)!r} holds NaN or infinite weights: {_summary('', non_finite)}"
            "the model would segment every pixel as garbage; use a checkpoint from before "
            "training diverged"
        )


def _finite(tensor: Tensor) -> bool:
    """Whether every element is finite; a float32 sum first (about 30x cheaper than
    ``isfinite`` and exact whenever it is finite: any NaN or infinity makes it non-finite)."""
    values = tensor if tensor.dtype in _SUMMABLE else tensor.float()
    if torch.isfinite(values.sum(dtype=torch.float32)):
        return True
    return bool(torch.isfinite(values).all())  # a huge but finite sum overflowed


def _summary(label: str, items: list[str]) -> str:
    if not items:
        return ""
    more = f" (+{len(items) - _NAMED} more)" if len(items) > _NAMED else ""
    what = f"{len(items)} {label} key(s): " if label else f"{len(items)} tensor(s): "
    return f"{what}{', '.join(items[:_NAMED])}{more}; "


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f} M" if count >= 100_000 else f"{count}"
