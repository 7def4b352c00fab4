"""Python codec properties: round trips, resynchronisation, byte accounting, wrap rules."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from steth.edge import protocol as p

INT16 = st.integers(-32768, 32767)


def _accounted(events: list[p.ParserEvent]) -> int:
    total = 0
    for event in events:
        if isinstance(event, p.Frame):
            total += event.size
        elif isinstance(event, p.CrcError):
            total += event.consumed
        else:
            total += len(event.data)
    return total


def _pcm_frame(seq: int, index: int, n: int = 128) -> bytes:
    samples = (np.arange(n, dtype=np.int64) * 97 + seq).astype(np.int16)
    return p.encode_message(p.AudioPcm16(samples), seq=seq, sample_index=index)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(INT16, min_size=1, max_size=512),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
)
def test_pcm16_round_trip(samples: list[int], seq: int, index: int) -> None:
    wire = p.encode_message(p.AudioPcm16(np.array(samples, np.int16)), seq=seq, sample_index=index)
    frame = p.decode_frame(wire)
    assert (frame.seq, frame.sample_index, frame.size) == (seq, index, len(wire))
    assert frame.message().samples.tolist() == samples  # type: ignore[union-attr]
    assert frame.encode() == wire


@settings(max_examples=40, deadline=None)
@given(st.lists(INT16, min_size=1, max_size=200).map(lambda s: s + s[-1:] * (len(s) % 2)))
def test_adpcm_decoder_tracks_encoder_state(samples: list[int]) -> None:
    data, end = p.adpcm_encode(samples)
    decoded, dec_end = p.adpcm_decode(data)
    assert end == dec_end and len(decoded) == len(samples)


def test_adpcm_tracks_a_smooth_signal_closely() -> None:
    t = np.arange(2048)
    signal = (8000 * np.sin(2 * np.pi * 150 * t / 8000)).astype(np.int16)
    data, _ = p.adpcm_encode(signal)
    decoded, _ = p.adpcm_decode(data)
    error = decoded[256:].astype(float) - signal[256:]
    snr_db = 10 * np.log10(np.mean(signal[256:].astype(float) ** 2) / np.mean(error**2))
    assert snr_db > 20, snr_db


def test_lost_adpcm_frame_does_not_corrupt_the_next() -> None:
    signal = (np.arange(1024) * 37 % 4000 - 2000).astype(np.int16)
    state = p.AdpcmState()
    frames = []
    for block in signal.reshape(4, 256):
        frames.append(p.AudioAdpcm.from_samples(block, state))
        _, state = p.adpcm_encode(block, state)
    reference = np.concatenate([f.samples() for f in frames])
    # Frame 2 lost: frame 3 decoded on its own must equal its part of the full decode.
    survivor = p.AudioAdpcm.decode(frames[3].encode())
    assert survivor.samples().tolist() == reference[768:].tolist()


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_noise_then_frames_resynchronises(noise: bytes, chunk: int, index: int) -> None:
    frames = [_pcm_frame(seq, index + 128 * seq) for seq in range(3)]
    # A false sync in the noise may claim up to MAX_PAYLOAD bytes; the trailing idle bytes
    # let the parser reach its CRC and rescan, as the continuing stream would.
    idle = bytes(p.HEADER_SIZE + p.MAX_PAYLOAD + p.CRC_SIZE)
    wire = noise + b"".join(frames) + idle
    parser = p.FrameParser()
    events: list[p.ParserEvent] = []
    for i in range(0, len(wire), chunk):
        events += parser.feed(wire[i : i + chunk])
    got = [e.encode() for e in events if isinstance(e, p.Frame)]
    assert got[-3:] == frames
    assert _accounted(events) + parser.pending == len(wire)
    assert parser.pending == 0


def test_corrupted_length_does_not_swallow_following_frames() -> None:
    good = [_pcm_frame(seq, 128 * seq) for seq in range(4)]
    bad = bytearray(good[0])
    bad[12:14] = (1000).to_bytes(2, "little")  # now claims 1000 payload bytes
    events = p.FrameParser().feed(bytes(bad) + b"".join(good[1:]))
    frames = [e for e in events if isinstance(e, p.Frame)]
    assert [f.seq for f in frames] == [1, 2, 3]
    assert sum(isinstance(e, p.CrcError) for e in events) == 1


def test_sync_split_across_feeds_is_kept() -> None:
    wire = _pcm_frame(0, 0)
    parser = p.FrameParser()
    assert parser.feed(b"\x00\x01" + wire[:1]) == [p.Skipped(b"\x00\x01")]
    assert parser.pending == 1
    (frame,) = parser.feed(wire[1:])
    assert isinstance(frame, p.Frame) and frame.encode() == wire


def test_higher_minor_and_unknown_type_are_accepted_not_decoded() -> None:
    wire = p.encode_frame(0x42, b"\x01\x02", seq=9, minor=7)
    (frame,) = p.FrameParser().feed(wire)
    assert isinstance(frame, p.Frame) and frame.minor == 7
    with pytest.raises(p.ProtocolError, match="unknown message type"):
        frame.message()
    assert list(p.iter_messages([frame])) == []


def test_longer_fixed_payload_from_a_later_minor_is_accepted() -> None:
    ack = p.Ack(command_seq=1, opcode=p.Opcode.PING, result=p.AckResult.OK, cookie=5)
    assert p.Ack.decode(ack.encode() + b"\xff\xff") == ack


@pytest.mark.parametrize(
    ("cls", "payload"),
    [
        (p.AudioPcm16, b""),
        (p.AudioPcm16, b"\x00\x01\x02"),
        (p.AudioAdpcm, b"\x00\x00\x00\x00"),
        (p.AudioAdpcm, b"\x00\x00\x59\x00\x12"),  # step index 89
        (p.DeviceInfo, bytes(17)),
        (p.Status, bytes(15)),
        (p.Command, bytes(7)),
        (p.Ack, bytes(7)),
    ],
)
def test_malformed_payloads_are_rejected(cls: type[p.Payload], payload: bytes) -> None:
    with pytest.raises(p.ProtocolError):
        cls.decode(payload)


def test_encoder_rejects_oversized_payload_and_bad_adpcm_input() -> None:
    with pytest.raises(p.ProtocolError):
        p.encode_frame(p.MsgType.AUDIO_PCM16, bytes(p.MAX_PAYLOAD + 2), seq=0)
    with pytest.raises(p.ProtocolError):
        p.adpcm_encode([1, 2, 3])
    with pytest.raises(p.ProtocolError):
        p.AdpcmState(0, 89)


def test_wrap_helpers() -> None:
    assert p.seq_delta(0xFFFF, 0) == 1
    assert p.seq_delta(10, 13) == 3
    assert p.sample_index_delta(0xFFFFFFFC, 4) == 8
    assert p.sample_index_delta(1000, 10) == -990
    assert p.sample_index_delta(0, 2**31 - 1) == 2**31 - 1
    assert p.sample_index_delta(0, 2**31) == -(2**31)


def test_command_builders_and_version_message() -> None:
    assert p.Command.set_gain(8, cookie=3) == p.Command(p.Opcode.SET_GAIN, 8, 3)
    assert p.Command.start(p.Codec.IMA_ADPCM).arg == 1
    assert p.Command.stop().opcode == p.Opcode.STOP
    assert p.Command.ping(7).cookie == 7
    assert p.Command.get_info().opcode == p.Opcode.GET_INFO
    info = p.DeviceInfo(1, 1, 2, 3, 1, 8000, 12, 1, 0, 0, 128)
    assert info.firmware_version == "1.2.3"
    error = p.VersionError(3, 1, b"")
    assert "3.1" in error.message() and "1.x" in error.message()
