# One-command set-up and checks. `make setup` builds .venv (fast when nothing changed),
# `make test` is what CI runs (.ci/run).
PYTHON ?= python3
# The venv: .venv (ROS 2 Kilted wheels, or a sourced ROS 2); `ROS_DISTRO=jazzy make setup`
# without a sourced ROS 2 makes .venv-jazzy (the Jazzy wheels). scripts/setup_env.sh decides.
ifeq ($(origin VENV),undefined)
  ifneq ($(ROS_DISTRO),)
    VENV := $(shell PYTHON="$(PYTHON)" bash scripts/setup_env.sh --print-venv 2>/dev/null)
  endif
endif
VENV := $(or $(VENV),.venv)
BIN  := $(VENV)/bin
# The second distribution `make test` runs the ROS-facing tests on, and those tests, in the
# order of the whole suite (the check of .venv's message links is replaced there by
# test/test_jazzy_venv.py).
JAZZY_VENV := .venv-jazzy
ROS_TESTS  := test/bag/test_bag_io.py \
	test/cli/test_bag_cli.py::test_write_bag_reads_back_with_rosbags_and_rclpy \
	test/ros test/io/test_image_messages.py \
	test/test_jazzy_venv.py \
	test/test_packaging.py \
	test/test_vision_msgs.py \
	--deselect test/test_packaging.py::test_venv_messages_sit_beside_the_editable_sources
# pytest-xdist: one worker per core (at most 8), each test file on one worker (its module
# fixtures, e.g. the ViT-B/16 export, are made once); each worker has its own ROS_DOMAIN_ID
# and torch threads (test/conftest.py). PYTEST_PARALLEL= runs everything in one process.
PYTEST_PARALLEL ?= -n auto --maxprocesses 8 --dist loadfile
# Interpreters the sources are byte-compiled with (those that are missing are skipped).
COMPILE_PYTHONS := 3.10 3.11 3.12
# Python 3.12 (Ubuntu 24.04's, ROS 2 Jazzy's on a real machine): the core tests that need no
# torch (a torch for 3.12 is a download of several GB), in a small venv.
PY312_VENV  := .venv-py312
PY312_TESTS := test/config/test_model_config.py test/io/test_image_files.py \
	test/data/test_scenes.py test/inference/test_visualize.py test/test_platform_packages.py
PY312_PKGS  := numpy|PyYAML|pillow|opencv-python-headless|pytest

# Shell snippet: sets py to a working python$(1): the one on PATH, else pyenv's newest $(1).x,
# else empty (a pyenv shim of a version that is not selected does not run).
define find_python
py="$$(command -v python$(1) 2>/dev/null)"; \
if ! "$${py:-false}" -c '' >/dev/null 2>&1; then \
	py="$$(ls -d "$$(pyenv root 2>/dev/null || echo "$$HOME/.pyenv")"/versions/$(1).*/bin/python$(1) \
		2>/dev/null | sort -V | tail -n 1)"; \
fi; \
"$${py:-false}" -c '' >/dev/null 2>&1 || py=""
endef

.DEFAULT_GOAL := help
.PHONY: help setup test test-jazzy test-py312 compile-check lint format demo clean

help:
	@echo "make setup          create/update $(VENV) (ML core, dev tools, ROS 2 wheels or sourced ROS)"
	@echo "                    ROS_DISTRO=jazzy: the Jazzy wheels in $(JAZZY_VENV);"
	@echo "                    VLTSEG_TORCH=auto|keep|pinned: the platform's torch or the pinned one"
	@echo "make test           compile-check + lint + pytest, then test-jazzy and test-py312"
	@echo "make test-jazzy     set up $(JAZZY_VENV), run the ROS-facing tests there"
	@echo "make test-py312     the core tests that need no torch, with Python 3.12"
	@echo "make compile-check  byte-compile the sources with Python $(COMPILE_PYTHONS)"
	@echo "make lint           ruff check + ruff format --check"
	@echo "make format         ruff format + ruff check --fix"
	@echo "make demo           the demo model on generated scenes through vltseg_node: metrics, overlays, bag in out/demo"
	@echo "make clean          remove $(VENV), $(JAZZY_VENV), $(PY312_VENV), build/install/log, caches"

setup:
	@PYTHON="$(PYTHON)" bash scripts/setup_env.sh "$(VENV)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: compile-check lint
	$(BIN)/python -m pytest -q $(PYTEST_PARALLEL) test
	@$(MAKE) --no-print-directory test-jazzy test-py312

# The ROS-facing tests on ROS 2 Jazzy (PyPI wheels). Skipped under a sourced ROS 2, whose rclpy
# would be found instead of the wheels.
test-jazzy:
ifneq ($(AMENT_PREFIX_PATH),)
	@echo "test-jazzy: skipped: a ROS 2 installation is sourced (AMENT_PREFIX_PATH is set);" \
		"the Jazzy wheels are tested in a shell without it"
else
	@ROS_DISTRO=jazzy PYTHON="$(PYTHON)" bash scripts/setup_env.sh "$(JAZZY_VENV)"
	$(JAZZY_VENV)/bin/python -m pytest -q $(PYTEST_PARALLEL) $(ROS_TESTS)
endif

# Syntax of every supported Python version (no packages needed): python3.X on PATH, else
# pyenv's newest 3.X. The .pyc files go to a temporary folder, not into the tree.
compile-check:
	@for v in $(COMPILE_PYTHONS); do \
		$(call find_python,$$v); \
		if [ -z "$$py" ]; then echo "compile-check: python$$v not found, skipped"; continue; fi; \
		cache="$$(mktemp -d)"; \
		echo "compile-check: $$("$$py" -V) ($$py)"; \
		PYTHONPYCACHEPREFIX="$$cache" "$$py" -m compileall -q vltseg_ros scripts test launch && \
		PYTHONPYCACHEPREFIX="$$cache" "$$py" -m py_compile scripts/vltseg_node \
			scripts/vltseg_bag_player scripts/vltseg_replay_recorder; \
		status=$$?; rm -rf "$$cache"; [ $$status -eq 0 ] || exit $$status; \
	done

# No torch for 3.12 here: the pinned numpy, PyYAML, pillow, OpenCV and pytest only, and pytest
# without test/conftest.py (which imports torch).
test-py312:
	@$(call find_python,3.12); \
	if [ -z "$$py" ]; then echo "test-py312: python3.12 not found, skipped"; exit 0; fi; \
	[ -x $(PY312_VENV)/bin/python ] || "$$py" -m venv $(PY312_VENV) || exit 1; \
	grep -hE '^($(PY312_PKGS))==' requirements/core.txt requirements/dev.txt \
		> $(PY312_VENV)/requirements.txt; \
	$(PY312_VENV)/bin/python -m pip install -q --disable-pip-version-check \
		-r $(PY312_VENV)/requirements.txt -c constraints.txt || exit 1; \
	echo "test-py312: $$($(PY312_VENV)/bin/python -V): the core tests that need no torch" \
		"(no torch for Python 3.12 without a download of several GB)"; \
	$(PY312_VENV)/bin/python -m pytest -q --noconftest $(PY312_TESTS)

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The main job on a built-in default: the built-in demo model (a toy, not VLTSeg) on a bag of
# generated scenes it never saw, replayed through vltseg_node; results in out/demo.
# CHECKPOINT=weights.safetensors make demo uses real weights, FRAMES=dir real frames.
demo: setup
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) $(JAZZY_VENV) $(PY312_VENV) build install log out .pytest_cache .ruff_cache \
		*.egg-info
	# links to the generated message modules in $(VENV) (scripts/setup_env.sh)
	find vltseg_ros -maxdepth 1 -type l \( -name msg -o -name 'vltseg_ros_s__*' \) -delete
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
