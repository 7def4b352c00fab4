"""Wire protocol v1.0 codec: frames, payloads, IMA-ADPCM (pure, no I/O).

The normative description is ``docs/protocol.md``; this module and the C codec in
``firmware/app/`` are both tested against the golden vectors written in that document.

Frame (all integers little-endian)::

    off size field
    0   2    sync          A5 5A
    2   1    major         1
    3   1    minor         0
    4   1    msg_type      MsgType
    5   1    flags         Flag
    6   2    seq           per-sender frame counter, wraps 65535 -> 0
    8   4    sample_index  running sample index, wraps 2**32 - 1 -> 0
    12  2    length        payload length, 0..1024
    14  len  payload
    14+len 4 crc           CRC-32/ISO-HDLC over bytes 0 .. 13+len
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import ClassVar

import numpy as np

PROTOCOL_MAJOR = 1
PROTOCOL_MINOR = 0
SYNC = b"\xa5\x5a"
HEADER_SIZE = 14
CRC_SIZE = 4
FRAME_OVERHEAD = HEADER_SIZE + CRC_SIZE
MAX_PAYLOAD = 1024
SEQ_MODULUS = 1 << 16
SAMPLE_INDEX_MODULUS = 1 << 32
NOMINAL_SAMPLE_RATE_HZ = 8000
GAINS = (1, 2, 4, 5, 8, 10, 16, 32)
ADPCM_HEADER_SIZE = 4

_HEADER = struct.Struct("<2sBBBBHIH")


class ProtocolError(ValueError):
    """A byte string is not a valid v1 frame or payload."""


class MsgType(IntEnum):
    """Message type byte (offset 4)."""

    DEVICE_INFO = 0x01
    AUDIO_PCM16 = 0x02
    AUDIO_ADPCM = 0x03
    STATUS = 0x04
    ACK = 0x05
    COMMAND = 0x10


class Flag(IntFlag):
    """Header flag bits (offset 5); undefined bits are sent as 0 and ignored on receipt."""

    NONE = 0
    STREAM_START = 0x01
    CLIPPED = 0x02


class Opcode(IntEnum):
    """Command opcodes carried by :class:`Command`."""

    START = 1
    STOP = 2
    SET_GAIN = 3
    PING = 4
    GET_INFO = 5


class AckResult(IntEnum):
    """Result code carried by :class:`Ack`."""

    OK = 0
    BAD_ARGUMENT = 1
    UNKNOWN_OPCODE = 2
    BAD_LENGTH = 3


class Codec(IntEnum):
    """Audio codec of the stream (device info, start argument)."""

    PCM16 = 0
    IMA_ADPCM = 1


class SensorType(IntEnum):
    """What the analog front end is connected to."""

    UNKNOWN = 0
    PIEZO_CONTACT = 1


class Link(IntEnum):
    """Which physical link the device is streaming over."""

    UART = 0
    BLE = 1


# ---------------------------------------------------------------------------------------
# CRC


def crc(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """CRC-32/ISO-HDLC of ``data``.

    Width 32, poly 0x04C11DB7, init 0xFFFFFFFF, reflected in and out, xor-out 0xFFFFFFFF;
    ``crc(b"123456789") == 0xCBF43926``.

    Parameters
    ----------
    data
        Bytes to checksum.
    value
        A previous result, to continue a checksum over several chunks.

    Returns
    -------
    int
        The CRC as an unsigned 32-bit integer.
    """
    # zlib implements exactly this parameter set, in C, which matters when a recording is
    # replayed faster than real time.
    return zlib.crc32(data, value) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------
# IMA-ADPCM (IMA Digital Audio Focus and Technical Working Groups, 1992)

IMA_STEP_TABLE = (
    7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 19, 21, 23, 25, 28, 31, 34, 37, 41, 45,
    50, 55, 60, 66, 73, 80, 88, 97, 107, 118, 130, 143, 157, 173, 190, 209, 230, 253, 279,
    307, 337, 371, 408, 449, 494, 544, 598, 658, 724, 796, 876, 963, 1060, 1166, 1282,
    1411, 1552, 1707, 1878, 2066, 2272, 2499, 2749, 3024, 3327, 3660, 4026, 4428, 4871,
    5358, 5894, 6484, 7132, 7845, 8630, 9493, 10442, 11487, 12635, 13899, 15289, 16818,
    18500, 20350, 22385, 24623, 27086, 29794, 32767,
)  # fmt: skip
IMA_INDEX_TABLE = (-1, -1, -1, -1, 2, 4, 6, 8, -1, -1, -1, -1, 2, 4, 6, 8)
ADPCM_MAX_STEP_INDEX = len(IMA_STEP_TABLE) - 1


@dataclass(frozen=True)
class AdpcmState:
    """IMA-ADPCM codec state: the predicted sample and the step-table index."""

    predictor: int = 0
    step_index: int = 0

    def __post_init__(self) -> None:
        if not -32768 <= self.predictor <= 32767:
            raise ProtocolError(f"ADPCM predictor {self.predictor} outside int16")
        if not 0 <= self.step_index <= ADPCM_MAX_STEP_INDEX:
            raise ProtocolError(f"ADPCM step index {self.step_index} outside 0..88")


def _adpcm_step(predictor: int, step_index: int, nibble: int) -> tuple[int, int]:
    """Apply one 4-bit code to the state; shared by encoder and decoder so they agree."""
    step = IMA_STEP_TABLE[step_index]
    delta = step >> 3
    if nibble & 4:
        delta += step
    if nibble & 2:
        delta += step >> 1
    if nibble & 1:
        delta += step >> 2
    predictor = predictor - delta if nibble & 8 else predictor + delta
    predictor = max(-32768, min(32767, predictor))
    step_index = max(0, min(ADPCM_MAX_STEP_INDEX, step_index + IMA_INDEX_TABLE[nibble]))
    return predictor, step_index


def _adpcm_quantise(diff: int, step: int) -> int:
    """Choose the 4-bit code for a prediction error (IMA reference quantiser)."""
    nibble = 0
    if diff < 0:
        nibble = 8
        diff = -diff
    if diff >= step:
        nibble |= 4
        diff -= step
    step >>= 1
    if diff >= step:
        nibble |= 2
        diff -= step
    step >>= 1
    if diff >= step:
        nibble |= 1
    return nibble


def adpcm_encode(
    samples: Sequence[int] | np.ndarray, state: AdpcmState | None = None
) -> tuple[bytes, AdpcmState]:
    """Encode int16 samples to IMA-ADPCM, two samples per byte, low nibble first.

    Parameters
    ----------
    samples
        An even number of int16 samples.
    state
        Encoder state before the first sample (default predictor 0, step index 0).

    Returns
    -------
    tuple of (bytes, AdpcmState)
        The packed codes and the state after the last sample.
    """
    state = state or AdpcmState()
    values = [int(v) for v in samples]
    if len(values) % 2:
        raise ProtocolError("ADPCM frames carry an even number of samples")
    predictor, step_index = state.predictor, state.step_index
    nibbles = []
    for value in values:
        if not -32768 <= value <= 32767:
            raise ProtocolError(f"sample {value} outside int16")
        nibble = _adpcm_quantise(value - predictor, IMA_STEP_TABLE[step_index])
        predictor, step_index = _adpcm_step(predictor, step_index, nibble)
        nibbles.append(nibble)
    packed = bytes(lo | (hi << 4) for lo, hi in zip(nibbles[::2], nibbles[1::2], strict=True))
    return packed, AdpcmState(predictor, step_index)


def adpcm_decode(data: bytes, state: AdpcmState | None = None) -> tuple[np.ndarray, AdpcmState]:
    """Decode packed IMA-ADPCM codes (low nibble first) to int16 samples.

    Parameters
    ----------
    data
        Packed codes, two samples per byte.
    state
        Decoder state before the first sample.

    Returns
    -------
    tuple of (numpy.ndarray, AdpcmState)
        ``2 * len(data)`` int16 samples and the state after the last one.
    """
    state = state or AdpcmState()
    predictor, step_index = state.predictor, state.step_index
    out = np.empty(2 * len(data), dtype=np.int16)
    for i, byte in enumerate(data):
        predictor, step_index = _adpcm_step(predictor, step_index, byte & 0x0F)
        out[2 * i] = predictor
        predictor, step_index = _adpcm_step(predictor, step_index, byte >> 4)
        out[2 * i + 1] = predictor
    return out, AdpcmState(predictor, step_index)


# ---------------------------------------------------------------------------------------
# Payloads


def _require_length(payload: bytes, minimum: int, name: str) -> None:
    if len(payload) < minimum:
        raise ProtocolError(f"{name} payload is {len(payload)} bytes, needs {minimum}")


@dataclass(frozen=True)
class DeviceInfo:
    """Who is streaming and how (sent at boot, on start and on GET_INFO)."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.DEVICE_INFO
    _FMT: ClassVar[struct.Struct] = struct.Struct("<IBBBBIBBBBH")

    device_id: int
    fw_major: int
    fw_minor: int
    fw_patch: int
    sensor_type: int
    sample_rate_hz: int
    bit_depth: int
    gain: int
    codec: int
    link: int
    frame_samples: int

    @property
    def firmware_version(self) -> str:
        """Firmware version as ``major.minor.patch``."""
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"

    def encode(self) -> bytes:
        """Serialise to the 18-byte payload."""
        return self._FMT.pack(
            self.device_id, self.fw_major, self.fw_minor, self.fw_patch, self.sensor_type,
            self.sample_rate_hz, self.bit_depth, self.gain, self.codec, self.link,
            self.frame_samples,
        )  # fmt: skip

    @classmethod
    def decode(cls, payload: bytes) -> DeviceInfo:
        """Parse a payload; bytes beyond the v1.0 fields (later minors) are ignored."""
        _require_length(payload, cls._FMT.size, "DEVICE_INFO")
        return cls(*cls._FMT.unpack_from(payload))


@dataclass(frozen=True, eq=False)
class AudioPcm16:
    """A block of signed 16-bit samples; the header's sample_index is the first one's."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.AUDIO_PCM16

    samples: np.ndarray

    def encode(self) -> bytes:
        """Serialise as little-endian int16."""
        return np.asarray(self.samples, dtype="<i2").tobytes()

    @classmethod
    def decode(cls, payload: bytes) -> AudioPcm16:
        """Parse a payload of 2-byte samples."""
        if len(payload) == 0 or len(payload) % 2:
            raise ProtocolError(f"AUDIO_PCM16 payload length {len(payload)} not a positive even")
        return cls(np.frombuffer(payload, dtype="<i2").astype(np.int16))


@dataclass(frozen=True)
class AudioAdpcm:
    """IMA-ADPCM block that carries its own start state, so a lost frame is isolated."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.AUDIO_ADPCM
    _FMT: ClassVar[struct.Struct] = struct.Struct("<hBB")

    predictor: int
    step_index: int
    data: bytes

    @property
    def sample_count(self) -> int:
        """Number of samples in the block (two per data byte)."""
        return 2 * len(self.data)

    @classmethod
    def from_samples(cls, samples: Sequence[int] | np.ndarray, state: AdpcmState) -> AudioAdpcm:
        """Encode ``samples`` starting from ``state`` (the encoder state carried over)."""
        data, _ = adpcm_encode(samples, state)
        return cls(state.predictor, state.step_index, data)

    def samples(self) -> np.ndarray:
        """Decode the block to int16 samples."""
        return adpcm_decode(self.data, AdpcmState(self.predictor, self.step_index))[0]

    def encode(self) -> bytes:
        """Serialise: predictor, step index, reserved 0, packed codes."""
        return self._FMT.pack(self.predictor, self.step_index, 0) + bytes(self.data)

    @classmethod
    def decode(cls, payload: bytes) -> AudioAdpcm:
        """Parse a payload; rejects an out-of-range step index or an empty block."""
        if len(payload) <= ADPCM_HEADER_SIZE:
            raise ProtocolError(f"AUDIO_ADPCM payload of {len(payload)} bytes has no samples")
        predictor, step_index, _reserved = cls._FMT.unpack_from(payload)
        if step_index > ADPCM_MAX_STEP_INDEX:
            raise ProtocolError(f"AUDIO_ADPCM step index {step_index} outside 0..88")
        return cls(predictor, step_index, bytes(payload[ADPCM_HEADER_SIZE:]))


@dataclass(frozen=True)
class Status:
    """Periodic health report (every second while powered).

    ``uptime_us`` comes from a clock independent of the sample clock, latched when the
    frame's ``sample_index`` was reached, so a receiver can check the sample rate.
    """

    MSG_TYPE: ClassVar[MsgType] = MsgType.STATUS
    _FMT: ClassVar[struct.Struct] = struct.Struct("<HBBIIII")
    BATTERY_UNKNOWN: ClassVar[int] = 0xFF
    STREAMING: ClassVar[int] = 0x01

    battery_mv: int
    battery_pct: int
    state_flags: int
    clip_count: int
    adc_overruns: int
    tx_drops: int
    uptime_us: int = 0

    @property
    def streaming(self) -> bool:
        """Whether the device is sending audio."""
        return bool(self.state_flags & self.STREAMING)

    def encode(self) -> bytes:
        """Serialise to the 20-byte payload."""
        return self._FMT.pack(
            self.battery_mv, self.battery_pct, self.state_flags, self.clip_count,
            self.adc_overruns, self.tx_drops, self.uptime_us % (1 << 32),
        )  # fmt: skip

    @classmethod
    def decode(cls, payload: bytes) -> Status:
        """Parse a payload; later-minor trailing bytes are ignored."""
        _require_length(payload, cls._FMT.size, "STATUS")
        return cls(*cls._FMT.unpack_from(payload))


@dataclass(frozen=True)
class Command:
    """Host-to-device request; every command is answered by one :class:`Ack`."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.COMMAND
    _FMT: ClassVar[struct.Struct] = struct.Struct("<BBHI")

    opcode: int
    arg: int = 0
    cookie: int = 0

    @classmethod
    def start(cls, codec: Codec | int = Codec.PCM16, cookie: int = 0) -> Command:
        """Start streaming with ``codec``."""
        return cls(Opcode.START, int(codec), cookie)

    @classmethod
    def stop(cls, cookie: int = 0) -> Command:
        """Stop streaming audio (status frames continue)."""
        return cls(Opcode.STOP, 0, cookie)

    @classmethod
    def set_gain(cls, gain: int, cookie: int = 0) -> Command:
        """Select a PGA gain from :data:`GAINS`."""
        return cls(Opcode.SET_GAIN, gain, cookie)

    @classmethod
    def ping(cls, cookie: int = 0) -> Command:
        """Round-trip check; the ack echoes ``cookie``."""
        return cls(Opcode.PING, 0, cookie)

    @classmethod
    def get_info(cls, cookie: int = 0) -> Command:
        """Ask the device to resend its DEVICE_INFO."""
        return cls(Opcode.GET_INFO, 0, cookie)

    def encode(self) -> bytes:
        """Serialise to the 8-byte payload."""
        return self._FMT.pack(self.opcode, self.arg, 0, self.cookie)

    @classmethod
    def decode(cls, payload: bytes) -> Command:
        """Parse a payload."""
        _require_length(payload, cls._FMT.size, "COMMAND")
        opcode, arg, _reserved, cookie = cls._FMT.unpack_from(payload)
        return cls(opcode, arg, cookie)


@dataclass(frozen=True)
class Ack:
    """Device answer to a command; the header's sample_index is when it took effect."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ACK
    _FMT: ClassVar[struct.Struct] = struct.Struct("<HBBI")

    command_seq: int
    opcode: int
    result: int
    cookie: int

    @property
    def ok(self) -> bool:
        """Whether the command was accepted."""
        return self.result == AckResult.OK

    def encode(self) -> bytes:
        """Serialise to the 8-byte payload."""
        return self._FMT.pack(self.command_seq, self.opcode, self.result, self.cookie)

    @classmethod
    def decode(cls, payload: bytes) -> Ack:
        """Parse a payload."""
        _require_length(payload, cls._FMT.size, "ACK")
        return cls(*cls._FMT.unpack_from(payload))


Payload = DeviceInfo | AudioPcm16 | AudioAdpcm | Status | Command | Ack
PAYLOAD_TYPES: dict[int, type[Payload]] = {
    cls.MSG_TYPE: cls for cls in (DeviceInfo, AudioPcm16, AudioAdpcm, Status, Command, Ack)
}


# ---------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class Frame:
    """One CRC-valid v1 frame as received (payload still raw bytes)."""

    msg_type: int
    seq: int
    sample_index: int
    payload: bytes
    flags: int = 0
    major: int = PROTOCOL_MAJOR
    minor: int = PROTOCOL_MINOR

    @property
    def size(self) -> int:
        """Bytes the frame occupies on the wire."""
        return FRAME_OVERHEAD + len(self.payload)

    def message(self) -> Payload:
        """Decode the payload by message type.

        Raises
        ------
        ProtocolError
            For an unknown message type (a newer minor version) or a malformed payload.
        """
        cls = PAYLOAD_TYPES.get(self.msg_type)
        if cls is None:
            raise ProtocolError(f"unknown message type 0x{self.msg_type:02x}")
        return cls.decode(self.payload)

    def encode(self) -> bytes:
        """Serialise back to wire bytes (byte-exact with the received frame)."""
        return encode_frame(
            self.msg_type, self.payload, seq=self.seq, sample_index=self.sample_index,
            flags=self.flags, major=self.major, minor=self.minor,
        )  # fmt: skip


def encode_frame(
    msg_type: int,
    payload: Payload | bytes,
    *,
    seq: int,
    sample_index: int = 0,
    flags: int = 0,
    major: int = PROTOCOL_MAJOR,
    minor: int = PROTOCOL_MINOR,
) -> bytes:
    """Build one frame.

    Parameters
    ----------
    msg_type
        A :class:`MsgType` value.
    payload
        A payload dataclass or its raw bytes.
    seq
        Sender's frame counter; reduced modulo 2**16.
    sample_index
        Running sample index; reduced modulo 2**32 (the wrap rule of the spec).
    flags
        :class:`Flag` bits.
    major, minor
        Protocol version; only tests of version rejection change these.

    Returns
    -------
    bytes
        Header, payload and CRC.
    """
    body = payload if isinstance(payload, bytes | bytearray) else payload.encode()
    if len(body) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(body)} bytes exceeds {MAX_PAYLOAD}")
    header = _HEADER.pack(
        SYNC, major, minor, int(msg_type), int(flags), seq % SEQ_MODULUS,
        sample_index % SAMPLE_INDEX_MODULUS, len(body),
    )  # fmt: skip
    frame = header + bytes(body)
    return frame + struct.pack("<I", crc(frame))


def encode_message(message: Payload, *, seq: int, sample_index: int = 0, flags: int = 0) -> bytes:
    """Build a frame from a payload dataclass, taking the message type from its class."""
    return encode_frame(message.MSG_TYPE, message, seq=seq, sample_index=sample_index, flags=flags)


@dataclass(frozen=True)
class Skipped:
    """Bytes discarded while hunting for a sync pattern."""

    data: bytes


@dataclass(frozen=True)
class CrcError:
    """A candidate frame whose CRC did not match.

    Only its first byte is consumed (``consumed == 1``); the rest is searched again, so a
    corrupted length field cannot swallow the frames behind it. ``data`` is the whole
    candidate, for diagnostics.
    """

    data: bytes
    expected: int
    received: int
    consumed: int = 1


@dataclass(frozen=True)
class VersionError:
    """A CRC-valid frame of a protocol major version this codec does not speak."""

    major: int
    minor: int
    data: bytes

    def message(self) -> str:
        """One-line explanation for the user."""
        return (
            f"device speaks wire protocol {self.major}.{self.minor}, this software speaks "
            f"{PROTOCOL_MAJOR}.x: update the edge software or reflash the firmware"
        )


ParserEvent = Frame | Skipped | CrcError | VersionError


@dataclass
class FrameParser:
    """Incremental frame parser: feed any chunking of the byte stream, get events back.

    Every input byte is accounted for exactly once: in a :class:`Frame` (``size``), a
    :class:`Skipped` (``len(data)``), a :class:`CrcError` (``consumed``), a
    :class:`VersionError` (``len(data)``) or, until more bytes arrive, :attr:`pending`.
    """

    _buffer: bytearray = field(default_factory=bytearray)

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[ParserEvent]:
        """Consume ``data`` and return the events it completes, in stream order."""
        self._buffer += data
        events: list[ParserEvent] = []
        pos = 0
        while True:
            event, used = self._next_event(pos)
            if event is None:
                break
            events.append(event)
            pos += used
        # One compaction per feed keeps large chunks (file replay) linear in time.
        del self._buffer[:pos]
        return _merge_skips(events)

    def _next_event(self, pos: int) -> tuple[ParserEvent | None, int]:
        buf = self._buffer
        end = len(buf)
        start = buf.find(SYNC, pos)
        if start < 0:
            # Keep a trailing first sync byte: its partner may arrive in the next chunk.
            keep = 1 if end > pos and buf[end - 1] == SYNC[0] else 0
            skipped = end - pos - keep
            return (Skipped(bytes(buf[pos : pos + skipped])), skipped) if skipped else (None, 0)
        if start > pos:
            return Skipped(bytes(buf[pos:start])), start - pos
        if end - pos < HEADER_SIZE:
            return None, 0
        length = int.from_bytes(buf[pos + 12 : pos + 14], "little")
        if length > MAX_PAYLOAD:
            return Skipped(bytes(buf[pos : pos + 1])), 1
        total = HEADER_SIZE + length + CRC_SIZE
        if end - pos < total:
            return None, 0
        candidate = bytes(buf[pos : pos + total])
        expected = crc(memoryview(candidate)[:-CRC_SIZE])
        received = int.from_bytes(candidate[-CRC_SIZE:], "little")
        if expected != received:
            return CrcError(candidate, expected, received), 1
        _sync, major, minor, msg_type, flags, seq, index, _length = _HEADER.unpack_from(candidate)
        if major != PROTOCOL_MAJOR:
            return VersionError(major, minor, candidate), total
        payload = candidate[HEADER_SIZE:-CRC_SIZE]
        return Frame(msg_type, seq, index, payload, flags, major, minor), total


def _merge_skips(events: list[ParserEvent]) -> list[ParserEvent]:
    """Join adjacent Skipped events so a burst of noise is one event."""
    merged: list[ParserEvent] = []
    for event in events:
        if isinstance(event, Skipped) and merged and isinstance(merged[-1], Skipped):
            merged[-1] = Skipped(merged[-1].data + event.data)
        else:
            merged.append(event)
    return merged


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one frame.

    Raises
    ------
    ProtocolError
        If ``data`` is not exactly one CRC-valid v1 frame.
    """
    events = FrameParser().feed(data)
    if len(events) == 1 and isinstance(events[0], Frame) and events[0].size == len(data):
        return events[0]
    if events and isinstance(events[0], VersionError):
        raise ProtocolError(events[0].message())
    if events and isinstance(events[0], CrcError):
        raise ProtocolError("CRC mismatch")
    raise ProtocolError("not exactly one complete frame")


def seq_delta(previous: int, current: int) -> int:
    """Frames between two sequence numbers under the 16-bit wrap (1 means no loss)."""
    return (current - previous) % SEQ_MODULUS


def sample_index_delta(previous: int, current: int) -> int:
    """Signed distance between two sample indices under the 32-bit wrap rule.

    Differences of 2**31 or more are read as negative (the index went backwards: reboot).
    """
    delta = (current - previous) % SAMPLE_INDEX_MODULUS
    return delta - SAMPLE_INDEX_MODULUS if delta >= SAMPLE_INDEX_MODULUS // 2 else delta


def iter_messages(events: Iterable[ParserEvent]) -> Iterable[tuple[Frame, Payload]]:
    """Yield (frame, decoded payload) for the known-type frames among parser events."""
    for event in events:
        if isinstance(event, Frame) and event.msg_type in PAYLOAD_TYPES:
            yield event, event.message()
