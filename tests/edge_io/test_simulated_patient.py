"""The SIMULATED patient: sound model, ground truth, protocol stream, faults, pacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edge_io_support import assert_accounted, assert_timeline_consistent, audio_of, gaps_of
from scipy import signal

from edge import protocol
from edge.decode import GAP_CRC_ERROR, GAP_LOST_FRAMES, StatusReport, StreamDecoder
from edge.simulate import (
    CRACKLE_MAX_S,
    CRACKLE_MIN_S,
    LinkFaults,
    PatientConfig,
    SimulatedTransport,
    is_simulated_device,
    synthesize,
)
from edge.transport import run_decoder_only
from edge.transports.base import SourceError

FS = 8000


def events_of(events, kind):
    return [event for event in events if event.kind == kind]


def test_breath_rate_matches_configuration() -> None:
    for bpm in (12.0, 30.0):
        _, events = synthesize(60.0, PatientConfig(breath_rate_bpm=bpm, seed=4))
        assert abs(len(events_of(events, "inspiration")) - bpm) <= 1


def test_clean_patient_has_no_adventitious_sounds() -> None:
    audio, events = synthesize(20.0, PatientConfig(seed=1))
    assert audio.dtype == np.int16 and audio.size == 20 * FS
    assert {event.kind for event in events} == {"inspiration", "expiration"}


def test_same_seed_same_patient_different_seed_different_patient() -> None:
    config = PatientConfig(crackle_fraction=0.5, wheeze_fraction=0.5, seed=7)
    a, events_a = synthesize(10.0, config)
    b, events_b = synthesize(10.0, config)
    c, _ = synthesize(10.0, PatientConfig(crackle_fraction=0.5, wheeze_fraction=0.5, seed=8))
    assert np.array_equal(a, b) and events_a == events_b
    assert not np.array_equal(a, c)


def test_crackles_are_short_transients_inside_inspiration() -> None:
    audio, events = synthesize(30.0, PatientConfig(crackle_fraction=1.0, seed=2))
    crackles = events_of(events, "crackle")
    assert len(crackles) >= 20
    inspirations = {e.cycle: e for e in events_of(events, "inspiration")}
    for crackle in crackles:
        duration = (crackle.end_index - crackle.start_index) / FS
        assert CRACKLE_MIN_S - 1 / FS <= duration <= CRACKLE_MAX_S + 1 / FS
        phase = inspirations[crackle.cycle]
        assert phase.start_index <= crackle.start_index < crackle.end_index <= phase.end_index
    # The transient stands out: peak inside each crackle beats the breath noise around it.
    ratios = []
    for crackle in crackles:
        inside = np.abs(audio[crackle.start_index : crackle.end_index].astype(float)).max()
        around = audio[max(0, crackle.start_index - 400) : crackle.start_index].astype(float)
        ratios.append(inside / (np.sqrt(np.mean(around**2)) + 1.0))
    assert np.median(ratios) > 3.0


def test_wheezes_are_sustained_tones_at_their_recorded_frequency() -> None:
    audio, events = synthesize(40.0, PatientConfig(wheeze_fraction=1.0, seed=3))
    wheezes = events_of(events, "wheeze")
    assert len(wheezes) >= 10
    for wheeze in wheezes:
        assert (wheeze.end_index - wheeze.start_index) / FS >= 0.1
        assert 100.0 <= wheeze.frequency_hz <= 1000.0
        segment = audio[wheeze.start_index : wheeze.end_index].astype(float)
        freqs, power = signal.periodogram(segment, FS)
        peak = freqs[np.argmax(power)]
        # Slight upward glide (5 %) over the wheeze: the peak sits near the fundamental.
        assert wheeze.frequency_hz * 0.97 <= peak <= wheeze.frequency_hz * 1.08, (peak, wheeze)


def test_bad_patient_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="breath rate"):
        PatientConfig(breath_rate_bpm=0.5)
    with pytest.raises(ValueError, match="crackle_fraction"):
        PatientConfig(crackle_fraction=1.5)


def make_simulation(faults: LinkFaults | None = None, **patient) -> SimulatedTransport:
    config = PatientConfig(crackle_fraction=0.5, wheeze_fraction=0.5, seed=5, **patient)
    return SimulatedTransport(config, faults, speed=math.inf)


def decode_simulation(transport: SimulatedTransport, reads: int):
    decoder = StreamDecoder(start_monotonic=0.0)
    items = []
    for k in range(reads):
        items += decoder.feed(transport.read(0.0), 0.5 * k)
    return decoder, items


def test_simulated_stream_is_marked_and_matches_its_ground_truth_audio() -> None:
    transport = make_simulation()
    assert transport.simulated and "SIMULATED" in transport.name
    decoder, items = decode_simulation(transport, 40)  # 20 s
    info = decoder.device_info
    assert info is not None and is_simulated_device(info)
    chunks = audio_of(items)
    decoded = np.concatenate([c.samples for c in chunks])
    reference, reference_events = synthesize(decoded.size / FS, transport.patient)
    # Stream indices are device indices, so the ground truth applies to the decoded audio.
    assert chunks[0].start_index == 0 and np.array_equal(decoded, reference)
    truth = transport.ground_truth
    assert truth and truth == [e for e in reference_events if e.start_index < decoded.size]
    assert {"crackle", "wheeze"} <= {e.kind for e in truth}


def test_injected_faults_show_up_exactly_in_link_statistics() -> None:
    faults = LinkFaults(crc_errors=4, garbage_bursts=3, dropped_frames=2, interval_s=1.0)
    transport = make_simulation(faults)
    decoder, items = decode_simulation(transport, 24)  # 12 s, every fault injected
    injected = transport.injected_faults
    assert [f.kind for f in injected].count("crc_error") == 4
    assert [f.kind for f in injected].count("garbage") == 3
    assert [f.kind for f in injected].count("dropped_frame") == 2
    stats = decoder.stats()
    assert stats.crc_errors == 4
    assert stats.skipped_bytes >= sum(f.size for f in injected if f.kind == "garbage")
    gaps = gaps_of(items)
    assert sorted(g.reason for g in gaps) == [GAP_CRC_ERROR] * 4 + [GAP_LOST_FRAMES] * 2
    lost = {g.expected_index for g in gaps}
    assert lost == {f.sample_index for f in injected if f.kind != "garbage"}
    assert stats.lost_samples == sum(f.samples for f in injected)
    assert_accounted(stats)
    assert_timeline_consistent(items)


def test_simulated_device_answers_commands_like_the_firmware() -> None:
    transport = make_simulation()
    decoder = StreamDecoder(start_monotonic=0.0)
    decoder.feed(transport.read(0.0), 0.0)
    transport.write(protocol.encode_message(protocol.Command.ping(cookie=99), seq=5))
    transport.write(protocol.encode_message(protocol.Command.stop(), seq=6))
    items = decoder.feed(transport.read(0.0), 0.5)
    acks = [i for i in items if isinstance(i, protocol.Ack)]
    assert [(a.command_seq, a.cookie, a.ok) for a in acks] == [(5, 99, True), (6, 0, True)]
    stopped = []
    for k in range(4):  # 2 s stopped: no audio, but Status keeps coming (spec 5.4)
        stopped += decoder.feed(transport.read(0.0), 1.0 + 0.1 * k)
    assert not audio_of(stopped)
    statuses = [i for i in stopped if isinstance(i, StatusReport)]
    assert len(statuses) == 2 and not any(s.status.streaming for s in statuses)
    transport.write(protocol.encode_message(protocol.Command.start(), seq=7))
    restarted = decoder.feed(transport.read(0.0), 1.5)
    assert any(isinstance(i, protocol.DeviceInfo) for i in restarted)
    gap = gaps_of(restarted)[0]
    assert gap.reason == "stream_restart" and gap.lost_samples > 0
    transport.write(protocol.encode_message(protocol.Command.set_gain(3), seq=8))
    (ack,) = [i for i in decoder.feed(transport.read(0.0), 2.0) if isinstance(i, protocol.Ack)]
    assert ack.result == protocol.AckResult.BAD_ARGUMENT


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_pacing_follows_the_clock_times_the_speed(speed: float) -> None:
    clock = FakeClock()
    transport = SimulatedTransport(
        PatientConfig(seed=1), speed=speed, clock=clock, sleep=clock.sleep
    )
    decoder = StreamDecoder(start_monotonic=clock.now)
    decoder.feed(transport.read(0.0), clock.now)
    for _ in range(30):
        clock.now += 0.1
        decoder.feed(transport.read(0.0), clock.now)
    produced = decoder.stats().audio_samples
    expected = 3.0 * speed * FS
    assert expected - 160 <= produced <= expected  # whole 160-sample frames only
    # Nothing due: read waits (via sleep) for the next frame instead of spinning.
    assert transport.read(0.0) == b""
    data = transport.read(1.0)
    assert data and 0 < clock.slept[-1] <= 160 / (FS * speed) + 1e-9


def test_real_time_simulation_measures_its_rate() -> None:
    transport = SimulatedTransport(PatientConfig(seed=1), speed=2.0)
    decoder = StreamDecoder()
    run_decoder_only(transport, decoder, 2.6)
    measured = decoder.stats().measured_rate_hz
    assert measured is not None and measured == pytest.approx(2 * FS, rel=0.05)


def test_speed_must_be_positive() -> None:
    with pytest.raises(SourceError, match="speed"):
        SimulatedTransport(speed=0.0)
