"""Python codec against the golden vectors written in docs/protocol.md."""

from __future__ import annotations

import numpy as np
import pytest
from golden_vectors import golden, ids, of_kind

from steth.edge import protocol as p

CRC_VECTORS = of_kind("crc")
ADPCM_VECTORS = of_kind("adpcm")
FRAME_VECTORS = of_kind("frame")
REJECT_VECTORS = of_kind("reject")


def test_spec_has_every_kind_of_vector() -> None:
    types = {v["type"] for v in FRAME_VECTORS}
    assert types == {t.name for t in p.MsgType}
    assert len(CRC_VECTORS) >= 2 and len(ADPCM_VECTORS) >= 3
    assert {v["expect"] for v in REJECT_VECTORS} == {"crc_error", "version_error", "bad_length"}


@pytest.mark.parametrize("vector", CRC_VECTORS, ids=ids(CRC_VECTORS))
def test_crc_check_values(vector: dict[str, str]) -> None:
    assert p.crc(vector["ascii"].encode("ascii")) == golden.as_int(vector["crc"])


def test_crc_matches_bitwise_definition() -> None:
    # The spec's parameter table, implemented literally, must agree with the codec.
    def bitwise(data: bytes) -> int:
        value = 0xFFFFFFFF
        for byte in data:
            value ^= byte
            for _ in range(8):
                value = (value >> 1) ^ (0xEDB88320 if value & 1 else 0)
        return value ^ 0xFFFFFFFF

    for vector in FRAME_VECTORS:
        body = golden.frame_bytes(vector)[: -p.CRC_SIZE]
        assert p.crc(body) == bitwise(body) == golden.as_int(vector["crc_value"])


@pytest.mark.parametrize("vector", ADPCM_VECTORS, ids=ids(ADPCM_VECTORS))
def test_adpcm_encode_is_byte_exact(vector: dict[str, str]) -> None:
    start = p.AdpcmState(golden.as_int(vector["predictor"]), golden.as_int(vector["step_index"]))
    data, end = p.adpcm_encode(golden.as_ints(vector["samples"]), start)
    assert data == golden.as_bytes(vector["data"])
    assert end == p.AdpcmState(
        golden.as_int(vector["end_predictor"]), golden.as_int(vector["end_step_index"])
    )


@pytest.mark.parametrize("vector", ADPCM_VECTORS, ids=ids(ADPCM_VECTORS))
def test_adpcm_decode_is_exact(vector: dict[str, str]) -> None:
    start = p.AdpcmState(golden.as_int(vector["predictor"]), golden.as_int(vector["step_index"]))
    decoded, end = p.adpcm_decode(golden.as_bytes(vector["data"]), start)
    assert decoded.tolist() == golden.as_ints(vector["decoded"])
    assert end.predictor == golden.as_int(vector["end_predictor"])
    assert end.step_index == golden.as_int(vector["end_step_index"])


def _expected_message(vector: dict[str, str]) -> p.Payload:
    """Build the payload object from the vector's hand-written msg.* fields."""
    fields = golden.message_fields(vector)
    cls = p.PAYLOAD_TYPES[p.MsgType[vector["type"]]]
    if cls is p.AudioPcm16:
        return p.AudioPcm16(np.array(golden.as_ints(fields["samples"]), dtype=np.int16))
    if cls is p.AudioAdpcm:
        return p.AudioAdpcm(
            golden.as_int(fields["predictor"]),
            golden.as_int(fields["step_index"]),
            golden.as_bytes(fields["data"]),
        )
    return cls(**{k: golden.as_int(v) for k, v in fields.items()})  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=ids(FRAME_VECTORS))
def test_frame_decodes_to_the_written_fields(vector: dict[str, str]) -> None:
    frame = p.decode_frame(golden.frame_bytes(vector))
    assert frame.major == golden.as_int(vector["major"])
    assert frame.minor == golden.as_int(vector["minor"])
    assert frame.msg_type == p.MsgType[vector["type"]]
    assert frame.flags == golden.as_int(vector["flags"])
    assert frame.seq == golden.as_int(vector["seq"])
    assert frame.sample_index == golden.as_int(vector["sample_index"])
    assert len(frame.payload) == golden.as_int(vector["length"])
    message = frame.message()
    expected = _expected_message(vector)
    if isinstance(message, p.AudioPcm16):
        assert message.samples.dtype == np.int16
        assert message.samples.tolist() == expected.samples.tolist()  # type: ignore[union-attr]
    else:
        assert message == expected
    if isinstance(message, p.AudioAdpcm):
        assert message.samples().tolist() == golden.as_ints(vector["msg.samples"])


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=ids(FRAME_VECTORS))
def test_frame_encodes_byte_exact(vector: dict[str, str]) -> None:
    encoded = p.encode_message(
        _expected_message(vector),
        seq=golden.as_int(vector["seq"]),
        sample_index=golden.as_int(vector["sample_index"]),
        flags=golden.as_int(vector["flags"]),
    )
    assert encoded.hex(" ") == golden.frame_bytes(vector).hex(" ")


@pytest.mark.parametrize("vector", FRAME_VECTORS, ids=ids(FRAME_VECTORS))
def test_every_single_bit_flip_is_rejected(vector: dict[str, str]) -> None:
    wire = golden.frame_bytes(vector)
    for bit in range(8 * len(wire)):
        corrupted = bytearray(wire)
        corrupted[bit // 8] ^= 1 << (bit % 8)
        events = p.FrameParser().feed(bytes(corrupted))
        assert not any(isinstance(e, p.Frame) for e in events), f"bit {bit} accepted"


@pytest.mark.parametrize("vector", REJECT_VECTORS, ids=ids(REJECT_VECTORS))
def test_reject_vectors(vector: dict[str, str]) -> None:
    wire = golden.as_bytes(vector["hex"])
    parser = p.FrameParser()
    events = parser.feed(wire)
    assert not any(isinstance(e, p.Frame) for e in events)
    expected_type = {
        "crc_error": p.CrcError,
        "version_error": p.VersionError,
        "bad_length": p.Skipped,
    }[vector["expect"]]
    assert isinstance(events[0], expected_type)
    if vector["expect"] == "bad_length":
        assert events == [p.Skipped(wire)]
    if vector["expect"] == "version_error":
        assert events[0].major == 2
        assert "update" in events[0].message()
    with pytest.raises(p.ProtocolError):
        p.decode_frame(wire)


def test_golden_stream_parses_in_any_chunking() -> None:
    wire = b"".join(golden.frame_bytes(v) for v in FRAME_VECTORS)
    for chunk in (1, 2, 3, 7, 64, len(wire)):
        parser = p.FrameParser()
        events = [e for i in range(0, len(wire), chunk) for e in parser.feed(wire[i : i + chunk])]
        assert [e.encode() for e in events if isinstance(e, p.Frame)] == [
            golden.frame_bytes(v) for v in FRAME_VECTORS
        ]
        assert len(events) == len(FRAME_VECTORS) and parser.pending == 0
