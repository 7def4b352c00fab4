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

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

SIM_SAMPLE_RATE = 8000
SIMULATED_DEVICE_ID = "SIMULATED-PATIENT"

CRACKLE_MIN_S, CRACKLE_MAX_S = 0.005, 0.015
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
        count = int(self._rng.integers(3, 9))
        max_len = int(CRACKLE_MAX_S * fs)
        # Fine crackles cluster in mid-to-late inspiration.
        earliest = int(0.3 * insp_len)
        latest = max(earliest + 1, insp_len - max_len)
        positions = np.sort(self._rng.integers(earliest, latest, count))
        events: list[InjectedEvent] = []
        last_end = -1
        for position in positions:
            if position <= last_end:
                continue  # Keep crackles separate so each ground-truth entry is one transient.
            duration = self._rng.uniform(CRACKLE_MIN_S, CRACKLE_MAX_S)
            freq = self._rng.uniform(250.0, 700.0)
            burst = crackle_waveform(duration, freq, fs, amplitude=self._rng.uniform(3000, 6000))
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
