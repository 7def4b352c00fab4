from __future__ import annotations

import pytest

from steth.edge.labels import (
    CycleFinding,
    VerdictRule,
    event_to_flags,
    event_to_four_class,
    flags_from_four_class,
    four_class_from_flags,
    record_verdict,
)


@pytest.mark.parametrize(("event", "four"), [
    ("Normal", "Normal"), ("Fine Crackle", "Crackle"), ("Coarse Crackle", "Crackle"),
    ("Wheeze", "Wheeze"), ("Rhonchi", "Wheeze"), ("Stridor", "Wheeze"),
    ("Wheeze+Crackle", "Both"),
])
def test_sprsound_events_map_to_four_classes(event, four):
    assert event_to_four_class(event) == four
    assert four_class_from_flags(*event_to_flags(event)) == four
    assert flags_from_four_class(four) == event_to_flags(event)


def test_unknown_event_type_is_rejected():
    with pytest.raises(ValueError, match="Squawk"):
        event_to_flags("Squawk")


def f(c=False, w=False, poor=False):
    return CycleFinding(c, w, poor)


def test_record_verdicts():
    assert record_verdict([f(), f()]).label == "Normal"
    assert record_verdict([f(), f(c=True)]).label == "DAS"
    assert record_verdict([f(w=True), f()]).label == "CAS"
    assert record_verdict([f(c=True), f(w=True)]).label == "CAS & DAS"
    assert record_verdict([f(c=True, w=True)]).label == "CAS & DAS"
    assert record_verdict([]).label == "Poor Quality"
    assert record_verdict([f(poor=True), f(c=True)]).label == "Poor Quality"
    verdict = record_verdict([f(poor=True), f(), f(c=True)])
    assert (verdict.label, verdict.n_cycles, verdict.n_good_cycles) == ("DAS", 3, 2)


def test_poor_cycles_do_not_vote_and_thresholds_apply():
    rule = VerdictRule(min_cycles=2)
    assert record_verdict([f(c=True), f(), f()], rule).label == "Normal"
    assert record_verdict([f(c=True), f(c=True), f()], rule).label == "DAS"
    assert record_verdict([f(c=True, poor=True), f(), f()]).label == "Normal"
    rule = VerdictRule(min_fraction=0.5)
    assert record_verdict([f(w=True), f(), f()], rule).label == "Normal"
