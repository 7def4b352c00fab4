"""A frame of another protocol major: skipped mid-stream, a clear error from a device that
announces itself in it (at start-up or after a reset), on stderr and in the event stream."""

from __future__ import annotations

import argparse
import threading

import numpy as np
import pytest
from edge_io_support import assert_accounted, audio_of, device_framer, gaps_of, ramp_audio

from steth.edge import protocol
from steth.edge.decode import ProtocolVersionError, StreamDecoder
from steth.edge.event_writers import MultiWriter
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel
from steth.edge.pipeline import Pipeline
from steth.edge.runner import EXIT_PROTOCOL, EdgeSession
from steth.edge.transport import Transport
from tests.foundation.tiny_model import make_tiny_model


def as_major(frame: bytes, major: int) -> bytes:
    """The same frame sent under another protocol major, with a valid CRC."""
    body = bytearray(frame[:-protocol.CRC_SIZE])
    body[2] = major
    return bytes(body) + protocol.crc(bytes(body)).to_bytes(protocol.CRC_SIZE, "little")


def test_one_frame_of_another_major_mid_stream_is_counted_and_skipped() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(160 * 10))]
    frames[5] = as_major(frames[5], 2)
    decoder = StreamDecoder(start_monotonic=0.0)
    items = decoder.feed(b"".join(frames), 0.0)  # must not raise
    stats = decoder.stats()
    assert stats.version_errors == 1
    assert len(audio_of(items)) == 9  # every other audio frame came through
    gaps = gaps_of(items)
    assert len(gaps) == 1 and gaps[0].lost_samples == 160
    assert_accounted(stats)


def test_a_hello_in_another_major_after_a_reset_is_the_clear_error() -> None:
    framer = device_framer()
    data = framer.start() + b"".join(framer.audio(ramp_audio(160 * 4)))
    decoder = StreamDecoder(start_monotonic=0.0)
    decoder.feed(data, 0.0)
    with pytest.raises(ProtocolVersionError, match="update the edge software"):
        decoder.feed(as_major(framer.reset(), 2), 1.0)


def test_audio_in_another_major_before_any_hello_is_the_clear_error() -> None:
    framer = device_framer()
    framer.start()  # sent before we listened
    audio = framer.audio(ramp_audio(160))
    with pytest.raises(ProtocolVersionError):
        StreamDecoder(start_monotonic=0.0).feed(as_major(audio[0], 3), 0.0)


class OneShot(Transport):
    """Delivers one block of bytes, then nothing."""

    name = "test"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, timeout: float) -> bytes:
        data, self.data = self.data, b""
        return data

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def test_the_protocol_error_reaches_the_event_stream(tmp_path, capsys) -> None:
    model = CycleModel(make_tiny_model(tmp_path), expected_feature_hash=FeatureConfig().hash())
    events: list[dict] = []
    lock = threading.Lock()

    def emit(event: dict) -> None:
        with lock:
            events.append(event)

    class Sink:
        def write(self, event: dict) -> None:
            emit(event)

        def close(self) -> None:
            pass

    sinks = MultiWriter([Sink()])
    pipeline = Pipeline(model, sinks.write, simulated=False, transport="test")
    framer = device_framer()
    args = argparse.Namespace(duration=2.0, sim_duration=0.0)
    session = EdgeSession(args, model, OneShot(as_major(framer.start(), 2)), sinks, pipeline)
    try:
        assert session.run() == EXIT_PROTOCOL
    finally:
        session.close()
    assert "update the edge software" in capsys.readouterr().err
    errors = [e for e in events if e["type"] == "status" and e["level"] == "error"]
    assert errors and errors[0]["code"] == "protocol_version", events
    assert "update the edge software" in errors[0]["message"]
    assert np.all([e["v"] == 1 for e in events])
