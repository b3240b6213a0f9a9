"""``vltseg_ros.data`` re-exports its readers lazily: the torch-free parts stay torch-free.

The bag tools (``vltseg_ros.bag.frames``) and the Python 3.12 core tests import
``vltseg_ros.data.scenes`` / ``label_maps`` / ``frame_files`` on machines without torch; an eager
``from .dataset import ...`` in the package ``__init__`` once broke both (CI, ``make test-py312``).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import vltseg_ros.data as data


def test_torch_free_modules_load_without_torch() -> None:
    script = (
        "import sys\n"
        "sys.modules['torch'] = None  # any 'import torch' now raises ImportError\n"
        "import vltseg_ros.data.scenes, vltseg_ros.data.label_maps, vltseg_ros.bag.frames\n"
        "from vltseg_ros.data import IGNORE_INDEX\n"
        "print(IGNORE_INDEX)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "255"


def test_every_exported_name_resolves_to_its_module() -> None:
    from vltseg_ros.data import dataset, factory, transforms

    assert data.build_dataset is factory.build_dataset
    assert data.SegmentationDataset is dataset.SegmentationDataset
    assert data.TrainTransform is transforms.TrainTransform
    for name in data.__all__:
        assert getattr(data, name) is not None, name
        assert name in dir(data)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018
