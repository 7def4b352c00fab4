"""Replay of WAV/FLAC recordings through a real pty, as a device on a serial port."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
from edge_io_support import assert_accounted, audio_of, gaps_of

from steth.edge import protocol
from steth.edge.decode import StreamDecoder
from steth.edge.runner import run_decoder_only
from steth.edge.transports.base import SourceError
from steth.edge.transports.replay import ReplayTransport, load_replay_audio


def write_audio(path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    soundfile.write(path, samples, rate, subtype=subtype)
    return path


def replay_all(path: Path, speed: float = math.inf, seconds: float = 20.0):
    transport = ReplayTransport(path, speed, on_message=lambda _m: None)
    decoder = StreamDecoder()
    try:
        items = run_decoder_only(transport, decoder, seconds)
        assert transport.ended
    finally:
        transport.close()
    return decoder, items


@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_replay_delivers_the_file_sample_exact_through_the_serial_path(
    tmp_path: Path, fmt: str
) -> None:
    samples = np.random.default_rng(0).integers(-30000, 30000, 8000 * 3 + 77).astype(np.int16)
    path = write_audio(tmp_path / f"rec.{fmt}", samples, 8000)
    decoder, items = replay_all(path)
    chunks = audio_of(items)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), samples)
    assert chunks[0].start_index == 0 and not gaps_of(items)
    stats = decoder.stats()
    assert stats.crc_errors == 0 and stats.skipped_bytes == 0 and stats.nominal_rate_hz == 8000
    assert_accounted(stats)


def test_other_rates_and_stereo_are_resampled_to_the_device_rate(tmp_path: Path) -> None:
    t = np.arange(44100 * 2) / 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    path = write_audio(tmp_path / "stereo.wav", np.stack([tone, tone], axis=1), 44100)
    audio = load_replay_audio(path)
    assert audio.dtype == np.int16 and audio.size == 16000
    freqs = np.fft.rfftfreq(audio.size, 1 / 8000)
    assert abs(freqs[np.argmax(np.abs(np.fft.rfft(audio)))] - 440) < 2


def test_real_time_pace_takes_the_recording_length(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "one_second.wav", np.zeros(8000, np.int16), 8000)
    started = time.monotonic()
    decoder, _ = replay_all(path, speed=1.0, seconds=10.0)
    real_time = time.monotonic() - started
    assert decoder.stats().audio_samples == 8000
    started = time.monotonic()
    decoder, _ = replay_all(path, speed=4.0, seconds=10.0)
    four_times = time.monotonic() - started
    assert decoder.stats().audio_samples == 8000
    # Never faster than asked (lower bounds are load-proof); 4x finishes sooner than 1x.
    assert real_time >= 0.95 and four_times >= 0.24 and four_times < real_time


def test_replayed_device_answers_get_info(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "short.wav", np.zeros(8000 * 2, np.int16), 8000)
    transport = ReplayTransport(path, 1.0, on_message=lambda _m: None)
    try:
        transport.write(protocol.encode_message(protocol.Command.get_info(cookie=3), seq=0))
        decoder = StreamDecoder()
        items = run_decoder_only(transport, decoder, 0.5)
    finally:
        transport.close()
    acks = [i for i in items if isinstance(i, protocol.Ack)]
    infos = [i for i in items if isinstance(i, protocol.DeviceInfo)]
    # run_decoder_only may also have asked (cookie 0) before the boot DeviceInfo arrived.
    assert 3 in [a.cookie for a in acks] and all(a.ok for a in acks)
    assert len(infos) == 1 + len(acks)  # the boot announcement plus one per GET_INFO


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found") as raised:
        ReplayTransport(tmp_path / "nope.flac")
    assert "\n" not in str(raised.value)


def test_unreadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio\n")
    with pytest.raises(SourceError, match="cannot read") as raised:
        ReplayTransport(bogus)
    assert "\n" not in str(raised.value)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "empty.wav", np.zeros(0, np.int16), 8000)
    with pytest.raises(SourceError, match="no audio"):
        load_replay_audio(path)


def test_replay_of_a_real_recording(shared_data: Path) -> None:
    recording = sorted((shared_data / "sprsound2022" / "test" / "audio").glob("*.flac"))[0]
    expected, rate = soundfile.read(recording, dtype="int16")
    assert rate == 8000
    decoder, items = replay_all(recording)
    decoded = np.concatenate([c.samples for c in audio_of(items)])
    assert np.array_equal(decoded, expected.reshape(-1))
    assert decoder.stats().gaps == 0
