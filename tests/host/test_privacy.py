"""Privacy of the event stream: TLS (or a loud opt-out) off the host, wrong tokens
rate-limited."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from steth.edge import event_server
from steth.edge.event_server import (
    AuthError,
    EventClient,
    ServerError,
    TcpEventServer,
    add_server_arguments,
    open_server,
)
from steth.host import remote
from tests.conftest import require_tool

TOKEN = "correct-horse-battery-staple-42"
EDGE_RUN = str(Path(sys.executable).with_name("edge-run"))


def server_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    return parser


def make_cert(folder: Path, name: str = "edge") -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (and its 0600 key)."""
    openssl = require_tool("openssl")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    f"/CN={name}", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("tls")
    return {"edge": make_cert(folder, "edge"), "other": make_cert(folder, "other")}


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass  # the server closed with our bytes unread: that is a reset, not an end
    return data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ----------------------------------------------------------------------------- off-host

def test_binding_every_interface_needs_tls_or_the_insecure_flag(monkeypatch, capsys):
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    parser = server_parser()
    with pytest.raises(ServerError, match="--tls-cert"):
        open_server(parser.parse_args(["--serve", "0", "--serve-host", "0.0.0.0"]))
    srv = open_server(parser.parse_args(["--serve", "0", "--serve-host", "0.0.0.0",
                                         "--serve-insecure"]))
    try:
        assert srv is not None and srv.host == "0.0.0.0"
        err = capsys.readouterr().err
        assert err.startswith("WARNING") and "plain TCP" in err and err.count("\n") == 1
        assert srv.warning is not None and "plain TCP" in srv.warning
    finally:
        assert srv is not None
        srv.close()
    with pytest.raises(ServerError, match="--tls-cert"):
        TcpEventServer(TOKEN, host="0.0.0.0", port=0)


def test_edge_run_off_host_without_tls_is_one_line_and_exit_2():
    env = dict(os.environ, STETH_TOKEN=TOKEN)
    result = subprocess.run([EDGE_RUN, "--simulate", "--no-dashboard", "--duration", "1",
                             "--serve", str(free_port()), "--serve-host", "0.0.0.0"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if "SIMULATED" not in x]
    assert len(lines) == 1 and "--tls-cert" in lines[0] and "Traceback" not in result.stderr


def test_edge_run_serve_insecure_warns_on_stderr_and_on_the_event_stream():
    env = dict(os.environ, STETH_TOKEN=TOKEN)
    result = subprocess.run([EDGE_RUN, "--simulate", "--no-dashboard", "--duration", "1",
                             "--serve", str(free_port()), "--serve-host", "0.0.0.0",
                             "--serve-insecure"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert [x for x in result.stderr.splitlines() if x.startswith("WARNING")]
    statuses = [e for e in map(json.loads, result.stdout.splitlines())
                if e["type"] == "status" and e["level"] == "warning"]
    # what the dashboard shows: it reads the same events, and hides stderr
    assert len(statuses) == 1 and "plain TCP" in statuses[0]["message"]
    assert statuses[0]["simulated"] is True


def test_tls_stream_is_verified_with_the_ca_file(certs, monkeypatch):
    cert, key = certs["edge"]
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    srv = open_server(server_parser().parse_args([
        "--serve", "0", "--serve-host", "0.0.0.0", "--tls-cert", str(cert), "--tls-key",
        str(key)]))
    assert srv is not None and srv.warning is None
    try:
        srv.write({"v": 1, "type": "mark", "t": 1.0, "label": "x", "index": None,
                   "source": "operator", "simulated": False})
        client = EventClient(TOKEN, "127.0.0.1", srv.port, ca_file=cert)
        assert client.encrypted
        client.close()
        with pytest.raises(event_server.TlsError, match="not trusted"):
            EventClient(TOKEN, "127.0.0.1", srv.port, ca_file=certs["other"][0])
        with pytest.raises(ConnectionError, match="--ca-file"):
            EventClient(TOKEN, "127.0.0.1", srv.port)  # plain TCP to a TLS server
        with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as raw:
            raw.sendall(json.dumps({"auth": TOKEN, "v": 1}).encode() + b"\n")
            assert b"auth" not in read_until_closed(raw)  # never a plain-text reply
    finally:
        srv.close()


def test_tls_client_to_a_plain_server_fails_fast_with_one_line(certs):
    srv = TcpEventServer(TOKEN, port=0)
    try:
        with pytest.raises(event_server.TlsError, match="--tls-cert"):
            EventClient(TOKEN, "127.0.0.1", srv.port, ca_file=certs["edge"][0], timeout=2)
    finally:
        srv.close()


def test_tls_key_readable_by_others_or_missing_is_refused(certs, tmp_path):
    cert, key = certs["edge"]
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    os.chmod(loose, 0o644)
    with pytest.raises(ServerError, match="chmod 600"):
        event_server.server_tls_context(cert, loose)
    with pytest.raises(ServerError, match="not found"):
        event_server.server_tls_context(tmp_path / "none.crt", key)
    with pytest.raises(ServerError, match="--tls-key"):
        open_server(server_parser().parse_args(["--serve", "0", "--tls-cert", str(cert)]))
    with pytest.raises(ServerError, match="the key does not belong to the certificate"):
        event_server.server_tls_context(certs["other"][0], key)
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    with pytest.raises(ServerError, match=r"not a PEM certificate and private key$"):
        event_server.server_tls_context(garbage, key)


def test_console_with_ca_file_attaches_and_without_it_refuses_off_host(certs, capsys,
                                                                      monkeypatch, tmp_path):
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    assert remote.main(["--host", "192.0.2.7", "--port", "9"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--ca-file" in err and "--insecure" in err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    assert remote.main(["--ca-file", str(garbage)]) == 1
    assert capsys.readouterr().err == (f"steth-console: CA file {garbage} holds no PEM "
                                       "certificate\n")
    help_text = remote.build_parser().format_help()
    assert "--ca-file" in help_text and "--insecure" in help_text
    args = remote.build_parser().parse_args(["--host", "192.0.2.7", "--insecure"])
    warning = remote.transport_warning(args)
    assert warning is not None and "plain TCP" in warning
    assert remote.transport_warning(remote.build_parser().parse_args([])) is None
    srv = TcpEventServer(TOKEN, port=0, tls=event_server.server_tls_context(*certs["other"]))
    try:  # a certificate the CA file does not vouch for: one line, exit 1
        assert remote.main(["--port", str(srv.port), "--ca-file", str(certs["edge"][0])]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not trusted" in err
    finally:
        srv.close()


# ----------------------------------------------------------------------------- wrong tokens

def test_wrong_tokens_are_rate_limited_per_address():
    now = [1000.0]
    srv = TcpEventServer(TOKEN, port=0, max_wrong_tokens=3, wrong_token_window_s=60.0,
                         clock=lambda: now[0])
    try:
        for _ in range(3):
            with pytest.raises(AuthError, match=r"wrong token$"):
                EventClient("x" * 20, port=srv.port)
        with pytest.raises(AuthError, match=r"too many wrong tokens .*limit 3 per 60 s"):
            EventClient("x" * 20, port=srv.port)
        with pytest.raises(AuthError, match="too many wrong tokens"):
            EventClient(TOKEN, port=srv.port)  # not even checked while the limit holds
        now[0] += 61.0
        EventClient(TOKEN, port=srv.port).close()
    finally:
        srv.close()
    assert "10 wrong tokens per minute" in " ".join(server_parser().format_help().split())
