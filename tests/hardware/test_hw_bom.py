"""hardware/bom.csv and hardware/spice/frontend.cir describe the same parts."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
from hw_support import afe_sim

NETLIST = afe_sim.NETLIST_PATH.read_text()
ELEMENTS = afe_sim.parse_netlist(NETLIST)
BOM = afe_sim.load_bom()
BY_REF = afe_sim.bom_by_refdes(BOM)
SUPPLY_NODES = {"vdd", "0"}

# Yageo RC series resistor codes: "37K4" = 37.4 kOhm, "100R" = 100 Ohm, "10M" = 10 MOhm.
_YAGEO = re.compile(r"^RC(0402|0603|0805|1206)FR-07(\d+)([RKM])(\d*)L$")
# KEMET ceramic codes: C0805C472F5GACTU = 0805, 47 x 10^2 pF, F = 1 %, G = C0G.
_KEMET = re.compile(r"^C(0402|0603|0805|1206)C(\d\d)(\d)([FGJK])(\d)([GR])AC(TU|7800)$")
_KEMET_TOL = {"F": 0.01, "G": 0.02, "J": 0.05, "K": 0.10}


def yageo_ohms(mpn: str) -> float:
    match = _YAGEO.match(mpn)
    assert match, f"not a Yageo RC 1 % part number: {mpn}"
    _, whole, scale, frac = match.groups()
    return float(f"{whole}.{frac or 0}") * {"R": 1.0, "K": 1e3, "M": 1e6}[scale]


def kemet_farads(mpn: str) -> tuple[float, float, str]:
    match = _KEMET.match(mpn)
    assert match, f"not a KEMET ceramic part number: {mpn}"
    _, digits, exponent, tol, _, dielectric, _ = match.groups()
    farads = int(digits) * 10 ** int(exponent) * 1e-12
    return farads, _KEMET_TOL[tol], {"G": "C0G", "R": "X7R"}[dielectric]


def test_refdes_unique_and_quantities_match():
    counts = Counter(ref for row in BOM for ref in row.refdes)
    assert [ref for ref, n in counts.items() if n > 1] == []
    for row in BOM:
        assert row.qty == len(row.refdes), row.mpn
        assert row.mpn and row.manufacturer, row.refdes


@pytest.mark.parametrize("element", ELEMENTS, ids=lambda e: e.name)
def test_every_netlist_part_is_in_the_bom_with_its_value(element):
    row = BY_REF.get(element.refdes)
    assert row is not None, f"{element.name} has no BOM row"
    assert row.simulated and row.section == "frontend"
    if element.value is not None:
        assert math.isclose(afe_sim.parse_value(row.value), element.value, rel_tol=1e-9)
    else:
        assert row.spice_model == element.model


def test_every_simulated_bom_part_is_in_the_netlist():
    in_netlist = {e.refdes for e in ELEMENTS}
    missing = [ref for row in BOM if row.simulated for ref in row.refdes if ref not in in_netlist]
    assert missing == []


def test_split_parts_use_every_unit_once():
    # U1 is a dual (A, B), U2 a quad (A..D), D1 a dual diode (A, B).
    units = Counter(e.refdes for e in ELEMENTS if e.name[0] in "XD")
    assert units == {"U1": 2, "U2": 4, "U3": 1, "D1": 2}


@pytest.mark.parametrize("row", [r for r in BOM if r.mpn.startswith("RC")], ids=lambda r: r.mpn)
def test_resistor_part_number_encodes_value_and_1_percent(row):
    assert math.isclose(yageo_ohms(row.mpn), afe_sim.parse_value(row.value), rel_tol=1e-9)
    assert row.tolerance == 0.01


@pytest.mark.parametrize("row", [r for r in BOM if r.manufacturer == "KEMET"],
                         ids=lambda r: r.mpn)
def test_capacitor_part_number_encodes_value_tolerance_dielectric(row):
    farads, tolerance, dielectric = kemet_farads(row.mpn)
    assert math.isclose(farads, afe_sim.parse_value(row.value), rel_tol=1e-9)
    assert tolerance == row.tolerance
    assert dielectric == row.dielectric


def test_signal_path_capacitors_are_c0g_1_percent():
    # Every sub-microfarad capacitor that is not pure supply decoupling sets a corner or
    # a Q, so it must be a 1 % C0G part; the larger ones (AC coupling, VREF) are exempt.
    for element in ELEMENTS:
        if element.name[0] != "C" or element.value is None or element.value >= 1e-6:
            continue
        if set(element.nodes) <= SUPPLY_NODES:
            continue
        row = BY_REF[element.refdes]
        assert row.dielectric == "C0G" and row.tolerance is not None and row.tolerance <= 0.01, (
            element.name
        )


def test_link_parts_required_by_the_interfaces_are_listed():
    mpns = {row.mpn for row in BOM}
    assert {"MCP6S21-I/SN", "MDBT42Q-512KV2", "TTL-232R-3V3", "4382"} <= mpns
