"""The front end simulated in ngspice meets every limit in hardware/frontend_spec.toml."""

from __future__ import annotations

import dataclasses

import pytest
from hw_support import afe_sim, require_tool

SPEC = afe_sim.load_spec()
GAINS = SPEC["gain"]["pga_gains"]
DEFAULT_GAIN = SPEC["gain"]["default_pga_gain"]


@pytest.fixture(scope="module", autouse=True)
def ngspice() -> str:
    return require_tool("ngspice")


@pytest.fixture(scope="module")
def nominal() -> dict[int, afe_sim.AcMetrics]:
    return {gain: afe_sim.simulate_ac(SPEC, gain) for gain in GAINS}


@pytest.mark.parametrize("gain", GAINS)
def test_highpass_corner_and_60hz(nominal, gain):
    m, hp = nominal[gain], SPEC["highpass"]
    assert m.highpass_corner_hz < hp["max_corner_hz"]
    assert m.loss_at_60hz_db <= hp["max_loss_at_60hz_db"]
    assert m.rumble_rejection_db >= hp["min_rumble_rejection_db"]


@pytest.mark.parametrize("gain", GAINS)
def test_passband_flat_60_to_2000_hz(nominal, gain):
    m, band = nominal[gain], SPEC["passband"]
    assert m.ripple_db <= band["max_ripple_db"]
    assert m.lowpass_corner_hz > band["high_hz"]


@pytest.mark.parametrize("gain", GAINS)
def test_antialias_attenuation(nominal, gain):
    m, aa = nominal[gain], SPEC["antialias"]
    assert m.attenuation_6khz_db >= aa["min_attenuation_db"]
    assert m.min_stopband_attenuation_db >= aa["min_attenuation_db"]


def test_antialias_filter_order_from_rolloff(nominal):
    # An n-th order low-pass falls 6.02*n dB per octave well above its corner.
    aa = SPEC["antialias"]
    assert aa["strategy"] == "analog"
    assert aa["filter_order"] >= aa["min_filter_order"] >= 5
    assert nominal[1].rolloff_db_per_octave >= 6.02 * aa["min_filter_order"]


@pytest.mark.parametrize("gain", GAINS)
def test_passband_gain_matches_gain_staging(nominal, gain):
    error = nominal[gain].passband_gain_db - afe_sim.expected_gain_db(SPEC, gain)
    assert abs(error) <= SPEC["gain"]["gain_tolerance_db"]


@pytest.mark.parametrize("gain", GAINS)
def test_mid_rail_bias_nominal(nominal, gain):
    m = nominal[gain]
    assert abs(m.adc_dc_v - m.supply_v / 2) <= SPEC["bias"]["max_mid_rail_error_v"]


@pytest.mark.parametrize("sign", [+1, -1])
def test_mid_rail_bias_worst_case_offsets(sign):
    m = afe_sim.worst_case_bias(SPEC, sign)
    error = m.adc_dc_v - m.supply_v / 2
    assert sign * error > 0, "offsets were applied in the intended direction"
    assert abs(error) <= SPEC["bias"]["max_mid_rail_error_v"]


@pytest.mark.parametrize("sign", [+1, -1])
def test_worst_case_all_parts_at_one_tolerance_extreme(sign):
    m = afe_sim.worst_case_corners(SPEC, sign)
    assert afe_sim.ac_violations(m, SPEC) == []


def test_worst_case_extremes_move_the_corners_apart():
    high, low = afe_sim.worst_case_corners(SPEC, +1), afe_sim.worst_case_corners(SPEC, -1)
    assert high.lowpass_corner_hz < low.lowpass_corner_hz
    assert high.attenuation_6khz_db > low.attenuation_6khz_db


def test_swing_typical_lung_sound_at_default_gain():
    amplitude_in = SPEC["levels"]["typical_peak_mv"] * 1e-3
    fit = afe_sim.simulate_swing(SPEC, amplitude_in, DEFAULT_GAIN)
    assert afe_sim.swing_violations(fit, SPEC, amplitude_in, DEFAULT_GAIN) == []
    assert afe_sim.headroom_db(SPEC, fit.amplitude_v) >= SPEC["levels"]["min_headroom_db"]
    assert abs(fit.dc_v - SPEC["system"]["mid_rail_v"]) <= SPEC["bias"]["max_mid_rail_error_v"]


def test_swing_handling_transient_stays_linear_at_gain_1():
    amplitude_in = SPEC["levels"]["handling_transient_peak_mv"] * 1e-3
    fit = afe_sim.simulate_swing(SPEC, amplitude_in, 1)
    assert afe_sim.swing_violations(fit, SPEC, amplitude_in, 1) == []


def test_swing_check_detects_clipping():
    # The same transient at the top PGA gain must clip: proves the swing checks can fail.
    amplitude_in = SPEC["levels"]["handling_transient_peak_mv"] * 1e-3
    gain = max(GAINS)
    fit = afe_sim.simulate_swing(SPEC, amplitude_in, gain)
    bad = afe_sim.swing_violations(fit, SPEC, amplitude_in, gain)
    assert {"amplitude", "linearity", "low rail margin", "high rail margin"} <= set(bad)


def test_monte_carlo_every_build_meets_spec():
    runs = afe_sim.monte_carlo(SPEC, DEFAULT_GAIN)
    assert len(runs) == SPEC["monte_carlo"]["runs"]
    failing = {i: bad for i, m in enumerate(runs) if (bad := afe_sim.ac_violations(m, SPEC))}
    examples = dict(list(failing.items())[:3])
    assert not failing, f"{len(failing)} of {len(runs)} runs out of spec, e.g. {examples}"
    # The draw must actually vary the circuit, or the run proves nothing.
    spread = max(m.lowpass_corner_hz for m in runs) - min(m.lowpass_corner_hz for m in runs)
    assert spread > 1.0


def test_violation_checker_flags_each_limit(nominal):
    good = nominal[DEFAULT_GAIN]
    assert afe_sim.ac_violations(good, SPEC) == []
    broken = {
        "high-pass corner": {"highpass_corner_hz": 61.0},
        "loss at 60 Hz": {"loss_at_60hz_db": 1.2},
        "rumble rejection": {"rumble_rejection_db": 10.0},
        "low-pass corner": {"lowpass_corner_hz": 1900.0},
        "passband ripple": {"ripple_db": 1.1},
        "attenuation at 6 kHz": {"attenuation_6khz_db": 39.0},
        "stop-band": {"min_stopband_attenuation_db": 39.0},
        "passband gain": {"passband_gain_db": good.passband_gain_db + 1.0},
        "mid-rail bias": {"adc_dc_v": good.supply_v / 2 + 0.06},
    }
    for name, change in broken.items():
        assert afe_sim.ac_violations(dataclasses.replace(good, **change), SPEC) == [name]


def test_input_referred_noise_within_limit():
    noise = afe_sim.simulate_noise(SPEC, DEFAULT_GAIN)
    band = SPEC["passband"]
    # Floor: R1 (10 kOhm in series with the disc) alone adds sqrt(4kTRB) at the input; a
    # result below it would mean the noise sources are missing from the simulation.
    r1 = next(e for e in afe_sim.parse_netlist(afe_sim.NETLIST_PATH.read_text())
              if e.name == "R1")
    assert r1.value is not None
    floor_uv = (1.6567e-20 * r1.value * (band["high_hz"] - band["low_hz"])) ** 0.5 * 1e6
    assert floor_uv < noise.input_uv_rms <= SPEC["noise"]["max_input_noise_uv_rms"]
