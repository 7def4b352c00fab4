"""Frame host-side audio into the real wire protocol, as the firmware would.

Replay, sound-card and simulated sources all speak ``edge/protocol.py`` so that one decoder
handles every source and the serial path can be exercised without hardware.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from steth.edge import protocol
from steth.edge.protocol import Codec, DeviceInfo, Flag, Link, SensorType, Status

DEFAULT_FRAME_SAMPLES = 160  # what the wired firmware sends (docs/protocol.md 4.2)


def host_device_info(
    device_id: int,
    sample_rate_hz: int,
    *,
    sensor_type: int = SensorType.UNKNOWN,
    frame_samples: int = DEFAULT_FRAME_SAMPLES,
) -> DeviceInfo:
    """DeviceInfo for a host-side source (replay, sound card, simulation).

    Firmware version 0.0.0 marks that no firmware produced the stream.
    """
    return DeviceInfo(
        device_id=device_id,
        fw_major=0,
        fw_minor=0,
        fw_patch=0,
        sensor_type=int(sensor_type),
        sample_rate_hz=sample_rate_hz,
        bit_depth=16,
        gain=1,
        codec=int(Codec.PCM16),
        link=int(Link.UART),
        frame_samples=frame_samples,
    )


@dataclass
class PcmStreamFramer:
    """Stateful encoder of a PCM16 device stream: DeviceInfo, audio frames, periodic Status.

    Parameters
    ----------
    info : DeviceInfo
        Announced first and after every reset or rate change.
    status_interval_s : float
        Seconds of audio between Status frames (the firmware sends one per second).
    uptime_us : callable, optional
        Device clock for Status ``uptime_us``, given the frame's sample index. Default: the
        ideal clock of a host-side source, ``index / rate`` (no drift to report).
    """

    info: DeviceInfo
    status_interval_s: float = 1.0
    uptime_us: Callable[[int], int] | None = None
    seq: int = 0
    sample_index: int = 0
    _pending: np.ndarray | None = None
    _since_status: int = 0
    _stream_start: bool = True

    def start(self) -> bytes:
        """The DeviceInfo frame a device sends when it boots or starts streaming."""
        return self._frame(self.info)

    def audio(self, samples: np.ndarray) -> list[bytes]:
        """Frame int16 samples; returns whole frames, keeping a partial frame buffered.

        Returns
        -------
        list of bytes
            One entry per frame (audio and any Status due), so callers can corrupt or drop
            individual frames for fault injection.
        """
        block = np.asarray(samples, dtype=np.int16)
        if self._pending is not None and self._pending.size:
            block = np.concatenate([self._pending, block])
        size = self.info.frame_samples
        whole = block.size - block.size % size
        self._pending = block[whole:].copy()
        frames: list[bytes] = []
        for offset in range(0, whole, size):
            frames.append(self._audio_frame(block[offset : offset + size]))
            frames += self._status_if_due(size)
        return frames

    def flush(self) -> list[bytes]:
        """Send the buffered partial frame (end of a file)."""
        if self._pending is None or not self._pending.size:
            return []
        tail, self._pending = self._pending, None
        return [self._audio_frame(tail)]

    def reset(self) -> bytes:
        """Simulate a device reboot: sequence and sample index restart at 0."""
        self.seq = 0
        self.sample_index = 0
        self._pending = None
        self._since_status = 0
        self._stream_start = True
        return self.start()

    def change_rate(self, sample_rate_hz: int) -> bytes:
        """Announce a new sample rate mid-stream (a new DeviceInfo); indices continue."""
        self.info = replace(self.info, sample_rate_hz=sample_rate_hz)
        self._pending = None
        return self.start()

    def stream_restart(self) -> None:
        """Flag the next audio frame STREAM_START (after a START command)."""
        self._stream_start = True

    def idle(self, count: int) -> list[bytes]:
        """Let ``count`` samples pass while stopped: no audio, Status still once a second."""
        self.sample_index += count
        return self._status_if_due(count, streaming=False)

    def skip_samples(self, count: int) -> None:
        """Advance the sample index without sending, as when the device loses samples."""
        self.sample_index += count

    def _audio_frame(self, samples: np.ndarray) -> bytes:
        flags = Flag.STREAM_START if self._stream_start else Flag.NONE
        self._stream_start = False
        frame = protocol.encode_message(
            protocol.AudioPcm16(samples), seq=self.seq, sample_index=self.sample_index,
            flags=flags,
        )  # fmt: skip
        self.seq = (self.seq + 1) % protocol.SEQ_MODULUS
        self.sample_index += samples.size
        return frame

    def _status_if_due(self, new_samples: int, streaming: bool = True) -> list[bytes]:
        self._since_status += new_samples
        if self._since_status < self.status_interval_s * self.info.sample_rate_hz:
            return []
        self._since_status = 0
        if self.uptime_us is None:
            uptime = self.sample_index * 1_000_000 // self.info.sample_rate_hz
        else:
            uptime = self.uptime_us(self.sample_index)
        status = Status(
            battery_mv=0, battery_pct=Status.BATTERY_UNKNOWN,
            state_flags=Status.STREAMING if streaming else 0,
            clip_count=0, adc_overruns=0, tx_drops=0, uptime_us=uptime,
        )  # fmt: skip
        return [self._frame(status)]

    def message(self, message: protocol.Payload) -> bytes:
        """Frame any other device message (e.g. an Ack) at the current index."""
        return self._frame(message)

    def _frame(self, message: protocol.Payload) -> bytes:
        frame = protocol.encode_message(message, seq=self.seq, sample_index=self.sample_index)
        self.seq = (self.seq + 1) % protocol.SEQ_MODULUS
        return frame


class CommandResponder:
    """Answers host commands the way docs/protocol.md section 5 says the firmware does.

    Every command gets one ACK; GET_INFO and START are followed by a DeviceInfo; STOP
    pauses audio. Host-side sources use it so ``edge-run`` can talk to them like a device.

    Parameters
    ----------
    framer : PcmStreamFramer
        The device stream the answers are sequenced into.
    """

    def __init__(self, framer: PcmStreamFramer) -> None:
        self.framer = framer
        self.streaming = True
        self._parser = protocol.FrameParser()

    def feed(self, data: bytes) -> bytes:
        """Consume bytes from the host; return the device's answers."""
        out = bytearray()
        for event in self._parser.feed(data):
            if isinstance(event, protocol.Frame) and event.msg_type == protocol.MsgType.COMMAND:
                out += self._answer(event)
        return bytes(out)

    def _answer(self, command: protocol.Frame) -> bytes:
        try:
            message = protocol.Command.decode(command.payload)
        except protocol.ProtocolError:
            return self._ack(command.seq, 0, protocol.AckResult.BAD_LENGTH, 0)
        result = protocol.AckResult.OK
        if message.opcode not in {int(op) for op in protocol.Opcode}:
            result = protocol.AckResult.UNKNOWN_OPCODE
        elif message.opcode == protocol.Opcode.SET_GAIN and message.arg not in protocol.GAINS:
            result = protocol.AckResult.BAD_ARGUMENT
        elif message.opcode == protocol.Opcode.START and message.arg != protocol.Codec.PCM16:
            result = protocol.AckResult.BAD_ARGUMENT  # Host-side sources send PCM16 only.
        out = self._ack(command.seq, message.opcode, result, message.cookie)
        if result != protocol.AckResult.OK:
            return out
        if message.opcode == protocol.Opcode.STOP:
            self.streaming = False
        elif message.opcode == protocol.Opcode.START:
            self.streaming = True
            self.framer.stream_restart()
            out += self.framer.start()
        elif message.opcode == protocol.Opcode.GET_INFO:
            out += self.framer.start()
        elif message.opcode == protocol.Opcode.SET_GAIN:
            self.framer.info = replace(self.framer.info, gain=message.arg)
        return out

    def _ack(self, command_seq: int, opcode: int, result: int, cookie: int) -> bytes:
        return self.framer.message(protocol.Ack(command_seq, opcode, int(result), cookie))
