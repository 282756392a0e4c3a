"""The Hardware Event Handler: a ZeroMQ SUB socket that local publishers connect to.

The socket is bound to an ``ipc://`` path (``[ZEROMQ] capability_engine_ipc_path``), so
only programs on this node can reach it; any number of PUB sockets connect to it. The
socket file is made mode 0660 with the group ``[ZEROMQ] capability_engine_ipc_group``
(Motey's own group when empty), and a folder Motey creates for it mode 0750, so only
Motey's user and that group can publish capabilities. This
module only moves bytes: :mod:`motey.communication.ipc_protocol` decodes them, the
:class:`~motey.capabilityengine.CapabilityEngine` applies them as source ``ipc``. A
malformed message is logged and dropped; the loop goes on (in the original one such
message ended it for good).
"""

from __future__ import annotations

import grp
import os
import socket
import stat
import threading
from pathlib import Path
from typing import Any, Protocol

import logbook
import zmq

from motey.communication import ipc_protocol
from motey.communication.zeromq_wake import Waker
from motey.errors import ConfigError, MoteyError

log = logbook.Logger(__name__)

IPC_SOURCE = "ipc"
#: sun_path holds 108 bytes including the terminating NUL.
_MAX_PATH_BYTES = 107
#: Owner and group may connect (connecting needs write permission), nobody else.
SOCKET_MODE = 0o660
#: Owner and group may enter a folder Motey creates for the socket.
FOLDER_MODE = 0o750


def resolve_group(group: str | int | None) -> int:
    """The gid of ``[ZEROMQ] capability_engine_ipc_group`` (a name or number)."""
    if group in (None, ""):
        return os.getegid()
    text = str(group).strip()
    if text.isdigit():
        return int(text)
    try:
        return grp.getgrnam(text).gr_gid
    except KeyError:
        raise ConfigError(
            f"[ZEROMQ] capability_engine_ipc_group {text!r} is not a group on this host"
        ) from None


def secure_folder(folder: Path, gid: int) -> None:
    """Make the socket's folder enterable by owner and group only, where it is ours.

    A folder shared with others (``/tmp``: sticky, or root's) is left alone with a
    warning, as the socket's own mode still keeps others out; a folder another user
    owns is refused.
    """
    info = folder.stat()
    if info.st_uid not in (os.geteuid(), 0) and not info.st_mode & stat.S_ISVTX:
        # Whoever owns the folder could swap the socket for one of their own.
        raise ConfigError(
            f"IPC socket folder {folder} belongs to another user (uid {info.st_uid}); "
            "give [ZEROMQ] capability_engine_ipc_path a folder of Motey's own"
        )
    shared = info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX
    if shared:
        log.warning(
            "IPC socket folder {} is shared with other users; the socket itself is mode "
            "0660, but a folder of its own (e.g. /tmp/motey/) keeps others from even "
            "seeing it",
            folder,
        )
        return
    if info.st_gid != gid:
        os.chown(folder, -1, gid)
    if stat.S_IMODE(info.st_mode) & 0o027:
        os.chmod(folder, stat.S_IMODE(info.st_mode) & ~0o027)


class CapabilityUpdater(Protocol):
    """The part of the CapabilityEngine the subscriber feeds."""

    def update(self, changes: list[tuple[str, dict[str, Any]]], source: str) -> bool: ...


def prepare_ipc_path(path: str) -> None:
    """Make ``path`` bindable: create its folder, remove a stale socket file left behind.

    ZeroMQ would silently unlink whatever is there, so a second node with the same path
    would steal the first one's publishers; a socket somebody still listens on, or a
    file that is not a socket, is refused instead.
    """
    where = f"[ZEROMQ] capability_engine_ipc_path {path!r}"
    if len(os.fsencode(path)) > _MAX_PATH_BYTES:
        raise ConfigError(f"{where} is longer than {_MAX_PATH_BYTES} bytes (a Unix socket limit)")
    target = Path(path)
    try:
        if not target.parent.exists():
            target.parent.mkdir(parents=True, mode=FOLDER_MODE)
        mode = target.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"{where} cannot be used: {exc}") from exc
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{where} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        target.unlink(missing_ok=True)
        log.info("removed stale IPC socket file {}", path)
        return
    except OSError as exc:
        raise ConfigError(f"{where} cannot be used: {exc}") from exc
    finally:
        probe.close()
    raise ConfigError(
        f"{where} is in use by another process (another Motey node?); "
        "give every node on this machine its own path"
    )


class IPCCapabilitySubscriber:
    """Receives capability events from local publishers in its own thread."""

    #: Seconds :meth:`stop` may take (the loop polls in 0.5 s steps); see motey/lifecycle.py.
    STOP_WAIT = 1.0

    def __init__(
        self,
        path: str,
        engine: CapabilityUpdater,
        poll_ms: int = 250,
        source: str = IPC_SOURCE,
        context: zmq.Context[Any] | None = None,
        group: str | int | None = None,
    ) -> None:
        self.path = path[len("ipc://") :] if path.startswith("ipc://") else path
        self._engine = engine
        self._group = group
        #: A shared context is used but never terminated here; without one, we own ours.
        self._shared_context = context
        self._poll_ms = poll_ms
        self._source = source
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: zmq.Context[Any] | None = None
        self._socket: zmq.Socket[Any] | None = None
        self._waker: Waker | None = None
        self._inode: int | None = None
        #: Messages handled and ignored so far (for tests and diagnostics).
        self.received = 0
        self.ignored = 0

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.path}"

    def start(self) -> None:
        """Bind (a failure here stops the node's start with the reason) and start the loop."""
        if self._thread is not None:
            return
        gid = resolve_group(self._group)
        prepare_ipc_path(self.path)
        try:
            secure_folder(Path(self.path).parent, gid)
        except OSError as exc:  # e.g. chown to a group this user is not in
            raise ConfigError(
                f"cannot restrict the IPC socket folder of {self.path}: {exc}"
            ) from exc
        context: zmq.Context[Any] = self._shared_context or zmq.Context()
        sock = context.socket(zmq.SUB)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, ipc_protocol.MAX_TRANSPORT_BYTES)
            for topic in ipc_protocol.TOPICS:
                sock.setsockopt_string(zmq.SUBSCRIBE, topic)
            sock.bind(self.endpoint)
            os.chown(self.path, -1, gid)
            os.chmod(self.path, SOCKET_MODE)
            self._inode = os.stat(self.path).st_ino
        except (zmq.ZMQError, OSError) as exc:
            sock.close(linger=0)
            if context is not self._shared_context:
                context.term()
            raise ConfigError(
                f"cannot bind the capability IPC socket {self.endpoint}: {exc}"
            ) from exc
        self._context, self._socket = context, sock
        self._waker = Waker(context)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="motey-ipc-subscriber", daemon=True)
        self._thread.start()
        log.info("listening for capability events on {}", self.endpoint)

    def stop(self) -> None:
        """Stop the loop, close the socket, remove the socket file; idempotent."""
        self._stop.set()
        if self._waker is not None:
            self._waker.wake()
        if self._thread is not None:
            self._thread.join(timeout=self.STOP_WAIT)
            self._thread = None
        if self._waker is not None:
            self._waker.close()  # before the context ends: term() waits for open sockets
            self._waker = None
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._context is not None:
            if self._context is not self._shared_context:
                self._context.term()
            self._context = None
        self._remove_own_socket_file()

    def _remove_own_socket_file(self) -> None:
        """Unlink the socket file unless another process has bound the path since."""
        if self._inode is None:
            return
        try:
            if os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("could not remove IPC socket file {}: {}", self.path, exc)
        self._inode = None

    def _run(self) -> None:
        sock = self._socket
        assert sock is not None
        waker = self._waker
        assert waker is not None
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(waker.receiver, zmq.POLLIN)
        while not self._stop.is_set():
            try:
                ready = dict(poller.poll())  # stop() wakes it: no timeout needed
                if waker.receiver in ready:
                    waker.drain()
                if sock not in ready:
                    continue
                while not self._stop.is_set():
                    try:
                        frames = sock.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    self.handle(frames)
            except zmq.ZMQError as exc:
                if self._stop.is_set():
                    break
                log.error("capability IPC socket error: {}", exc)
                self._stop.wait(0.5)
        poller.unregister(sock)
        poller.unregister(waker.receiver)

    def handle(self, frames: list[bytes]) -> None:
        """Decode one message and apply it; anything wrong is logged, never raised."""
        self.received += 1
        try:
            event = ipc_protocol.decode(frames)
            self._engine.update(event.changes, self._source)
        except MoteyError as exc:
            self.ignored += 1
            log.warning("ignored capability event: {}", exc.message)
        except Exception as exc:  # the loop must survive whatever a publisher sends
            self.ignored += 1
            log.exception("capability event failed: {}", exc)
