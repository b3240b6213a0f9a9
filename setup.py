"""pip install of the vltseg_ros ML core (model, inference, training, export, CLI).

The ROS 2 package (messages, node, launch files) is built by colcon from ``CMakeLists.txt`` and
``package.xml``; this file serves training and export machines without ROS. Exact, tested pins
live in ``requirements/*.txt``; the ranges here only keep a plain ``pip install .`` sane.
"""

from setuptools import find_namespace_packages, setup

VERSION = "0.1.0"  # = <version> in package.xml = vltseg_ros.__version__ (tests check)

setup(
    name="vltseg_ros",
    version=VERSION,
    description=(
        "Domain-generalized semantic segmentation (VLTSeg: CLIP/EVA-CLIP encoder + "
        "Mask2Former) for ROS 2"
    ),
    license="Apache-2.0",
    python_requires=">=3.10",
    # Namespace discovery: a subpackage that lacks __init__.py is still shipped, as it is by the
    # CMake install (which copies the whole directory).
    packages=find_namespace_packages(
        include=["vltseg_ros", "vltseg_ros.*"], exclude=["*.__pycache__"]
    ),
    package_data={"vltseg_ros": ["model_configs/**/*.yaml", "model_configs/**/*.json"]},
    include_package_data=False,
    zip_safe=False,
    install_requires=[
        "torch>=2.4",
        "torchvision>=0.19",
        "open_clip_torch>=2.24",
        "timm>=1.0",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "safetensors>=0.4",
        "PyYAML>=6.0",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "onnxscript>=0.1",
        "scipy>=1.10",
        "tqdm>=4.60",
        "pillow>=10.0",
    ],
    extras_require={
        # CUDA / TensorRT execution providers; replaces the CPU-only onnxruntime wheel.
        "gpu": ["onnxruntime-gpu>=1.18"],
    },
    entry_points={"console_scripts": ["vltseg = vltseg_ros.cli.main:main"]},
)
