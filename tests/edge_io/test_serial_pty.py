"""Serial transport + decoder on a REAL pseudo-terminal: the faults a bedside cable sees.

Each test drives a device end (PtyDevice) and reads through SerialTransport and
StreamDecoder exactly as edge-run does; the process must survive, show the fault in its
statistics and resume.
"""

from __future__ import annotations

import errno
import time
from pathlib import Path

import numpy as np
import pytest
import serial
from edge_io_support import (
    BackgroundWriter,
    PtyDevice,
    assert_accounted,
    assert_timeline_consistent,
    audio_of,
    device_framer,
    gaps_of,
    pump_until,
    ramp_audio,
)

from steth.edge import protocol
from steth.edge.decode import GAP_CRC_ERROR, GAP_DEVICE_RESET, GAP_LOST_FRAMES, StreamDecoder
from steth.edge.transports.base import Backoff
from steth.edge.transports.serial_link import SerialTransport, describe_open_error


@pytest.fixture
def device(tmp_path: Path):
    pty = PtyDevice(tmp_path)
    yield pty
    pty.close()


@pytest.fixture
def messages() -> list[str]:
    return []


@pytest.fixture
def transport(device: PtyDevice, messages: list[str]):
    link = SerialTransport(str(device.path), on_message=messages.append, backoff=Backoff(0.05, 0.2))
    assert link.connect()
    yield link
    link.close()


def samples_received(count: int):
    return lambda items: sum(c.samples.size for c in audio_of(items)) >= count


def test_bytes_flow_both_ways(device: PtyDevice, transport: SerialTransport) -> None:
    framer = device_framer()
    device.write(framer.start() + b"".join(framer.audio(ramp_audio(1600))))
    decoder = StreamDecoder()
    items = pump_until(transport, decoder, samples_received(1600))
    assert np.array_equal(np.concatenate([c.samples for c in audio_of(items)]), ramp_audio(1600))
    transport.write(b"\xa5\x5acommand")
    assert device.read_host() == b"\xa5\x5acommand"


def test_garbage_bursts_are_skipped_and_streaming_resumes(
    device: PtyDevice, transport: SerialTransport
) -> None:
    framer = device_framer()
    rng = np.random.default_rng(0)
    chunks = [framer.start()]
    for _ in range(5):
        chunks += framer.audio(ramp_audio(800))
        chunks.append(rng.integers(0, 256, 500, dtype=np.uint8).tobytes())
    chunks += framer.audio(ramp_audio(800))
    writer = BackgroundWriter(device, chunks)
    decoder = StreamDecoder()
    items = pump_until(transport, decoder, samples_received(6 * 800))
    writer.join()
    stats = decoder.stats()
    assert stats.resyncs == 5 and stats.skipped_bytes >= 5 * 400
    assert not gaps_of(items)  # garbage between frames costs no audio
    assert_accounted(stats)


def test_dropped_bytes_cost_only_the_frames_they_hit(
    device: PtyDevice, transport: SerialTransport
) -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(160 * 40))]
    for k in (5, 17, 30):  # a few bytes vanish inside these frames
        frames[k] = frames[k][:50] + frames[k][53:]
    writer = BackgroundWriter(device, frames)
    decoder = StreamDecoder()
    items = pump_until(transport, decoder, samples_received(160 * 37))
    writer.join()
    gaps = gaps_of(items)
    assert [g.lost_samples for g in gaps] == [160, 160, 160]
    assert all(g.reason == GAP_CRC_ERROR for g in gaps)
    stats = decoder.stats()
    assert stats.crc_errors == 3 and stats.gaps == 3
    assert_timeline_consistent(items)
    assert_accounted(stats)


def test_unplug_and_replug_reconnects_and_reports_the_gap(
    device: PtyDevice, transport: SerialTransport, messages: list[str]
) -> None:
    framer = device_framer()
    decoder = StreamDecoder()
    device.write(framer.start() + b"".join(framer.audio(ramp_audio(1600))))
    pump_until(transport, decoder, samples_received(1600))

    device.unplug()
    pump_until(transport, decoder, lambda _: not transport.status().connected)
    assert any("lost serial link" in m for m in messages)
    # While unplugged the device keeps sampling; those frames go nowhere.
    framer.audio(ramp_audio(800))
    time.sleep(0.3)
    transport.read(0.05)  # a retry while the port is missing
    assert any("not found" in m and "--port" in m for m in messages)

    device.plug()
    deadline = time.monotonic() + 5
    while not transport.status().connected and time.monotonic() < deadline:
        transport.read(0.05)
    status = transport.status()
    assert status.connected and status.reconnects == 1 and status.disconnects == 1
    assert messages[-1].startswith("reconnected")
    assert all("\n" not in m for m in messages)

    device.write(b"".join(framer.audio(ramp_audio(1600))))
    items = pump_until(transport, decoder, samples_received(1600))
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_LOST_FRAMES and gap.lost_samples == 800 and gap.lost_frames == 5
    assert_accounted(decoder.stats())


def test_device_reset_is_a_gap_and_streaming_resumes(
    device: PtyDevice, transport: SerialTransport
) -> None:
    framer = device_framer()
    decoder = StreamDecoder()
    device.write(framer.start() + b"".join(framer.audio(ramp_audio(1600))))
    pump_until(transport, decoder, samples_received(1600))
    device.write(framer.reset() + b"".join(framer.audio(ramp_audio(1600))))
    items = pump_until(transport, decoder, samples_received(1600))
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_DEVICE_RESET and gap.expected_index == 1600
    stats = decoder.stats()
    assert stats.device_resets == 1 and stats.audio_samples == 3200


def test_rate_change_mid_stream_is_followed(device: PtyDevice, transport: SerialTransport) -> None:
    framer = device_framer()
    decoder = StreamDecoder()
    device.write(framer.start() + b"".join(framer.audio(ramp_audio(1600))))
    pump_until(transport, decoder, samples_received(1600))
    device.write(framer.change_rate(16000) + b"".join(framer.audio(ramp_audio(1600))))
    items = pump_until(transport, decoder, samples_received(1600))
    assert {c.sample_rate for c in audio_of(items)} == {16000}
    stats = decoder.stats()
    assert stats.rate_changes == 1 and stats.nominal_rate_hz == 16000 and stats.gaps == 0


def test_silent_device_is_visible_as_stale_within_two_seconds(
    device: PtyDevice, transport: SerialTransport
) -> None:
    framer = device_framer()
    decoder = StreamDecoder()
    device.write(framer.start() + b"".join(framer.audio(ramp_audio(800))))
    pump_until(transport, decoder, samples_received(800))
    went_quiet = time.monotonic()
    stale_at = None
    while time.monotonic() - went_quiet < 3.0:
        data = transport.read(0.1)
        now = time.monotonic()
        decoder.feed(data, now)
        if decoder.stats().is_stale(now):
            stale_at = now
            break
    # Flagged at the first poll 2 s after the last audio (the exact threshold is pinned in
    # test_stream_decoder.py); the slack only covers the 0.1 s poll and a loaded machine.
    assert stale_at is not None and decoder.stats().seconds_since_last_audio(stale_at) >= 2.0
    assert stale_at - went_quiet <= 2.5
    assert transport.status().connected  # a silent device is not an unplugged one
    device.write(b"".join(framer.audio(ramp_audio(160))))
    pump_until(transport, decoder, samples_received(160))
    assert not decoder.stats().is_stale(time.monotonic())


def test_missing_port_prints_one_line_and_keeps_retrying(tmp_path: Path) -> None:
    messages: list[str] = []
    link = SerialTransport(
        str(tmp_path / "ttyUSB9"), on_message=messages.append, backoff=Backoff(0.01, 0.02)
    )
    for _ in range(10):
        assert link.read(0.01) == b""
    link.close()
    assert len(messages) == 1  # the same problem is reported once, not on every retry
    assert "not found" in messages[0] and "\n" not in messages[0]
    assert not link.status().connected and link.status().last_error == messages[0]


def test_port_appearing_later_is_picked_up(tmp_path: Path) -> None:
    messages: list[str] = []
    late = PtyDevice(tmp_path)
    path = str(late.path)
    late.unplug()
    link = SerialTransport(path, on_message=messages.append, backoff=Backoff(0.02, 0.05))
    link.read(0.01)
    late.plug()
    deadline = time.monotonic() + 3
    while not link.status().connected and time.monotonic() < deadline:
        link.read(0.02)
    assert link.status().connected and link.status().reconnects == 0
    link.close()
    late.close()


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (errno.ENOENT, "not found"),
        (errno.EACCES, "dialout"),
        (errno.EBUSY, "in use"),
        (errno.ENOTTY, "not a serial device"),
        (errno.EIO, "cannot open"),
    ],
)
def test_open_errors_name_the_fix(code: int, hint: str) -> None:
    messages: list[str] = []

    def refuse(*_args, **_kwargs):
        raise serial.SerialException(code, f"could not open port: [Errno {code}]")

    link = SerialTransport("/dev/ttyUSB0", on_message=messages.append, serial_factory=refuse)
    assert link.read(0.0) == b""
    assert len(messages) == 1 and hint in messages[0] and "/dev/ttyUSB0" in messages[0]
    assert describe_open_error("/dev/x", OSError(code, "x")).count("\n") == 0


def test_get_info_request_reaches_the_device(device: PtyDevice, transport: SerialTransport) -> None:
    decoder = StreamDecoder()
    request = decoder.device_info_request(time.monotonic())
    assert request is not None
    transport.write(request)
    received = device.read_host()
    assert protocol.decode_frame(received).message() == protocol.Command.get_info()
