"""Stream decoding: protocol bytes in, audio chunks, gaps and link statistics out.

``StreamDecoder`` sits on top of the pure codec in ``edge/protocol.py``. It never invents
or stitches audio: every sample it emits came out of a CRC-valid frame, and every
discontinuity is reported as a :class:`Gap` placed in a monotonic *stream index* timeline.

Stream index: for a device that never resets it equals the device's own running sample
index (unwrapped past 2**32), so ground truth expressed in device sample indices (e.g. the
simulator's) lines up with ``AudioChunk.start_index``. After a device reset the new
segment is placed after the old one, leaving a ``device_reset`` gap whose size is
estimated from arrival times (the device cannot tell us how long it was away).

Byte accounting invariant (checked by the property tests)::

    bytes == decoded_bytes + dropped_bytes + skipped_bytes + pending_bytes

where decoded = CRC-valid v1 frames that were used (or deliberately ignored: unknown
types from a later minor version, host commands), dropped = CRC failures, wrong-version
(skipped mid-stream; fatal when the device announces itself in another major),
malformed and duplicate frames and audio that arrived before the device said what it is,
skipped = noise discarded while hunting for sync, pending = a partial frame held back.

Audio is trusted only after a DeviceInfo (docs/protocol.md section 5.1): a host that
connects mid-stream asks for one with GET_INFO (:meth:`StreamDecoder.device_info_request`)
and drops the audio frames before it, counting them in ``untrusted_audio_frames``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from steth.edge import protocol
from steth.edge.findings import STALE_AFTER_S
from steth.edge.protocol import (
    Ack,
    AudioAdpcm,
    AudioPcm16,
    CrcError,
    DeviceInfo,
    Flag,
    Frame,
    FrameParser,
    MsgType,
    Payload,
    ProtocolError,
    Skipped,
    Status,
    VersionError,
)

RATE_WINDOW_S = 30.0
RATE_MIN_SPAN_S = 2.0
INFO_REQUEST_INTERVAL_S = 1.0

_AUDIO_TYPES = (MsgType.AUDIO_PCM16, MsgType.AUDIO_ADPCM)

GAP_CRC_ERROR = "crc_error"
GAP_LOST_FRAMES = "lost_frames"
GAP_DEVICE_DROPPED = "device_dropped"
GAP_DEVICE_RESET = "device_reset"
GAP_STREAM_RESTART = "stream_restart"


class ProtocolVersionError(Exception):
    """Fatal: the device announced a protocol major version this software does not speak.

    ``str(error)`` is a one-line message saying what to do.
    """

    def __init__(self, major: int, minor: int) -> None:
        self.major = major
        self.minor = minor
        super().__init__(VersionError(major, minor, b"").message())


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """Samples from one frame, at ``start_index`` in the stream-index timeline.

    Attributes
    ----------
    start_index : int
        Stream index of ``samples[0]`` (monotonic, never reused).
    samples : numpy.ndarray
        int16 samples exactly as the device sent them (ADPCM is decoded).
    sample_rate : int
        Nominal rate announced by the latest DeviceInfo (audio is withheld until one
        arrives, so this is always the device's own statement).
    clipped : bool
        The device flagged saturation in this block.
    """

    start_index: int
    samples: np.ndarray
    sample_rate: int
    clipped: bool = False

    @property
    def end_index(self) -> int:
        """Stream index one past the last sample."""
        return self.start_index + int(self.samples.size)


@dataclass(frozen=True)
class Gap:
    """A discontinuity: audio between ``expected_index`` and ``received_index`` is missing.

    Every Gap is a discontinuity to downstream stages (reset filters/segmenters);
    ``lost_samples`` is exact for lost frames and device drops, and an estimate from
    arrival times for ``device_reset``.

    Attributes
    ----------
    expected_index : int
        Stream index the next sample should have had.
    received_index : int
        Stream index of the first sample after the gap.
    lost_samples : int
        ``received_index - expected_index``.
    reason : str
        ``crc_error`` (a corrupted frame was dropped), ``lost_frames`` (bytes never
        arrived), ``device_dropped`` (the device itself skipped samples),
        ``stream_restart`` (device re-started streaming) or ``device_reset``.
    lost_frames : int
        Frames missing according to the sequence counter (0 if unknown).
    """

    expected_index: int
    received_index: int
    lost_samples: int
    reason: str
    lost_frames: int = 0


@dataclass(frozen=True)
class StatusReport:
    """A device Status frame with where it sits in the stream.

    ``stream_index`` is the frame's device sample index mapped onto the stream timeline
    (before any audio, the device index itself).
    """

    status: Status
    stream_index: int
    received_monotonic: float


DecodedItem = DeviceInfo | AudioChunk | Gap | StatusReport | Ack


@dataclass(frozen=True)
class LinkStats:
    """Link health counters (a snapshot; see :meth:`StreamDecoder.stats`).

    The first nine fields are the interface contract; the rest add detail.
    """

    bytes: int
    frames: int
    crc_errors: int
    gaps: int
    resyncs: int
    skipped_bytes: int
    measured_rate_hz: float | None
    nominal_rate_hz: int | None
    last_frame_monotonic: float | None
    decoded_bytes: int = 0
    dropped_bytes: int = 0
    pending_bytes: int = 0
    audio_frames: int = 0
    audio_samples: int = 0
    lost_samples: int = 0
    lost_frames: int = 0
    device_resets: int = 0
    rate_changes: int = 0
    duplicate_frames: int = 0
    malformed_frames: int = 0
    unknown_frames: int = 0
    version_errors: int = 0
    untrusted_audio_frames: int = 0
    last_audio_monotonic: float | None = None
    started_monotonic: float = 0.0
    device_info: DeviceInfo | None = None
    device_tx_drops: int | None = None
    device_adc_overruns: int | None = None
    device_clock_rate_hz: float | None = None

    def seconds_since_last_frame(self, now: float) -> float:
        """Seconds since the last valid frame (or since decoding started, if none yet)."""
        reference = self.last_frame_monotonic
        return now - (self.started_monotonic if reference is None else reference)

    def seconds_since_last_audio(self, now: float) -> float:
        """Seconds since the last audio frame (or since decoding started, if none yet)."""
        reference = self.last_audio_monotonic
        return now - (self.started_monotonic if reference is None else reference)

    @property
    def rate_deviation_ppm(self) -> float | None:
        """How far the measured rate is from the nominal one, in parts per million."""
        if self.measured_rate_hz is None or not self.nominal_rate_hz:
            return None
        return (self.measured_rate_hz / self.nominal_rate_hz - 1.0) * 1e6

    def is_stale(self, now: float, threshold_s: float = STALE_AFTER_S) -> bool:
        """True when no audio arrived for ``threshold_s`` seconds (silent or stopped)."""
        return self.seconds_since_last_audio(now) >= threshold_s


class RateEstimator:
    """Device sample rate from (arrival time, stream index) pairs by least squares.

    A straight-line fit over a sliding window shrugs off USB/BLE arrival jitter that a
    first/last difference would not.
    """

    REFIT_EVERY_S = 1.0  # a displayed rate needs no more; the fit is the decoder's hot spot

    def __init__(self, window_s: float = RATE_WINDOW_S, min_span_s: float = RATE_MIN_SPAN_S):
        self._window_s = window_s
        self._min_span_s = min_span_s
        self._points: deque[tuple[float, int]] = deque()
        self._fitted_at: float | None = None  # arrival time of the newest point in the fit
        self._fitted: float | None = None

    def add(self, now: float, end_index: int) -> None:
        """Record that samples up to ``end_index`` had arrived at ``now``."""
        self._points.append((now, end_index))
        while self._points and now - self._points[0][0] > self._window_s:
            self._points.popleft()

    def reset(self) -> None:
        """Forget history (after a reset, rate change or time jump)."""
        self._points.clear()
        self._fitted_at = self._fitted = None

    def rate(self) -> float | None:
        """Samples per second, or None until the window spans ``min_span_s``.

        Refitted at most once per ``REFIT_EVERY_S`` of arrival time, however often asked.
        """
        if len(self._points) < 3:
            return None
        newest = self._points[-1][0]
        if self._fitted_at is not None and 0.0 <= newest - self._fitted_at < self.REFIT_EVERY_S:
            return self._fitted
        fitted = self._fit()
        if fitted is not None:  # until the window is long enough, keep asking
            self._fitted_at, self._fitted = newest, fitted
        return fitted

    def _fit(self) -> float | None:
        times = np.fromiter((p[0] for p in self._points), dtype=np.float64)
        indices = np.fromiter((p[1] for p in self._points), dtype=np.float64)
        if times[-1] - times[0] < self._min_span_s:
            return None
        times -= times.mean()
        indices -= indices.mean()
        return float(np.dot(times, indices) / np.dot(times, times))


class DeviceClockEstimator:
    """Sample rate against the device's own independent clock (Status ``uptime_us``).

    The firmware latches ``uptime_us`` when ``sample_index`` is reached, so the ratio of
    their differences between Status frames is the sample clock with no host jitter in it.
    """

    def __init__(self, window: int = 60) -> None:
        self._intervals: deque[tuple[int, int]] = deque(maxlen=window)
        self._last: tuple[int, int] | None = None

    def add(self, sample_index: int, uptime_us: int) -> None:
        """Record one Status frame's (sample_index, uptime_us)."""
        last, self._last = self._last, (sample_index, uptime_us)
        if last is None:
            return
        samples = protocol.sample_index_delta(last[0], sample_index)
        micros = (uptime_us - last[1]) % (1 << 32)
        if samples <= 0 or micros == 0:
            self._intervals.clear()  # Reset or a device without the clock: start over.
            return
        self._intervals.append((samples, micros))

    def reset(self) -> None:
        """Forget history (device reset)."""
        self._intervals.clear()
        self._last = None

    def rate(self) -> float | None:
        """Samples per device second, or None before two Status frames."""
        if not self._intervals:
            return None
        samples = sum(interval[0] for interval in self._intervals)
        micros = sum(interval[1] for interval in self._intervals)
        return samples * 1e6 / micros


@dataclass
class _Counters:
    bytes: int = 0
    frames: int = 0
    decoded_bytes: int = 0
    dropped_bytes: int = 0
    skipped_bytes: int = 0
    crc_errors: int = 0
    gaps: int = 0
    resyncs: int = 0
    audio_frames: int = 0
    audio_samples: int = 0
    lost_samples: int = 0
    lost_frames: int = 0
    device_resets: int = 0
    rate_changes: int = 0
    duplicate_frames: int = 0
    malformed_frames: int = 0
    unknown_frames: int = 0
    version_errors: int = 0
    untrusted_audio_frames: int = 0


@dataclass
class _Timeline:
    """Where the next audio sample is expected, in device and stream terms."""

    device_next: int | None = None  # device sample index expected next (mod 2**32)
    stream_next: int | None = None  # stream index expected next
    restart_pending: str | None = None  # reason, when the next audio starts a new segment


@dataclass
class _LinkState:
    last_seq: int | None = None
    last_frame_key: tuple[int, int, int, int, bytes] | None = None
    last_frame_time: float | None = None
    last_audio_time: float | None = None
    seq_lost_since_audio: int = 0
    seq_lost_at_frame: int = 0  # frames counted lost when the current frame arrived
    crc_errors_since_audio: int = 0
    synced: bool = False
    lost_sync: bool = False
    crc_false_sync_until: int = 0  # stream byte offset; CRC errors before it are echoes


@dataclass
class StreamDecoder:
    """Decode a device byte stream into audio, gaps, device info, status and acks.

    Parameters
    ----------
    start_monotonic : float, optional
        When listening began (``time.monotonic()`` by default); a device that never sends
        anything is reported stale relative to this.

    Examples
    --------
    >>> decoder = StreamDecoder()
    >>> items = decoder.feed(transport.read(0.1), time.monotonic())  # doctest: +SKIP
    """

    start_monotonic: float = field(default_factory=time.monotonic)
    _parser: FrameParser = field(default_factory=FrameParser)
    _counters: _Counters = field(default_factory=_Counters)
    _timeline: _Timeline = field(default_factory=_Timeline)
    _link: _LinkState = field(default_factory=_LinkState)
    _rate: RateEstimator = field(default_factory=RateEstimator)
    _device_clock: DeviceClockEstimator = field(default_factory=DeviceClockEstimator)
    _info: DeviceInfo | None = None
    _device_status: Status | None = None
    _host_seq: int = 0
    _last_info_request: float | None = None

    def feed(self, data: bytes, now: float) -> list[DecodedItem]:
        """Consume bytes received at monotonic time ``now``; return decoded items in order.

        A CRC-valid frame of another protocol major version is counted
        (``version_errors``) and dropped like a corrupt one while the stream is established:
        one stray frame must not end monitoring, and the sequence counter reports the
        missing audio as a gap.

        Raises
        ------
        ProtocolVersionError
            When the device announces itself in another major version: such a frame
            before any DeviceInfo (start-up), or a DeviceInfo in it (a device that rebooted
            into incompatible firmware). Fatal: the caller should show ``str(error)`` and
            stop. Its bytes are already accounted as dropped.
        """
        self._counters.bytes += len(data)
        items: list[DecodedItem] = []
        version_error: VersionError | None = None
        for event in self._parser.feed(data):
            if isinstance(event, VersionError):
                # Account for every byte of this chunk before giving up on the device.
                self._counters.dropped_bytes += len(event.data)
                self._counters.version_errors += 1
                if self._announces_other_major(event):
                    version_error = version_error or event
                continue
            items += self._handle_event(event, now)
        if version_error is not None:
            raise ProtocolVersionError(version_error.major, version_error.minor)
        return items

    def _announces_other_major(self, event: VersionError) -> bool:
        """Whether a frame of another major says the device speaks it (fatal) rather than
        being one stray frame in a stream this decoder already reads."""
        msg_type = event.data[4] if len(event.data) > 4 else None
        return self._info is None or msg_type == MsgType.DEVICE_INFO

    def stats(self) -> LinkStats:
        """A snapshot of the link statistics."""
        status = self._device_status
        # Every counter has a LinkStats field of the same name, so none can be forgotten.
        return LinkStats(
            **vars(self._counters),  # flat ints: no need for asdict's deep copy every tick
            measured_rate_hz=self._rate.rate(),
            nominal_rate_hz=None if self._info is None else self._info.sample_rate_hz,
            last_frame_monotonic=self._link.last_frame_time,
            pending_bytes=self._parser.pending,
            last_audio_monotonic=self._link.last_audio_time,
            started_monotonic=self.start_monotonic,
            device_info=self._info,
            device_tx_drops=None if status is None else status.tx_drops,
            device_adc_overruns=None if status is None else status.adc_overruns,
            device_clock_rate_hz=self._device_clock.rate(),
        )

    @property
    def device_info(self) -> DeviceInfo | None:
        """The latest DeviceInfo, or None before the device announced itself."""
        return self._info

    @property
    def needs_device_info(self) -> bool:
        """True until a DeviceInfo arrived; audio is not trusted before that."""
        return self._info is None

    def device_info_request(self, now: float) -> bytes | None:
        """A GET_INFO command frame to write to the device, when one is due.

        Returns bytes at most once per second while no DeviceInfo has arrived (a host that
        connected mid-stream missed the one sent at boot), otherwise None.
        """
        if not self.needs_device_info:
            return None
        last = self._last_info_request
        if last is not None and now - last < INFO_REQUEST_INTERVAL_S:
            return None
        self._last_info_request = now
        frame = protocol.encode_message(protocol.Command.get_info(), seq=self._host_seq)
        self._host_seq = (self._host_seq + 1) % protocol.SEQ_MODULUS
        return frame

    # ------------------------------------------------------------------ parser events

    def _handle_event(self, event: protocol.ParserEvent, now: float) -> list[DecodedItem]:
        if isinstance(event, Skipped):
            self._counters.skipped_bytes += len(event.data)
            self._lose_sync()
            return []
        if isinstance(event, CrcError):
            self._count_crc_error(event)
            return []
        assert isinstance(event, Frame)  # VersionError is handled in feed().
        return self._handle_frame(event, now)

    def _count_crc_error(self, event: CrcError) -> None:
        c = self._counters
        offset = c.decoded_bytes + c.dropped_bytes + c.skipped_bytes
        c.dropped_bytes += event.consumed
        # The parser re-searches the rest of a bad candidate; a sync pattern inside it (or
        # inside audio data) yields further CRC errors that are echoes of the same loss.
        if offset >= self._link.crc_false_sync_until:
            c.crc_errors += 1
            self._link.crc_errors_since_audio += 1
            self._link.crc_false_sync_until = offset + len(event.data)
        self._lose_sync()

    def _lose_sync(self) -> None:
        if self._link.synced:
            self._link.lost_sync = True
        self._link.synced = False

    def _handle_frame(self, frame: Frame, now: float) -> list[DecodedItem]:
        c = self._counters
        c.decoded_bytes += frame.size
        c.frames += 1
        link = self._link
        if link.lost_sync:
            c.resyncs += 1
            link.lost_sync = False
        link.synced = True
        link.last_frame_time = now
        if self._is_duplicate(frame):
            c.duplicate_frames += 1
            self._reclassify_as_dropped(frame)
            return []
        self._track_sequence(frame)
        try:
            message = frame.message()
        except ProtocolError:
            if frame.msg_type in protocol.PAYLOAD_TYPES:
                c.malformed_frames += 1
                self._reclassify_as_dropped(frame)
            else:
                c.unknown_frames += 1  # A newer minor version's message: ignore it.
            return []
        return self._dispatch(frame, message, now)

    def _reclassify_as_dropped(self, frame: Frame) -> None:
        self._counters.decoded_bytes -= frame.size
        self._counters.dropped_bytes += frame.size

    def _is_duplicate(self, frame: Frame) -> bool:
        # Only a repeated audio frame would do harm (samples twice); a repeated DeviceInfo
        # is legitimately identical after a reset right after boot.
        key = (frame.seq, frame.sample_index, frame.msg_type, frame.flags, frame.payload)
        duplicate = key == self._link.last_frame_key and frame.msg_type in _AUDIO_TYPES
        self._link.last_frame_key = key
        return duplicate

    def _track_sequence(self, frame: Frame) -> None:
        link = self._link
        previous, link.last_seq = link.last_seq, frame.seq
        link.seq_lost_at_frame = 0
        if previous is None:
            return
        delta = protocol.seq_delta(previous, frame.seq)
        if delta == 1:
            return
        if self._looks_like_reset(frame, delta):
            self._timeline.restart_pending = GAP_DEVICE_RESET
            link.seq_lost_since_audio = 0
            return
        link.seq_lost_at_frame = (delta - 1) % protocol.SEQ_MODULUS
        link.seq_lost_since_audio += link.seq_lost_at_frame
        self._counters.lost_frames += link.seq_lost_at_frame

    @staticmethod
    def _looks_like_reset(frame: Frame, delta: int) -> bool:
        # A reboot restarts the sequence at 0 and announces itself with DeviceInfo or a
        # stream-start flag; a plain loss never does both.
        announced = frame.msg_type == MsgType.DEVICE_INFO or bool(frame.flags & Flag.STREAM_START)
        return frame.seq == 0 and announced and delta != 1

    # ------------------------------------------------------------------ messages

    def _dispatch(self, frame: Frame, message: Payload, now: float) -> list[DecodedItem]:
        if isinstance(message, AudioPcm16 | AudioAdpcm) and self._info is None:
            self._counters.untrusted_audio_frames += 1
            self._reclassify_as_dropped(frame)
            return []
        if isinstance(message, AudioPcm16):
            return self._audio(frame, message.samples, now)
        if isinstance(message, AudioAdpcm):
            return self._audio(frame, message.samples(), now)
        if isinstance(message, DeviceInfo):
            return self._device_info(message)
        if isinstance(message, Status):
            self._device_status = message
            self._device_clock.add(frame.sample_index, message.uptime_us)
            return [StatusReport(message, self._stream_index_of(frame.sample_index), now)]
        if isinstance(message, Ack):
            return [message]
        self._counters.unknown_frames += 1  # Commands flow host -> device only.
        return []

    def _stream_index_of(self, device_index: int) -> int:
        """Where a non-audio frame's device sample index falls in the stream timeline."""
        timeline = self._timeline
        if timeline.stream_next is None or timeline.device_next is None:
            return device_index
        delta = protocol.sample_index_delta(timeline.device_next, device_index)
        return max(0, timeline.stream_next + delta)

    def _device_info(self, info: DeviceInfo) -> list[DecodedItem]:
        previous = self._info
        self._info = info
        if previous is not None and previous.sample_rate_hz != info.sample_rate_hz:
            self._counters.rate_changes += 1
            self._rate.reset()
        return [info]

    def _audio(self, frame: Frame, samples: np.ndarray, now: float) -> list[DecodedItem]:
        items: list[DecodedItem] = []
        start, gap = self._place_audio(frame, samples.size, now)
        if gap is not None:
            items.append(gap)
            self._counters.gaps += 1
            self._counters.lost_samples += gap.lost_samples
            if gap.reason in (GAP_DEVICE_RESET, GAP_STREAM_RESTART):
                self._rate.reset()
            if gap.reason == GAP_DEVICE_RESET:
                self._device_clock.reset()
        assert self._info is not None  # Guarded in _dispatch: audio needs a DeviceInfo.
        rate = self._info.sample_rate_hz
        chunk = AudioChunk(start, samples, rate, bool(frame.flags & Flag.CLIPPED))
        items.append(chunk)
        timeline = self._timeline
        timeline.device_next = (frame.sample_index + samples.size) % protocol.SAMPLE_INDEX_MODULUS
        timeline.stream_next = chunk.end_index
        self._link.last_audio_time = now
        self._link.seq_lost_since_audio = 0
        self._link.crc_errors_since_audio = 0
        self._counters.audio_frames += 1
        self._counters.audio_samples += int(samples.size)
        self._rate.add(now, chunk.end_index)
        return items

    def _place_audio(self, frame: Frame, count: int, now: float) -> tuple[int, Gap | None]:
        """Stream index for this frame's first sample, and the gap before it, if any."""
        timeline = self._timeline
        if timeline.stream_next is None or timeline.device_next is None:
            timeline.restart_pending = None
            return frame.sample_index, None
        expected = timeline.stream_next
        restart = timeline.restart_pending
        timeline.restart_pending = None
        delta = protocol.sample_index_delta(timeline.device_next, frame.sample_index)
        if restart is None and delta < 0:
            # The index ran backwards: the device started over (its DeviceInfo was lost), so
            # the sequence jump seen on this frame was the restart, not lost frames.
            restart = GAP_DEVICE_RESET
            self._counters.lost_frames -= self._link.seq_lost_at_frame
            self._link.seq_lost_since_audio -= self._link.seq_lost_at_frame
        if restart is None and frame.flags & Flag.STREAM_START and delta != 0:
            restart = GAP_STREAM_RESTART
        if restart == GAP_DEVICE_RESET or (restart is not None and delta < 0):
            lost = self._estimate_samples_missed(count, now)
            self._counters.device_resets += restart == GAP_DEVICE_RESET
            return expected + lost, Gap(expected, expected + lost, lost, restart or "")
        if delta == 0:
            return expected, None
        reason = restart or self._loss_reason()
        lost_frames = self._link.seq_lost_since_audio
        return expected + delta, Gap(expected, expected + delta, delta, reason, lost_frames)

    def _loss_reason(self) -> str:
        if self._link.crc_errors_since_audio:
            return GAP_CRC_ERROR
        if self._link.seq_lost_since_audio:
            return GAP_LOST_FRAMES
        return GAP_DEVICE_DROPPED

    def _estimate_samples_missed(self, count: int, now: float) -> int:
        """Samples the device would have produced while away, from arrival times."""
        last = self._link.last_audio_time
        rate = self._info.sample_rate_hz if self._info else protocol.NOMINAL_SAMPLE_RATE_HZ
        if last is None:
            return 0
        return max(0, round((now - last) * rate) - count)
