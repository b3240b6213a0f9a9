# One-command set-up and checks. `make setup` builds .venv (fast when nothing changed),
# `make test` is what CI runs (.ci/run).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help setup test lint format demo clean

help:
	@echo "make setup   create/update $(VENV) (ML core, dev tools, ROS 2 wheels or sourced ROS)"
	@echo "make test    ruff check + ruff format --check + pytest"
	@echo "make lint    ruff check + ruff format --check"
	@echo "make format  ruff format + ruff check --fix"
	@echo "make demo    replay a sample bag through vltseg_node: metrics, overlays, bag in out/demo"
	@echo "make clean   remove $(VENV), build/install/log and caches"

setup:
	@PYTHON="$(PYTHON)" bash scripts/setup_env.sh "$(VENV)"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/python -m pytest -q test

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# The main job on a built-in default: a sample bag (generated, or the real frames of
# ../shared/data when present) replayed through vltseg_node; results in out/demo.
# CHECKPOINT=weights.safetensors make demo uses real weights.
demo: setup
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) build install log out .pytest_cache .ruff_cache *.egg-info
	# links to the generated message modules in $(VENV) (scripts/setup_env.sh)
	find vltseg_ros -maxdepth 1 -type l \( -name msg -o -name 'vltseg_ros_s__*' \) -delete
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
