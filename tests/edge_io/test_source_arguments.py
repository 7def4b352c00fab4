"""add_source_arguments / open_transport: the options edge-run exposes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from steth.edge.transport import SourceError, add_source_arguments, open_transport
from steth.edge.transports.serial_link import SerialTransport
from steth.edge.transports.simulated import SimulatedTransport


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-run")
    add_source_arguments(parser)
    return parser.parse_args(list(argv))


def test_exactly_one_source_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse()
    with pytest.raises(SystemExit):
        parse("--port", "/dev/ttyUSB0", "--simulate")
    assert "not allowed with argument" in capsys.readouterr().err


def test_simulation_options_reach_the_simulated_device() -> None:
    args = parse(
        "--simulate", "--sim-rate-bpm", "24", "--sim-crackles", "--sim-wheezes", "0.25",
        "--sim-crc-errors", "3", "--sim-seed", "9", "--speed", "max",
    )  # fmt: skip
    transport = open_transport(args)
    assert isinstance(transport, SimulatedTransport) and transport.simulated
    assert transport.patient.breath_rate_bpm == 24 and transport.patient.crackle_fraction == 1.0
    assert transport.patient.wheeze_fraction == 0.25 and transport.patient.seed == 9
    assert transport.faults.crc_errors == 3 and math.isinf(transport.speed)


def test_bad_option_values_are_rejected_by_the_parser() -> None:
    for argv in (
        ["--simulate", "--speed", "0"],
        ["--simulate", "--sim-crackles", "2"],
        ["--simulate", "--sim-crc-errors", "-1"],
    ):
        with pytest.raises(SystemExit):
            parse(*argv)


def test_bad_breath_rate_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="breath rate"):
        open_transport(parse("--simulate", "--sim-rate-bpm", "500"))


def test_missing_serial_port_is_not_fatal_and_never_simulates(tmp_path: Path) -> None:
    messages: list[str] = []
    transport = open_transport(parse("--port", str(tmp_path / "gone")), messages.append)
    try:
        assert isinstance(transport, SerialTransport) and not transport.simulated
        assert transport.read(0.01) == b""
        assert len(messages) == 1 and "not found" in messages[0]
    finally:
        transport.close()


def test_replay_of_missing_file_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found"):
        open_transport(parse("--replay", str(tmp_path / "missing.wav")))


def test_ble_by_name_needs_an_allow_list() -> None:
    with pytest.raises(SourceError, match="--ble-allow"):
        open_transport(parse("--ble", "STETH"))


def test_only_the_simulator_is_marked_simulated(tmp_path: Path) -> None:
    serial_link = open_transport(parse("--port", str(tmp_path / "x")), lambda _m: None)
    serial_link.close()
    assert not serial_link.simulated
    assert open_transport(parse("--simulate")).simulated
