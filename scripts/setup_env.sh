#!/usr/bin/env bash
# Create or update the project's virtual environment (called by `make setup`).
#
#   scripts/setup_env.sh [VENV_DIR]        (default .venv; PYTHON=python3 picks the interpreter)
#
# - A sourced ROS 2 installation (ROS_DISTRO set and $PYTHON can `import rclpy`) is used as is:
#   the venv sees its packages (--system-site-packages) and no ROS wheels are installed.
# - Otherwise the ROS 2 Kilted wheels from PyPI (requirements/ros.txt, CPython 3.11) are installed.
# - A stamp in the venv holds a hash of everything that decides its contents; when nothing
#   changed, the script exits at once. Set FORCE=1 to reinstall anyway.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${1:-.venv}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.vltseg-setup-stamp"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python >= 3.10 or set PYTHON=..."
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PYTHON is Python $PY_VERSION; vltseg_ros needs Python >= 3.10"

# --- ROS 2: a sourced installation, or the PyPI wheels -------------------------------------------
if [[ -n "${ROS_DISTRO:-}" ]] && "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
    ROS_MODE="sourced-$ROS_DISTRO"
    SYSTEM_SITE="true"
    REQ_FILES=(requirements/core.txt requirements/dev.txt)
    log "using the sourced ROS 2 '$ROS_DISTRO' (rclpy from $("$PYTHON" -c \
        'import os, rclpy; print(os.path.dirname(rclpy.__file__))'))"
else
    ROS_MODE="wheels"
    SYSTEM_SITE="false"
    REQ_FILES=(requirements/core.txt requirements/dev.txt requirements/ros.txt)
    if [[ -n "${ROS_DISTRO:-}" ]]; then
        log "ROS_DISTRO=$ROS_DISTRO is set but $PYTHON cannot import rclpy: using the PyPI wheels"
    fi
    [[ "$PY_VERSION" == "3.11" ]] || die "the ROS 2 Kilted wheels on PyPI are built for CPython \
3.11 only, and $PYTHON is $PY_VERSION. Source a ROS 2 installation first, or run \
'make setup PYTHON=python3.11'."
fi

# --- Up to date? ---------------------------------------------------------------------------------
KEY="$( {
    echo "python=$("$PYTHON" -c 'import sys; print(sys.version)') mode=$ROS_MODE"
    cat requirements/*.txt constraints.txt setup.py pyproject.toml scripts/setup_env.sh
} | sha256sum | cut -d' ' -f1)"

if [[ -z "${FORCE:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" && -x "$VENV/bin/python" ]]; then
    log "$VENV is up to date (FORCE=1 make setup reinstalls)"
    exit 0
fi

# --- (Re)create the venv when missing, broken or of the other ROS mode --------------------------
if [[ -d "$VENV" ]]; then
    CURRENT_SITE="$(sed -n 's/^include-system-site-packages *= *//p' "$VENV/pyvenv.cfg" \
        2>/dev/null || true)"
    if ! "$VENV/bin/python" -c '' >/dev/null 2>&1 || [[ "$CURRENT_SITE" != "$SYSTEM_SITE" ]]; then
        log "removing $VENV (broken, or created for another ROS set-up)"
        rm -rf "$VENV"
    fi
fi
if [[ ! -d "$VENV" ]]; then
    VENV_ARGS=()
    [[ "$SYSTEM_SITE" == "true" ]] && VENV_ARGS+=(--system-site-packages)
    log "creating $VENV with $PYTHON (Python $PY_VERSION) ${VENV_ARGS[*]:-}"
    "$PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"
fi
rm -f "$STAMP"

# --- Install -------------------------------------------------------------------------------------
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
REQ_ARGS=()
for f in "${REQ_FILES[@]}"; do REQ_ARGS+=(-r "$f"); done

log "installing ${REQ_FILES[*]} (the first time takes a few minutes: torch is ~5 GB)"
"${PIP[@]}" install --progress-bar off "${REQ_ARGS[@]}" -c constraints.txt
log "installing vltseg_ros in editable mode"
"${PIP[@]}" install --progress-bar off --no-deps -e .
if [[ "$ROS_MODE" == "wheels" ]]; then
    "${PIP[@]}" check
else  # the system's own packages are visible too, and their conflicts are not ours to fix
    "${PIP[@]}" check || log "WARNING: 'pip check' reports conflicts (see above), continuing"
fi

# --- Smoke check: ML core and ROS imports, rclpy init/shutdown -----------------------------------
SMOKE_LOG_DIR="$(mktemp -d)"
ROS_LOG_DIR="$SMOKE_LOG_DIR" "$VENV/bin/python" - <<'EOF'
import onnxruntime, open_clip, timm, torch, yaml  # noqa: F401
import rclpy
import rclpy.lifecycle  # noqa: F401
import sensor_msgs.msg  # noqa: F401

rclpy.init()
rclpy.shutdown()
print(f"[setup] ok: torch {torch.__version__}, open_clip {open_clip.__version__}, rclpy from "
      f"{rclpy.__file__.rsplit('/', 2)[0]}")
EOF
rm -rf "$SMOKE_LOG_DIR"

echo "$KEY" > "$STAMP"
log "done: activate with 'source $VENV/bin/activate', or use $VENV/bin/python"
