#!/usr/bin/env bash
# Create or update the project's virtual environment (called by `make setup`).
#
#   scripts/setup_env.sh [VENV_DIR]        (PYTHON=python3 picks the interpreter)
#   scripts/setup_env.sh --print-venv      (prints the default VENV_DIR; the Makefile asks)
#
# - A sourced ROS 2 installation (ROS_DISTRO set and $PYTHON can `import rclpy`) is used as is:
#   the venv sees its packages (--system-site-packages) and no ROS wheels are installed.
# - Otherwise the ROS 2 wheels from PyPI (CPython 3.11) are installed: Kilted by default
#   (requirements/ros.txt, VENV_DIR .venv), Jazzy with ROS_DISTRO=jazzy (requirements/ros-jazzy.txt
#   and constraints-jazzy.txt over constraints.txt, VENV_DIR .venv-jazzy).
# - torch, torchvision and onnxruntime: a CUDA build of torch (with its torchvision) and an
#   onnxruntime with GPU providers that $PYTHON already has are kept instead of the pinned wheels
#   (the venv then sees the interpreter's packages); VLTSEG_TORCH=keep|pinned|auto (default auto)
#   forces either way. scripts/platform_packages.py decides, checks the versions and writes the
#   requirement / constraint files that pip gets.
# - The package's messages (msg/*.msg) are built with CMake into the venv, with the generators of
#   the wheels or of the sourced ROS 2; see "Messages" below for the layout.
# - vision_msgs (LabelInfo, which the node publishes): a sourced ROS 2 must provide it (never built
#   here); the PyPI wheels have none, so the subset in interfaces/vision_msgs is built into the
#   venv when no vision_msgs is importable there (see "vision_msgs" below).
# - A stamp in the venv holds a hash of everything that decides its contents; when nothing
#   changed, the script exits at once. Set FORCE=1 to reinstall anyway.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON="${PYTHON:-python3}"
VLTSEG_TORCH="${VLTSEG_TORCH:-auto}"

PRINT_VENV="$([[ "${1:-}" == "--print-venv" ]] && echo 1 || true)"
log() { [[ -n "$PRINT_VENV" ]] || printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found; install Python >= 3.10 or set PYTHON=..."
# An activated virtual environment (this project's .venv, say) puts its python3 first on PATH:
# build from the interpreter it was made from instead, or its packages (rclpy of the Kilted
# wheels) would look like a sourced ROS 2 and leak into the new venv.
BASE_PYTHON="$("$PYTHON" -c 'import os, sys
if sys.prefix != sys.base_prefix:
    print(os.path.realpath(getattr(sys, "_base_executable", "") or sys.executable))' 2>/dev/null)" || true
if [[ -n "$BASE_PYTHON" && -x "$BASE_PYTHON" ]]; then
    log "$PYTHON runs in the virtual environment $("$PYTHON" -c 'import sys; print(sys.prefix)'); \
using the interpreter it was made from: $BASE_PYTHON"
    PYTHON="$BASE_PYTHON"
fi
PY_VERSION="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$PYTHON is Python $PY_VERSION; vltseg_ros needs Python >= 3.10"

# --- ROS 2: a sourced installation, or the PyPI wheels of Kilted (default) or Jazzy ------------
REQ_FILES=(requirements/core.txt requirements/dev.txt)
CONSTRAINT_FILES=(constraints.txt)
if [[ -n "${ROS_DISTRO:-}" ]] && "$PYTHON" -c 'import rclpy' >/dev/null 2>&1; then
    ROS_SOURCE="sourced"
    ROS_MODE="sourced-$ROS_DISTRO"
    DEFAULT_VENV=".venv"
    log "using the sourced ROS 2 '$ROS_DISTRO' (rclpy from $("$PYTHON" -c \
        'import os, rclpy; print(os.path.dirname(rclpy.__file__))'))"
else
    ROS_SOURCE="wheels"
    case "${ROS_DISTRO:-kilted}" in
        kilted)
            DEFAULT_VENV=".venv"
            REQ_FILES+=(requirements/ros.txt) ;;
        jazzy)
            DEFAULT_VENV=".venv-jazzy"
            REQ_FILES+=(requirements/ros-jazzy.txt)
            CONSTRAINT_FILES+=(constraints-jazzy.txt) ;;
        *)
            die "ROS_DISTRO=$ROS_DISTRO: PyPI has ROS 2 wheels for kilted (default) and jazzy \
only. For another distribution (e.g. Humble), source its setup script first (source \
/opt/ros/$ROS_DISTRO/setup.bash) so that $PYTHON imports its rclpy, and rerun." ;;
    esac
    ROS_MODE="wheels-${ROS_DISTRO:-kilted}"
    if [[ -n "${ROS_DISTRO:-}" ]]; then
        log "ROS_DISTRO=$ROS_DISTRO is set but $PYTHON cannot import rclpy: using the \
$ROS_DISTRO wheels from PyPI"
    fi
    [[ "$PY_VERSION" == "3.11" ]] || die "the ROS 2 ${ROS_DISTRO:-kilted} wheels on PyPI are \
built for CPython 3.11 only, and $PYTHON is $PY_VERSION. Source a ROS 2 installation first, or \
run 'make setup PYTHON=python3.11'."
fi
if [[ -n "$PRINT_VENV" ]]; then
    echo "$DEFAULT_VENV"
    exit 0
fi
# vision_msgs/LabelInfo comes from the sourced distribution, never from this checkout (a build of
# interfaces/vision_msgs there would shadow or be shadowed by the distribution's package).
if [[ "$ROS_SOURCE" == "sourced" ]] &&
    ! "$PYTHON" -c 'from vision_msgs.msg import LabelInfo, VisionClass' >/dev/null 2>&1; then
    die "the sourced ROS 2 '$ROS_DISTRO' has no vision_msgs (with vision_msgs/msg/LabelInfo, which \
vltseg_node publishes): install it, e.g. 'sudo apt-get install ros-$ROS_DISTRO-vision-msgs' or \
'rosdep install --from-paths . --ignore-src -y' in this folder, source the ROS 2 setup script \
again and rerun"
fi
VENV="${1:-$DEFAULT_VENV}"
STAMP="$VENV/.vltseg-setup-stamp"
MODE_FILE="$VENV/.vltseg-setup-mode"  # ROS_MODE the venv was made for
GEN_PY_DIR="lib/vltseg_ros_generated_py"  # the generated message modules, in the venv
# Those modules are linked into the source tree for .venv; any other venv of this checkout
# (.venv-jazzy) imports its own through a start-up hook and leaves the links alone (see
# "Messages").
if [[ "$(realpath -m "$VENV")" == "$(realpath -m .venv)" ]]; then
    LINKED="true"
    MSG_INIT="vltseg_ros/msg/__init__.py"
else
    LINKED="false"
    MSG_INIT="$VENV/$GEN_PY_DIR/vltseg_ros/msg/__init__.py"
fi

# --- Python 3.10 ----------------------------------------------------------------------------------
# requirements/core.txt's exact versions (numpy 2.4, scipy 1.17, pillow 13, matplotlib 3.11,
# onnxruntime 1.32, scikit-learn 1.9) need Python >= 3.11. On 3.10 (ROS 2 Humble, JetPack 6: a
# sourced ROS 2 only, the wheels being 3.11) setup.py's version ranges are installed instead,
# without constraints.txt (pins of a Python 3.11 resolution).
RANGES_ARGS=()
if "$PYTHON" -c 'import sys; sys.exit(sys.version_info >= (3, 11))'; then
    RANGES_ARGS=(--ranges-for requirements/core.txt)
    CONSTRAINT_FILES=()
    log "Python $PY_VERSION: requirements/core.txt's exact versions need Python >= 3.11; \
installing setup.py's version ranges instead, without constraints.txt"
fi

# --- torch, torchvision, onnxruntime: the platform's or the pinned ones -------------------------
# Writes the requirement and constraint files for pip into $PKG_DIR (copied into the venv at the
# end); prints the kept packages, which make the venv see the interpreter's packages.
PKG_DIR="$(mktemp -d)"
trap 'rm -rf "$PKG_DIR"' EXIT
KEPT="$("$PYTHON" scripts/platform_packages.py --mode "$VLTSEG_TORCH" --out "$PKG_DIR" \
    "${RANGES_ARGS[@]}" --requirements "${REQ_FILES[@]}" \
    --constraints "${CONSTRAINT_FILES[@]}")" ||
    die "the platform's torch / torchvision / onnxruntime cannot be used (see above)"
SYSTEM_SITE="false"
if [[ "$ROS_SOURCE" == "sourced" || -n "$KEPT" ]]; then
    SYSTEM_SITE="true"
fi
[[ -z "$KEPT" ]] || log "kept from $PYTHON (not installed into $VENV): $KEPT"

# --- share/vltseg_ros/{config,launch}: folders of links to the source files ----------------------
# Laid out as `colcon build --symlink-install` does: real folders (subfolders too) with a link to
# each source file, never a link to a whole folder, which anything that walks the share folder
# with os.walk (ros2 launch's search for `ros2 launch vltseg_ros <file>`) does not enter. Edits
# of a file take effect at once; files added or removed are (un)linked by every run of this
# script, also when the venv is otherwise up to date. __pycache__ and *.pyc are left out.
link_share_folders() {
    local share="$1/share/vltseg_ros" dir entry rel
    [[ -d "$share" ]] || return 0
    for dir in config launch; do
        [[ ! -L "$share/$dir" ]] || rm -f "$share/$dir"  # a link to the whole folder (older set-ups)
        if [[ ! -d "$dir" ]]; then
            rm -rf "${share:?}/$dir"
            continue
        fi
        # Stale entries, children before their folder: links not to their own source file (or
        # to one now gone or a folder), folders no longer in the source, anything else.
        while IFS= read -r -d '' entry; do
            rel="${entry#"$share"/}"
            if [[ -L "$entry" ]]; then
                if [[ "$(readlink "$entry")" != "$PWD/$rel" || ! -e "$rel" ||
                    ( -d "$rel" && ! -L "$rel" ) ]]; then
                    rm -f "$entry"
                fi
            elif [[ -d "$entry" ]]; then
                [[ -d "$rel" && ! -L "$rel" ]] || rm -rf "$entry"
            else
                rm -f "$entry"
            fi
        done < <(find "$share/$dir" -mindepth 1 -depth -print0 2>/dev/null)
        while IFS= read -r -d '' rel; do
            if [[ -d "$rel" && ! -L "$rel" ]]; then
                mkdir -p "$share/$rel"
            elif [[ ! -L "$share/$rel" ]]; then
                ln -s "$PWD/$rel" "$share/$rel"
            fi
        done < <(find "$dir" -name __pycache__ -prune -o ! -name '*.py[co]' -print0)
    done
}

# --- Up to date? ---------------------------------------------------------------------------------
KEY="$( {
    echo "python=$("$PYTHON" -c 'import sys; print(sys.version)') mode=$ROS_MODE kept=$KEPT"
    cat "$PKG_DIR"/*.txt setup.py pyproject.toml scripts/setup_env.sh \
        scripts/*.py scripts/vltseg_node \
        CMakeLists.txt package.xml msg/*.msg \
        interfaces/vision_msgs/CMakeLists.txt interfaces/vision_msgs/package.xml \
        interfaces/vision_msgs/msg/*.msg
    ls -d config launch 2>/dev/null || true  # linked into share/vltseg_ros when present
} | sha256sum | cut -d' ' -f1)"

# The links to the generated message modules live in the source tree (see "Messages"): a
# `git clean -X` removes them without touching the stamp.
if [[ -z "${FORCE:-}" && -f "$STAMP" && "$(cat "$STAMP")" == "$KEY" && -x "$VENV/bin/python" \
    && -f "$MSG_INIT" ]]; then
    link_share_folders "$VENV"  # files added to or removed from config/ or launch/
    log "$VENV is up to date (FORCE=1 make setup reinstalls)"
    exit 0
fi

# --- (Re)create the venv when missing, broken or of the other ROS mode --------------------------
if [[ -d "$VENV" ]]; then
    CURRENT_SITE="$(sed -n 's/^include-system-site-packages *= *//p' "$VENV/pyvenv.cfg" \
        2>/dev/null || true)"
    if ! "$VENV/bin/python" -c '' >/dev/null 2>&1 || [[ "$CURRENT_SITE" != "$SYSTEM_SITE" ]]; then
        log "removing $VENV (broken, or created for another ROS or torch set-up)"
        rm -rf "$VENV"
    elif [[ -f "$MODE_FILE" && "$(cat "$MODE_FILE")" != "$ROS_MODE" ]]; then
        die "$VENV was made for ROS 2 $(cat "$MODE_FILE"), not $ROS_MODE: each distribution has \
its own venv (.venv: Kilted or a sourced ROS 2, .venv-jazzy: the Jazzy wheels). Leave out \
VENV_DIR / VENV=, or remove $VENV and rerun"
    fi
fi
if [[ ! -d "$VENV" ]]; then
    VENV_ARGS=()
    [[ "$SYSTEM_SITE" == "true" ]] && VENV_ARGS+=(--system-site-packages)
    log "creating $VENV with $PYTHON (Python $PY_VERSION) ${VENV_ARGS[*]:-}"
    "$PYTHON" -m venv "${VENV_ARGS[@]}" "$VENV"
fi
rm -f "$STAMP"
echo "$ROS_MODE" > "$MODE_FILE"

# --- Install -------------------------------------------------------------------------------------
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
REQ_ARGS=()
for f in "${REQ_FILES[@]}"; do REQ_ARGS+=(-r "$PKG_DIR/$(basename "$f")"); done

log "installing ${REQ_FILES[*]} with ${CONSTRAINT_FILES[*]:-no constraints} (the first time \
takes a few minutes: torch is ~5 GB)"
"${PIP[@]}" install --progress-bar off "${REQ_ARGS[@]}" -c "$PKG_DIR/constraints.txt"
log "installing vltseg_ros in editable mode"
"${PIP[@]}" install --progress-bar off --no-deps -e .
if [[ "$SYSTEM_SITE" == "false" ]]; then
    "${PIP[@]}" check
else  # the system's own packages are visible too, and their conflicts are not ours to fix
    "${PIP[@]}" check || log "WARNING: 'pip check' reports conflicts (see above), continuing"
fi
rm -rf "$VENV/.vltseg-setup-requirements"  # what pip got, for the record
cp -r "$PKG_DIR" "$VENV/.vltseg-setup-requirements"

# --- Messages -------------------------------------------------------------------------------------
# Built with CMake as colcon would, but into the venv as the install prefix and with
# VLTSEG_ROS_INSTALL_SOURCES=OFF, because the Python sources are the editable install above (a
# second copy of package vltseg_ros in site-packages would shadow or be shadowed by it):
# - type-support libraries go to $VENV/lib, which the wheels' start-up hook puts on
#   LD_LIBRARY_PATH; the ament index and share/vltseg_ros go to $VENV/share, where config/ and
#   launch/ are folders of links to the source files (edits take effect at once, as for the
#   Python code);
# - the generated Python part (vltseg_ros/msg/ and the vltseg_ros_s__*.so extension modules
#   that it imports from the package's top level) goes to $VENV/$GEN_PY_DIR, which is not on
#   sys.path, and is linked into the source package (git-ignored links, excluded from the CMake
#   install), so `from vltseg_ros.msg import ...` resolves next to the editable sources. Only
#   .venv owns those links: another venv of the checkout (.venv-jazzy, built against other ROS
#   libraries) gets a start-up hook instead, a finder placed first in sys.meta_path that imports
#   vltseg_ros.msg and vltseg_ros.vltseg_ros_s__* from its own $GEN_PY_DIR;
# - a .pth start-up hook (scripts/venv_ros_env.py) appends the venv to AMENT_PREFIX_PATH (for
#   ament_index lookups) in every Python process of the venv and, with a sourced ROS 2, whose
#   library path does not name the venv, restarts Python once with $VENV/lib on LD_LIBRARY_PATH
#   (as the wheels' own hook does), since dlopen only reads the variable at process start.
VENV_ABS="$(cd "$VENV" && pwd)"
BUILD_DIR="$VENV_ABS/build/vltseg_ros"
BUILD_LOG="$VENV_ABS/build/vltseg_ros.log"
GEN_PKG="$VENV_ABS/$GEN_PY_DIR/vltseg_ros"
export PATH="$VENV_ABS/bin:$PATH"  # cmake, ninja (requirements/ros*.txt) and the venv's python

command -v cmake >/dev/null 2>&1 || die "cmake not found: building msg/*.msg needs CMake >= 3.20 \
(the PyPI wheels mode installs it from requirements/ros.txt; with a sourced ROS 2, install it \
with your ROS 2 tools, e.g. 'apt-get install cmake')"
for compiler in cc c++; do
    command -v "$compiler" >/dev/null 2>&1 || die "no C/C++ compiler ('$compiler' not found): \
rosidl compiles the message type supports; install one, e.g. 'apt-get install build-essential'"
done
if [[ "$LINKED" == "true" && -e vltseg_ros/msg && ! -L vltseg_ros/msg ]]; then
    die "vltseg_ros/msg is a real file or directory; setup links the generated message package \
there. Move it away (the messages are defined in msg/*.msg) and rerun"
fi

if [[ "$ROS_SOURCE" == "wheels" ]]; then
    "$VENV/bin/python" scripts/fix_ros_wheel_cmake.py "$VENV_ABS"
    ROS_PREFIXES="$VENV_ABS"
else
    [[ -n "${AMENT_PREFIX_PATH:-}" ]] || die "ROS_DISTRO=$ROS_DISTRO is set but AMENT_PREFIX_PATH \
is empty: source the ROS 2 setup script (e.g. /opt/ros/$ROS_DISTRO/setup.bash) and rerun"
    ROS_PREFIXES="$AMENT_PREFIX_PATH"
fi
GENERATOR="Unix Makefiles"
command -v ninja >/dev/null 2>&1 && GENERATOR="Ninja"
# A build directory configured with another generator (or a stale one) cannot be reused.
if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] &&
    ! grep -qx "CMAKE_GENERATOR:INTERNAL=$GENERATOR" "$BUILD_DIR/CMakeCache.txt"; then
    rm -rf "$BUILD_DIR"
fi
mkdir -p "$BUILD_DIR"
log "building msg/*.msg into $VENV ($GENERATOR; log: $BUILD_LOG)"
rm -rf "$VENV_ABS/$GEN_PY_DIR"  # no modules of since-removed messages left behind
if ! {
    AMENT_PREFIX_PATH="$ROS_PREFIXES" cmake -S . -B "$BUILD_DIR" -G "$GENERATOR" \
        -DBUILD_TESTING=OFF \
        -DCMAKE_PREFIX_PATH="${ROS_PREFIXES//:/;}" \
        -DCMAKE_INSTALL_PREFIX="$VENV_ABS" \
        -DCMAKE_INSTALL_RPATH="$VENV_ABS/lib" \
        -DPython3_EXECUTABLE="$VENV_ABS/bin/python" \
        -DPYTHON_INSTALL_DIR="$GEN_PY_DIR" \
        -DVLTSEG_ROS_INSTALL_SOURCES=OFF &&
        AMENT_PREFIX_PATH="$ROS_PREFIXES" cmake --build "$BUILD_DIR" &&
        cmake --install "$BUILD_DIR"
} >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    die "building the messages failed (last lines above; full log: $BUILD_LOG)"
fi
[[ -f "$GEN_PKG/msg/__init__.py" ]] || die "the message build installed no Python module \
($GEN_PKG/msg/__init__.py missing; is a Python type support available? see $BUILD_LOG)"

SITE_PACKAGES="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
MSG_HOOK="$SITE_PACKAGES/_vltseg_ros_venv_msg.py"
if [[ "$LINKED" == "true" ]]; then
    find vltseg_ros -maxdepth 1 -type l \( -name msg -o -name 'vltseg_ros_s__*' \) -delete
    ln -sr "$GEN_PKG/msg" vltseg_ros/msg
    for module in "$GEN_PKG"/vltseg_ros_s__*; do
        ln -sr "$module" vltseg_ros/
    done
    rm -f "$MSG_HOOK" "$SITE_PACKAGES/vltseg_ros_venv_msg.pth"
else
    sed "s|@SOURCES@|$PWD/vltseg_ros|" > "$MSG_HOOK" <<'EOF'
"""Start-up hook of a second venv of a vltseg_ros checkout (written by scripts/setup_env.sh).

The generated vltseg_ros.msg package and its type-support modules are linked into the source
tree for .venv; this venv has its own build (against other ROS 2 libraries) and imports those
whenever vltseg_ros itself is the checkout's (not, e.g., a colcon install prefix's).
"""

import importlib.machinery
import os
import sys

SOURCES = "@SOURCES@"
GENERATED = os.path.join(sys.prefix, "lib", "vltseg_ros_generated_py", "vltseg_ros")


class _GeneratedMessages:
    @staticmethod
    def find_spec(name, path=None, target=None):
        package, _, module = name.partition(".")
        if package != "vltseg_ros" or not (module == "msg" or module.startswith("vltseg_ros_s__")):
            return None
        if SOURCES not in getattr(sys.modules.get(package), "__path__", ()):
            return None
        return importlib.machinery.PathFinder.find_spec(name, [GENERATED])


sys.meta_path.insert(0, _GeneratedMessages)
EOF
    echo "import _vltseg_ros_venv_msg" > "$SITE_PACKAGES/vltseg_ros_venv_msg.pth"
fi
link_share_folders "$VENV_ABS"  # see "share/vltseg_ros/{config,launch}" above
cp scripts/venv_ros_env.py "$SITE_PACKAGES/_vltseg_ros_venv.py"
# Named to sort after the wheels' ros_wheels_bootstrapper.pth (.pth files run in name order).
echo "import _vltseg_ros_venv" > "$SITE_PACKAGES/vltseg_ros_venv.pth"

# --- vision_msgs ----------------------------------------------------------------------------------
# vltseg_node publishes vision_msgs/msg/LabelInfo. A sourced ROS 2 provides it (checked at the
# start; never built here). The PyPI wheels have no vision_msgs: interfaces/vision_msgs holds a
# subset of it (VisionClass and LabelInfo, field-for-field those of vision_msgs 4.1.1, hence the
# same type hashes), built here with CMake into the venv as the wheels' own message packages are
# installed (site-packages/vision_msgs, type-support libraries in $VENV/lib, share/vision_msgs
# and the ament index). Only when no vision_msgs is importable in the venv (a wheel of it, say)
# or when this build is the one there and its sources changed; a stamp in the venv records it.
VM_STAMP="$VENV_ABS/.vltseg-vision-msgs-stamp"
if [[ "$ROS_SOURCE" == "wheels" ]]; then
    VM_KEY="$( {
        echo "mode=$ROS_MODE"
        cat interfaces/vision_msgs/CMakeLists.txt interfaces/vision_msgs/package.xml \
            interfaces/vision_msgs/msg/*.msg
    } | sha256sum | cut -d' ' -f1)"
    VM_FOUND="$("$VENV/bin/python" -c 'import os, vision_msgs.msg
print(os.path.dirname(vision_msgs.__file__))' 2>/dev/null)" || VM_FOUND=""
    if [[ -n "$VM_FOUND" && ! -f "$VM_STAMP" ]]; then
        log "vision_msgs is importable in $VENV ($VM_FOUND): the subset in interfaces/vision_msgs \
is not built"
    elif [[ -z "${FORCE:-}" && -n "$VM_FOUND" && "$(cat "$VM_STAMP")" == "$VM_KEY" ]]; then
        log "vision_msgs (subset, interfaces/vision_msgs) is up to date in $VENV"
    else
        VM_BUILD_DIR="$VENV_ABS/build/vision_msgs"
        VM_BUILD_LOG="$VENV_ABS/build/vision_msgs.log"
        if [[ -f "$VM_BUILD_DIR/CMakeCache.txt" ]] &&
            ! grep -qx "CMAKE_GENERATOR:INTERNAL=$GENERATOR" "$VM_BUILD_DIR/CMakeCache.txt"; then
            rm -rf "$VM_BUILD_DIR"
        fi
        mkdir -p "$VM_BUILD_DIR"
        if [[ -f "$VM_STAMP" ]]; then  # this build's own modules, from before: none left stale
            rm -f "$VM_STAMP"
            rm -rf "$SITE_PACKAGES/vision_msgs"
        fi
        log "building the vision_msgs subset (interfaces/vision_msgs) into $VENV \
(log: $VM_BUILD_LOG)"
        if ! {
            AMENT_PREFIX_PATH="$ROS_PREFIXES" cmake -S interfaces/vision_msgs -B "$VM_BUILD_DIR" \
                -G "$GENERATOR" \
                -DBUILD_TESTING=OFF \
                -DCMAKE_PREFIX_PATH="${ROS_PREFIXES//:/;}" \
                -DCMAKE_INSTALL_PREFIX="$VENV_ABS" \
                -DCMAKE_INSTALL_RPATH="$VENV_ABS/lib" \
                -DPython3_EXECUTABLE="$VENV_ABS/bin/python" &&
                AMENT_PREFIX_PATH="$ROS_PREFIXES" cmake --build "$VM_BUILD_DIR" &&
                cmake --install "$VM_BUILD_DIR"
        } >"$VM_BUILD_LOG" 2>&1; then
            tail -n 30 "$VM_BUILD_LOG" >&2
            die "building the vision_msgs subset failed (last lines above; full log: $VM_BUILD_LOG)"
        fi
        [[ -f "$SITE_PACKAGES/vision_msgs/msg/__init__.py" ]] || die "the vision_msgs build \
installed no Python module in $SITE_PACKAGES (see $VM_BUILD_LOG)"
        echo "$VM_KEY" > "$VM_STAMP"
    fi
fi
# Both modes: the venv's interpreter loads LabelInfo's type support (serializes one).
"$VENV/bin/python" -c 'from rclpy.serialization import serialize_message
from vision_msgs.msg import LabelInfo, VisionClass
serialize_message(LabelInfo(class_map=[VisionClass(class_id=255, class_name="unlabeled")]))' ||
    die "$VENV cannot use vision_msgs/msg/LabelInfo (see the error above)"

# --- Smoke check: ML core, ROS and message imports, rclpy init/shutdown -------------------------
SMOKE_LOG_DIR="$(mktemp -d)"
VLTSEG_SETUP_MODE="$ROS_MODE" ROS_LOG_DIR="$SMOKE_LOG_DIR" "$VENV/bin/python" - <<'EOF'
import os

import onnxruntime, open_clip, timm, torch, yaml  # noqa: F401
import rclpy
import rclpy.lifecycle  # noqa: F401
import sensor_msgs.msg  # noqa: F401
from rclpy.serialization import deserialize_message, serialize_message

import vltseg_ros.config.model_config  # noqa: F401
from vltseg_ros.msg import ClassSet, SegmentationInfo

info = SegmentationInfo(camera="front", class_fraction=[0.25, 0.75])
assert deserialize_message(serialize_message(info), SegmentationInfo) == info
assert deserialize_message(serialize_message(ClassSet()), ClassSet) == ClassSet()
rclpy.init()
rclpy.shutdown()
print(f"[setup] ok: torch {torch.__version__} (CUDA {torch.version.cuda}), onnxruntime "
      f"{onnxruntime.__version__}, open_clip {open_clip.__version__}, ROS 2 "
      f"{os.environ['VLTSEG_SETUP_MODE']}, rclpy from {rclpy.__file__.rsplit('/', 2)[0]}, "
      "messages vltseg_ros.msg")
EOF
rm -rf "$SMOKE_LOG_DIR"

echo "$KEY" > "$STAMP"
log "done: activate with 'source $VENV/bin/activate', or use $VENV/bin/python"
