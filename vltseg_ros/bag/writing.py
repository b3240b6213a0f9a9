"""Writing rosbag2 files (mcap or sqlite3) from serialized (CDR) messages.

:class:`BagWriter` takes raw CDR bytes, so it stores exactly what was received (rclpy
subscriptions with ``raw=True``) or built with :mod:`vltseg_ros.bag.serialization`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import TracebackType
from typing import Literal

from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

from vltseg_ros.bag.typestore import typestore
from vltseg_ros.errors import BagError

LOG = logging.getLogger(__name__)

Storage = Literal["mcap", "sqlite3"]
STORAGES: tuple[Storage, ...] = ("mcap", "sqlite3")
_PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagWriter:
    """A new rosbag2 directory, open for writing from construction until :meth:`close`.

    Use it as a context manager or call :meth:`close` yourself; :meth:`discard` instead
    removes what was written (e.g. after an error, so that no partial bag is left behind).

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
        self._writer = Writer(self.path, version=9, storage_plugin=_PLUGINS[storage])
        try:
            self._writer.open()
        except (OSError, WriterError) as exc:
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
        self._connections[name] = self._writer.add_connection(name, msgtype, typestore=store)
        self.counts[name] = 0

    def write(self, topic: str, log_time_ns: int, cdr: bytes | memoryview) -> None:
        """Append one serialized message with its log (receive) time in ns since the epoch.

        Raises:
            BagError: the topic was not added, or the bag is closed.
        """
        self._check_open()
        connection = self._connections.get(topic)
        if connection is None:
            raise BagError(f"topic {topic} was not added to {self.path}; call add_topic first")
        self._writer.write(connection, int(log_time_ns), cdr)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (index and metadata.yaml); closing twice does nothing."""
        if self._open:
            self._open = False
            self._writer.close()

    def discard(self) -> None:
        """Abort writing and delete the bag directory."""
        if self._open:
            self._open = False
            try:
                self._writer.abort()
            except Exception:  # the directory is removed anyway
                LOG.debug("aborting %s failed", self.path, exc_info=True)
        shutil.rmtree(self.path, ignore_errors=True)

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
