"""The SIMULATED stethoscope: a synthetic patient framed in the real wire protocol.

:class:`SimulatedTransport` plays :class:`edge.simulate.PatientSynth` through the device's
wire protocol (docs/protocol.md) at real-time pace or faster, answers host commands as the
firmware does, and can inject link faults (:class:`LinkFaults`: CRC errors, garbage bursts,
dropped frames) at known places. It keeps the ground truth of both: every breath phase and
adventitious sound sent so far, and every fault it injected. Its device id and sensor type
say SIMULATED, so every event the edge derives from it is marked as such.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from steth.edge import protocol
from steth.edge.protocol import DeviceInfo, MsgType
from steth.edge.simulate import InjectedEvent, PatientConfig, PatientSynth
from steth.edge.transports.base import SourceError, Transport
from steth.edge.transports.framing import CommandResponder, PcmStreamFramer, host_device_info

SIMULATED_DEVICE_ID = int.from_bytes(b"SIMU", "little")
# docs/protocol.md defines sensor types 0 (unknown) and 1 (piezo); 0xFE is reserved here
# for simulation until the spec lists it, so a captured stream still says what it is.
SIMULATED_SENSOR_TYPE = 0xFE


def is_simulated_device(info: DeviceInfo) -> bool:
    """True when a DeviceInfo comes from this simulator (so outputs must say SIMULATED)."""
    return info.device_id == SIMULATED_DEVICE_ID or info.sensor_type == SIMULATED_SENSOR_TYPE


@dataclass(frozen=True)
class LinkFaults:
    """Faults the simulated link injects, one every ``interval_s`` of audio per kind.

    Attributes
    ----------
    crc_errors : int
        Audio frames sent with one payload byte flipped (each is one CRC error).
    garbage_bursts : int
        Bursts of 20-300 noise bytes inserted between frames. They never contain the sync
        byte 0xA5, so the decoder's CRC-error count stays exactly ``crc_errors``.
    dropped_frames : int
        Audio frames silently not sent.
    interval_s : float
        Seconds of audio between two faults of the same kind; the first CRC error comes
        after one interval, drops a third and garbage two thirds of an interval later.
    """

    crc_errors: int = 0
    garbage_bursts: int = 0
    dropped_frames: int = 0
    interval_s: float = 1.0


@dataclass(frozen=True)
class InjectedFault:
    """Ground truth for one injected link fault.

    Attributes
    ----------
    kind : str
        ``"crc_error"``, ``"garbage"`` or ``"dropped_frame"``.
    sample_index : int
        Device sample index of the affected frame (the frame after a garbage burst).
    samples : int
        Audio samples lost (0 for garbage).
    size : int
        Bytes corrupted, inserted or removed.
    """

    kind: str
    sample_index: int
    samples: int
    size: int


class SimulatedTransport(Transport):
    """A SIMULATED stethoscope: protocol bytes of a synthetic patient, paced in real time.

    Parameters
    ----------
    patient : PatientConfig
        Breath rate, crackle/wheeze shares, seed.
    faults : LinkFaults
        Link faults to inject.
    speed : float
        Pace relative to real time (1 = real time, 10 = ten times faster, ``math.inf`` =
        as fast as the reader takes it, 0.5 s of audio per read).
    clock, sleep : callable
        Monotonic clock and sleep, injectable for tests.
    """

    simulated = True

    def __init__(
        self,
        patient: PatientConfig | None = None,
        faults: LinkFaults | None = None,
        *,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not speed > 0:
            raise SourceError("--speed must be greater than 0")
        self.patient = patient or PatientConfig()
        self.faults = faults or LinkFaults()
        self.speed = speed
        self.name = (
            f"SIMULATED patient ({self.patient.breath_rate_bpm:g}/min, "
            f"crackles {self.patient.crackle_fraction:g}, wheezes {self.patient.wheeze_fraction:g})"
        )
        self._clock = clock
        self._sleep = sleep
        self._synth = PatientSynth(self.patient).cycles()
        info = host_device_info(
            SIMULATED_DEVICE_ID, self.patient.sample_rate, sensor_type=SIMULATED_SENSOR_TYPE
        )
        self._framer = PcmStreamFramer(info)
        self._rng = np.random.default_rng(self.patient.seed + 1)
        self._pending = np.zeros(0, np.int16)
        self._events: list[InjectedEvent] = []
        self._faults: list[InjectedFault] = []
        self._out = bytearray(self._framer.start())
        self._sent_samples = 0
        self._fault_samples = int(self.faults.interval_s * self.patient.sample_rate)
        self._fault_counters = {"crc_error": 0, "garbage": 0, "dropped_frame": 0}
        self._responder = CommandResponder(self._framer)
        self._started: float | None = None
        self._closed = False

    # -- Transport ----------------------------------------------------------------------

    def read(self, timeout: float) -> bytes:
        """Protocol bytes due by now (waits up to ``timeout`` s for the next frame)."""
        if self._closed:
            return b""
        now = self._clock()
        if self._started is None:
            self._started = now
        self._produce_until(self._samples_due(now))
        if not self._out and timeout > 0:
            self._sleep(min(timeout, self._seconds_to_next_frame(now)))
            self._produce_until(self._samples_due(self._clock()))
        data, self._out = bytes(self._out), bytearray()
        return data

    def write(self, data: bytes) -> None:
        """Answer host commands like the firmware does (ACK, DeviceInfo on GET_INFO/START)."""
        self._out += self._responder.feed(data)

    def close(self) -> None:
        """Stop producing."""
        self._closed = True

    # -- ground truth -------------------------------------------------------------------

    @property
    def ground_truth(self) -> list[InjectedEvent]:
        """Breath phases, crackles and wheezes that started in the audio sent so far."""
        return [event for event in self._events if event.start_index < self._sent_samples]

    @property
    def injected_faults(self) -> list[InjectedFault]:
        """Link faults injected so far."""
        return list(self._faults)

    @property
    def device_info(self) -> DeviceInfo:
        """What the simulated device announces."""
        return self._framer.info

    # -- internals ----------------------------------------------------------------------

    def _samples_due(self, now: float) -> int:
        assert self._started is not None
        if math.isinf(self.speed):
            return self._sent_samples + self.patient.sample_rate // 2
        return int((now - self._started) * self.speed * self.patient.sample_rate)

    def _seconds_to_next_frame(self, now: float) -> float:
        if math.isinf(self.speed):
            return 0.0
        assert self._started is not None
        next_due = self._sent_samples + self._framer.info.frame_samples
        due_at = self._started + next_due / (self.speed * self.patient.sample_rate)
        return max(0.0, due_at - now)

    def _produce_until(self, target: int) -> None:
        frame_samples = self._framer.info.frame_samples
        whole = (target - self._sent_samples) // frame_samples * frame_samples
        if whole <= 0:
            return
        while self._pending.size < whole:
            samples, events = next(self._synth)
            self._pending = np.concatenate([self._pending, samples])
            self._events += events
        block, self._pending = self._pending[:whole], self._pending[whole:]
        self._sent_samples += whole
        if not self._responder.streaming:
            # Stopped: the device's sample clock runs on, nothing is sent (spec 3, 5.4).
            self._out += b"".join(self._framer.idle(whole))
            return
        for frame in self._framer.audio(block):
            self._emit(frame)

    def _emit(self, frame: bytes) -> None:
        if frame[4] != MsgType.AUDIO_PCM16:
            self._out += frame
            return
        index = int.from_bytes(frame[8:12], "little")
        samples = (len(frame) - protocol.FRAME_OVERHEAD) // 2
        if self._fault_due("garbage", self.faults.garbage_bursts, index):
            burst = self._garbage()
            self._out += burst
            self._faults.append(InjectedFault("garbage", index, 0, len(burst)))
        if self._fault_due("dropped_frame", self.faults.dropped_frames, index):
            self._faults.append(InjectedFault("dropped_frame", index, samples, len(frame)))
            return
        if self._fault_due("crc_error", self.faults.crc_errors, index):
            corrupted = bytearray(frame)
            corrupted[protocol.HEADER_SIZE + 1] ^= 0x40
            self._faults.append(InjectedFault("crc_error", index, samples, 1))
            frame = bytes(corrupted)
        self._out += frame

    def _fault_due(self, kind: str, total: int, index: int) -> bool:
        done = self._fault_counters[kind]
        if done >= total or self._fault_samples <= 0:
            return False
        # Fault k (1-based) of a kind hits the first frame at or after k intervals plus a
        # per-kind phase, so faults of different kinds never land on the same frame.
        phase = {"crc_error": 0.0, "dropped_frame": 1 / 3, "garbage": 2 / 3}[kind]
        if index < (done + 1 + phase) * self._fault_samples:
            return False
        self._fault_counters[kind] = done + 1
        return True

    def _garbage(self) -> bytes:
        size = int(self._rng.integers(20, 301))
        noise = self._rng.integers(0, 255, size, dtype=np.uint8)
        noise[noise >= protocol.SYNC[0]] += 1  # Skip 0xA5: values 0..255 without it.
        return noise.tobytes()
