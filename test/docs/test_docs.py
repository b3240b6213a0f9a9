"""What users copy from README.md and docs/*.md runs: every fenced code block is run here or
marked in the doc as not run here, by a line right above its fence (test/docs/blocks.py):
``<!-- not run here: REASON -->`` (the whole block) or ``<!-- not run here [PREFIX, ...]:
REASON -->`` (its commands that start with a PREFIX). The reason says what it needs (a GPU, a
``ros2`` command, a download, minutes) or which test runs it instead.

- ``bash`` / ``sh`` blocks run as one bash script (``set -e``) in a fresh working directory per
  block, with their commands as written except for :data:`SUBSTITUTES`, beside the small
  stand-ins of :data:`FILES` for the weights, data sets and bags the docs name. Every folder or
  file a command names with ``--out`` / ``--write-bag`` must exist afterwards. A node command
  (``.venv/bin/vltseg_node --ros-args ...``) runs until it is active, then stops on SIGTERM.
- ``python`` blocks run as a script (``__main__``) in such a working directory.
- ``yaml`` blocks are loaded as what they are: node parameters (``--params-file``: every name a
  node parameter, every value accepted), a model config, a class map.
- ``text`` blocks (outputs, layouts, usage synopses) are not commands. A block without a
  language fails: give it one.

``vltseg``, ``vltseg_node`` and ``python`` of the working directory's ``.venv/bin`` (also on
PATH) run through a fork server (test/docs/fork_server.py) that imported the package once: each
call is a new process running ``vltseg_ros.cli.main.main(argv)`` / the node's ``main()`` (what the
console scripts run) or the script, without ~5 s of imports each (about 40 commands and snippets
here). The node processes that ``bag-eval --live`` starts are the venv's own. About 1.5 min on 2
cores.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from test.conftest import SHARED_FRAMES, private_domain_id
from test.docs.blocks import MARK_HINT, REPO, Block, all_blocks, documents, read_blocks
from test.docs.fork_server import write_shim
from test.docs.stand_ins import make_stand_ins
from test.docs.yaml_blocks import check_yaml, yaml_kind


@dataclass(frozen=True)
class Substitute:
    """A change to a block's text before it runs: ``doc`` (a regex) becomes ``here``."""

    doc: str
    here: str
    why: str


SUBSTITUTES = (
    Substitute(r"--device cuda\b", "--device cpu", "no GPU here (test/gpu runs the CUDA paths)"),
    Substitute(r"--precision fp16\b", "--precision fp32", "fp16 runs on CUDA only"),
    Substitute(r'device="cuda"', 'device="cpu"', "no GPU here"),
    Substitute(r'precision="fp16"', 'precision="fp32"', "fp16 runs on CUDA only"),
    Substitute(
        r"(?<![\w.])/data/",
        "data/",
        "the data sets under /data (tens of GB) -> tiny generated ones in the working directory "
        "(FILES)",
    ),
    Substitute(r"/tmp/tiny_run\b", "tmp/tiny_run", "keep the run in the test's directory"),
    Substitute(
        r"\.\./shared/data/frames",
        str(SHARED_FRAMES),
        "../shared/data beside the checkout (the block runs elsewhere; skipped without it)",
    ),
    Substitute(
        r"--synthetic 20\b",
        "--synthetic 3 --synthetic-size 128 256",
        "20 scenes of 512x1024 take a minute to write and score on 2 cores; 3 small ones take "
        "seconds",
    ),
    Substitute(
        r"--synthetic --out out/ --model tiny\b",
        "--synthetic --out out/ --model tiny --inference.mode whole --inference.whole-size 64 128",
        "the tiny model's 64x64 slide over the 512x1024 scene takes ~20 s on 2 cores; one whole "
        "pass at 64x128 runs the same command in 2 s",
    ),
    Substitute(
        r"--inference\.test-scale (1920 1080|960 540)\b",
        "--inference.test-scale 192 108",
        "the stand-in checkpoint slides 64x64 crops: at 1920x1080 that is ~900 crops per frame",
    ),
    Substitute(
        r"--model vit-b-16 --out vitb\.onnx --crop 512 512",
        "--model tiny --out vitb.onnx --crop 64 64",
        "exporting ViT-B/16 takes 40 s on 2 cores; the tiny model goes through the same export "
        "(the ViT-B/16 export is tested by test/export/test_onnx_export.py)",
    ),
    Substitute(r"\[building, wall, \.\.\.\]", "[building, wall]", "the doc elides the list"),
    Substitute(
        r"(vltseg train tiny data\.source=\S+)",
        r"\1 train.iterations=4 train.constant_iterations=2 eval.interval=4 checkpoint.interval=4",
        "20 iterations with two evaluations take over a minute on 2 busy cores; 4 run every step "
        "of the pipeline (training, evaluation, checkpoint)",
    ),
)
"""Every change made to a documented command or snippet before it runs, and why."""

FILES = {
    "gta_1.safetensors": "the tiny model (random weights, seed 0, slide 64x64 crops) saved as "
    "a .safetensors: the public EVA02-L/14 checkpoints are 1.2 GB downloads",
    "cityscapes_2.safetensors": "the same tiny checkpoint (slide mode, as the public ones)",
    "w.safetensors": "the demo model's weights (vltseg_ros/demo_model): real, small weights",
    "weights.safetensors": "the demo model's weights",
    "model.safetensors": "the demo model's weights",
    "frame.png": "a generated 128x256 street scene (held-out seed)",
    "acdc": "acdc/*.png: two generated 128x256 scenes",
    "demo_bag": "`vltseg make-bag - demo_bag --synthetic 3 --synthetic-size 128 256` (a bag of "
    "generated scenes with labels), where a block does not make it itself",
    "labelled_bag": "the same bag (labels on /camera/labels)",
    "drive.mcap": "that bag's .mcap file",
    "data": "data/<set>: tiny generated data sets in each layout the docs name (Cityscapes via "
    "`vltseg make-scenes`, ACDC, BDD100K, Mapillary, Road Anomaly, Fishyscapes LAF, "
    "RoadObstacle21), 128x256 generated scenes",
    "config": "the checkout's config/ (the docs run from the repository root)",
    ".venv": ".venv/bin: vltseg, vltseg_node and python through the fork server",
}
"""The files and folders the docs name that the working directory holds here, and what they
are."""

RUN = {"bash", "sh", "python", "yaml"}
NOT_COMMANDS = {"text"}
SHARED = "../shared/"
OUTPUT_OPTIONS = ("--out", "--write-bag")
PRELUDE = """\
until_active() {  # a node runs until stopped: here until it logs "active", then SIGTERM
    "$@" > node.log 2>&1 & local pid=$!
    local i
    for i in $(seq 1500); do
        grep -q ']: active$' node.log && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" || { cat node.log; return 1; }
    grep -q ']: active$' node.log || { cat node.log; return 1; }
}
PS4='+ [${SECONDS} s] '
set -ex
"""
NODE = Substitute(
    r"^(\.venv/bin/vltseg_node --ros-args)",
    r"until_active \1",
    "the node runs until stopped: here until it logs `active`, then SIGTERM; it must exit 0",
)
ALL_SUBSTITUTES = (*SUBSTITUTES, NODE)


def runnable(block: Block) -> bool:
    return block.lang in RUN and not block.whole_block_marked


BLOCKS = [block for block in all_blocks() if runnable(block)]


def substituted(block: Block, text: str) -> tuple[str, list[Substitute]]:
    """``text`` of ``block`` with :data:`ALL_SUBSTITUTES` applied, and those that applied."""
    used = []
    for substitute in ALL_SUBSTITUTES:
        text, count = re.subn(substitute.doc, substitute.here, text, flags=re.MULTILINE)
        if count:
            used.append(substitute)
    return text, used


# ---- the marks -------------------------------------------------------------------------------


def test_every_block_has_a_language_and_runs_or_is_marked() -> None:
    problems = []
    for block in all_blocks():
        if not block.lang:
            problems.append(f"{block.id}: no language: ```text for outputs and layouts, ```bash")
        elif block.lang not in RUN | NOT_COMMANDS:
            problems.append(
                f"{block.id}: language {block.lang!r} is neither run ({sorted(RUN)}) nor text"
            )
        elif block.lang in NOT_COMMANDS and block.marks:
            problems.append(f"{block.id}: a {block.lang} block is never run: remove its mark")
        elif (
            block.lang == "yaml"
            and runnable(block)
            and yaml_kind(substituted(block, block.text)[0]) is None
        ):
            problems.append(
                f"{block.id}: a YAML block that is neither node parameters, a model config nor "
                f"a class map: check it in test/docs/yaml_blocks.py, or {MARK_HINT}"
            )
    assert not problems, "\n".join(problems)


def test_marks_are_precise() -> None:
    """Every mark is read (one line, right above a fence); a prefix mark takes out at least one
    command; a reason that names a test names a file that exists; a block is not all marked
    command by command (mark the block)."""
    problems = []
    for path in documents():
        lines = path.read_text().splitlines()
        written = sum(line.lstrip().startswith("<!-- not run here") for line in lines)
        read = sum(len(block.marks) for block in read_blocks(path))
        if written != read:
            problems.append(f"{path.name}: {written - read} mark(s) not read: {MARK_HINT}")
    for block in all_blocks():
        commands = block.commands()
        marked = block.marked_commands()
        for mark in block.marks:
            for prefix in mark.prefixes or ():
                if not any(command.lstrip().startswith(prefix) for command in commands):
                    problems.append(f"{block.id}: no command starts with {prefix!r}")
            for path in re.findall(r"\btest/[\w/]+\.py\b", mark.reason):
                if not (REPO / path).is_file():
                    problems.append(f"{block.id}: the mark names {path}, which does not exist")
        if commands and marked and len(marked) == len(commands):
            problems.append(f"{block.id}: every command is marked: mark the whole block")
    assert not problems, "\n".join(problems)


def test_every_substitute_and_stand_in_is_used() -> None:
    """No stale entries: each substitute changes some run block, each stand-in is named by
    one."""
    texts = [block.script() for block in BLOCKS]
    for substitute in ALL_SUBSTITUTES:
        assert any(re.search(substitute.doc, t, re.MULTILINE) for t in texts), substitute
    for name in FILES:
        assert any(_names(t, name) for t in texts), f"no run block names {name}"


def _names(text: str, name: str) -> bool:
    pattern = rf"(?<![\w.-]){re.escape(name)}(?![\w-])" if name != "data" else r"/data/"
    return re.search(pattern, text) is not None


# ---- the stand-ins ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory) -> Iterator[Path]:
    """The fork server's socket (test/docs/fork_server.py), ready."""
    root = tmp_path_factory.mktemp("fork")
    socket_path, log = root / "server.sock", root / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "test.docs.fork_server", str(socket_path)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 300
        while not socket_path.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the fork server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield socket_path
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="session")
def stand_ins(tmp_path_factory) -> Path:
    """A folder holding every name of :data:`FILES` (test/docs/stand_ins.py)."""
    root = make_stand_ins(tmp_path_factory.mktemp("stand_ins"))
    assert set(FILES) <= {p.name for p in root.iterdir()} | {".venv"}
    return root


@pytest.fixture
def workdir(tmp_path, stand_ins, fork_server) -> Path:
    """A fresh working directory with ``.venv/bin`` (vltseg, vltseg_node and python through the
    fork server)."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for kind in ("vltseg", "vltseg_node", "python"):
        write_shim(bin_dir / kind, fork_server, kind)
    return tmp_path


def _place_stand_ins(block: Block, text: str, workdir: Path, stand_ins: Path) -> None:
    """Link (data, bags) or copy (checkpoints: commands may write beside them) the stand-ins
    ``text`` names, except what the block makes itself (make-bag, make-scenes)."""
    made = set(re.findall(r"make-(?:bag\s+\S+|scenes)\s+(\S+)", text))
    for name in FILES:
        if name == ".venv" or name in made or not _names(block.text, name):
            continue
        source = stand_ins / name
        if name.endswith(".safetensors"):
            shutil.copy(source, workdir / name)
        else:
            (workdir / name).symlink_to(source.resolve())


def _environment(workdir: Path) -> dict[str, str]:
    path = os.pathsep.join([str(workdir / ".venv" / "bin"), str(Path(sys.executable).parent)])
    return {
        **os.environ,
        "PATH": f"{path}{os.pathsep}{os.environ['PATH']}",
        "ROS_DOMAIN_ID": private_domain_id(10, 40),  # apart from the other tests' nodes
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": str(workdir / "ros_log"),
        "ROS_HOME": str(workdir / "ros_home"),
    }


def _outputs(commands: list[str]) -> list[str]:
    """What the commands name with --out / --write-bag."""
    outputs = []
    for command in commands:
        words = shlex.split(command.replace("\\\n", " "), comments=True)
        outputs += [words[i + 1] for i, w in enumerate(words[:-1]) if w in OUTPUT_OPTIONS]
    return outputs


def _run(command: list[str], workdir: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """``command`` in its own process group (killed whole after ``timeout`` s)."""
    process = subprocess.Popen(
        command,
        cwd=workdir,
        env=_environment(workdir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{command} ran over {timeout} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


# ---- the blocks ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_block_runs(block: Block, workdir: Path, stand_ins: Path) -> None:
    script = block.script()
    left_out = []
    if not SHARED_FRAMES.is_dir():
        for command in block.commands():
            if SHARED in command and command in script:
                script = script.replace(command + "\n", "")
                left_out.append(command)
    text, used = substituted(block, script)
    _place_stand_ins(block, text, workdir, stand_ins)
    if block.lang == "yaml":
        check_yaml(text, workdir)
        return
    if block.lang == "python":
        (workdir / "snippet.py").write_text(text)
        command = [str(workdir / ".venv" / "bin" / "python"), "snippet.py"]
    else:
        (workdir / "block.sh").write_text(PRELUDE + text)
        command = ["bash", "block.sh"]
    done = _run(command, workdir)
    log = f"{block.id} as run:\n{text}\nsubstitutes: {[s.doc for s in used]}\n"
    log += f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-6000:]}\n"
    log += "Fix the doc (stand-ins and substitutes: FILES, SUBSTITUTES); if it cannot run here, "
    log += MARK_HINT
    print("\n".join(line for line in done.stderr.splitlines() if line.startswith("+ [")))
    assert done.returncode == 0, log
    assert "Traceback" not in done.stdout + done.stderr, log
    if block.lang != "python":
        for output in _outputs(Block(block.path, block.line, block.lang, text).commands()):
            assert (workdir / output).exists(), f"{output} was not written\n{log}"
    if left_out:
        pytest.skip(f"ran all but {left_out}: {SHARED_FRAMES} is absent")
