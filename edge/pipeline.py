"""decode -> filter -> segment -> infer -> events, for one live stream.

The I/O thread calls :meth:`Pipeline.handle` with each decoded item and :meth:`Pipeline.tick`
a few times a second. DSP and cycle detection run there (they are cheap and must keep
pace); model inference runs on its own thread (:class:`InferenceWorker`) so a slow model
never stalls decoding. Frames live in a fixed-size ring buffer; a gap or a new device
configuration resets the DSP and the detector, so nothing is stitched across a gap.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from steth.edge import events as ev
from steth.edge.decode import AudioChunk, Gap, LinkStats, StatusReport
from steth.edge.event_schema import MAX_ENVELOPE
from steth.edge.features import FeatureExtractor, pcm16_to_float
from steth.edge.findings import (
    STALE_AFTER_S,
    BreathRate,
    RecordTally,
    assess_cycle,
    rate_problem,
)
from steth.edge.guard import SignalGuard
from steth.edge.infer import MIN_CYCLE_FRAMES, CycleModel
from steth.edge.loading import load_model
from steth.edge.protocol import DeviceInfo, Status
from steth.edge.segment import BreathCycleDetector, Cycle, DetectorConfig

Emit = Callable[[dict], None]

CLIP_LEVEL = 32000  # |sample| at or above this counts as clipped
LEVEL_EVERY_S = 0.25
LINK_EVERY_S = 1.0
FAST_BLOCK_S = 0.1  # edge-run's front-end block (Pipeline block_s): 5 wired frames
NEW_SITE_CODE = "new_site"  # status code: the record and the findings start over here
SAMPLE_RATE_CODE = "sample_rate"  # status code: the measured rate left or re-entered limits


class NewSite:
    """Marker in the inference queue: the cycles after it belong to another site."""


def mean_square(samples: np.ndarray) -> float:
    """Mean power of PCM16 samples at ±1 full scale (0 for none)."""
    if not samples.size:
        return 0.0
    x = samples.astype(np.float64)
    return float(x.dot(x)) / (samples.size * 32768.0 ** 2)


class FrameRing:
    """Fixed-capacity store of the newest frames and their per-frame signal statistics."""

    def __init__(self, capacity: int, n_mels: int) -> None:
        self.capacity = capacity
        self.frames = np.zeros((capacity, n_mels), dtype=np.float32)
        self.clipped = np.zeros(capacity, dtype=np.int32)
        self.power = np.zeros(capacity, dtype=np.float64)
        self.count = 0  # frames written since the last reset

    def append(self, frames: np.ndarray, clipped: int, power: float) -> None:
        n = frames.shape[0]
        first = self.count % self.capacity
        # Slices while the frames fit before the end of the store; index arrays to wrap.
        slots: slice | np.ndarray = (slice(first, first + n) if first + n <= self.capacity
                                     else (first + np.arange(n)) % self.capacity)
        self.frames[slots] = frames
        self.clipped[slots] = 0
        self.clipped[first] = clipped  # count a chunk's clips once
        self.power[slots] = power
        self.count += n

    def holds(self, first: int, last: int) -> bool:
        return 0 <= first < last <= self.count and self.count - first <= self.capacity

    def take(self, first: int, last: int) -> tuple[np.ndarray, int, float]:
        """Copy of frames ``[first, last)``, their clip count and mean power."""
        idx = np.arange(first, last) % self.capacity
        return self.frames[idx].copy(), int(self.clipped[idx].sum()), float(self.power[idx].mean())

    def reset(self) -> None:
        self.count = 0


@dataclass
class CycleJob:
    """A closed cycle waiting for the model (built on the I/O thread)."""

    cycle_id: int
    frames: np.ndarray
    start: int  # device sample indices, end exclusive
    end: int
    rate_hz: float
    wall_start: float
    closed_monotonic: float
    clipped_fraction: float
    dbfs: float
    forced: bool  # closed by the length limit, not at a detected boundary
    # Inside the channel normaliser's warm-up: shown as settling, left out of the record.
    settling: bool = False
    unfamiliar: bool | None = None  # the guard's state; None: no guard, or not decided yet
    signal_distance: float | None = None

    @property
    def duration_s(self) -> float:
        return (self.end - self.start) / self.rate_hz


class InferenceWorker:
    """Runs the model on closed cycles off the I/O thread and emits cycle + verdict events."""

    def __init__(self, model: CycleModel, emit: Emit, simulated: bool, max_pending: int = 32,
                 on_cycle: Callable[[dict], None] | None = None, block: bool = False,
                 measure_latency: bool = True) -> None:
        self.model = model
        self.emit = emit
        self.simulated = simulated
        # Unbounded so a NewSite marker always goes in; cycles stop at max_pending.
        self.jobs: queue.Queue[CycleJob | NewSite | None] = queue.Queue()
        self.max_pending = max_pending
        self.record = RecordTally(model.manifest.verdict_rule)  # inference thread only
        self.breaths = BreathRate()  # inference thread only
        self.breath_rate_bpm: float | None = None  # the latest, read by the I/O thread
        self.dropped = 0
        self.block = block  # offline replay waits for the model instead of dropping
        self.on_cycle = on_cycle
        # A re-run of a saved file has no cycle-closed-to-shown latency: it is null there.
        self.measure_latency = measure_latency
        self.latencies_ms: deque[float] = deque(maxlen=1000)
        self.thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self.thread.start()

    def submit(self, job: CycleJob) -> bool:
        """Queue a cycle; if the model cannot keep up the cycle is dropped and counted."""
        while self.block and self.jobs.qsize() >= self.max_pending:
            time.sleep(0.005)  # offline replay waits for the model (the only producer)
        if self.jobs.qsize() >= self.max_pending:
            self.dropped += 1
            return False
        self.jobs.put(job)
        return True

    def new_site(self) -> None:
        """Start the record over after the cycles already queued (thread-safe)."""
        self.jobs.put(NewSite())

    def close(self, timeout: float | None = 5.0) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            if isinstance(job, NewSite):
                self._start_site()
            else:
                self.emit_cycle(job)

    def _start_site(self) -> None:
        self.record.reset()
        self.breaths.reset()
        self.breath_rate_bpm = None
        self.emit(ev.make_status(level="info", code=NEW_SITE_CODE,
                                 message="new auscultation site: findings and verdict start over",
                                 simulated=self.simulated))

    def emit_cycle(self, job: CycleJob) -> None:
        th = self.model.thresholds
        pred = self.model.predict_cycle(job.frames)
        crackle, wheeze = pred.flags(th)
        cycle = assess_cycle(crackle=crackle, wheeze=wheeze, model_poor=pred.poor_quality(th),
                             clipped_fraction=job.clipped_fraction, dbfs=job.dbfs,
                             p_crackle=pred.p_crackle, p_wheeze=pred.p_wheeze)
        subtype = pred.event_class(th)
        latency_ms: float | None = None
        if self.measure_latency:
            latency_ms = (time.monotonic() - job.closed_monotonic) * 1000.0
            self.latencies_ms.append(latency_ms)
        if not job.settling:
            self.breaths.add(job.duration_s, good=not (cycle.poor or job.forced))
            self.breath_rate_bpm = self.breaths.bpm()
        event = ev.make_cycle(
            cycle_id=job.cycle_id, start=job.start, end=job.end, rate_hz=job.rate_hz,
            wall_start=job.wall_start, finding=cycle.finding, p_crackle=pred.p_crackle,
            p_wheeze=pred.p_wheeze, quality=cycle.quality, quality_reason=cycle.quality_reason,
            subtype=None if subtype in ("Normal", "Wheeze+Crackle") else subtype,
            latency_ms=latency_ms, breath_rate_bpm=self.breath_rate_bpm,
            settling=job.settling, unfamiliar=job.unfamiliar,
            signal_distance=job.signal_distance, simulated=self.simulated)
        self.emit(event)
        if self.on_cycle is not None:
            self.on_cycle(event)
        if job.settling:
            return  # the normaliser had not settled: no finding, so nothing for the record
        verdict = self.record.add(cycle)
        self.emit(ev.make_verdict(verdict=verdict.label, cycles=verdict.n_cycles,
                                  good_cycles=verdict.n_good_cycles,
                                  counts=dict(self.record.counts),
                                  rule=self.record.rule.to_dict(), simulated=self.simulated))


class Pipeline:
    """One stream's DSP, cycle detection and event emission.

    Parameters
    ----------
    model : CycleModel
        The manifest-checked model; its feature config drives the DSP.
    emit : callable
        Receives every event dict (must be thread-safe: cycle events come from the
        inference thread).
    simulated : bool
        Marks every event SIMULATED.
    mains_hz : float
        0 (off), 50 or 60: the optional mains notch.
    rate_speed : float
        How much faster than real time the source delivers (a replay at ``--speed 10``);
        the measured sample rate is checked against nominal × this, not at all when it is
        infinite (``--speed max``), and a cycle's ``wall_start`` is the time its first sample
        was delivered at that pace.
    offline : bool
        A whole file is pushed as fast as the model allows: the model never drops a cycle
        and no latency is measured (``latency_ms`` is null).
    block_s : float
        The fast path: audio is gathered into blocks of at least this many seconds before
        the filter, features and detector run on it (0: every chunk at once, the plain
        path). Device frames carry 20 ms; running the front end on 100 ms blocks costs a
        fraction of the Python calls per audio second and delays a cycle's close by at most
        one block. Gaps, rate changes, jumps and the end of a file flush the block first.
    """

    def __init__(self, model: CycleModel, emit: Emit, *, simulated: bool, transport: str,
                 mains_hz: float = 0.0, detector: DetectorConfig | None = None,
                 clock: Callable[[], float] = time.time, offline: bool = False,
                 rate_speed: float = 1.0, block_s: float = 0.0,
                 sample_clock: Callable[[int], float] | None = None) -> None:
        base = model.manifest.feature_config
        self.features = replace(base, filter=replace(base.filter, mains_hz=mains_hz))
        self.model = model
        self.emit = emit
        self.simulated = simulated
        self.transport = transport
        self.detector_config = detector or DetectorConfig()
        self.clock = clock
        # A recording's own clock (sample index -> Unix seconds) when re-running a file:
        # cycles are stamped by it, not by the delivery pace, which a file does not have.
        self.sample_clock = sample_clock
        self.worker = InferenceWorker(model, emit, simulated, block=offline,
                                      measure_latency=not offline)
        capacity = int(self.detector_config.max_cycle_s * self.features.frames_per_second * 2)
        self.ring = FrameRing(capacity, self.features.n_mels)
        self.extractor: FeatureExtractor | None = None
        self.detector = BreathCycleDetector(self.features, self.detector_config)
        guard = model.manifest.guard
        self.guard = (SignalGuard(guard, self.features.frames_per_second)
                      if guard is not None else None)
        self.norm_origin = 0  # segment frame at which the channel normaliser last started
        self._new_site = threading.Event()
        self.device: DeviceInfo | None = None
        self.rate = 0
        self.segment_start = 0  # device sample index of the current segment's first sample
        self.next_index: int | None = None
        self.anchor: tuple[int, float] | None = None  # (sample index, wall time)
        self.first_audio_wall: float | None = None  # no cycle starts before the stream did
        self.cycle_id = 0
        self.stale = False
        self.last_audio_monotonic: float | None = None
        self.last_level = self.last_link = 0.0
        self.link_mark: tuple[float, int] | None = None  # (time, frames) at the last link event
        self.chunk_power: deque[float] = deque(maxlen=32)  # mean square of recent chunks
        self.last_index: int | None = None
        self.rate_speed = rate_speed
        self.rate_off = False  # the measured sample rate is past RATE_TOLERANCE
        self.battery_pct: float | None = None  # from the device's latest Status frame
        self.on_filtered: Callable[[np.ndarray], None] | None = None
        self.block_s = block_s
        self.pending: list[AudioChunk] = []  # contiguous chunks waiting for a full block
        self.pending_samples = 0
        self.pending_energy = 0.0  # sum of squares of the pending samples, full scale 1
        self.pending_since: float | None = None  # arrival of the first pending chunk

    # ---------------------------------------------------------------- items from the decoder

    def handle(self, item: object, now: float) -> None:
        if isinstance(item, AudioChunk):  # first: nearly every item is audio
            self._on_audio(item, now)
        elif isinstance(item, DeviceInfo):
            self._on_device_info(item)
        elif isinstance(item, Gap):
            self._on_gap(item)
        elif isinstance(item, StatusReport):
            self._on_status(item.status)

    def _on_status(self, status: Status) -> None:
        known = status.battery_pct != Status.BATTERY_UNKNOWN and status.battery_pct <= 100
        self.battery_pct = float(status.battery_pct) if known else None

    def _on_device_info(self, info: DeviceInfo) -> None:
        # A device announces itself at boot and again in answer to GET_INFO: one hello per
        # device, and another only when what it says changes (a reset into another rate).
        if info == self.device:
            return
        self.flush_audio()
        changed = self.device is None or info.sample_rate_hz != self.rate
        self.device = info
        manifest = self.model.manifest
        if changed:
            self.rate = int(info.sample_rate_hz)
            self._restart_segment()
        self.emit(ev.make_hello(
            device_id=f"{info.device_id:08X}",
            firmware=f"{info.fw_major}.{info.fw_minor}.{info.fw_patch}",
            nominal_rate_hz=float(info.sample_rate_hz), adc_bits=info.bit_depth,
            gain=float(info.gain),
            model_name=manifest.name, model_version=manifest.version,
            model_hash=manifest.weights_sha256, calibrated=manifest.calibrated,
            transport=self.transport, simulated=self.simulated,
            backend=manifest.data["format"], clock_synchronised=None,
            thresholds=manifest.thresholds, detector=self.detector.identity))

    def new_site(self) -> None:
        """The stethoscope moved to another site: restart the normaliser and the guard.

        Thread-safe (the dashboard calls it); the front end restarts with the next audio
        block, and the record (verdict, breath rate) after the cycles already closed, with
        a ``status`` event (code ``new_site``) at that point of the stream.
        """
        self._new_site.set()
        self.worker.new_site()

    def _restart_segment(self) -> None:
        self.norm_origin = 0
        self.extractor = FeatureExtractor(self.rate, self.features) if self.rate else None
        self.detector.reset()
        self.ring.reset()
        self.next_index = None

    def _on_gap(self, gap: Gap) -> None:
        self.flush_audio()
        self.emit(ev.make_gap(expected_index=gap.expected_index,
                              received_index=gap.received_index,
                              lost_samples=gap.lost_samples, reason=gap.reason,
                              simulated=self.simulated))
        self._restart_segment()  # never stitch audio across a gap

    def _on_audio(self, chunk: AudioChunk, now: float) -> None:
        power = self._note_arrival(chunk, now)
        if self.block_s <= 0:
            self._process_audio(chunk, now, power)
            return
        if self.pending and (chunk.sample_rate != self.pending[-1].sample_rate
                             or chunk.start_index != self.pending[-1].end_index):
            self.flush_audio(now)
        if not self.pending:
            self.pending_since = now
        self.pending.append(chunk)
        self.pending_samples += chunk.samples.size
        self.pending_energy += power * chunk.samples.size
        if self.pending_samples >= self.block_s * chunk.sample_rate:
            self.flush_audio(now)

    def flush_audio(self, now: float | None = None) -> None:
        """Run the front end on the gathered block (the fast path); nothing when empty."""
        if not self.pending:
            return
        chunks, self.pending = self.pending, []
        power = self.pending_energy / max(1, self.pending_samples)
        self.pending_samples, self.pending_energy = 0, 0.0
        block = chunks[0] if len(chunks) == 1 else AudioChunk(
            chunks[0].start_index, np.concatenate([c.samples for c in chunks]),
            chunks[0].sample_rate, clipped=any(c.clipped for c in chunks))
        arrived = self.pending_since if self.pending_since is not None else 0.0
        self._process_audio(block, arrived if now is None else now, power)
        self.pending_since = None

    def _note_arrival(self, chunk: AudioChunk, now: float) -> float:
        """What holds per chunk as it arrives (the clock anchor, freshness, the level);
        returns the chunk's mean power, which the block's front end reuses."""
        self.last_index = end = chunk.end_index
        self.anchor = (end, self.clock())
        if self.first_audio_wall is None:
            self.first_audio_wall = (self.anchor[1] - chunk.samples.size
                                     / self.delivery_rate(chunk.sample_rate))
        self.last_audio_monotonic = now
        if self.stale:
            self.stale = False
            self.emit(ev.make_stale(state="recovered", silent_s=0.0, last_index=chunk.start_index,
                                    simulated=self.simulated))
        power = mean_square(chunk.samples)
        self.chunk_power.append(power)
        return power

    def _process_audio(self, chunk: AudioChunk, now: float, power: float) -> None:
        if chunk.sample_rate != self.rate or self.extractor is None:
            self.rate = int(chunk.sample_rate)
            self._restart_segment()
        assert self.extractor is not None
        if self.next_index is None:
            self.segment_start = chunk.start_index
        elif chunk.start_index != self.next_index:
            self._restart_segment()  # a jump the decoder did not report: still never stitch
            self.segment_start = chunk.start_index
        self.next_index = chunk.end_index
        samples = chunk.samples
        clipped = int(np.count_nonzero(np.abs(samples.astype(np.int32)) >= CLIP_LEVEL))
        audio = pcm16_to_float(samples)
        filtered = self.extractor.filters.process(audio)
        if self.on_filtered is not None:
            self.on_filtered(filtered)  # e.g. headphones; must not block
        if self._new_site.is_set():
            self._new_site.clear()
            self.extractor.normaliser.reset()
            self.norm_origin = self.extractor.frames_out
            if self.guard is not None:
                self.guard.reset()
        logmel = self.extractor.push_filtered(filtered)
        if logmel.shape[0] == 0:
            return
        # One float64 copy of the float32 frames for everything below (each would convert).
        frames = logmel.astype(np.float64)
        # The classifier reads channel-normalised frames; the detector the log-mel itself.
        self.ring.append(self.extractor.normalise(frames), clipped, power)
        guarded = 0
        for cycle, read in self.detector.push_decided(frames):
            # The guard (the long-term spectrum before normalisation) stands as it was at
            # the frame that closed the cycle, however long the block.
            self._push_guard(frames[guarded:read])
            guarded = read
            self._close_cycle(cycle, now)
        self._push_guard(frames[guarded:])

    def _push_guard(self, frames: np.ndarray) -> None:
        if self.guard is not None and frames.shape[0]:
            self.guard.push(frames)

    # ---------------------------------------------------------------- cycles

    def frame_to_sample(self, frame_edge: int) -> int:
        """Device sample index at the right edge of segment frame ``frame_edge - 1``."""
        hop_device = self.features.hop * self.rate / self.features.sample_rate
        return self.segment_start + round(frame_edge * hop_device)

    def delivery_rate(self, rate: float) -> float:
        """Samples per wall-clock second as the source delivers audio of ``rate`` Hz (a
        replay's pace)."""
        # At ``--speed max`` (infinite) every sample counts as delivered with its block.
        speed = self.rate_speed if self.rate_speed > 0 else 1.0
        return max(1.0, rate) * speed

    def breath_rate_bpm(self) -> float | None:
        """The breath rate of recent good-quality cycles (:class:`edge.findings.BreathRate`)."""
        return self.worker.breath_rate_bpm

    def _close_cycle(self, cycle: Cycle, now: float) -> None:
        if cycle.last - cycle.first < MIN_CYCLE_FRAMES or not self.ring.holds(cycle.first,
                                                                               cycle.last):
            return
        frames, clipped, power = self.ring.take(cycle.first, cycle.last)
        start, end = self.frame_to_sample(cycle.first + 1), self.frame_to_sample(cycle.last + 1)
        assert self.anchor is not None and self.first_audio_wall is not None
        wall_start = (self.sample_clock(start) if self.sample_clock is not None else
                      max(self.first_audio_wall, self.anchor[1] - (self.anchor[0] - start)
                          / self.delivery_rate(self.rate)))
        self.cycle_id += 1
        samples = max(1, end - start)
        assert self.extractor is not None
        # A cycle is settling when its middle falls in the normaliser's warm-up (since the
        # start, a gap or a new site); a cycle that began before a reset is not.
        middle = (cycle.first + cycle.last) // 2 - self.norm_origin
        settling = middle >= 0 and self.extractor.normaliser.settling_at(middle)
        distance = self.guard.distance if self.guard is not None else None
        unfamiliar = self.guard.state if self.guard is not None else None
        self.worker.submit(CycleJob(
            self.cycle_id, frames, start, end, float(self.rate), wall_start, now,
            clipped / samples, 10.0 * np.log10(power + 1e-20), cycle.forced,
            settling, unfamiliar, distance))

    # ---------------------------------------------------------------- periodic

    def tick(self, now: float, stats: LinkStats | None = None) -> None:
        """Emit level and link events on schedule, and stale/recovered transitions."""
        if self.pending_since is not None and now - self.pending_since >= 2 * self.block_s:
            self.flush_audio(now)  # a source that slowed down must not hold audio back
        silent = now - (self.last_audio_monotonic if self.last_audio_monotonic is not None
                        else (stats.started_monotonic if stats else now))
        if not self.stale and silent >= STALE_AFTER_S:
            self.stale = True
            self.emit(ev.make_stale(state="stale", silent_s=silent, last_index=self.last_index,
                                    simulated=self.simulated))
        if now - self.last_level >= LEVEL_EVERY_S and self.chunk_power and not self.stale:
            self.last_level = now
            self.emit(self._level_event())
        if stats is not None and now - self.last_link >= LINK_EVERY_S:
            # Frames in the interval just ended: a link that went quiet reads 0 at once,
            # where an average since the start would decay for minutes.
            since, frames_before = self.link_mark or (stats.started_monotonic, 0)
            frames_per_s = (stats.frames - frames_before) / max(1e-6, now - since)
            self.link_mark = (now, stats.frames)
            self.last_link = now
            info = stats.device_info or self.device
            nominal = float(info.sample_rate_hz) if info is not None else 0.0
            self.emit(ev.make_link(
                bytes_=stats.bytes, frames=stats.frames, frames_per_s=frames_per_s,
                crc_errors=stats.crc_errors, gaps=stats.gaps, resyncs=stats.resyncs,
                nominal_rate_hz=nominal, measured_rate_hz=stats.measured_rate_hz,
                battery_pct=self.battery_pct, skipped_bytes=stats.skipped_bytes,
                version_errors=stats.version_errors, simulated=self.simulated))
            self._check_rate(stats.measured_rate_hz, nominal)

    def _check_rate(self, measured: float | None, nominal: float) -> None:
        """Warn once when the measured sample rate leaves the tolerance, say when it is back."""
        if measured is None or not nominal or not np.isfinite(self.rate_speed):
            return
        problem = rate_problem(measured, nominal * self.rate_speed)
        if (problem is not None) == self.rate_off:
            return
        self.rate_off = problem is not None
        message = problem or f"measured sample rate {measured:.0f} Hz is back within limits"
        self.emit(ev.make_status(level="warning" if problem else "info", message=message,
                                 code=SAMPLE_RATE_CODE, simulated=self.simulated))

    def _level_event(self) -> dict:
        dbfs = 10.0 * np.log10(float(np.mean(self.chunk_power)) + 1e-20)
        env = np.asarray(self.detector.env)[-MAX_ENVELOPE:]
        if env.size:
            span = env.max() - env.min()
            norm = (env - env.min()) / span if span > 0 else np.zeros_like(env)
            phase = self._phase(norm)
        else:
            norm, phase = np.zeros(0), "unknown"
        return ev.make_level(index=int(self.last_index or 0), dbfs=float(dbfs),
                             envelope=norm.tolist(), phase=phase,
                             breath_rate_bpm=self.breath_rate_bpm(), simulated=self.simulated)

    @staticmethod
    def _phase(norm: np.ndarray) -> str:
        if norm.size < 4:
            return "unknown"
        if norm[-1] < 0.2:
            return "pause"
        return "inspiration" if norm[-1] >= norm[-4] else "expiration"

    def finish(self, now: float) -> None:
        """End of a finite stream (a file): classify the cycle still open at its last frame.

        A live stream never ends this way; its open cycle is simply not reported.
        """
        self.flush_audio(now)
        for cycle in self.detector.finish():
            self._close_cycle(cycle, now)

    def close(self, timeout: float | None = 5.0) -> None:
        """Finish the queued cycles (up to ``timeout`` seconds) and stop the worker."""
        self.worker.close(timeout)


SampleClock = Callable[[int], float]  # sample index -> Unix seconds at which it was taken


def real_time_from(origin: float, sample_rate: int) -> SampleClock:
    """The clock of a recording that started at ``origin`` and ran at real time."""
    return lambda index: origin + index / sample_rate


def stream_events(samples: np.ndarray, sample_rate: int,
                  model: CycleModel | str | Path | None = None, *,
                  clock: SampleClock | None = None,
                  detector: DetectorConfig | None = None) -> list[dict]:
    """Every event the streaming pipeline emits for a whole recording.

    The audio is pushed block by block through :class:`Pipeline` in offline mode (the
    model never drops a cycle), exactly as a live device stream would be: same filter,
    cycle detector, model, quality checks and record rule. Unlike a live stream, the cycle
    still open at the end of the file is closed and classified (:meth:`Pipeline.finish`).

    Parameters
    ----------
    samples : numpy.ndarray
        Mono int16 audio at the device rate, sample 0 first.
    sample_rate : int
        Its rate in Hz.
    model : CycleModel or path, optional
        The model, or a model file with its manifest; the embedded default model
        (``edge-run``'s) when omitted.
    clock : callable, optional
        The recording's clock: Unix seconds of a sample index, which sets each cycle's
        ``wall_start``. By default the file starts now and runs at real time.
    detector : DetectorConfig, optional
        Another breath-cycle detector (e.g. a cross-validation fold's weights); the
        embedded one when omitted.

    Returns
    -------
    list of dict
        Events in the order they were emitted (hello, level, cycle, verdict, ...), sample
        indices counted from sample 0 of ``samples``; ``latency_ms`` is null (a re-run has
        no live latency).

    Raises
    ------
    edge.infer.ModelError
        If the model cannot be loaded.
    ValueError
        If ``samples`` is not one-dimensional or the rate is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> events = stream_events(np.zeros(8000, dtype=np.int16), 8000,
    ...                        clock=lambda index: 1.8e9 + index / 8000)
    >>> events[0]["type"]
    'hello'
    """
    pcm = np.asarray(samples)
    if pcm.ndim != 1 or sample_rate <= 0:
        raise ValueError("classify_recording needs mono audio and a positive sample rate")
    pcm = pcm.astype(np.int16, copy=False)
    if not isinstance(model, CycleModel):
        model = load_model(model)
    sample_clock = clock or real_time_from(time.time(), sample_rate)
    chunk = 256  # samples per block, as a device stream delivers them
    delivered = 0  # end index of the block being pushed: what the pipeline's clock reads

    def wall_now() -> float:
        return sample_clock(delivered)

    events: list[dict] = []
    pipe = Pipeline(model, events.append, simulated=False, transport="file", offline=True,
                    clock=wall_now, block_s=FAST_BLOCK_S, detector=detector,
                    sample_clock=sample_clock)
    pipe.handle(DeviceInfo(device_id=0, fw_major=0, fw_minor=0, fw_patch=0, sensor_type=0,
                           sample_rate_hz=int(sample_rate), bit_depth=16, gain=1, codec=0,
                           link=0, frame_samples=chunk), 0.0)
    for start in range(0, pcm.size, chunk):
        block = pcm[start:start + chunk]
        delivered = start + block.size
        pipe.handle(AudioChunk(start, block, int(sample_rate)), start / sample_rate)
    pipe.finish(pcm.size / sample_rate)
    pipe.close(timeout=None)
    return events


def classify_recording(samples: np.ndarray, sample_rate: int,
                       model: CycleModel | str | Path | None = None, *,
                       clock: SampleClock | None = None) -> list[dict]:
    """The ``cycle`` events of :func:`stream_events`: re-classifies a saved recording."""
    return [e for e in stream_events(samples, sample_rate, model, clock=clock)
            if e["type"] == "cycle"]
