"""Remote attach over the token-guarded TCP event stream."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from steth.edge import events as ev
from steth.edge.event_schema import EventError, iter_jsonl
from steth.edge.event_server import (
    AuthError,
    EventClient,
    TcpEventServer,
    TokenError,
    load_token,
    tokens_match,
    write_new_token,
)
from steth.host import remote
from steth.host.dashboard import Dashboard
from steth.host.session_files import read_take_audio, take_folders

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
TOKEN = "correct-horse-battery-staple-42"


def fixture(name: str) -> list[dict]:
    return list(iter_jsonl(FIXTURES / name))


@pytest.fixture
def server():
    srv = TcpEventServer(TOKEN, port=0)
    yield srv
    srv.close()


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_server_binds_localhost_by_default(server):
    assert server.host == "127.0.0.1"


def test_right_token_gets_replayed_hello_then_live_events(server):
    messages = fixture("simulated.jsonl")
    for message in messages[:10]:  # before anyone attached
        server.write(message)
    client = EventClient(TOKEN, port=server.port)
    wait_for(lambda: server.client_count == 1)
    for message in messages[10:20]:
        server.write(message)
    server.close()
    received = list(client)
    client.close()
    assert received[0]["type"] == "hello" and received[0]["simulated"] is True
    assert [m["type"] for m in received[:2]] == ["hello", "link"]  # latest link replayed
    assert received[-10:] == [m for m in messages[10:20] if m["type"] != "audio"]


def test_wrong_token_gets_a_clear_refusal_and_no_data(server):
    for message in fixture("normal.jsonl")[:5]:
        server.write(message)
    with pytest.raises(AuthError, match="refused the connection: wrong token"):
        EventClient(TOKEN[:-1] + "X", port=server.port)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b'{"auth": "nope-nope-nope-nope", "v": 1}\n')
        reply = raw.makefile("rb").read()  # everything until the server closes
    assert json.loads(reply) == {"auth": "denied", "v": 1, "error": "wrong token"}
    assert server.client_count == 0


def test_garbage_handshake_is_refused(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.0\r\n")
        reply = json.loads(raw.makefile("rb").readline())
    assert reply["auth"] == "denied" and "handshake" in reply["error"]


def test_audio_events_only_reach_clients_that_asked(server):
    plain = EventClient(TOKEN, port=server.port)
    recorder_client = EventClient(TOKEN, port=server.port, audio=True)
    wait_for(lambda: server.client_count == 2)
    audio = ev.make_audio(start=0, samples=np.arange(4, dtype=np.int16), rate_hz=8000, t=1.0)
    server.write(audio)
    server.write(ev.make_mark(label="x", t=2.0))
    server.close()
    assert [m["type"] for m in plain] == ["mark"]
    assert [m["type"] for m in recorder_client] == ["audio", "mark"]


def test_token_sources_and_their_errors(tmp_path):
    path = tmp_path / "token"
    token = write_new_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_token(path, env={}) == token
    assert load_token(None, env={"STETH_TOKEN_FILE": str(path)}) == token
    assert load_token(None, env={"STETH_TOKEN": TOKEN}) == TOKEN
    with pytest.raises(TokenError, match="set STETH_TOKEN"):
        load_token(None, env={})
    with pytest.raises(TokenError, match="shorter than 16"):
        load_token(None, env={"STETH_TOKEN": "short"})
    os.chmod(path, 0o644)
    with pytest.raises(TokenError, match="chmod 600"):
        load_token(path, env={})
    with pytest.raises(TokenError, match="not found"):
        load_token(tmp_path / "missing", env={})
    assert tokens_match(TOKEN, TOKEN) and not tokens_match(TOKEN, TOKEN + "x")
    assert not tokens_match(TOKEN, None) and not tokens_match(TOKEN, 42)


def test_token_is_never_a_command_line_argument():
    with pytest.raises(SystemExit):
        remote.build_parser().parse_args(["--token", TOKEN])


def test_console_with_wrong_token_exits_with_one_line(server, capsys, monkeypatch):
    monkeypatch.setenv("STETH_TOKEN", "this-is-not-the-token")
    assert remote.main(["--port", str(server.port)]) == 1
    err = capsys.readouterr().err
    assert err == (f"steth-console: event stream at 127.0.0.1:{server.port} refused the "
                   "connection: wrong token\n")


def test_console_nothing_listening_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert remote.main(["--port", str(port)]) == 1
    assert "nothing listens on" in capsys.readouterr().err


def test_console_attaches_shows_findings_and_records_audio(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    out = io.StringIO()
    dashboard = Dashboard(console=Console(file=out, force_terminal=False),
                          refresh_per_second=20)
    args = remote.build_parser().parse_args(
        ["--port", str(server.port), "--record", str(tmp_path / "rec"), "--patient", "R1",
         "--sites", "icbhi"])
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(remote.attach(args, dashboard)))
    thread.start()
    wait_for(lambda: server.client_count == 1)
    messages = fixture("simulated.jsonl")
    for message in messages:
        server.write(message)
    first = next(m for m in messages if m["type"] == "audio")
    samples = (np.arange(1600) % 200 - 100).astype(np.int16)
    server.write(ev.make_audio(start=first["start"] + first["n"] + 400, samples=samples,
                               rate_hz=8000, simulated=True))
    server.close()
    thread.join(timeout=10)
    assert result == [0]
    lines = out.getvalue().splitlines()
    assert sum("finding=Crackle" in line for line in lines) == 4
    assert all(line.startswith(tuple("0123456789")) or "SIMULATED" in line for line in lines)
    session = next((tmp_path / "rec").iterdir())
    meta = json.loads((session / "session.json").read_text())
    assert meta["simulated"] is True and meta["patient"] == "R1"
    take = take_folders(session)[0]
    assert take.name == "01-Tc"
    audio, rate = read_take_audio(take)
    assert rate == 8000 and audio.size == 160 + 400 + 1600  # 400 lost samples zero-filled
    assert np.array_equal(audio[:160], ev.decode_audio(first))
    assert not audio[160:560].any() and np.array_equal(audio[-1600:], samples)
    assert len((take / "cycles.jsonl").read_text().splitlines()) == 5


def test_newer_schema_version_is_reported_not_misread(server):
    client = EventClient(TOKEN, port=server.port)
    wait_for(lambda: server.client_count == 1)
    server.write({"v": 2, "type": "cycle", "t": 1.0})
    server.close()
    with pytest.raises(EventError, match="schema v2; this console reads v1: update it"):
        list(client)


def test_open_server_from_edge_run_arguments(monkeypatch):
    import argparse

    from steth.edge.event_server import ServerError, add_server_arguments, open_server

    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    assert open_server(parser.parse_args([])) is None
    monkeypatch.delenv("STETH_TOKEN", raising=False)
    monkeypatch.delenv("STETH_TOKEN_FILE", raising=False)
    with pytest.raises(TokenError):
        open_server(parser.parse_args(["--serve", "0"]))
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    srv = open_server(parser.parse_args(["--serve", "0"]))
    try:
        assert srv is not None and srv.host == "127.0.0.1"
        with pytest.raises(ServerError, match=f"cannot serve events on 127.0.0.1:{srv.port}"):
            open_server(parser.parse_args(["--serve", str(srv.port)]))
    finally:
        srv.close()


def test_remote_listening_hears_the_band_passed_stream():
    import queue as queue_module

    from steth.host.listen import Listener

    class Capture(Listener):
        def __init__(self) -> None:
            super().__init__(8000)
            self.heard: list[np.ndarray] = []

        def feed(self, samples: np.ndarray) -> None:
            self.heard.append(np.asarray(samples))

    t = np.arange(8000) / 8000
    hum = (np.sin(2 * np.pi * 10 * t) * 10000).astype(np.int16)  # below the 60 Hz edge
    tone = (np.sin(2 * np.pi * 500 * t) * 10000).astype(np.int16)
    stream = [ev.make_audio(start=0, samples=hum, rate_hz=8000, t=1.0),
              ev.make_audio(start=8000, samples=tone, rate_hz=8000, t=2.0)]
    listener = Capture()
    events: queue_module.Queue = queue_module.Queue()
    remote.pump(stream, events, None, listener, threading.Event())
    assert events.get_nowait() is None  # audio never reaches the screen; then end of stream
    hum_out, tone_out = (np.abs(x[4000:]).max() for x in listener.heard)
    assert hum_out < 0.03 and 0.25 < tone_out < 0.35  # 10 Hz removed, 500 Hz kept (0.305 FS)
