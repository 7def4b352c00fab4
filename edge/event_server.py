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

Off the host the stream is TLS (``--tls-cert``/``--tls-key``; the console checks the
certificate with ``--ca-file``): binding anything but a loopback address without TLS is
refused unless ``--serve-insecure`` says so, and then a warning is shown. Wrong tokens are
rate-limited per client address (:data:`MAX_WRONG_TOKENS` per :data:`WRONG_TOKEN_WINDOW_S`);
over the limit a connection is refused before its token is even compared.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hmac
import ipaddress
import json
import math
import os
import queue
import secrets
import socket
import ssl
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
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
# Per client address: a 32-byte random token cannot be guessed anyway, but a flood of guesses
# should cost the guesser time, not the edge threads.
MAX_WRONG_TOKENS = 10
WRONG_TOKEN_WINDOW_S = 60.0
TLS_RECORD_START = 0x16  # first byte of a TLS ClientHello


class TokenError(RuntimeError):
    """The shared token is missing, too short, or stored insecurely (one-line message)."""


class AuthError(ConnectionError):
    """The server refused our token."""


class ServerError(RuntimeError):
    """The event server cannot start (one-line message)."""


class TlsError(ConnectionError):
    """TLS with the event server failed: untrusted certificate, no TLS there (one line)."""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--serve [PORT]``, ``--serve-host``, ``--token-file`` and the TLS options."""
    group = parser.add_argument_group("event stream server (remote consoles)")
    group.add_argument("--serve", type=int, nargs="?", const=DEFAULT_PORT, default=None,
                       metavar="PORT", help=f"serve the event stream over TCP (port "
                       f"{DEFAULT_PORT}); every client needs the shared token (at most "
                       f"{MAX_WRONG_TOKENS} wrong tokens per minute from one address)")
    group.add_argument("--serve-host", default=DEFAULT_HOST,
                       help="bind address (default 127.0.0.1: reach it through an SSH tunnel; "
                            "any other address needs --tls-cert and --tls-key, or "
                            "--serve-insecure)")
    group.add_argument("--token-file", type=Path, default=None,
                       help=f"file with the shared token (mode 0600); else ${TOKEN_FILE_ENV} "
                            f"or ${TOKEN_ENV}")
    group.add_argument("--tls-cert", type=Path, default=None, metavar="CERT.pem",
                       help="serve TLS with this certificate (consoles check it with "
                            "--ca-file; see hardware/pi/INSTALL.md)")
    group.add_argument("--tls-key", type=Path, default=None, metavar="KEY.pem",
                       help="the certificate's private key (mode 0600)")
    group.add_argument("--serve-insecure", action="store_true",
                       help="allow plain TCP on a non-loopback --serve-host (findings, audio "
                            "and the token readable on the network; a warning is shown)")


def open_server(args: argparse.Namespace) -> TcpEventServer | None:
    """Start the server chosen by :func:`add_server_arguments` (None without ``--serve``).

    Raises
    ------
    TokenError, ServerError
        With a one-line message.
    """
    if getattr(args, "serve", None) is None:
        return None
    cert, key = getattr(args, "tls_cert", None), getattr(args, "tls_key", None)
    if (cert is None) != (key is None):
        raise ServerError("TLS needs both --tls-cert and --tls-key")
    tls = None if cert is None or key is None else server_tls_context(cert, key)
    insecure = bool(getattr(args, "serve_insecure", False))
    token = load_token(args.token_file)
    try:
        server = TcpEventServer(token, args.serve_host, args.serve, tls=tls, insecure=insecure)
    except OSError as exc:
        raise ServerError(f"cannot serve events on {args.serve_host}:{args.serve}: "
                          f"{exc.strerror or exc}") from None
    if server.warning is not None:
        print(server.warning, file=sys.stderr, flush=True)
    return server


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or "" (every interface): assume the network


def _check_private(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ServerError(f"{what} {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ServerError(f"{what} {path} is accessible by other users; run: chmod 600 {path}")


def server_tls_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A TLS 1.2+ server context from a PEM certificate and its private key (mode 0600).

    Raises
    ------
    ServerError
        With a one-line message.
    """
    cert, key = Path(cert), Path(key)
    if not cert.is_file():
        raise ServerError(f"TLS certificate {cert} not found")
    _check_private(key, "TLS key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = {None: "not a PEM certificate and private key",
                  "KEY_VALUES_MISMATCH": "the key does not belong to the certificate"}.get(
                      exc.reason, str(exc.reason))
        raise ServerError(f"cannot load TLS certificate {cert} with key {key}: "
                          f"{reason}") from None
    except OSError as exc:
        raise ServerError(f"cannot read TLS certificate {cert} or key {key}: "
                          f"{exc.strerror or exc}") from None
    return context


def client_tls_context(ca_file: str | Path) -> ssl.SSLContext:
    """A client context that trusts only ``ca_file`` and checks the host name.

    Raises
    ------
    TlsError
        With a one-line message.
    """
    if not Path(ca_file).is_file():
        raise TlsError(f"CA file {ca_file} not found")
    try:
        context = ssl.create_default_context(cafile=str(ca_file))
    except ssl.SSLError:
        raise TlsError(f"CA file {ca_file} holds no PEM certificate") from None
    except OSError as exc:
        raise TlsError(f"cannot read CA file {ca_file}: {exc.strerror or exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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


class WrongTokenLimit:
    """At most ``limit`` wrong tokens per ``window_s`` seconds from one client address.

    The check and the comparison happen under one lock, so parallel connections cannot
    slip more guesses past the limit than it allows.
    """

    def __init__(self, limit: int = MAX_WRONG_TOKENS, window_s: float = WRONG_TOKEN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, address: str, expected: str, presented: object) -> str | None:
        """None when ``presented`` is the token; else the refusal to send."""
        with self._lock:
            now = self._clock()
            if len(self._failures) > 1024:  # forget addresses whose window has passed
                for stale in [a for a, q in self._failures.items()
                              if not q or now - q[-1] >= self.window_s]:
                    del self._failures[stale]
            failures = self._failures.setdefault(address, collections.deque())
            while failures and now - failures[0] >= self.window_s:
                failures.popleft()
            if len(failures) >= self.limit:
                wait = math.ceil(self.window_s - (now - failures[0]))
                return (f"too many wrong tokens from {address} (limit {self.limit} per "
                        f"{self.window_s:g} s): try again in {wait} s")
            if tokens_match(expected, presented):
                return None
            failures.append(now)
            return "wrong token"


class TcpEventServer:
    """Serve the event stream to token-holding clients; an :class:`EventWriter`.

    Parameters
    ----------
    token : str
        The shared secret (see :func:`load_token`).
    host : str
        Bind address; 127.0.0.1 by default. Any non-loopback address needs ``tls`` or
        ``insecure``.
    port : int
        TCP port; 0 picks a free one (see :attr:`port`).
    tls : ssl.SSLContext, optional
        Serve TLS (see :func:`server_tls_context`).
    insecure : bool
        Allow plain TCP off the host; :attr:`warning` then says what that exposes.
    max_wrong_tokens, wrong_token_window_s : int, float
        The per-address limit on wrong tokens (see :class:`WrongTokenLimit`).
    clock : callable
        Monotonic seconds for the limit (tests move time on).

    Raises
    ------
    ServerError
        Plain TCP on a non-loopback address without ``insecure``.
    """

    label = "event server"

    def __init__(self, token: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 tls: ssl.SSLContext | None = None, insecure: bool = False,
                 max_wrong_tokens: int = MAX_WRONG_TOKENS,
                 wrong_token_window_s: float = WRONG_TOKEN_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if len(token) < MIN_TOKEN_CHARS:
            raise TokenError(f"event-stream token must have at least {MIN_TOKEN_CHARS} "
                             "characters")
        shown = host or "(every interface)"
        plain_off_host = tls is None and not is_loopback(host)
        if plain_off_host and not insecure:
            raise ServerError(
                f"--serve-host {shown} would send findings, audio and the token over the "
                "network in plain TCP: pass --tls-cert and --tls-key "
                "(hardware/pi/INSTALL.md), or --serve-insecure to accept that")
        self._token = token
        self._tls = tls
        self._limit = WrongTokenLimit(max_wrong_tokens, wrong_token_window_s, clock)
        self._listener = socket.create_server((host, port), reuse_port=False)
        self.host, self.port = self._listener.getsockname()[:2]
        self.warning: str | None = None
        if plain_off_host:
            self.warning = (f"WARNING: event stream on {shown}:{self.port} is plain TCP "
                            "(--serve-insecure): anyone on the network can read findings, "
                            "audio and the token")
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
            try:
                client.queue.put_nowait(None)
            except queue.Full:
                # its sender is stuck on a client that stopped reading: waiting for a free
                # slot would hold the edge's shutdown for ever, so cut the client off
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(client.sock, socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), name="event-client",
                             daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        raw.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            address = str(raw.getpeername()[0])
            sock = self._secure(raw)
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                raw.close()
            return
        with sock:
            client = self._handshake(sock, address)
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

    def _secure(self, raw: socket.socket) -> socket.socket:
        """The TLS session over ``raw`` (handshake done here, on the client's own thread,
        so a slow client never holds up the accept loop); ``raw`` itself without TLS."""
        if self._tls is None:
            return raw
        sock = self._tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        try:
            sock.do_handshake()
        except BaseException:
            with contextlib.suppress(OSError):
                sock.close()
            raise
        return sock

    def _handshake(self, sock: socket.socket, address: str) -> _Client | None:
        try:
            request = json.loads(_read_line(sock, limit=4096, plain=self._tls is None))
        except (OSError, ValueError):
            _reply(sock, {"auth": "denied", "v": SCHEMA_VERSION,
                          "error": "expected a handshake line with the token"})
            return None
        presented = request.get("auth") if isinstance(request, dict) else None
        refusal = self._limit.check(address, self._token, presented)
        if refusal is not None:
            _reply(sock, {"auth": "denied", "v": SCHEMA_VERSION, "error": refusal})
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
        # the plain socket's shutdown: SSLSocket.shutdown would first drop its TLS state, and
        # the sender thread could then write the next event unencrypted
        with contextlib.suppress(OSError):
            socket.socket.shutdown(client.sock, socket.SHUT_RDWR)
        # when the queue is full the sender fails on the shut-down socket and exits anyway
        with contextlib.suppress(queue.Full):
            client.queue.put_nowait(None)


def _reply(sock: socket.socket, message: Mapping[str, Any]) -> None:
    with contextlib.suppress(OSError):
        sock.sendall((json.dumps(message) + "\n").encode("utf-8"))


def _read_line(sock: socket.socket, limit: int, plain: bool = True) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during handshake")
        if plain and not data and chunk[0] == TLS_RECORD_START:
            # a TLS client at a plain server: refuse now rather than at the timeout
            raise ValueError("TLS handshake at a plain-TCP server")
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
                 audio: bool = False, timeout: float = 5.0, ca_file: str | Path | None = None,
                 server_name: str | None = None) -> None:
        context = None if ca_file is None else client_tls_context(ca_file)
        raw = socket.create_connection((host, port), timeout=timeout)
        self._sock: socket.socket = raw
        self.encrypted = context is not None
        try:
            if context is not None:
                self._sock = context.wrap_socket(raw, server_hostname=server_name or host)
        except ssl.SSLCertVerificationError as exc:
            raw.close()
            raise TlsError(f"the certificate of {host}:{port} is not trusted by {ca_file}: "
                           f"{exc.verify_message}") from None
        except (ssl.SSLError, ConnectionError) as exc:
            raw.close()
            reason = getattr(exc, "reason", None) or exc.strerror or exc
            raise TlsError(f"no TLS at {host}:{port} ({reason}): is edge-run serving with "
                           "--tls-cert?") from None
        self._file = self._sock.makefile("rb")
        request = {"auth": token, "v": SCHEMA_VERSION, "audio": audio}
        self._sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        try:
            reply_line = self._file.readline()
        except ConnectionResetError:
            reply_line = b""
        if not reply_line and context is None:
            self.close()
            raise ConnectionError(f"{host}:{port} closed the connection before replying: if "
                                  "edge-run serves TLS, pass --ca-file") from None
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
