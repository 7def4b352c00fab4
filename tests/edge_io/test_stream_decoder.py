"""StreamDecoder unit tests on hand-built protocol streams (no I/O)."""

from __future__ import annotations

import numpy as np
import pytest
from edge_io_support import (
    RATE,
    assert_accounted,
    assert_timeline_consistent,
    audio_of,
    device_framer,
    gaps_of,
    ramp_audio,
)

from steth.edge import protocol
from steth.edge.decode import (
    GAP_CRC_ERROR,
    GAP_DEVICE_DROPPED,
    GAP_DEVICE_RESET,
    GAP_LOST_FRAMES,
    GAP_STREAM_RESTART,
    ProtocolVersionError,
    StatusReport,
    StreamDecoder,
)
from steth.edge.protocol import AdpcmState, AudioAdpcm, DeviceInfo, Flag


def decode_all(decoder: StreamDecoder, data: bytes, chunk: int = 997, t0: float = 0.0):
    items = []
    for n, offset in enumerate(range(0, len(data), chunk)):
        items += decoder.feed(data[offset : offset + chunk], t0 + 0.01 * n)
    return items


def test_clean_stream_passes_every_sample_through_in_order() -> None:
    framer = device_framer()
    audio = ramp_audio(RATE * 2)
    data = framer.start() + b"".join(framer.audio(audio))
    decoder = StreamDecoder(start_monotonic=0.0)
    items = decode_all(decoder, data)
    assert isinstance(items[0], DeviceInfo)
    chunks = audio_of(items)
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), audio)
    assert chunks[0].start_index == 0 and all(c.sample_rate == RATE for c in chunks)
    statuses = [i for i in items if isinstance(i, StatusReport)]
    assert [s.stream_index for s in statuses] == [8000, 16000]  # one per device second
    stats = decoder.stats()
    assert (stats.crc_errors, stats.gaps, stats.resyncs, stats.skipped_bytes) == (0, 0, 0, 0)
    assert stats.frames == 1 + 100 + 2 and stats.audio_samples == audio.size
    assert stats.decoded_bytes == len(data)
    assert_accounted(stats)


def test_crc_error_is_dropped_counted_and_reported_as_gap() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(1600))]
    bad = bytearray(frames[4])
    bad[30] ^= 0x01
    frames[4] = bytes(bad)
    decoder = StreamDecoder()
    items = decode_all(decoder, b"".join(frames))
    (gap,) = gaps_of(items)
    # Frame 4 is the 4th audio frame: samples 480..639 are gone, nothing else.
    assert (gap.expected_index, gap.received_index, gap.lost_samples) == (480, 640, 160)
    assert gap.reason == GAP_CRC_ERROR and gap.lost_frames == 1
    stats = decoder.stats()
    assert stats.crc_errors == 1 and stats.gaps == 1 and stats.resyncs == 1
    assert stats.dropped_bytes == 1 and stats.skipped_bytes == len(bad) - 1
    assert stats.audio_samples == 1600 - 160
    assert_accounted(stats)
    assert_timeline_consistent(items)


def test_garbage_between_frames_is_skipped_and_resynced_without_losing_audio() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(1600))]
    garbage = bytes(range(0x10, 0x90)) * 3
    frames.insert(3, garbage)
    decoder = StreamDecoder()
    items = decode_all(decoder, b"".join(frames), chunk=50)
    assert not gaps_of(items)
    assert np.array_equal(np.concatenate([c.samples for c in audio_of(items)]), ramp_audio(1600))
    stats = decoder.stats()
    assert stats.skipped_bytes == len(garbage) and stats.resyncs == 1 and stats.crc_errors == 0
    assert_accounted(stats)


def test_lost_bytes_inside_a_frame_cost_exactly_that_frame() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(1600))]
    frames[5] = frames[5][:100] + frames[5][180:]  # 80 bytes vanish mid-frame
    decoder = StreamDecoder()
    items = decode_all(decoder, b"".join(frames))
    (gap,) = gaps_of(items)
    assert gap.lost_samples == 160 and gap.expected_index == 640
    assert decoder.stats().audio_samples == 1600 - 160
    assert_accounted(decoder.stats())
    assert_timeline_consistent(items)


def test_sequence_gap_with_whole_frames_missing_is_lost_frames() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(1600))]
    del frames[3:6]
    decoder = StreamDecoder()
    items = decode_all(decoder, b"".join(frames))
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_LOST_FRAMES and gap.lost_frames == 3 and gap.lost_samples == 480
    stats = decoder.stats()
    assert stats.lost_frames == 3 and stats.lost_samples == 480 and stats.crc_errors == 0


def test_sample_jump_without_sequence_gap_is_a_device_side_drop() -> None:
    framer = device_framer()
    data = framer.start() + b"".join(framer.audio(ramp_audio(320)))
    framer.skip_samples(1000)  # e.g. an ADC overrun: the device skipped samples
    data += b"".join(framer.audio(ramp_audio(320)))
    items = decode_all(StreamDecoder(), data)
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_DEVICE_DROPPED and gap.lost_samples == 1000 and gap.lost_frames == 0


def test_stream_start_after_stop_reports_a_restart_gap() -> None:
    framer = device_framer()
    data = framer.start() + b"".join(framer.audio(ramp_audio(320)))
    framer.skip_samples(8000)  # stopped for a second; the sample clock runs on
    framer.stream_restart()
    data += framer.start() + b"".join(framer.audio(ramp_audio(320)))
    items = decode_all(StreamDecoder(), data)
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_STREAM_RESTART and gap.lost_samples == 8000


def test_device_reset_restarts_sequence_and_index_and_is_never_stitched() -> None:
    framer = device_framer()
    decoder = StreamDecoder(start_monotonic=0.0)
    first = decoder.feed(framer.start() + b"".join(framer.audio(ramp_audio(800))), 1.0)
    # The device reboots; 0.5 s later its new stream (seq 0, index 0) arrives.
    second = decoder.feed(framer.reset() + b"".join(framer.audio(ramp_audio(800))), 1.5)
    (gap,) = gaps_of(second)
    assert gap.reason == GAP_DEVICE_RESET
    assert gap.expected_index == 800
    # 0.5 s at 8 kHz minus the first new frame's 160 samples, estimated from arrival times.
    assert gap.lost_samples == 4000 - 160
    chunks = audio_of(second)
    assert chunks[0].start_index == gap.received_index
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), ramp_audio(800))
    stats = decoder.stats()
    assert stats.device_resets == 1 and stats.lost_frames == 0
    assert_timeline_consistent(first + second)


def test_rate_change_announced_mid_stream_updates_chunks_and_stats() -> None:
    framer = device_framer()
    data = framer.start() + b"".join(framer.audio(ramp_audio(1600)))
    data += framer.change_rate(4000) + b"".join(framer.audio(ramp_audio(1600)))
    decoder = StreamDecoder()
    items = decode_all(decoder, data)
    infos = [i for i in items if isinstance(i, DeviceInfo)]
    assert [i.sample_rate_hz for i in infos] == [8000, 4000]
    rates = [c.sample_rate for c in audio_of(items)]
    assert rates[:10] == [8000] * 10 and rates[-10:] == [4000] * 10
    stats = decoder.stats()
    assert stats.rate_changes == 1 and stats.nominal_rate_hz == 4000 and stats.gaps == 0


def test_unknown_major_version_is_fatal_with_a_one_line_message() -> None:
    info = device_framer().info
    frame = protocol.encode_frame(protocol.MsgType.DEVICE_INFO, info, seq=0, major=2)
    decoder = StreamDecoder()
    with pytest.raises(ProtocolVersionError) as raised:
        decoder.feed(b"\x00\x01" + frame, 0.0)
    message = str(raised.value)
    assert "2.0" in message and "update" in message and "\n" not in message
    stats = decoder.stats()
    assert stats.version_errors == 1 and stats.dropped_bytes == len(frame)
    assert_accounted(stats)


def test_higher_minor_version_and_unknown_types_are_accepted() -> None:
    framer = device_framer()
    newer = protocol.encode_frame(0x7E, b"future", seq=1, minor=3)
    data = framer.start() + newer
    framer.seq = 2
    data += b"".join(framer.audio(ramp_audio(160)))
    decoder = StreamDecoder()
    items = decode_all(decoder, data)
    assert len(audio_of(items)) == 1 and not gaps_of(items)
    assert decoder.stats().unknown_frames == 1


def test_audio_before_device_info_is_not_trusted_and_info_is_requested() -> None:
    framer = device_framer()
    framer.start()  # sent before we connected: never seen
    decoder = StreamDecoder(start_monotonic=0.0)
    assert decoder.needs_device_info
    request = decoder.device_info_request(0.0)
    assert request is not None
    command = protocol.decode_frame(request).message()
    assert command == protocol.Command.get_info()
    assert decoder.device_info_request(0.5) is None  # at most once a second
    assert decoder.device_info_request(1.0) is not None
    early = decoder.feed(b"".join(framer.audio(ramp_audio(480))), 0.1)
    assert not audio_of(early)
    late = decoder.feed(framer.start() + b"".join(framer.audio(ramp_audio(480))), 0.2)
    assert len(audio_of(late)) == 3 and not gaps_of(late)
    stats = decoder.stats()
    assert stats.untrusted_audio_frames == 3 and decoder.device_info_request(5.0) is None
    assert_accounted(stats)


def test_duplicate_frame_is_dropped_not_repeated() -> None:
    framer = device_framer()
    frames = [framer.start(), *framer.audio(ramp_audio(480))]
    frames.insert(2, frames[1])
    decoder = StreamDecoder()
    items = decode_all(decoder, b"".join(frames))
    assert sum(c.samples.size for c in audio_of(items)) == 480
    assert decoder.stats().duplicate_frames == 1 and not gaps_of(items)
    assert_accounted(decoder.stats())


def test_sample_index_wrap_is_continuous() -> None:
    framer = device_framer()
    framer.sample_index = protocol.SAMPLE_INDEX_MODULUS - 320
    data = framer.start() + b"".join(framer.audio(ramp_audio(960)))
    items = decode_all(StreamDecoder(), data)
    chunks = audio_of(items)
    assert not gaps_of(items) and len(chunks) == 6
    assert chunks[-1].end_index == protocol.SAMPLE_INDEX_MODULUS + 640  # unwrapped


def test_adpcm_frames_are_decoded_from_their_own_state() -> None:
    info = DeviceInfo(7, 1, 0, 0, 1, 8000, 12, 1, 1, 1, 320)
    samples = (np.sin(np.arange(640) / 5) * 8000).astype(np.int16)
    state = AdpcmState()
    data = protocol.encode_message(info, seq=0)
    for k in range(2):
        block = samples[320 * k : 320 * (k + 1)]
        message = AudioAdpcm.from_samples(block, state)
        state = protocol.adpcm_encode(block, state)[1]
        data += protocol.encode_message(message, seq=1 + k, sample_index=320 * k)
    items = decode_all(StreamDecoder(), data)
    chunks = audio_of(items)
    assert [c.start_index for c in chunks] == [0, 320]
    expected = protocol.adpcm_decode(protocol.adpcm_encode(samples)[0])[0]
    assert np.array_equal(np.concatenate([c.samples for c in chunks]), expected)


def test_malformed_payload_is_dropped_and_counted() -> None:
    framer = device_framer()
    data = framer.start()
    data += protocol.encode_frame(protocol.MsgType.AUDIO_PCM16, b"\x01\x02\x03", seq=1)
    decoder = StreamDecoder()
    assert not audio_of(decode_all(decoder, data))
    stats = decoder.stats()
    assert stats.malformed_frames == 1 and stats.dropped_bytes == 18 + 3
    assert_accounted(stats)


def test_clipped_flag_is_carried() -> None:
    framer = device_framer()
    data = framer.start() + protocol.encode_message(
        protocol.AudioPcm16(ramp_audio(160)), seq=1, flags=Flag.CLIPPED
    )
    (chunk,) = audio_of(decode_all(StreamDecoder(), data))
    assert chunk.clipped


def test_measured_rate_follows_arrival_times_not_the_nominal_rate() -> None:
    # The device claims 8000 Hz but its crystal runs 0.5 % fast: 8040 samples per second.
    framer = device_framer()
    decoder = StreamDecoder(start_monotonic=0.0)
    decoder.feed(framer.start(), 0.0)
    true_rate = 8040.0
    jitter = np.random.default_rng(1).uniform(0, 0.004, 500)
    for k in range(500):
        frame = b"".join(framer.audio(ramp_audio(160)))
        decoder.feed(frame, (k + 1) * 160 / true_rate + jitter[k])
    stats = decoder.stats()
    assert stats.nominal_rate_hz == 8000
    assert stats.measured_rate_hz == pytest.approx(true_rate, rel=1e-3)


def test_device_clock_rate_comes_from_status_uptime() -> None:
    framer = device_framer()
    # The device's independent clock says each 8000-sample second took 1.001 s.
    framer.uptime_us = lambda index: index * 1001 // 8
    data = framer.start() + b"".join(framer.audio(ramp_audio(8000 * 4)))
    decoder = StreamDecoder()
    decode_all(decoder, data)
    assert decoder.stats().device_clock_rate_hz == pytest.approx(8000 / 1.001, rel=1e-6)


def test_silent_device_is_stale_within_two_seconds() -> None:
    framer = device_framer()
    decoder = StreamDecoder(start_monotonic=10.0)
    assert not decoder.stats().is_stale(11.0)
    assert decoder.stats().is_stale(12.0)  # never sent anything
    decoder.feed(framer.start() + b"".join(framer.audio(ramp_audio(160))), 20.0)
    stats = decoder.stats()
    assert stats.seconds_since_last_frame(21.5) == pytest.approx(1.5)
    assert not stats.is_stale(21.5) and stats.is_stale(22.0)


def test_reset_whose_device_info_was_lost_is_found_from_the_index() -> None:
    framer = device_framer()
    data = framer.start() + b"".join(framer.audio(ramp_audio(16000)))  # seq reaches ~110
    framer.reset()  # its DeviceInfo (seq 0) never arrives
    data += b"".join(framer.audio(ramp_audio(800)))
    decoder = StreamDecoder()
    items = decode_all(decoder, data)
    (gap,) = gaps_of(items)
    assert gap.reason == GAP_DEVICE_RESET
    stats = decoder.stats()
    assert stats.device_resets == 1 and stats.lost_frames == 0
    assert_timeline_consistent(items)


def test_rate_deviation_is_reported_in_ppm() -> None:
    framer = device_framer()
    decoder = StreamDecoder(start_monotonic=0.0)
    decoder.feed(framer.start(), 0.0)
    for k in range(200):
        decoder.feed(b"".join(framer.audio(ramp_audio(160))), (k + 1) * 160 / 7992.0)
    assert decoder.stats().rate_deviation_ppm == pytest.approx(-1000.0, abs=5.0)
