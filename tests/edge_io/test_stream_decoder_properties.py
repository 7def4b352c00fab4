"""Property-based tests of StreamDecoder (hypothesis).

Streams are built from real frames (audio PCM16/ADPCM, status, device info, unknown types,
counter jumps and device resets) and then damaged (garbage with sync bytes, bit flips,
lost byte ranges, duplicates, truncation) and fed in random chunks. Properties:

- no exception escapes;
- every input byte is accounted for as decoded, dropped, skipped or still pending;
- no sample is invented: every emitted chunk is exactly the samples of a frame that was
  really sent, and chunks and gaps tile a monotonic timeline.

``test_decoder_properties_many_streams`` is the >= 100 000-stream run (marked slow).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from edge_io_support import assert_accounted, assert_timeline_consistent, audio_of
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from steth.edge import protocol
from steth.edge.decode import ProtocolVersionError, StreamDecoder
from steth.edge.protocol import (
    AdpcmState,
    AudioAdpcm,
    AudioPcm16,
    DeviceInfo,
    Flag,
    MsgType,
    Status,
)

INFO = DeviceInfo(9, 1, 0, 0, 1, 8000, 12, 1, 0, 0, 160)

frame_op = st.one_of(
    st.tuples(st.just("pcm"), st.integers(1, 40)),
    st.tuples(st.just("adpcm"), st.integers(1, 20)),
    st.tuples(st.just("status"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("info"), st.sampled_from([4000, 8000, 16000])),
    st.tuples(st.just("unknown"), st.binary(max_size=20)),
    st.tuples(st.just("seq_jump"), st.integers(1, 70000)),
    st.tuples(st.just("index_jump"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("reset"), st.just(0)),
    st.tuples(st.just("stream_start"), st.just(0)),
)
damage_op = st.one_of(
    st.tuples(st.just("garbage"), st.binary(max_size=60)),
    st.tuples(st.just("sync_noise"), st.integers(0, 1100)),
    st.tuples(st.just("flip"), st.integers(0, 10_000)),
    st.tuples(st.just("cut"), st.integers(0, 10_000)),
    st.tuples(st.just("duplicate"), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(1, 300)),
)
stream_ops = st.lists(st.one_of(frame_op, frame_op, damage_op), max_size=30)
chunkings = st.lists(st.integers(1, 400), min_size=1, max_size=8)


@dataclass
class BuiltStream:
    data: bytes
    # int16 LE bytes of each audio frame sent -> device sample indices it was sent at
    sent_audio: dict[bytes, set[int]] = field(default_factory=dict)
    # True once an audio frame's index ran backwards by the spec's signed wrap rule (a
    # reset, or forward jumps adding up to >= 2**31): the stream index then re-bases.
    index_went_back: bool = False


@dataclass
class _Device:
    seq: int = 0
    index: int = 0
    flags: int = 0
    value: int = 0
    adpcm: AdpcmState = field(default_factory=AdpcmState)
    audio_next: int | None = None  # index right after the last audio frame sent

    def next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % protocol.SEQ_MODULUS
        return seq

    def samples(self, count: int) -> np.ndarray:
        start, self.value = self.value, self.value + count
        return ((np.arange(start, start + count) * 97) % 65536 - 32768).astype(np.int16)


def build_stream(ops: list[tuple[str, object]], start_with_info: bool) -> BuiltStream:
    device = _Device()
    out = BuiltStream(b"")
    pieces: list[bytes] = []
    if start_with_info:
        pieces.append(protocol.encode_message(INFO, seq=device.next_seq()))
    for kind, arg in ops:
        piece = _frame_piece(device, kind, arg, out)
        if piece is not None:
            pieces.append(piece)
        elif pieces:
            pieces[-1] = _damage(pieces[-1], kind, arg, pieces)
        else:
            pieces.append(_damage(b"", kind, arg, pieces))
    out.data = b"".join(pieces)
    return out


def _frame_piece(device: _Device, kind: str, arg: object, out: BuiltStream) -> bytes | None:
    if kind == "pcm":
        samples = device.samples(int(arg))  # type: ignore[call-overload]
        key = samples.astype("<i2").tobytes()
        out.sent_audio.setdefault(key, set()).add(device.index)
        return _audio(device, AudioPcm16(samples), samples.size, out)
    if kind == "adpcm":
        samples = device.samples(2 * int(arg))  # type: ignore[call-overload]
        message = AudioAdpcm.from_samples(samples, device.adpcm)
        device.adpcm = protocol.adpcm_encode(samples, device.adpcm)[1]
        key = message.samples().astype("<i2").tobytes()
        out.sent_audio.setdefault(key, set()).add(device.index)
        return _audio(device, message, samples.size, out)
    if kind == "status":
        status = Status(0, 255, 1, 0, 0, 0, int(arg))  # type: ignore[call-overload]
        return protocol.encode_message(status, seq=device.next_seq(), sample_index=device.index)
    if kind == "info":
        info = DeviceInfo(9, 1, 0, 0, 1, int(arg), 12, 1, 0, 0, 160)  # type: ignore[call-overload]
        return protocol.encode_message(info, seq=device.next_seq(), sample_index=device.index)
    if kind == "unknown":
        return protocol.encode_frame(0x7F, bytes(arg), seq=device.next_seq())  # type: ignore[call-overload]
    if kind == "seq_jump":
        device.seq = (device.seq + int(arg)) % protocol.SEQ_MODULUS  # type: ignore[call-overload]
        return b""
    if kind == "index_jump":
        device.index = (device.index + int(arg)) % protocol.SAMPLE_INDEX_MODULUS  # type: ignore[call-overload]
        return b""
    if kind == "reset":
        device.seq, device.index, device.flags = 0, 0, Flag.STREAM_START
        return protocol.encode_message(INFO, seq=device.next_seq())
    if kind == "stream_start":
        device.flags = Flag.STREAM_START
        return b""
    return None


def _audio(device: _Device, message: protocol.Payload, count: int, out: BuiltStream) -> bytes:
    moved = (
        0
        if device.audio_next is None
        else protocol.sample_index_delta(device.audio_next, device.index)
    )
    out.index_went_back |= moved < 0
    frame = protocol.encode_message(
        message, seq=device.next_seq(), sample_index=device.index, flags=device.flags
    )
    device.flags = 0
    device.index = (device.index + count) % protocol.SAMPLE_INDEX_MODULUS
    device.audio_next = device.index
    return frame


def _damage(piece: bytes, kind: str, arg: object, pieces: list[bytes]) -> bytes:
    if kind == "garbage":
        return piece + bytes(arg)  # type: ignore[call-overload]
    if kind == "sync_noise":
        # A false sync with a plausible length: the parser must wait, fail CRC, move on.
        return piece + protocol.SYNC + b"\x01\x00\x02\x00" + int(arg).to_bytes(8, "little")  # type: ignore[call-overload]
    if not piece:
        return piece
    position = int(arg) % len(piece)  # type: ignore[call-overload]
    if kind == "flip":
        return piece[:position] + bytes([piece[position] ^ 0x10]) + piece[position + 1 :]
    if kind == "cut":
        return piece[:position] + piece[position + 1 + position % 50 :]
    if kind == "duplicate":
        return piece + piece
    if kind == "truncate":
        return piece[: max(0, len(piece) - int(arg))]  # type: ignore[call-overload]
    raise AssertionError(kind)


def feed_in_chunks(decoder: StreamDecoder, data: bytes, sizes: list[int]) -> list:
    items, offset, step, now = [], 0, 0, 0.0
    while offset < len(data):
        size = sizes[step % len(sizes)]
        items += decoder.feed(data[offset : offset + size], now)
        offset, step, now = offset + size, step + 1, now + 0.003
    return items


def check_stream(ops: list[tuple[str, object]], sizes: list[int], with_info: bool) -> None:
    stream = build_stream(ops, with_info)
    decoder = StreamDecoder(start_monotonic=0.0)
    items = feed_in_chunks(decoder, stream.data, sizes)  # any exception fails the test
    stats = decoder.stats()
    assert stats.bytes == len(stream.data)
    assert_accounted(stats)
    index_only_moves_forward = not stream.index_went_back and all(
        kind != "reset" for kind, _ in ops
    )
    for chunk in audio_of(items):
        assert chunk.samples.dtype == np.int16
        sent_at = stream.sent_audio[chunk.samples.astype("<i2").tobytes()]
        if index_only_moves_forward:
            # Without resets the stream index is the device index: nothing was stitched.
            assert chunk.start_index % protocol.SAMPLE_INDEX_MODULUS in sent_at
    assert_timeline_consistent(items)
    assert stats.audio_samples == sum(c.samples.size for c in audio_of(items))


SMALL = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SMALL
@given(ops=stream_ops, sizes=chunkings, with_info=st.booleans())
def test_decoder_properties(ops, sizes, with_info) -> None:
    check_stream(ops, sizes, with_info)


@SMALL
@given(noise=st.binary(max_size=3000), sizes=chunkings)
def test_pure_noise_is_all_skipped_or_dropped(noise, sizes) -> None:
    decoder = StreamDecoder(start_monotonic=0.0)
    items = feed_in_chunks(decoder, noise, sizes)
    assert not audio_of(items)
    assert_accounted(decoder.stats())


@SMALL
@given(ops=st.lists(frame_op, max_size=20), sizes=chunkings)
def test_undamaged_stream_delivers_every_trusted_frame_once(ops, sizes) -> None:
    stream = build_stream(ops, start_with_info=True)
    decoder = StreamDecoder(start_monotonic=0.0)
    items = feed_in_chunks(decoder, stream.data, sizes)
    stats = decoder.stats()
    assert stats.crc_errors == stats.skipped_bytes == stats.dropped_bytes == 0
    assert stats.pending_bytes == 0 and stats.decoded_bytes == len(stream.data)
    sent = [op for op in ops if op[0] in ("pcm", "adpcm")]
    assert len(audio_of(items)) == len(sent)


@SMALL
@given(sizes_a=chunkings, sizes_b=chunkings, ops=stream_ops)
def test_chunking_does_not_change_the_audio(sizes_a, sizes_b, ops) -> None:
    stream = build_stream(ops, start_with_info=True)
    runs = []
    for sizes in (sizes_a, sizes_b):
        decoder = StreamDecoder(start_monotonic=0.0)
        # Constant arrival time so time-based reset estimates cannot differ.
        items, offset, step = [], 0, 0
        while offset < len(stream.data):
            size = sizes[step % len(sizes)]
            items += decoder.feed(stream.data[offset : offset + size], 0.0)
            offset, step = offset + size, step + 1
        runs.append([(c.start_index, c.samples.tobytes()) for c in audio_of(items)])
    assert runs[0] == runs[1]


@SMALL
@given(major=st.integers(0, 255).filter(lambda m: m != 1), prefix=st.binary(max_size=50))
def test_other_major_versions_raise_the_fatal_error_with_bytes_accounted(major, prefix) -> None:
    frame = protocol.encode_frame(MsgType.DEVICE_INFO, INFO, seq=0, major=major)
    decoder = StreamDecoder()
    with pytest.raises(ProtocolVersionError):
        decoder.feed(prefix + frame, 0.0)
    assert_accounted(decoder.stats())


@pytest.mark.slow
@settings(
    max_examples=100_000,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
@given(ops=stream_ops, sizes=chunkings, with_info=st.booleans())
def test_decoder_properties_many_streams(ops, sizes, with_info) -> None:
    check_stream(ops, sizes, with_info)
    _SLOW_RUN_COUNTER.append(len(ops))


_SLOW_RUN_COUNTER: list[int] = []


@pytest.mark.slow
def test_report_many_streams_count() -> None:
    # Printed with -s so the closing note can quote how many streams really ran.
    print(f"streams checked: {len(_SLOW_RUN_COUNTER)}, ops: {sum(_SLOW_RUN_COUNTER)}")
    assert len(_SLOW_RUN_COUNTER) >= 100_000
