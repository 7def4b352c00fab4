from __future__ import annotations

import pytest

from steth.edge.labels import (
    CycleFinding,
    LearnedVerdict,
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


# Crackle present when over 30 % of good cycles are flagged; wheeze when the two highest
# wheeze likelihoods average over 0.8; Poor Quality when over half the cycles are poor.
LEARNED = VerdictRule(learned=LearnedVerdict(crackle=(-0.3, 1.0, 0.0, 0.0),
                                             wheeze=(-0.8, 0.0, 1.0, 0.0),
                                             poor=(-0.5, 1.0, 0.0)))


def fp(c=False, w=False, poor=False, pc=0.1, pw=0.1):
    return CycleFinding(c, w, poor, pc, pw)


def test_learned_verdict_follows_its_scores():
    assert record_verdict([fp()] * 6, LEARNED).label == "Normal"
    # One flagged cycle of six is under 30 %: the record stays Normal.
    assert record_verdict([fp(c=True, pc=0.9)] + [fp()] * 5, LEARNED).label == "Normal"
    assert record_verdict([fp(c=True, pc=0.9)] * 2 + [fp()] * 4, LEARNED).label == "DAS"
    # Wheeze decides on likelihoods: two confident cycles, none flagged.
    assert record_verdict([fp(pw=0.85)] * 2 + [fp()] * 4, LEARNED).label == "CAS"
    assert record_verdict([fp(pw=0.85), fp(pw=0.7)] + [fp()] * 4, LEARNED).label == "Normal"
    assert record_verdict([fp(poor=True)] * 4 + [fp(c=True)] * 3, LEARNED).label == (
        "Poor Quality")
    assert record_verdict([], LEARNED).label == "Poor Quality"
    verdict = record_verdict([fp(poor=True)] * 3 + [fp(c=True)] * 3, LEARNED)
    assert (verdict.label, verdict.n_cycles, verdict.n_good_cycles) == ("DAS", 6, 3)


def test_cycles_without_likelihoods_count_with_their_flags():
    old = [CycleFinding(False, True)] * 2 + [CycleFinding(False, False)] * 4
    assert record_verdict(old, LEARNED).label == "CAS"


def test_learned_verdict_travels_as_a_dict():
    data = LEARNED.to_dict()
    assert data["learned"]["poor"] == [-0.5, 1.0, 0.0]
    assert VerdictRule(**data) == LEARNED
    assert "learned" not in VerdictRule().to_dict()
    with pytest.raises(ValueError, match="crackle needs a bias and 3 weights"):
        VerdictRule(learned={"crackle": [0.0], "wheeze": [0, 0, 0, 0], "poor": [0, 0, 0]})


def test_a_long_site_does_not_become_poor_quality_by_its_length():
    # Poor Quality score rises with log(1 + cycles): zero at about 20 cycles when none is poor.
    poor = (-3.0, 2.0, 1.0)
    presence = (-1.0, 0.0, 0.0, 0.0)
    uncapped = VerdictRule(learned=LearnedVerdict(presence, presence, poor))
    capped = VerdictRule(learned=LearnedVerdict(presence, presence, poor, max_cycles=12))
    site = [fp()] * 2000  # minutes of good, normal cycles
    assert record_verdict(site, uncapped).label == "Poor Quality"
    assert record_verdict(site, capped).label == "Normal"
    assert record_verdict([fp(poor=True)] * 1500 + site, capped).label == "Poor Quality"
    assert VerdictRule(**capped.to_dict()) == capped
    assert capped.to_dict()["learned"]["max_cycles"] == 12
