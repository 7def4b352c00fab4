"""The event server under load on loopback: 200 clients while a session records.

Counts, not wall time: the edge's recording and a remote console's recording are bit-exact,
the pipeline never goes stale, an unauthenticated client never receives an event byte, and
the wrong-token limit holds. The session has a fixed --duration, so the test stops by itself.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from typing import Any

import numpy as np

from steth.edge import event_server
from steth.edge import events as ev
from steth.edge.decode import AudioChunk
from steth.edge.event_server import MAX_WRONG_TOKENS, TcpEventServer
from steth.edge.runner import open_session
from steth.host import bedside, remote
from steth.host.recorder import Recorder
from steth.host.session_files import read_take_audio, take_folders

TOKEN = "correct-horse-battery-staple-42"
RECORD_S = 20.0
IDLE, SLOW, SILENT, WRONG = 59, 40, 50, 50  # + 1 recording console = 200 clients
SLOW_READ_PAUSE_S = 0.05  # 256 bytes per 50 ms: a fifth of the audio stream's rate
SLOW_READ_BYTES = 256


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def read_all(sock: socket.socket, slow_until: threading.Event | None = None) -> bytes:
    """Everything until the server closes (a reset after unread bytes counts as closed).

    With ``slow_until``, read far slower than the stream until that event is set (the
    backlog builds up in the server), then drain at full speed so the test stays short.
    """
    data = b""
    sock.settimeout(60)
    try:
        while True:
            slow = slow_until is not None and not slow_until.is_set()
            chunk = sock.recv(SLOW_READ_BYTES if slow else 65536)
            if not chunk:
                break
            data += chunk
            if slow:
                time.sleep(SLOW_READ_PAUSE_S)
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def handshake(port: int, token: str, audio: bool, receive_buffer: int = 0
              ) -> tuple[socket.socket, bytes]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:  # a small window, so a slow reader's backlog reaches the server
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(json.dumps({"auth": token, "v": 1, "audio": audio}).encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        reply += chunk
    return sock, reply


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


class Collect:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write(self, event: Any) -> None:
        self.events.append(dict(event))

    def close(self) -> None:
        pass


def test_two_hundred_clients_while_a_session_records(tmp_path, monkeypatch):
    started = time.monotonic()
    port = free_port()
    args = bedside.build_parser().parse_args([
        "--simulate", "--no-dashboard", "--duration", str(RECORD_S), "--serve", str(port),
        "--record", str(tmp_path / "edge"), "--patient", "LOAD-1", "--sites", "p1"])
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    collected = Collect()
    session = open_session(args, [collected])
    server = next(w for w in session.sinks.writers if isinstance(w, TcpEventServer))
    edge_recorder = bedside.attach_recorder(args, session)
    assert edge_recorder is not None
    chunks: list[np.ndarray] = []
    record_audio = session.on_audio
    assert record_audio is not None

    def on_audio(chunk: AudioChunk) -> None:  # an edge that also streams its audio
        record_audio(chunk)
        chunks.append(np.array(chunk.samples, dtype=np.int16))
        session.sinks.write(ev.make_audio(start=chunk.start_index, samples=chunk.samples,
                                          rate_hz=chunk.sample_rate, simulated=True))

    session.on_audio = on_audio

    # every authenticated client attaches before the first sample: the recording console
    console_recorder = Recorder(tmp_path / "console", patient="LOAD-1", sites="p1")
    client = event_server.EventClient(TOKEN, port=port, audio=True)
    console_events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    console = threading.Thread(target=remote.pump, args=(
        client, console_events, console_recorder, None, threading.Event()), daemon=True)
    console.start()

    idle = [handshake(port, TOKEN, audio=False) for _ in range(IDLE)]
    slow = [handshake(port, TOKEN, audio=True, receive_buffer=4096) for _ in range(SLOW)]
    assert all(reply == b'{"auth": "ok", "v": 1}\n' for _, reply in idle + slow)
    wait_for(lambda: server.client_count == 1 + IDLE + SLOW)
    slow_data: list[bytes] = [b""] * SLOW
    recording_over = threading.Event()

    def slow_reader(n: int) -> None:
        slow_data[n] = read_all(slow[n][0], slow_until=recording_over)

    slow_threads = [threading.Thread(target=slow_reader, args=(n,), daemon=True)
                    for n in range(SLOW)]
    for thread in slow_threads:
        thread.start()
    edge = threading.Thread(target=session.run, name="edge", daemon=True)
    edge.start()
    stages = {"attached": time.monotonic() - started}

    # unauthenticated: silent ones never send a handshake, the rest send a wrong token
    silent = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(SILENT)]
    wrong_replies: list[bytes] = []
    for n in range(WRONG):
        sock, reply = handshake(port, f"wrong-token-{n:04d}-xxxxxxxx", audio=True)
        wrong_replies.append(reply + read_all(sock))
        sock.close()
    silent_replies = [read_all(sock) for sock in silent]  # the handshake timeout ends them
    stages["refused"] = time.monotonic() - started
    for sock in silent:
        sock.close()
    assert server.client_count == 1 + IDLE + SLOW  # nobody unauthenticated got in

    edge.join(timeout=RECORD_S + 60)
    assert not edge.is_alive()
    stages["recorded"] = time.monotonic() - started
    session.close()  # closes the recorder and the server
    recording_over.set()
    console.join(timeout=30)
    assert not console.is_alive()
    stages["console done"] = time.monotonic() - started
    console_recorder.close()
    client.close()
    for thread in slow_threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in slow_threads)
    stages["drained"] = time.monotonic() - started
    idle_data = [read_all(sock) for sock, _ in idle]
    for sock, _ in idle + slow:
        sock.close()
    elapsed = time.monotonic() - started

    # unauthenticated clients: exactly one refusal line each, not one event byte
    denied = [lines_of(r) for r in wrong_replies]
    assert all(len(lines) == 1 and lines[0]["auth"] == "denied" for lines in denied)
    errors = [lines[0]["error"] for lines in denied]
    assert errors.count("wrong token") == MAX_WRONG_TOKENS
    assert sum(e.startswith("too many wrong tokens") for e in errors) == WRONG - MAX_WRONG_TOKENS
    assert all(lines_of(r) == [{"auth": "denied", "v": 1, "error":
                                "expected a handshake line with the token"}]
               for r in silent_replies)

    # the recordings: edge and remote console bit-exact with what the device sent
    sent = np.concatenate(chunks)
    assert sent.size > 0.9 * RECORD_S * 4000
    edge_audio, _ = read_take_audio(take_folders(edge_recorder.session_dir)[0])
    console_audio, _ = read_take_audio(take_folders(console_recorder.session_dir)[0])
    assert np.array_equal(edge_audio, sent) and np.array_equal(console_audio, sent)

    # the pipeline never starved; every client got every event, in order, none twice
    assert not [e for e in collected.events if e["type"] == "stale"]
    expected = [e for e in collected.events if e["type"] != "audio"]
    expected_cycles = [e["id"] for e in expected if e["type"] == "cycle"]
    assert expected_cycles and expected[0]["type"] == "hello"
    for data in slow_data + idle_data:
        events = lines_of(data)
        assert [e for e in events if e["type"] != "audio"] == expected
    for data in slow_data:  # slow, yet nothing lost
        heard = np.concatenate([ev.decode_audio(e) for e in lines_of(data)
                                if e["type"] == "audio"])
        assert np.array_equal(heard, sent)
    assert all(not any(e["type"] == "audio" for e in lines_of(d)) for d in idle_data)
    print(f"load test: {1 + IDLE + SLOW} authenticated, {SILENT} silent, {WRONG} wrong "
          f"tokens; {sent.size} samples, {len(expected_cycles)} cycles; "
          + ", ".join(f"{k} at {v:.1f} s" for k, v in stages.items()) + f"; {elapsed:.1f} s")


def test_close_does_not_hang_on_a_client_that_stopped_reading(monkeypatch):
    monkeypatch.setattr(event_server, "CLIENT_QUEUE_EVENTS", 4)
    server = TcpEventServer(TOKEN, port=0)
    sock, reply = handshake(server.port, TOKEN, audio=True)
    assert b"ok" in reply
    wait_for(lambda: server.client_count == 1)
    big = ev.make_audio(start=0, samples=np.zeros(4_000_000, dtype=np.int16), rate_hz=8000)
    for _ in range(5):  # one blocks in sendall (nobody reads), four fill the queue exactly
        server.write(big)
    closer = threading.Thread(target=server.close, daemon=True)
    closer.start()
    closer.join(timeout=10)
    alive = closer.is_alive()
    sock.close()
    assert not alive, "close() waited for a client that never reads"
