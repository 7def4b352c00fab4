"""The findings unit (edge/findings.py): the per-cycle quality gate, the record tally, and the
one freshness limit every stale check reads."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from steth.edge import decode, events, findings
from steth.edge.event_schema import validate
from steth.edge.findings import (
    CLIP_FRACTION_POOR,
    CONTACT_LOSS_DBFS,
    COUNT_KEYS,
    STALE_AFTER_S,
    CycleAssessment,
    RecordTally,
    assess_cycle,
    quality_reasons,
)
from steth.edge.labels import CycleFinding, VerdictRule, record_verdict
from tests.conftest import REPO_ROOT

GOOD_DBFS = -40.0


def good(crackle: bool = False, wheeze: bool = False) -> CycleAssessment:
    return assess_cycle(crackle=crackle, wheeze=wheeze, model_poor=False,
                        clipped_fraction=0.0, dbfs=GOOD_DBFS)


def poor(crackle: bool = False, wheeze: bool = False) -> CycleAssessment:
    return assess_cycle(crackle=crackle, wheeze=wheeze, model_poor=True,
                        clipped_fraction=0.0, dbfs=GOOD_DBFS)


# ----------------------------------------------------------------------------- the gate

def test_a_clean_loud_cycle_the_model_trusts_is_ok():
    assert quality_reasons(clipped_fraction=0.0, dbfs=GOOD_DBFS, model_poor=False) == ()
    cycle = good()
    assert not cycle.poor
    assert cycle.quality == "ok"
    assert cycle.quality_reason is None


@pytest.mark.parametrize(("clipped", "dbfs", "model_poor", "reasons"), [
    (0.01, GOOD_DBFS, False, ("clipping",)),
    (0.0, -80.0, False, ("no contact",)),
    (0.0, GOOD_DBFS, True, ("noise",)),
    (0.01, -80.0, True, ("clipping", "no contact", "noise")),
    (0.01, GOOD_DBFS, True, ("clipping", "noise")),
])
def test_every_reason_is_named_in_a_fixed_order(clipped, dbfs, model_poor, reasons):
    assert quality_reasons(clipped_fraction=clipped, dbfs=dbfs, model_poor=model_poor) == reasons
    cycle = assess_cycle(crackle=False, wheeze=False, model_poor=model_poor,
                         clipped_fraction=clipped, dbfs=dbfs)
    assert cycle.poor
    assert cycle.quality == "poor"
    assert cycle.quality_reason == ", ".join(reasons)


def test_the_thresholds_themselves_still_pass():
    # "more clipped than" and "quieter than": the limit values are ok.
    assert quality_reasons(clipped_fraction=CLIP_FRACTION_POOR, dbfs=CONTACT_LOSS_DBFS,
                           model_poor=False) == ()
    assert quality_reasons(clipped_fraction=CLIP_FRACTION_POOR * 1.01, dbfs=CONTACT_LOSS_DBFS,
                           model_poor=False) == ("clipping",)
    assert quality_reasons(clipped_fraction=0.0, dbfs=CONTACT_LOSS_DBFS - 0.01,
                           model_poor=False) == ("no contact",)
    assert CLIP_FRACTION_POOR == 0.001
    assert CONTACT_LOSS_DBFS == -75.0


@pytest.mark.parametrize(("crackle", "wheeze", "finding"), [
    (False, False, "Normal"), (True, False, "Crackle"), (False, True, "Wheeze"),
    (True, True, "Both"),
])
def test_the_finding_comes_from_the_flags_whatever_the_quality(crackle, wheeze, finding):
    assert good(crackle, wheeze).finding == finding
    assert poor(crackle, wheeze).finding == finding  # the event still says what was heard
    assert good(crackle, wheeze).count_key == finding
    assert poor(crackle, wheeze).count_key == "poor"
    assert good(crackle, wheeze).as_cycle_finding() == CycleFinding(crackle, wheeze, False)
    assert poor(crackle, wheeze).as_cycle_finding() == CycleFinding(crackle, wheeze, True)


def test_flags_are_plain_booleans():
    cycle = assess_cycle(crackle=1, wheeze=0, model_poor=False,  # type: ignore[arg-type]
                         clipped_fraction=0.0, dbfs=GOOD_DBFS)
    assert cycle.crackle is True and cycle.wheeze is False


# ----------------------------------------------------------------------------- the tally

def test_an_empty_record_is_poor_quality_with_zero_counts():
    tally = RecordTally()
    assert tally.verdict().label == "Poor Quality"
    assert tally.counts == dict.fromkeys(("Normal", "Crackle", "Wheeze", "Both", "poor"), 0)
    assert COUNT_KEYS == ("Normal", "Crackle", "Wheeze", "Both", "poor")


def test_the_tally_counts_good_cycles_by_finding_and_poor_ones_apart():
    tally = RecordTally()
    verdicts = [tally.add(cycle) for cycle in
                (good(), good(crackle=True), poor(crackle=True), good(wheeze=True))]
    assert [v.label for v in verdicts] == ["Normal", "DAS", "DAS", "CAS & DAS"]
    assert [(v.n_cycles, v.n_good_cycles) for v in verdicts] == [(1, 1), (2, 2), (3, 2), (4, 3)]
    assert tally.counts == {"Normal": 1, "Crackle": 1, "Wheeze": 1, "Both": 0, "poor": 1}
    assert tally.findings == [CycleFinding(False, False), CycleFinding(True, False),
                              CycleFinding(True, False, True), CycleFinding(False, True)]


def test_mostly_poor_cycles_make_a_poor_quality_record():
    tally = RecordTally()
    tally.add(good(crackle=True))
    assert tally.add(poor()).label == "Poor Quality"  # half poor: the default limit
    assert tally.counts["poor"] == 1 and tally.counts["Crackle"] == 1


def test_the_manifest_rule_is_applied():
    tally = RecordTally(VerdictRule(min_cycles=2))
    assert tally.add(good(crackle=True)).label == "Normal"  # one crackly cycle is not enough
    assert tally.add(good(crackle=True)).label == "DAS"
    assert tally.rule == VerdictRule(min_cycles=2)


def test_the_tally_builds_a_valid_verdict_event():
    tally = RecordTally()
    for cycle in (good(), poor(wheeze=True), good(crackle=True, wheeze=True)):
        verdict = tally.add(cycle)
    event = events.make_verdict(verdict=verdict.label, cycles=verdict.n_cycles,
                                good_cycles=verdict.n_good_cycles, counts=tally.counts, t=1.0)
    assert validate(event) == []
    assert event["counts"] == {"Normal": 1, "Crackle": 0, "Wheeze": 0, "Both": 1, "poor": 1}
    assert event["verdict"] == "CAS & DAS"


assessments = st.builds(
    assess_cycle, crackle=st.booleans(), wheeze=st.booleans(), model_poor=st.booleans(),
    clipped_fraction=st.sampled_from([0.0, 0.01]), dbfs=st.sampled_from([GOOD_DBFS, -80.0]))


@given(st.lists(assessments, max_size=30))
def test_the_tally_agrees_with_the_record_rule_and_the_verdict_schema(cycles):
    tally = RecordTally()
    for cycle in cycles:
        tally.add(cycle)
    verdict = tally.verdict()
    assert verdict == record_verdict([c.as_cycle_finding() for c in cycles])
    assert sum(tally.counts.values()) == verdict.n_cycles == len(cycles)
    assert verdict.n_cycles - tally.counts["poor"] == verdict.n_good_cycles
    event = events.make_verdict(verdict=verdict.label, cycles=verdict.n_cycles,
                                good_cycles=verdict.n_good_cycles, counts=tally.counts, t=1.0)
    assert validate(event) == []


# ----------------------------------------------------------------------------- freshness

def test_stale_is_defined_once_and_read_everywhere():
    assert STALE_AFTER_S == 2.0
    assert decode.STALE_AFTER_S is findings.STALE_AFTER_S
    definition = re.compile(r"^\s*STALE_AFTER_S\s*(:[^=]+)?=", re.MULTILINE)
    sources = sorted(path for folder in ("edge", "host")
                     for path in (REPO_ROOT / folder).rglob("*.py"))
    defining = [str(path.relative_to(REPO_ROOT)) for path in sources
                if definition.search(path.read_text(encoding="utf-8"))]
    assert defining == ["edge/findings.py"]


def test_the_link_stats_go_stale_at_the_limit():
    stats = decode.LinkStats(bytes=0, frames=0, crc_errors=0, gaps=0, resyncs=0,
                             skipped_bytes=0, measured_rate_hz=None, nominal_rate_hz=None,
                             last_frame_monotonic=None, last_audio_monotonic=10.0)
    assert not stats.is_stale(10.0 + STALE_AFTER_S - 0.01)
    assert stats.is_stale(10.0 + STALE_AFTER_S)


def test_the_dashboard_says_no_signal_before_the_edge_event():
    pytest.importorskip("rich")
    from steth.host.dashboard import NO_SIGNAL_AFTER_S

    assert NO_SIGNAL_AFTER_S == 1.5
    assert 0.0 < NO_SIGNAL_AFTER_S < STALE_AFTER_S


def test_likelihoods_reach_the_record_from_assessments_and_saved_events():
    from steth.edge.labels import LearnedVerdict
    assessed = assess_cycle(crackle=False, wheeze=True, model_poor=False, clipped_fraction=0.0,
                            dbfs=GOOD_DBFS, p_crackle=0.2, p_wheeze=0.7)
    assert assessed.as_cycle_finding() == CycleFinding(False, True, False, 0.2, 0.7)
    saved = {"finding": "Crackle", "quality": {"status": "ok"}, "p_crackle": 0.93,
             "p_wheeze": 0.1}
    # Crackle present when the two highest crackle likelihoods average over 0.9.
    rule = VerdictRule(learned=LearnedVerdict(crackle=(-0.9, 0.0, 1.0, 0.0),
                                              wheeze=(-1.0, 0.0, 0.0, 0.0),
                                              poor=(-1.0, 0.0, 0.0)))
    tally = RecordTally(rule)
    assert tally.add_event(saved).label == "DAS"
    assert tally.add_event({**saved, "p_crackle": 0.8}).label == "Normal"  # mean 0.865
    tally.reset()  # a new site starts the record over
    assert tally.add_event({**saved, "p_crackle": 0.95}).label == "DAS"
