"""Privacy: only a pseudonym (never a name) names a session folder and its zip."""

from __future__ import annotations

import argparse
import socket

import pytest

from steth.host import remote
from steth.host.recorder_cli import add_recorder_arguments, open_recorder
from steth.host.session_files import RecorderError

TOKEN = "correct-horse-battery-staple-42"


def recorder_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_recorder_arguments(parser)
    return parser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_real_name_is_refused_as_patient_pseudonym_and_nothing_is_written(tmp_path):
    parser = recorder_parser()
    assert "[A-Za-z0-9_-]{1,40}" in " ".join(parser.format_help().split())  # the default
    with pytest.raises(RecorderError, match="not a pseudonym"):
        open_recorder(parser.parse_args(["--record", str(tmp_path / "rec"), "--patient",
                                         "John Smith"]))
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())
    recorder = open_recorder(parser.parse_args(["--record", str(tmp_path / "rec"),
                                                "--patient", "P-017"]))
    assert recorder is not None and recorder.session_dir.name.endswith("-P-017")
    recorder.close()


def test_the_pseudonym_pattern_is_configurable_and_checked(tmp_path):
    parser = recorder_parser()
    strict = ["--record", str(tmp_path), "--pseudonym-pattern", r"P-\d{3}"]
    with pytest.raises(RecorderError, match="not a pseudonym"):
        open_recorder(parser.parse_args([*strict, "--patient", "R1"]))
    recorder = open_recorder(parser.parse_args([*strict, "--patient", "P-018"]))
    assert recorder is not None
    recorder.close()
    with pytest.raises(RecorderError, match="--pseudonym-pattern"):
        open_recorder(parser.parse_args(["--record", str(tmp_path), "--pseudonym-pattern",
                                         "(", "--patient", "P1"]))
    with pytest.raises(RecorderError, match="folder name"):  # no pattern lets / through
        open_recorder(parser.parse_args(["--record", str(tmp_path), "--pseudonym-pattern",
                                         ".+", "--patient", "../x"]))


def test_console_refuses_a_real_name_before_it_connects(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("STETH_TOKEN", TOKEN)
    code = remote.main(["--port", str(free_port()), "--record", str(tmp_path), "--patient",
                        "John Smith"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "not a pseudonym" in err
    assert list(tmp_path.iterdir()) == []
