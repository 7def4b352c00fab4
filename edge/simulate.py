"""A SIMULATED patient: synthetic breathing with injected crackles and wheezes.

Used only with ``--simulate``, through :class:`edge.transports.simulated.SimulatedTransport`,
whose device id, sensor type and transport flag mark everything it produces SIMULATED.
Alongside the audio it keeps a ground-truth list of every breath phase and adventitious sound
it injected, with sample indices, so the pipeline can be scored against what really went in.

Sound model (after the lung-sound literature: Pasterkamp et al., "Respiratory sounds",
AJRCCM 1997; the CORSA guidelines, Eur Respir Rev 2000; Murphy's crackle criteria; and
matched to the recordings the shipped model learnt from, SPRSound, children, 8 kHz):

- breath (vesicular sound): white noise low-passed by lung and chest wall (3rd order at
  200 Hz, about -18 dB per octave above it: most energy below 300-400 Hz), under a flow
  envelope: inspiration (a third of the cycle) louder than expiration (two thirds, heard
  mainly in its first part), the end-expiratory pause quietest (never silent);
- fine crackle: an explosive transient, initial deflection width (IDW) 0.7-1 ms and
  two-cycle duration (2CD) 5-7 ms, 6-14 per affected inspiration, mid-to-late
  inspiratory; coarse crackle: IDW 1.3-1.8 ms, 2CD 9-11 ms, 3-8 in early inspiration.
  Crackles arise in peripheral airways next to the chest wall, so they skip the lung
  filter;
- wheeze: a sustained tone, fundamental 100-1000 Hz (drawn from 150-600 Hz), 0.1-0.6 s,
  with 2nd and 3rd harmonics and a slight glide, in the first half of expiration;
- sensor: the stethoscope's response (2nd-order high-pass at 80 Hz, 6th-order low-pass at
  600 Hz), a white noise floor 45 dB below the inspiratory level, 16-bit rounding.

The filter corners, orders and the floor were chosen so that the breath's mel spectrum
(through :mod:`edge.features`) follows the mean of SPRSound's normal breath events: peak
near 110 Hz, about -14 dB at 350 Hz, -35 dB at 630 Hz and a flat floor about 57 dB down
above 1 kHz. The level (about -50 dBFS over a cycle) is SPRSound's too. Without that
match the shipped model does not hear the injected crackles (see docs/events.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal

from steth.edge.filter import SosFilter

SIM_SAMPLE_RATE = 8000

INSPIRATION_SHARE = 1 / 3  # I:E about 1:2
BREATH_RMS = 300.0  # int16 counts at peak inspiration: about -41 dBFS, as in SPRSound
EXPIRATION_GAIN = 0.5  # expiratory sound is softer and fades early
# A chest is never silent: low flow, muscle and room noise keep the quietest 64 ms frames
# of SPRSound recordings only about 7.5 dB below their median (measured on 60 of them).
PAUSE_GAIN = 0.09
SENSOR_FLOOR_DB = -45.0  # white sensor noise relative to BREATH_RMS
# Lung and chest wall low-pass the breath sound on its way from the large airways.
LUNG_LOWPASS = ((200.0, 3),)  # (corner Hz, Butterworth order)
SENSOR_HIGHPASS_HZ = 80.0
SENSOR_LOWPASS = (600.0, 6)  # the stethoscope's roll-off (corner Hz, order)


@dataclass(frozen=True)
class CrackleShape:
    """Murphy's time-domain description of one crackle type (at the chest wall).

    Attributes
    ----------
    idw_s : tuple of float
        Range of the initial deflection width: the first half-cycle.
    tcd_s : tuple of float
        Range of the two-cycle duration: onset to the end of the second full cycle.
    count : tuple of int
        Crackles per affected inspiration (inclusive range).
    window : tuple of float
        Where in inspiration they occur, as fractions of its length.
    peak_re_breath : tuple of float
        Peak amplitude relative to the inspiratory breath RMS.
    """

    idw_s: tuple[float, float]
    tcd_s: tuple[float, float]
    count: tuple[int, int]
    window: tuple[float, float]
    peak_re_breath: tuple[float, float]


FINE_CRACKLE = CrackleShape(idw_s=(0.0007, 0.001), tcd_s=(0.005, 0.007), count=(6, 14),
                            window=(0.35, 1.0), peak_re_breath=(2.0, 5.0))
COARSE_CRACKLE = CrackleShape(idw_s=(0.0013, 0.0018), tcd_s=(0.009, 0.011), count=(3, 8),
                              window=(0.0, 0.6), peak_re_breath=(2.0, 5.0))
CRACKLE_SHAPES = {"fine": FINE_CRACKLE, "coarse": COARSE_CRACKLE}
CRACKLE_TAIL = 3.0  # a crackle's waveform lasts this many two-cycle durations
CRACKLE_LEFT_AT_2CD = 0.6  # envelope left after two cycles: recorded crackles ring on

WHEEZE_MIN_S, WHEEZE_MAX_S = 0.15, 0.6
WHEEZE_MIN_HZ, WHEEZE_MAX_HZ = 100.0, 1000.0
WHEEZE_TYPICAL_HZ = (150.0, 600.0)  # where the simulator draws its fundamentals
WHEEZE_HARMONICS = (1.0, 0.35, 0.12)  # fundamental, 2nd, 3rd


@dataclass(frozen=True)
class InjectedEvent:
    """One thing the simulator put into the signal.

    Attributes
    ----------
    kind : str
        ``"inspiration"``, ``"expiration"``, ``"crackle"`` or ``"wheeze"``.
    start_index, end_index : int
        Absolute sample indices, end exclusive, counted from the first simulated sample,
        where the sound was injected; the simulated sensor's filters delay what is
        recorded by 1-2 ms (group delay 150-500 Hz), i.e. 8-16 samples at 8 kHz.
    cycle : int
        Breath cycle number the event belongs to (0-based).
    frequency_hz : float
        Wheezes: the fundamental. Crackles: ``1 / (2 * IDW)``, the frequency of the initial
        deflection. 0 for breath phases.
    subtype : str
        ``"fine"`` or ``"coarse"`` for crackles, empty otherwise.
    """

    kind: str
    start_index: int
    end_index: int
    cycle: int
    frequency_hz: float = 0.0
    subtype: str = ""


@dataclass(frozen=True)
class PatientConfig:
    """What the simulated patient sounds like.

    Attributes
    ----------
    breath_rate_bpm : float
        Breaths per minute (children: about 12-30 at rest, infants up to 60).
    crackle_fraction : float
        Share of breath cycles (0-1) that carry crackles.
    wheeze_fraction : float
        Share of breath cycles (0-1) that carry a wheeze.
    coarse_fraction : float
        Share of the crackly cycles (0-1) whose crackles are coarse rather than fine.
    sample_rate : int
        Output rate in Hz; the device's nominal 8 kHz by default.
    seed : int
        Seeds every random choice, so a run is reproducible.
    """

    breath_rate_bpm: float = 18.0
    crackle_fraction: float = 0.0
    wheeze_fraction: float = 0.0
    coarse_fraction: float = 0.0
    sample_rate: int = SIM_SAMPLE_RATE
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1.0 <= self.breath_rate_bpm <= 120.0:
            raise ValueError("breath rate must be between 1 and 120 breaths per minute")
        for name in ("crackle_fraction", "wheeze_fraction", "coarse_fraction"):
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
        fs = config.sample_rate
        # Filter states carry over between cycles, so the stream has no seams.
        self._lung = SosFilter(lung_transmission_sos(fs))
        self._sensor = SosFilter(sensor_response_sos(fs))
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
        # Small cycle-to-cycle variability in length and loudness, as in real breathing.
        length = round(period * fs * self._rng.uniform(0.93, 1.07))
        level = BREATH_RMS * self._rng.uniform(0.85, 1.15)
        insp_len = round(INSPIRATION_SHARE * length)
        exp_len = length - insp_len
        start = self._next_index
        chest = self._breath_at_skin(length, insp_len, level)
        events = [
            InjectedEvent("inspiration", start, start + insp_len, self._cycle_number),
            InjectedEvent("expiration", start + insp_len, start + length, self._cycle_number),
        ]
        if self._rng.random() < self.config.crackle_fraction:
            kind = "coarse" if self._rng.random() < self.config.coarse_fraction else "fine"
            events += self._add_crackles(chest, insp_len, start, level, kind)
        if self._rng.random() < self.config.wheeze_fraction:
            events += self._add_wheeze(chest, insp_len, exp_len, start, level)
        floor = BREATH_RMS * 10 ** (SENSOR_FLOOR_DB / 20) * self._rng.standard_normal(length)
        recorded = self._sensor.process(chest) + floor
        samples = np.clip(np.round(recorded), -32768, 32767).astype(np.int16)
        self._next_index += length
        self._cycle_number += 1
        events.sort(key=lambda event: (event.start_index, event.kind))
        return _Cycle(samples, events)

    def _breath_at_skin(self, length: int, insp_len: int, level: float) -> np.ndarray:
        noise = self._lung.process(self._rng.standard_normal(length))
        noise *= level / _unit_noise_rms(self.config.sample_rate)
        return breath_envelope(length, insp_len) * noise

    def _add_crackles(self, audio: np.ndarray, insp_len: int, start: int, level: float,
                      kind: str) -> list[InjectedEvent]:
        fs = self.config.sample_rate
        shape = CRACKLE_SHAPES[kind]
        count = int(self._rng.integers(shape.count[0], shape.count[1] + 1))
        longest = math.ceil(CRACKLE_TAIL * shape.tcd_s[1] * fs)
        earliest = int(shape.window[0] * insp_len)
        latest = max(earliest + 1, int(shape.window[1] * insp_len) - longest)
        positions = np.sort(self._rng.integers(earliest, latest, count))
        events: list[InjectedEvent] = []
        last_end = -1
        for position in positions:
            if position <= last_end:
                continue  # Keep crackles separate so each ground-truth entry is one transient.
            idw = self._rng.uniform(*shape.idw_s)
            tcd = self._rng.uniform(*shape.tcd_s)
            # Explosive onsets start with either polarity.
            peak = level * self._rng.uniform(*shape.peak_re_breath) * self._rng.choice([-1, 1])
            burst = crackle_waveform(idw, tcd, fs, peak)
            pos = int(position)
            audio[pos : pos + burst.size] += burst
            last_end = pos + burst.size
            events.append(InjectedEvent("crackle", start + pos, start + last_end,
                                        self._cycle_number, 1.0 / (2.0 * idw), kind))
        return events

    def _add_wheeze(self, audio: np.ndarray, insp_len: int, exp_len: int, start: int,
                    level: float) -> list[InjectedEvent]:
        fs = self.config.sample_rate
        duration = min(self._rng.uniform(WHEEZE_MIN_S, WHEEZE_MAX_S), 0.8 * exp_len / fs)
        duration = max(duration, 0.1)
        freq = float(self._rng.uniform(*WHEEZE_TYPICAL_HZ))
        tone = wheeze_waveform(duration, freq, fs, amplitude=level * self._rng.uniform(2.0, 4.0))
        latest = max(insp_len, insp_len + exp_len // 2 - tone.size)
        pos = int(self._rng.integers(insp_len, latest + 1))
        end = min(pos + tone.size, audio.size)
        audio[pos:end] += tone[: end - pos]
        return [InjectedEvent("wheeze", start + pos, start + end, self._cycle_number, freq)]


def lung_transmission_sos(fs: int) -> np.ndarray:
    """Breath sound from the large airways to the skin: most energy left below 300-400 Hz.

    About -18 dB per octave above 200 Hz, steeper above 600 Hz; together within 2-3 dB of
    the mean mel spectrum of SPRSound's normal breath events (measured through
    :mod:`edge.features`). Crackles arise in peripheral airways next to the chest wall and
    are added after this filter.
    """
    return np.vstack([signal.butter(order, corner, "lowpass", fs=fs, output="sos")
                      for corner, order in LUNG_LOWPASS])


def sensor_response_sos(fs: int) -> np.ndarray:
    """The simulated chest-piece: 2nd-order high-pass at 80 Hz, 6th-order low-pass at 600 Hz."""
    return np.vstack([signal.butter(2, SENSOR_HIGHPASS_HZ, "highpass", fs=fs, output="sos"),
                      signal.butter(SENSOR_LOWPASS[1], SENSOR_LOWPASS[0], "lowpass", fs=fs,
                                    output="sos")])


@lru_cache(maxsize=4)
def _unit_noise_rms(fs: int) -> float:
    # RMS of unit white noise after the lung filter: the root of its impulse response energy.
    impulse = np.zeros(fs)
    impulse[0] = 1.0
    return float(np.sqrt(np.sum(signal.sosfilt(lung_transmission_sos(fs), impulse) ** 2)))


def breath_envelope(length: int, insp_len: int) -> np.ndarray:
    """Amplitude of the breath sound over one cycle (1 at peak inspiration).

    The amplitude follows airflow: it rises quickly in early inspiration, then eases down;
    the softer expiratory sound takes over at flow reversal (whose dip is too brief to
    matter at this resolution and is left out) and fades over the first part of
    expiration. The quietest part is the end-expiratory pause (never silent, see
    ``PAUSE_GAIN``), where a clinician (and the cycle detector) places the boundary.
    """
    envelope = np.zeros(length)
    rise = max(1, round(0.3 * insp_len))
    envelope[:rise] = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, rise))
    envelope[rise:insp_len] = np.linspace(1.0, EXPIRATION_GAIN, insp_len - rise)
    audible = (length - insp_len) * 3 // 5
    envelope[insp_len : insp_len + audible] = EXPIRATION_GAIN * (
        0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, audible))
    )
    return np.maximum(envelope, PAUSE_GAIN)


def crackle_waveform(idw_s: float, tcd_s: float, fs: int, peak: float) -> np.ndarray:
    """One crackle: an explosive deflection followed by slower, decaying oscillations.

    The phase grows as ``t ** p`` so that the first half-cycle lasts ``idw_s`` and two full
    cycles last ``tcd_s`` (Murphy's IDW and 2CD); the period lengthens as the crackle
    rings down, as in recorded crackles.

    Parameters
    ----------
    idw_s : float
        Initial deflection width in seconds (fine about 0.7 ms, coarse about 1.5 ms).
    tcd_s : float
        Two-cycle duration in seconds (fine about 5 ms, coarse about 10 ms).
    fs : int
        Sample rate.
    peak : float
        Signed amplitude of the initial deflection in int16 counts.

    Returns
    -------
    numpy.ndarray
        float64 samples, ``CRACKLE_TAIL * tcd_s`` long.
    """
    if not 0 < idw_s < tcd_s / 4:
        raise ValueError("a crackle needs 0 < IDW < 2CD / 4")
    n = max(4, round(CRACKLE_TAIL * tcd_s * fs))
    t = (np.arange(n) + 0.5) / fs
    exponent = math.log(4.0) / math.log(tcd_s / idw_s)  # phase(idw) = pi, phase(2CD) = 4 pi
    phase = np.pi * (t / idw_s) ** exponent
    decay = CRACKLE_LEFT_AT_2CD ** (t / tcd_s)
    return peak * decay * np.sin(phase)


def wheeze_waveform(duration_s: float, freq_hz: float, fs: int, amplitude: float) -> np.ndarray:
    """A wheeze: sustained tone with 2nd and 3rd harmonics, slight glide, soft edges.

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
    tone = sum(weight * np.sin(k * phase) for k, weight in enumerate(WHEEZE_HARMONICS, 1))
    return amplitude * fade * tone


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
