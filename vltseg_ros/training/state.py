"""Training checkpoints: model weights, training state, the ``last_checkpoint.json`` pointer.

A checkpoint at iteration n is two files in the run folder:

- ``iter_{n:06d}.safetensors``: the model
  (:func:`vltseg_ros.model.checkpoint.save_checkpoint`, with its
  config, classes and training domain; loads with ``vltseg segment --checkpoint``);
- ``iter_{n:06d}.state.pt``: everything else needed to continue exactly, as plain tensors,
  numbers, strings, lists and dicts written with ``torch.save`` and read back with
  ``torch.load(weights_only=True)`` (no pickled code): iteration, optimizer, lr scheduler and
  gradient-scaler states, every process's torch / CUDA / NumPy / Python RNG states, the loss
  history, world size and global batch.

``last_checkpoint.json`` names the newest pair; it is replaced atomically after both files are
written, so an interrupted write never leaves it pointing at a partial checkpoint. Each file is
itself written all or nothing (:func:`vltseg_ros.io.files.atomic_path`): an interrupt
(Ctrl-C, SIGTERM) or a full disk leaves no partial file.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vltseg_ros.errors import TrainingError
from vltseg_ros.io.files import atomic_path, write_text

LOG = logging.getLogger(__name__)

STATE_FORMAT = "vltseg_ros.train_state.v1"
LAST_POINTER = "last_checkpoint.json"


def checkpoint_paths(run_dir: Path, iteration: int) -> tuple[Path, Path]:
    """(model ``.safetensors``, training state ``.state.pt``) paths of iteration ``iteration``."""
    stem = f"iter_{iteration:06d}"
    return run_dir / f"{stem}.safetensors", run_dir / f"{stem}.state.pt"


def capture_rng(device: torch.device) -> dict[str, Any]:
    """This process's RNG states as plain data: torch CPU (uint8 tensor), CUDA of ``device``
    (uint8 tensor or None), NumPy's legacy global generator and Python's ``random``."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }


def restore_rng(state: dict[str, Any], device: torch.device) -> None:
    """Set this process's RNGs to a :func:`capture_rng` state."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), NumPy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def save_state(path: Path, state: dict[str, Any]) -> Path:
    """Write a training state (plain data only) all or nothing; returns ``path``.

    Raises:
        OSError: it cannot be written (a full disk), naming ``path``.
    """
    data = {"format": STATE_FORMAT, **state}
    with atomic_path(path) as staged, staged.open("wb") as handle:
        torch.save(data, handle)  # a full disk: a RuntimeError from the OSError, named
    return path


def load_state(path: Path) -> dict[str, Any]:
    """Read a training state with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        TrainingError: missing, unreadable, holding Python objects, or not a training state.
    """
    if not path.is_file():
        raise TrainingError(f"training state {str(path)!r} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile) as exc:
        raise TrainingError(f"cannot read training state {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise TrainingError(f"{str(path)!r} is not a vltseg_ros training state")
    return data


def write_pointer(run_dir: Path, iteration: int) -> Path:
    """Point ``last_checkpoint.json`` at iteration ``iteration``'s files (atomically)."""
    model, state = checkpoint_paths(run_dir, iteration)
    record = {"iteration": iteration, "model": model.name, "state": state.name}
    return write_text(run_dir / LAST_POINTER, json.dumps(record) + "\n")


def read_pointer(run_dir: Path) -> tuple[Path, Path] | None:
    """(model, state) paths named by ``last_checkpoint.json``, or None when there is none.

    Raises:
        TrainingError: the pointer is unreadable or names missing files.
    """
    pointer = run_dir / LAST_POINTER
    if not pointer.is_file():
        return None
    try:
        record = json.loads(pointer.read_text(encoding="utf-8"))
        model, state = run_dir / record["model"], run_dir / record["state"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot read {pointer}: {exc}; delete it to start over") from exc
    for path in (model, state):
        if not path.is_file():
            raise TrainingError(f"{pointer} names {path.name}, which does not exist")
    return model, state


def resolve_resume(path: Path) -> tuple[Path, Path]:
    """(model, state) paths from a ``.state.pt``, a ``.safetensors`` of a training run, or a
    run folder (its ``last_checkpoint.json``).

    Raises:
        TrainingError: nothing to resume there.
    """
    if path.is_dir():
        found = read_pointer(path)
        if found is None:
            raise TrainingError(f"{path} holds no {LAST_POINTER}: nothing to resume")
        return found
    name = path.name
    if name.endswith(".state.pt"):
        model = path.with_name(name.removesuffix(".state.pt") + ".safetensors")
        state = path
    elif name.endswith(".safetensors"):
        model, state = path, path.with_name(name.removesuffix(".safetensors") + ".state.pt")
    else:
        raise TrainingError(f"resume from a .state.pt, a .safetensors or a run folder, not {path}")
    for item in (model, state):
        if not item.is_file():
            raise TrainingError(f"cannot resume: {item} does not exist")
    return model, state


def prune_checkpoints(run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints (pairs) of ``iter_*`` files; returns the
    deleted paths."""
    stems = sorted({p.name.split(".")[0] for p in run_dir.glob("iter_*.state.pt")})
    deleted = []
    for stem in stems[:-keep] if keep > 0 else stems:
        for path in (run_dir / f"{stem}.safetensors", run_dir / f"{stem}.state.pt"):
            if path.exists():
                path.unlink()
                deleted.append(path)
    if deleted:
        LOG.debug("deleted old checkpoints: %s", ", ".join(p.name for p in deleted))
    return deleted
