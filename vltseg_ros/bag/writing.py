"""Writing rosbag2 files (mcap or sqlite3) from serialized (CDR) messages.

:class:`BagWriter` takes raw CDR bytes, so it stores exactly what was received (rclpy
subscriptions with ``raw=True``) or built with :mod:`vltseg_ros.bag.serialization`.

Nothing half-written: the bag is written as ``<name>.partial-<pid>/<name>`` beside its path and
renamed to it by :meth:`BagWriter.close` (:class:`vltseg_ros.io.files.StagedOutputs`), so an
interrupted or failed run leaves no bag, never a truncated one that blocks the next run.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from vltseg_ros.bag.typestore import typestore
from vltseg_ros.errors import BagError
from vltseg_ros.io.files import StagedOutputs

LOG = logging.getLogger(__name__)

Storage = Literal["mcap", "sqlite3"]
STORAGES: tuple[Storage, ...] = ("mcap", "sqlite3")
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagWriter:
    """A new rosbag2 directory, open for writing from construction until :meth:`close`.

    Use it as a context manager or call :meth:`close` yourself; :meth:`discard` instead
    removes what was written (e.g. after an error, so that no partial bag is left behind).
    Until :meth:`close`, the bag is written in a staging folder beside ``path`` (module
    docstring); a write error (a full disk) discards it and raises :class:`BagError`.

    Args:
        path: the bag directory to create; it must not exist.
        storage: "mcap" (the ROS 2 default since Iron) or "sqlite3".

    Raises:
        BagError: ``path`` exists, the storage is unknown, or the bag cannot be created.
    """

    def __init__(self, path: Path | str, storage: Storage = "mcap") -> None:
        self.path = Path(path)
        if storage not in _PLUGINS:
            raise BagError(f"unknown bag storage {storage!r}; use one of {', '.join(STORAGES)}")
        if self.path.exists():
            raise BagError(
                f"{self.path} already exists; bags are never overwritten: remove it or choose "
                "another output path"
            )
        self.storage = storage
        try:
            self._staging = StagedOutputs(self.path.parent, self.path.name)
        except OSError as exc:
            raise BagError(f"cannot create bag {self.path}: {exc.strerror or exc}") from exc
        staged = self._staging.path / self.path.name
        self._writer = Writer(staged, version=9, storage_plugin=_PLUGINS[storage])
        try:
            self._writer.open()
        except (OSError, WriterError) as exc:
            self._staging.discard()
            raise BagError(f"cannot create bag {self.path}: {exc}") from exc
        self._connections: dict[str, Connection] = {}
        self.counts: dict[str, int] = {}
        self._open = True

    def add_topic(self, name: str, msgtype: str) -> None:
        """Register ``name`` with a ROS 2 type such as ``sensor_msgs/msg/Image``.

        Adding a topic again with the same type does nothing.

        Raises:
            BagError: the type is unknown to the typestore, or the topic has another type.
        """
        self._check_open()
        if name in self._connections:
            if self._connections[name].msgtype != msgtype:
                raise BagError(
                    f"topic {name} was added as {self._connections[name].msgtype}, not {msgtype}"
                )
            return
        store = typestore()
        if msgtype not in store.types:
            raise BagError(
                f"unknown message type {msgtype!r} for topic {name}: not a ROS 2 Kilted type "
                "or a vltseg_ros message"
            )
        with self._failing_discards():
            self._connections[name] = self._writer.add_connection(name, msgtype, typestore=store)
        self.counts[name] = 0

    def set_custom_data(self, key: str, value: str) -> None:
        """Store ``key: value`` in the ``custom_data`` of the bag's metadata.yaml."""
        self._check_open()
        self._writer.set_custom_data(key, value)

    def write(self, topic: str, log_time_ns: int, cdr: bytes | memoryview) -> None:
        """Append one serialized message with its log (receive) time in ns since the epoch.

        Raises:
            BagError: the topic was not added, or the bag is closed.
        """
        self._check_open()
        connection = self._connections.get(topic)
        if connection is None:
            raise BagError(f"topic {topic} was not added to {self.path}; call add_topic first")
        with self._failing_discards():
            self._writer.write(connection, int(log_time_ns), cdr)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (index and metadata.yaml) and move it to ``path``; closing twice
        does nothing.

        Raises:
            BagError: it could not be finished (a full disk) or moved (``path`` was created
                meanwhile); nothing is left behind.
        """
        if self._open:
            with self._failing_discards():
                self._writer.close()
            self._open = False
            try:
                self._staging.commit()
            except OSError as exc:
                raise BagError(f"cannot write bag {self.path}: {exc.strerror or exc}") from exc

    def discard(self) -> None:
        """Abort writing and delete what was written (``path`` is never touched)."""
        if self._open:
            self._open = False
            try:
                self._writer.abort()
            except Exception:  # the staging folder is removed anyway
                LOG.debug("aborting %s failed", self.path, exc_info=True)
        self._staging.discard()

    @contextlib.contextmanager
    def _failing_discards(self) -> Iterator[None]:
        """An OSError in the block (a full disk) discards the bag and raises a BagError."""
        try:
            yield
        except OSError as exc:
            self.discard()
            raise BagError(f"cannot write bag {self.path}: {exc.strerror or exc}") from exc

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if not self._open:
            raise BagError(f"bag {self.path} is already closed")
