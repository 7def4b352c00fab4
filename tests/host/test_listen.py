"""Live listening through an injected fake sounddevice module."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from steth.host.listen import Listener, NoOutputDeviceError


class FakeStream:
    def __init__(self, callback, **kwargs) -> None:
        self.callback = callback
        self.kwargs = kwargs
        self.started = self.closed = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


class FakeSoundDevice:
    def __init__(self, has_output: bool = True) -> None:
        self.has_output = has_output
        self.streams: list[FakeStream] = []

    def query_devices(self, device=None, kind=None):
        if not self.has_output:
            raise ValueError("No output device matching ''")
        return {"name": "fake", "max_output_channels": 2}

    def OutputStream(self, callback, **kwargs):  # noqa: N802 (sounddevice API name)
        stream = FakeStream(callback, **kwargs)
        self.streams.append(stream)
        return stream


def pull(stream: FakeStream, frames: int) -> np.ndarray:
    out = np.full((frames, 1), 9.0, dtype=np.float32)
    stream.callback(out, frames, None, None)
    return out[:, 0].copy()


def test_no_output_device_is_a_clear_message():
    listener = Listener(8000, sd=FakeSoundDevice(has_output=False))
    with pytest.raises(NoOutputDeviceError, match="no audio output device found"):
        listener.start()


def test_missing_sounddevice_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(NoOutputDeviceError, match="pip install sounddevice"):
        Listener(8000).start()


def test_plays_after_the_fixed_delay_at_the_set_volume():
    sd = FakeSoundDevice()
    listener = Listener(8000, volume=0.5, delay_s=0.1, sd=sd)
    listener.start()
    stream = sd.streams[0]
    assert stream.started and stream.kwargs["samplerate"] == 8000
    signal = (np.arange(1200) * 20).astype(np.int16)
    listener.feed(signal[:400])
    assert not pull(stream, 256).any()  # 50 ms buffered < 100 ms delay: silence
    listener.feed(signal[400:])
    played = np.concatenate([pull(stream, 256) for _ in range(4)])
    expected = signal.astype(np.float32) / 32768 * 0.5
    assert np.allclose(played[:1024], expected[:1024])
    listener.set_volume(3.0)
    assert listener.volume == 1.0
    listener.close()
    assert stream.closed


def test_underrun_plays_silence_and_reprimes():
    sd = FakeSoundDevice()
    listener = Listener(8000, delay_s=0.02, sd=sd)  # 160 samples
    listener.start()
    listener.feed(np.full(200, 1000, dtype=np.int16))
    out = pull(sd.streams[0], 256)
    assert out[:200].all() and not out[200:].any()
    assert listener.underruns == 1
    listener.feed(np.full(100, 1000, dtype=np.int16))  # below the delay again
    assert not pull(sd.streams[0], 64).any()


def test_feed_never_blocks_and_keeps_the_newest_audio():
    sd = FakeSoundDevice()
    listener = Listener(8000, delay_s=0.1, sd=sd)
    listener.start()
    for block in range(100):  # 2 s of audio, nobody playing it
        listener.feed(np.full(160, block, dtype=np.int16))
    assert listener.dropped > 0
    played = pull(sd.streams[0], 160) * 32768 / listener.volume
    assert np.allclose(played, 95)  # the newest 100 ms (5 blocks): the fixed delay holds


def test_cli_arguments_open_a_listener_only_when_asked():
    import argparse

    from steth.host.listen import add_listen_arguments, open_listener

    parser = argparse.ArgumentParser()
    add_listen_arguments(parser)
    assert open_listener(parser.parse_args([]), 8000, sd=FakeSoundDevice()) is None
    sd = FakeSoundDevice()
    listener = open_listener(parser.parse_args(["--listen", "--volume", "0.2",
                                                "--listen-delay", "0.05"]), 8000, sd=sd)
    assert listener is not None and listener.volume == 0.2 and listener.delay == 400
    assert sd.streams[0].started
    with pytest.raises(NoOutputDeviceError, match="no audio output device"):
        open_listener(parser.parse_args(["--listen"]), 8000, sd=FakeSoundDevice(False))
