"""The event stream over TCP: a token-guarded JSON-lines server and its client.

The server binds 127.0.0.1 unless told otherwise (remote consoles come in through an SSH
tunnel). Every client, local or not, must open with a handshake line carrying the shared
token; the token is read from a file or an environment variable, never from the command
line, and compared in constant time. A wrong token gets one clear refusal line and no data.

Handshake (client -> server, one line)::

    {"auth": "<token>", "v": 1, "audio": false}

Reply (server -> client, one line), then event lines if accepted::

    {"auth": "ok", "v": 1}
    {"auth": "denied", "v": 1, "error": "wrong token"}

A newly accepted client first receives the latest ``hello``, ``link``, ``verdict`` and
``stale`` events, so a console that attaches mid-session knows the device, the model and
whether the source is SIMULATED.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import queue
import secrets
import socket
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from steth.edge.event_schema import SCHEMA_VERSION, EventError, parse_line
from steth.edge.event_writers import dumps

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
TOKEN_ENV = "STETH_TOKEN"
TOKEN_FILE_ENV = "STETH_TOKEN_FILE"
MIN_TOKEN_CHARS = 16
HANDSHAKE_TIMEOUT_S = 5.0
CLIENT_QUEUE_EVENTS = 4096  # a client this far behind is dropped, never the pipeline stalled
REPLAYED_TYPES = ("hello", "link", "verdict", "stale")


class TokenError(RuntimeError):
    """The shared token is missing, too short, or stored insecurely (one-line message)."""


class AuthError(ConnectionError):
    """The server refused our token."""


class ServerError(RuntimeError):
    """The event server cannot start (one-line message)."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--serve [PORT]``, ``--serve-host`` and ``--token-file`` for edge-run."""
    group = parser.add_argument_group("event stream server (remote consoles)")
    group.add_argument("--serve", type=int, nargs="?", const=DEFAULT_PORT, default=None,
                       metavar="PORT", help=f"serve the event stream over TCP (port "
                       f"{DEFAULT_PORT}); every client needs the shared token")
    group.add_argument("--serve-host", default=DEFAULT_HOST,
                       help="bind address (default 127.0.0.1: reach it through an SSH tunnel; "
                            "another address exposes the stream to the network)")
    group.add_argument("--token-file", type=Path, default=None,
                       help=f"file with the shared token (mode 0600); else ${TOKEN_FILE_ENV} "
                            f"or ${TOKEN_ENV}")


def open_server(args: argparse.Namespace) -> TcpEventServer | None:
    """Start the server chosen by :func:`add_server_arguments` (None without ``--serve``).

    Raises
    ------
    TokenError, ServerError
        With a one-line message.
    """
    if getattr(args, "serve", None) is None:
        return None
    token = load_token(args.token_file)
    try:
        return TcpEventServer(token, args.serve_host, args.serve)
    except OSError as exc:
        raise ServerError(f"cannot serve events on {args.serve_host}:{args.serve}: "
                          f"{exc.strerror or exc}") from None


def load_token(token_file: str | Path | None = None, env: Mapping[str, str] | None = None
               ) -> str:
    """Read the shared token from ``token_file``, ``$STETH_TOKEN_FILE`` or ``$STETH_TOKEN``.

    Parameters
    ----------
    token_file : path, optional
        A file holding the token on its first line; it must not be readable by group or
        others (like an SSH key).
    env : mapping, optional
        Environment to read (defaults to ``os.environ``).

    Raises
    ------
    TokenError
        With a one-line message that says what to do.
    """
    env = os.environ if env is None else env
    path = token_file or env.get(TOKEN_FILE_ENV)
    if path:
        token = _read_token_file(Path(path))
    elif env.get(TOKEN_ENV):
        token = env[TOKEN_ENV].strip()
    else:
        raise TokenError(f"no event-stream token: set {TOKEN_ENV} or {TOKEN_FILE_ENV}, or pass "
                         "--token-file (create one with: steth-console --new-token FILE)")
    if len(token) < MIN_TOKEN_CHARS:
        raise TokenError(f"event-stream token is shorter than {MIN_TOKEN_CHARS} characters; "
                         "create a new one with: steth-console --new-token FILE")
    return token


def _read_token_file(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise TokenError(f"token file {path} is accessible by other users; "
                             f"run: chmod 600 {path}")
        return path.read_text(encoding="utf-8").splitlines()[0].strip()
    except FileNotFoundError:
        raise TokenError(f"token file {path} not found") from None
    except IndexError:
        raise TokenError(f"token file {path} is empty") from None
    except OSError as exc:
        raise TokenError(f"cannot read token file {path}: {exc.strerror}") from None


def write_new_token(path: str | Path) -> str:
    """Create ``path`` (mode 0600, must not exist) holding a fresh random token."""
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def tokens_match(expected: str, presented: object) -> bool:
    """Constant-time comparison (no early exit that leaks how many characters matched)."""
    if not isinstance(presented, str):
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


class _Client:
    def __init__(self, sock: socket.socket, wants_audio: bool) -> None:
        self.sock = sock
        self.wants_audio = wants_audio
        self.queue: queue.Queue[bytes | None] = queue.Queue(CLIENT_QUEUE_EVENTS)

    def offer(self, line: bytes) -> bool:
        try:
            self.queue.put_nowait(line)
            return True
        except queue.Full:
            return False


class TcpEventServer:
    """Serve the event stream to token-holding clients; an :class:`EventWriter`.

    Parameters
    ----------
    token : str
        The shared secret (see :func:`load_token`).
    host : str
        Bind address; 127.0.0.1 by default. Binding elsewhere is the caller's explicit choice.
    port : int
        TCP port; 0 picks a free one (see :attr:`port`).
    """

    def __init__(self, token: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenError(f"event-stream token must have at least {MIN_TOKEN_CHARS} "
                             "characters")
        self._token = token
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self._listener.getsockname()[:2]
        self._clients: list[_Client] = []
        self._latest: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="event-server",
                                               daemon=True)
        self._accept_thread.start()

    @property
    def client_count(self) -> int:
        with self._lock:
            return len(self._clients)

    def write(self, event: Mapping[str, Any]) -> None:
        line = (dumps(event) + "\n").encode("utf-8")
        kind = event.get("type")
        with self._lock:
            if kind in REPLAYED_TYPES:
                self._latest[str(kind)] = line
            clients = list(self._clients)
        for client in clients:
            if kind == "audio" and not client.wants_audio:
                continue
            if not client.offer(line):
                self._drop(client)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.queue.put(None)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="event-client",
                             daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        with sock:
            client = self._handshake(sock)
            if client is None:
                return
            sock.settimeout(None)
            while True:
                line = client.queue.get()
                if line is None:
                    return
                try:
                    sock.sendall(line)
                except OSError:
                    self._drop(client)
                    return

    def _handshake(self, sock: socket.socket) -> _Client | None:
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            request = json.loads(_read_line(sock, limit=4096))
        except (OSError, ValueError):
            _reply(sock, {"auth": "denied", "v": SCHEMA_VERSION,
                          "error": "expected a handshake line with the token"})
            return None
        presented = request.get("auth") if isinstance(request, dict) else None
        if not tokens_match(self._token, presented):
            _reply(sock, {"auth": "denied", "v": SCHEMA_VERSION, "error": "wrong token"})
            return None
        client = _Client(sock, wants_audio=bool(request.get("audio")))
        with self._lock:
            for kind in REPLAYED_TYPES:
                if kind in self._latest:
                    client.offer(self._latest[kind])
            self._clients.append(client)
        _reply(sock, {"auth": "ok", "v": SCHEMA_VERSION})
        return client

    def _drop(self, client: _Client) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_RDWR)
        # when the queue is full the sender fails on the shut-down socket and exits anyway
        with contextlib.suppress(queue.Full):
            client.queue.put_nowait(None)


def _reply(sock: socket.socket, message: Mapping[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.sendall((json.dumps(message) + "\n").encode("utf-8"))


def _read_line(sock: socket.socket, limit: int) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during handshake")
        data += chunk
        if len(data) > limit:
            raise ValueError("handshake line too long")
    return data


class EventClient:
    """Connect to a :class:`TcpEventServer`, authenticate, and iterate over its events.

    Raises
    ------
    AuthError
        When the server refuses the token (the message says so).
    ConnectionError / OSError
        When the server cannot be reached.
    """

    def __init__(self, token: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 audio: bool = False, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._file = self._sock.makefile("rb")
        request = {"auth": token, "v": SCHEMA_VERSION, "audio": audio}
        self._sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        reply_line = self._file.readline()
        try:
            reply = json.loads(reply_line)
        except ValueError:
            self.close()
            raise ConnectionError(f"{host}:{port} is not a steth event stream") from None
        if reply.get("auth") != "ok":
            self.close()
            raise AuthError(f"event stream at {host}:{port} refused the connection: "
                            f"{reply.get('error', 'unknown reason')}")
        self._sock.settimeout(None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """Validated events; lines of unknown types are skipped.

        Raises
        ------
        EventError
            When the server speaks a newer schema major version.
        """
        for line in self._file:
            if not line.strip():
                continue
            try:
                yield parse_line(line)
            except EventError:
                version = _version_of(line)
                if version is not None and version > SCHEMA_VERSION:
                    raise EventError(f"the edge sends event schema v{version}; this console "
                                     f"reads v{SCHEMA_VERSION}: update it") from None
                continue  # a newer minor revision may add types this console does not know

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()


def _version_of(line: bytes) -> int | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    version = message.get("v") if isinstance(message, dict) else None
    return version if isinstance(version, int) and not isinstance(version, bool) else None
