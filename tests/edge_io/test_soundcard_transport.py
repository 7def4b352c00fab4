"""Sound-card transport through an injected fake sounddevice module."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
from edge_io_support import assert_accounted, assert_timeline_consistent, audio_of, gaps_of

from steth.edge import protocol
from steth.edge.decode import GAP_DEVICE_DROPPED, StreamDecoder
from steth.edge.transports.base import SourceError
from steth.edge.transports.soundcard import SoundCardTransport, parse_device


class FakePortAudioError(Exception):
    pass


class FakeInputStream:
    """Stands in for sounddevice.InputStream; the test calls ``deliver`` as PortAudio would."""

    instances: ClassVar[list[FakeInputStream]] = []
    refuse: ClassVar[bool] = False

    def __init__(self, **kwargs) -> None:
        if FakeInputStream.refuse:
            raise FakePortAudioError("Invalid sample rate [PaErrorCode -9997]")
        self.kwargs = kwargs
        self.callback = kwargs["callback"]
        self.started = self.closed = False
        self.adc_time = 1000.0
        FakeInputStream.instances.append(self)

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True

    def deliver(self, block: np.ndarray, overflow: bool = False) -> None:
        info = SimpleNamespace(inputBufferAdcTime=self.adc_time)
        status = SimpleNamespace(input_overflow=overflow, __bool__=lambda: overflow)
        self.callback(block.reshape(-1, 1), block.size, info, status if overflow else None)
        self.adc_time += block.size / 8000

    def lose(self, samples: int) -> None:
        self.adc_time += samples / 8000  # time passes, no callback: an overflow


@pytest.fixture
def fake_sd():
    FakeInputStream.instances = []
    FakeInputStream.refuse = False
    return SimpleNamespace(InputStream=FakeInputStream, PortAudioError=FakePortAudioError)


def blocks(total: int, size: int = 128) -> list[np.ndarray]:
    audio = (np.arange(total) % 2000 - 1000).astype(np.int16)
    return [audio[i : i + size] for i in range(0, total, size)]


def test_blocks_become_protocol_frames_with_the_same_samples(fake_sd) -> None:
    messages: list[str] = []
    transport = SoundCardTransport("2", sounddevice_module=fake_sd, on_message=messages.append)
    stream = FakeInputStream.instances[0]
    assert stream.started and stream.kwargs["samplerate"] == 8000 and stream.kwargs["device"] == 2
    sent = blocks(128 * 50)
    for block in sent:
        stream.deliver(block)
    decoder = StreamDecoder()
    items = decoder.feed(transport.read(0.1), 0.0)
    assert isinstance(items[0], protocol.DeviceInfo)
    decoded = np.concatenate([c.samples for c in audio_of(items)])
    # Frames hold 160 samples: the last partial frame waits for the next block.
    assert np.array_equal(decoded, np.concatenate(sent)[: decoded.size])
    assert decoded.size == 128 * 50 // 160 * 160 and not gaps_of(items)
    transport.close()
    assert stream.closed and not messages


def test_input_overflow_becomes_a_reported_gap_of_the_right_size(fake_sd) -> None:
    messages: list[str] = []
    transport = SoundCardTransport(None, sounddevice_module=fake_sd, on_message=messages.append)
    stream = FakeInputStream.instances[0]
    sent = blocks(128 * 30)
    for block in sent[:10]:
        stream.deliver(block)
    stream.lose(128 * 5)  # PortAudio dropped 5 blocks
    for block in sent[10:]:
        stream.deliver(block, overflow=block is sent[10])
    decoder = StreamDecoder()
    items = decoder.feed(transport.read(0.1), 0.0)
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_DEVICE_DROPPED and gap.lost_samples == 640
    assert gap.expected_index == 1280
    assert transport.overflows == 1 and transport.lost_samples == 640
    assert len(messages) == 1 and "overflowed" in messages[0]
    assert_timeline_consistent(items)
    assert_accounted(decoder.stats())
    transport.close()


def test_unsupported_device_settings_are_a_one_line_error(fake_sd) -> None:
    FakeInputStream.refuse = True
    with pytest.raises(SourceError, match="pick another --soundcard device") as raised:
        SoundCardTransport("USB Stethoscope", sounddevice_module=fake_sd)
    assert "\n" not in str(raised.value)


def test_missing_sounddevice_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(SourceError, match=r"pip install 'lungsound-steth\[audio\]'"):
        SoundCardTransport()


def test_device_argument_parsing() -> None:
    assert parse_device(None) is None and parse_device("default") is None
    assert parse_device("3") == 3 and parse_device("USB Audio") == "USB Audio"
