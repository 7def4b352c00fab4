"""The SIMULATED patient: sound model, ground truth, protocol stream, faults, pacing."""

from __future__ import annotations

import math

import numpy as np
import pytest
from edge_io_support import assert_accounted, assert_timeline_consistent, audio_of, gaps_of
from scipy import signal

from steth.edge import protocol
from steth.edge.decode import GAP_CRC_ERROR, GAP_LOST_FRAMES, StatusReport, StreamDecoder
from steth.edge.runner import run_decoder_only
from steth.edge.simulate import (
    COARSE_CRACKLE,
    CRACKLE_TAIL,
    FINE_CRACKLE,
    WHEEZE_MAX_HZ,
    WHEEZE_MIN_HZ,
    PatientConfig,
    crackle_waveform,
    synthesize,
)
from steth.edge.transports.base import SourceError
from steth.edge.transports.simulated import LinkFaults, SimulatedTransport, is_simulated_device

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


def zero_crossings(wave: np.ndarray) -> np.ndarray:
    """Sample positions (fractional, linear interpolation) where ``wave`` changes sign."""
    k = np.nonzero(np.signbit(wave[:-1]) != np.signbit(wave[1:]))[0]
    return k + wave[k] / (wave[k] - wave[k + 1])


@pytest.mark.parametrize(("shape", "idw_ms", "tcd_ms"), [
    (FINE_CRACKLE, (0.5, 1.0), (4.0, 7.0)),  # Murphy: fine IDW ~0.7 ms, 2CD ~5 ms
    (COARSE_CRACKLE, (1.2, 2.0), (8.0, 12.0)),  # coarse IDW ~1.5 ms, 2CD ~10 ms
])
def test_crackle_waveforms_meet_the_clinical_time_criteria(shape, idw_ms, tcd_ms) -> None:
    # Measured as a clinician measures a time-expanded crackle: the first half-cycle
    # (IDW) and onset to the end of the second full cycle (2CD), at 64 kHz.
    fs = 64000
    for idw, tcd in [(shape.idw_s[0], shape.tcd_s[0]), (shape.idw_s[1], shape.tcd_s[1])]:
        wave = crackle_waveform(idw, tcd, fs, peak=1000.0)
        crossings = zero_crossings(wave) / fs * 1000.0
        assert idw_ms[0] <= crossings[0] <= idw_ms[1]
        assert tcd_ms[0] <= crossings[3] <= tcd_ms[1]
        first = np.argmax(np.abs(wave))
        assert first < crossings[0] * fs / 1000.0  # the initial deflection is the largest
        assert wave.size / fs <= CRACKLE_TAIL * tcd + 1 / fs


def test_crackles_are_transients_in_their_part_of_inspiration() -> None:
    for coarse, window in [(0.0, FINE_CRACKLE.window), (1.0, COARSE_CRACKLE.window)]:
        audio, events = synthesize(30.0, PatientConfig(crackle_fraction=1.0,
                                                       coarse_fraction=coarse, seed=2))
        crackles = events_of(events, "crackle")
        assert len(crackles) >= 3 * len(events_of(events, "inspiration"))  # several per breath
        assert {c.subtype for c in crackles} == {"coarse" if coarse else "fine"}
        inspirations = {e.cycle: e for e in events_of(events, "inspiration")}
        ratios = []
        for crackle in crackles:
            phase = inspirations[crackle.cycle]
            length = phase.end_index - phase.start_index
            offset = (crackle.start_index - phase.start_index) / length
            assert window[0] - 0.01 <= offset and crackle.end_index <= phase.end_index
            assert 1.0 / (2 * 0.002) <= crackle.frequency_hz <= 1.0 / (2 * 0.0005)
            if crackle.end_index > audio.size:
                continue
            inside = np.abs(audio[crackle.start_index : crackle.end_index].astype(float)).max()
            around = audio[max(0, crackle.start_index - 400) : crackle.start_index].astype(float)
            ratios.append(inside / (np.sqrt(np.mean(around**2)) + 1.0))
        # The transient stands out of the breath sound around it.
        assert np.median(ratios) > 3.0, np.median(ratios)


def test_breath_sound_is_low_pitched_and_louder_on_inspiration() -> None:
    audio, events = synthesize(60.0, PatientConfig(breath_rate_bpm=20.0, seed=6))
    x = audio.astype(float)
    freqs, power = signal.welch(x, FS, nperseg=1024)
    band = (freqs >= 60) & (freqs <= 2000)
    below = power[band & (freqs <= 400)].sum() / power[band].sum()
    assert below > 0.9, below  # vesicular sound: most energy below 300-400 Hz
    assert 80.0 <= freqs[np.argmax(power)] <= 250.0
    insp = events_of(events, "inspiration")
    exp = {e.cycle: e for e in events_of(events, "expiration")}
    ratios, timing = [], []
    for phase in insp[:-1]:
        expiration = exp[phase.cycle]
        rms_in = np.sqrt(np.mean(x[phase.start_index : phase.end_index] ** 2))
        rms_out = np.sqrt(np.mean(x[expiration.start_index : expiration.end_index] ** 2))
        ratios.append(rms_in / rms_out)
        timing.append((expiration.end_index - expiration.start_index)
                      / (phase.end_index - phase.start_index))
    assert np.median(ratios) > 1.5 and np.median(timing) == pytest.approx(2.0, rel=0.05)
    level = 20 * np.log10(np.sqrt(np.mean(x**2)) / 32768)
    assert -60.0 < level < -40.0, level  # a chest recording's level, far from clipping


def test_committed_model_hears_the_simulated_crackles_and_calls_clean_breaths_normal() -> None:
    from steth.edge.assets import default_model_path
    from steth.edge.features import FeatureConfig, frame_range, pcm16_to_float, recording_features
    from steth.edge.infer import CycleModel

    model = CycleModel(default_model_path(), expected_feature_hash=FeatureConfig().hash())
    config = model.manifest.feature_config  # with the model's channel normalisation
    audio, events = synthesize(90.0, PatientConfig(crackle_fraction=0.5, seed=11))
    frames = recording_features(pcm16_to_float(audio), FS, config)
    crackly = {e.cycle for e in events_of(events, "crackle")}
    expirations = {e.cycle: e for e in events_of(events, "expiration")}
    found: dict[bool, list[bool]] = {True: [], False: []}
    for phase in events_of(events, "inspiration"):
        end = expirations.get(phase.cycle)
        if end is None or end.end_index > audio.size:
            continue
        first, last = frame_range(phase.start_index / FS, end.end_index / FS, config)
        crackle, _ = model.predict_cycle(frames[first:last]).flags(model.thresholds)
        found[phase.cycle in crackly].append(crackle)
    assert len(found[True]) >= 8 and len(found[False]) >= 8
    hit_rate, false_rate = np.mean(found[True]), np.mean(found[False])
    print(f"crackle cycles flagged {hit_rate:.2f}, clean cycles flagged {false_rate:.2f}")
    assert hit_rate >= 0.6 and false_rate <= 0.1, (hit_rate, false_rate)


def test_wheezes_are_sustained_tones_at_their_recorded_frequency() -> None:
    audio, events = synthesize(40.0, PatientConfig(wheeze_fraction=1.0, seed=3))
    wheezes = events_of(events, "wheeze")
    assert len(wheezes) >= 10
    for wheeze in wheezes:
        assert (wheeze.end_index - wheeze.start_index) / FS >= 0.1
        assert WHEEZE_MIN_HZ <= wheeze.frequency_hz <= WHEEZE_MAX_HZ
        segment = audio[wheeze.start_index : wheeze.end_index].astype(float)
        freqs, power = signal.periodogram(segment, FS)
        peak = freqs[np.argmax(power)]
        # Slight upward glide (5 %) over the wheeze: the peak sits near the fundamental.
        assert wheeze.frequency_hz * 0.97 <= peak <= wheeze.frequency_hz * 1.08, (peak, wheeze)
        # ...with a 2nd harmonic well above the breath noise at that frequency.
        second = (freqs > 1.9 * wheeze.frequency_hz) & (freqs < 2.2 * wheeze.frequency_hz)
        off = (freqs > 1.3 * wheeze.frequency_hz) & (freqs < 1.7 * wheeze.frequency_hz)
        assert power[second].max() > 10 * np.median(power[off]), wheeze


def test_bad_patient_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="breath rate"):
        PatientConfig(breath_rate_bpm=0.5)
    with pytest.raises(ValueError, match="crackle_fraction"):
        PatientConfig(crackle_fraction=1.5)
    with pytest.raises(ValueError, match="coarse_fraction"):
        PatientConfig(coarse_fraction=-0.1)
    with pytest.raises(ValueError, match="IDW"):
        crackle_waveform(0.003, 0.01, FS, 1.0)


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
