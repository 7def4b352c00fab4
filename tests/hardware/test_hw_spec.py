"""hardware/frontend_spec.toml is consistent with the shared interfaces and the docs."""

from __future__ import annotations

from hw_support import afe_sim

SPEC = afe_sim.load_spec()


def test_spec_matches_the_fixed_hardware_interfaces():
    system, gain = SPEC["system"], SPEC["gain"]
    assert system["adc_bits"] == 12 and system["adc_full_scale_v"] == 3.3
    assert system["mid_rail_v"] == system["supply_v"] / 2 == 1.65
    assert system["sample_rate_hz"] == 8000
    assert gain["pga_part"] == "MCP6S21"
    assert gain["pga_gains"] == [1, 2, 4, 5, 8, 10, 16, 32]
    assert gain["default_pga_gain"] in gain["pga_gains"]


def test_spec_limits_are_the_issue_limits():
    # The front-end spec: 60 Hz within 1 dB, flat 60-2000 Hz within 1 dB, >= 40 dB down at 6 kHz.
    assert SPEC["highpass"]["max_corner_hz"] <= 60
    assert SPEC["highpass"]["max_loss_at_60hz_db"] <= 1.0
    assert (SPEC["passband"]["low_hz"], SPEC["passband"]["high_hz"]) == (60, 2000)
    assert SPEC["passband"]["max_ripple_db"] <= 1.0
    assert SPEC["antialias"]["stopband_start_hz"] == SPEC["system"]["sample_rate_hz"] - 2000
    assert SPEC["antialias"]["min_attenuation_db"] >= 40
    assert SPEC["antialias"]["strategy"] in ("analog", "oversampling")


def test_frontend_doc_table_is_generated_from_the_spec():
    doc = afe_sim.DOC_PATH.read_text()
    table = afe_sim.render_spec_table(SPEC)
    assert afe_sim.replace_doc_table(doc, table) == doc, (
        "hardware/frontend.md is stale: run python hardware/afe_sim.py --write-docs"
    )


def test_value_parser_reads_spice_suffixes():
    cases = {"4.7u": 4.7e-6, "10Meg": 10e6, "37.4k": 37.4e3, "100p": 100e-12, "100": 100.0,
             "1n": 1e-9, "2.2nF": 2.2e-9, "10m": 10e-3}
    for text, value in cases.items():
        assert abs(afe_sim.parse_value(text) - value) <= 1e-12 * value, text


def test_preamp_is_high_impedance_voltage_mode():
    # The piezo sees R2 (bias to VREF) in parallel with the CMOS op-amp input (1 pA bias).
    elements = {e.name: e for e in afe_sim.parse_netlist(afe_sim.NETLIST_PATH.read_text())}
    assert SPEC["preamp"]["mode"] == "voltage"
    bias = elements["R2"]
    assert set(bias.nodes) == {"inp", "vref"}
    assert bias.value is not None and bias.value >= SPEC["preamp"]["min_input_resistance_ohm"]
    assert elements["XU1A"].nodes[0] == "inp", "the piezo node drives the non-inverting input"
