"""A SIMULATED patient: synthetic breathing with injected crackles and wheezes.

Used only with ``--simulate``. Everything it produces is marked SIMULATED (device id,
sensor type, transport flag). Alongside the audio it keeps a ground-truth list of every
breath phase and adventitious sound it injected, with sample indices, so the pipeline can be
scored against what really went in.

Sound model (deliberately simple, not a physiological model):
- breath: band-limited noise (100-1000 Hz) under a smooth inspiration/expiration envelope,
  expiration quieter and longer (I:E about 1:1.5), then a short pause;
- fine crackle: a 5-15 ms transient (sharp onset, damped 250-700 Hz oscillation), several
  per affected inspiration, mostly late-inspiratory;
- wheeze: a sustained tone 100-1000 Hz (with a weak 2nd harmonic and a slight glide) lasting
  at least 100 ms, in expiration, with soft onset/offset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from edge import protocol
from edge.protocol import DeviceInfo, MsgType
from edge.transports.base import SourceError, Transport
from edge.transports.framing import CommandResponder, PcmStreamFramer, host_device_info

SIM_SAMPLE_RATE = 8000

CRACKLE_MIN_S, CRACKLE_MAX_S = 0.004, 0.010  # fine crackles: two-cycle duration < 10 ms
WHEEZE_MIN_S, WHEEZE_MAX_S = 0.15, 0.6
WHEEZE_MIN_HZ, WHEEZE_MAX_HZ = 100.0, 1000.0


@dataclass(frozen=True)
class InjectedEvent:
    """One thing the simulator put into the signal.

    Attributes
    ----------
    kind : str
        ``"inspiration"``, ``"expiration"``, ``"crackle"`` or ``"wheeze"``.
    start_index, end_index : int
        Absolute sample indices, end exclusive, counted from the first simulated sample.
    cycle : int
        Breath cycle number the event belongs to (0-based).
    frequency_hz : float
        Dominant frequency for crackles and wheezes, 0 for breath phases.
    """

    kind: str
    start_index: int
    end_index: int
    cycle: int
    frequency_hz: float = 0.0


@dataclass(frozen=True)
class PatientConfig:
    """What the simulated patient sounds like.

    Attributes
    ----------
    breath_rate_bpm : float
        Breaths per minute (6-60 are plausible).
    crackle_fraction : float
        Share of breath cycles (0-1) that carry fine crackles.
    wheeze_fraction : float
        Share of breath cycles (0-1) that carry a wheeze.
    sample_rate : int
        Output rate in Hz; the device's nominal 8 kHz by default.
    seed : int
        Seeds every random choice, so a run is reproducible.
    """

    breath_rate_bpm: float = 18.0
    crackle_fraction: float = 0.0
    wheeze_fraction: float = 0.0
    sample_rate: int = SIM_SAMPLE_RATE
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1.0 <= self.breath_rate_bpm <= 120.0:
            raise ValueError("breath rate must be between 1 and 120 breaths per minute")
        for name in ("crackle_fraction", "wheeze_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.sample_rate < 2 * WHEEZE_MAX_HZ + 500:
            raise ValueError("sample rate too low for 1 kHz wheezes")


@dataclass
class _Cycle:
    samples: np.ndarray
    events: list[InjectedEvent] = field(default_factory=list)


class PatientSynth:
    """Generates the SIMULATED patient one breath cycle at a time (unbounded stream).

    Parameters
    ----------
    config : PatientConfig
        Breath rate, how often crackles/wheezes occur, rate and seed.
    """

    def __init__(self, config: PatientConfig) -> None:
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        nyquist = config.sample_rate / 2
        self._breath_sos = signal.butter(
            4, [100.0 / nyquist, 1000.0 / nyquist], btype="band", output="sos"
        )
        self._filter_state = signal.sosfilt_zi(self._breath_sos) * 0.0
        self._next_index = 0
        self._cycle_number = 0

    def cycles(self) -> Iterator[tuple[np.ndarray, list[InjectedEvent]]]:
        """Yield ``(int16 samples, events)`` per breath cycle, forever."""
        while True:
            cycle = self._next_cycle()
            yield cycle.samples, cycle.events

    def _next_cycle(self) -> _Cycle:
        fs = self.config.sample_rate
        period = 60.0 / self.config.breath_rate_bpm
        # Small cycle-to-cycle variability, as in real breathing.
        length = round(period * fs * self._rng.uniform(0.93, 1.07))
        insp_len = int(0.38 * length)
        exp_len = int(0.55 * length)
        start = self._next_index
        audio = self._breath_noise(length, insp_len, exp_len)
        events = [
            InjectedEvent("inspiration", start, start + insp_len, self._cycle_number),
            InjectedEvent(
                "expiration", start + insp_len, start + insp_len + exp_len, self._cycle_number
            ),
        ]
        if self._rng.random() < self.config.crackle_fraction:
            events += self._add_crackles(audio, insp_len, start)
        if self._rng.random() < self.config.wheeze_fraction:
            events += self._add_wheeze(audio, insp_len, exp_len, start)
        samples = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
        self._next_index += length
        self._cycle_number += 1
        events.sort(key=lambda event: (event.start_index, event.kind))
        return _Cycle(samples, events)

    def _breath_noise(self, length: int, insp_len: int, exp_len: int) -> np.ndarray:
        white = self._rng.standard_normal(length)
        noise, self._filter_state = signal.sosfilt(self._breath_sos, white, zi=self._filter_state)
        noise /= max(float(np.std(noise)), 1e-9)
        envelope = np.zeros(length)
        envelope[:insp_len] = 1.0 * np.sin(np.linspace(0.0, np.pi, insp_len)) ** 2
        envelope[insp_len : insp_len + exp_len] = (
            0.6 * np.sin(np.linspace(0.0, np.pi, exp_len)) ** 2
        )
        breath = 1200.0 * envelope * noise
        # A sensor never reads perfectly silent: a small floor keeps pauses realistic.
        floor = 40.0 * self._rng.standard_normal(length)
        return breath + floor

    def _add_crackles(self, audio: np.ndarray, insp_len: int, start: int) -> list[InjectedEvent]:
        fs = self.config.sample_rate
        # Fine crackles come in numbers (often 10-30 per inspiration in fibrosis or
        # heart failure); a handful of isolated clicks is not what a clinician calls crackles.
        count = int(self._rng.integers(15, 31))
        max_len = int(CRACKLE_MAX_S * fs)
        # Fine crackles sit mostly in mid-to-late inspiration.
        earliest = int(0.2 * insp_len)
        latest = max(earliest + 1, insp_len - max_len)
        positions = np.sort(self._rng.integers(earliest, latest, count))
        events: list[InjectedEvent] = []
        last_end = -1
        for position in positions:
            if position <= last_end:
                continue  # Keep crackles separate so each ground-truth entry is one transient.
            duration = self._rng.uniform(CRACKLE_MIN_S, CRACKLE_MAX_S)
            freq = self._rng.uniform(500.0, 1000.0)
            burst = crackle_waveform(duration, freq, fs, amplitude=self._rng.uniform(4000, 8000))
            pos = int(position)
            audio[pos : pos + burst.size] += burst
            last_end = pos + burst.size
            events.append(
                InjectedEvent("crackle", start + pos, start + last_end, self._cycle_number, freq)
            )
        return events

    def _add_wheeze(
        self, audio: np.ndarray, insp_len: int, exp_len: int, start: int
    ) -> list[InjectedEvent]:
        fs = self.config.sample_rate
        duration = min(self._rng.uniform(WHEEZE_MIN_S, WHEEZE_MAX_S), 0.8 * exp_len / fs)
        duration = max(duration, 0.1)
        freq = float(self._rng.uniform(WHEEZE_MIN_HZ + 50, 900.0))
        tone = wheeze_waveform(duration, freq, fs, amplitude=self._rng.uniform(1500, 3000))
        latest = max(insp_len, insp_len + exp_len - tone.size)
        pos = int(self._rng.integers(insp_len, latest + 1))
        end = min(pos + tone.size, audio.size)
        audio[pos:end] += tone[: end - pos]
        return [InjectedEvent("wheeze", start + pos, start + end, self._cycle_number, freq)]


def crackle_waveform(duration_s: float, freq_hz: float, fs: int, amplitude: float) -> np.ndarray:
    """A fine-crackle transient: sharp onset, damped oscillation, ~1 % left at the end.

    Parameters
    ----------
    duration_s : float
        Total length, 5-15 ms for fine crackles.
    freq_hz : float
        Oscillation frequency.
    fs : int
        Sample rate.
    amplitude : float
        Peak amplitude in int16 counts.

    Returns
    -------
    numpy.ndarray
        float64 samples, length ``round(duration_s * fs)``.
    """
    n = max(2, round(duration_s * fs))
    t = np.arange(n) / fs
    decay = np.exp(-t * (np.log(100.0) / duration_s))
    attack = np.minimum(1.0, t / 0.0005)
    return amplitude * attack * decay * np.sin(2 * np.pi * freq_hz * t)


def wheeze_waveform(duration_s: float, freq_hz: float, fs: int, amplitude: float) -> np.ndarray:
    """A wheeze: sustained tone with a weak 2nd harmonic, slight glide, soft edges.

    Parameters
    ----------
    duration_s : float
        Length, at least 0.1 s.
    freq_hz : float
        Fundamental, 100-1000 Hz.
    fs : int
        Sample rate.
    amplitude : float
        Peak amplitude of the fundamental in int16 counts.

    Returns
    -------
    numpy.ndarray
        float64 samples, length ``round(duration_s * fs)``.
    """
    n = max(2, round(duration_s * fs))
    t = np.arange(n) / fs
    glide = freq_hz * (1.0 + 0.05 * t / max(duration_s, 1e-9))
    phase = 2 * np.pi * np.cumsum(glide) / fs
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
    return amplitude * fade * (np.sin(phase) + 0.25 * np.sin(2 * phase))


def synthesize(seconds: float, config: PatientConfig) -> tuple[np.ndarray, list[InjectedEvent]]:
    """Render ``seconds`` of the SIMULATED patient in one go.

    Parameters
    ----------
    seconds : float
        Length of audio to produce.
    config : PatientConfig
        Patient settings.

    Returns
    -------
    samples : numpy.ndarray
        int16 audio at ``config.sample_rate``.
    events : list of InjectedEvent
        Ground truth for everything that starts within the returned audio (end indices may
        reach past its last sample if the cut falls inside an event).
    """
    total = round(seconds * config.sample_rate)
    pieces: list[np.ndarray] = []
    events: list[InjectedEvent] = []
    have = 0
    for samples, cycle_events in PatientSynth(config).cycles():
        if have >= total:
            break
        pieces.append(samples)
        events += [event for event in cycle_events if event.start_index < total]
        have += samples.size
    audio = np.concatenate(pieces)[:total] if pieces else np.zeros(0, np.int16)
    return audio, events


# ---------------------------------------------------------------------------------------
# The SIMULATED device: the patient above, framed in the real wire protocol.

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
