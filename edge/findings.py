"""What a breath cycle shows, how the record adds up, and when a signal is stale.

Pure rules between the model's outputs and the events (no I/O, no clock, no numpy):

- the per-cycle gate: a cycle's finding (Normal, Crackle, Wheeze or Both) comes from the
  model's crackle and wheeze flags; the cycle is poor when its audio clipped, when it was
  too quiet for a chest-piece on skin, or when the model's quality head calls it noise;
- the record tally: every cycle's finding in arrival order, the counts a ``verdict`` event
  carries (good cycles by finding, poor cycles apart whatever their finding) and the
  verdict of the shared record rule (:func:`edge.labels.record_verdict`), fed by the edge
  or, on the host, from ``cycle`` events;
- the breath rate (:class:`BreathRate`), from good-quality detected cycles only, and the
  sample-rate check (:func:`rate_problem`);
- :data:`STALE_AFTER_S`, the one freshness limit: audio (and with it the last finding)
  older than this is reported, and shown, as stale.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from steth.edge.labels import (
    FOUR_CLASSES,
    CycleFinding,
    Verdict,
    VerdictRule,
    flags_from_four_class,
    four_class_from_flags,
    record_verdict,
)

# Seconds without new audio after which the signal, and the finding on screen, is stale.
STALE_AFTER_S = 2.0

CLIP_FRACTION_POOR = 0.001  # more clipped samples than this share makes a cycle poor
CONTACT_LOSS_DBFS = -75.0  # a cycle quieter than this: the chest-piece is not on skin

# A measured sample rate further than this share from the expected one is warned about.
RATE_TOLERANCE = 0.02

# The breath rate: the median length of the good cycles among the most recent ones.
BREATH_RATE_WINDOW = 6  # recent detected cycles looked at
BREATH_RATE_MIN_GOOD = 3  # good ones among them needed before a rate is shown

CLIPPING = "clipping"
NO_CONTACT = "no contact"
NOISE = "noise"

POOR = "poor"  # the count key of poor cycles, beside the four findings
COUNT_KEYS: tuple[str, ...] = (*FOUR_CLASSES, POOR)


def quality_reasons(*, clipped_fraction: float, dbfs: float, model_poor: bool
                    ) -> tuple[str, ...]:
    """Why a cycle is poor, in a fixed order (clipping, no contact, noise); empty when ok.

    Parameters
    ----------
    clipped_fraction : float
        Share of the cycle's samples at or beyond the clip level.
    dbfs : float
        Mean power of the cycle's audio in dB relative to full scale.
    model_poor : bool
        Whether the model's quality head rates the cycle as noise.
    """
    reasons = []
    if clipped_fraction > CLIP_FRACTION_POOR:
        reasons.append(CLIPPING)
    if dbfs < CONTACT_LOSS_DBFS:
        reasons.append(NO_CONTACT)
    if model_poor:
        reasons.append(NOISE)
    return tuple(reasons)


@dataclass(frozen=True)
class CycleAssessment:
    """One cycle's finding and quality, as its ``cycle`` event and the record use them.

    Attributes
    ----------
    crackle, wheeze : bool
        The model's flags at the manifest's thresholds.
    reasons : tuple of str
        Why the cycle is poor (:func:`quality_reasons`); empty for a good cycle.
    p_crackle, p_wheeze : float, optional
        The calibrated likelihoods behind the flags, for a learned record verdict.
    """

    crackle: bool
    wheeze: bool
    reasons: tuple[str, ...] = ()
    p_crackle: float | None = None
    p_wheeze: float | None = None

    @property
    def finding(self) -> str:
        """Normal, Crackle, Wheeze or Both from the flags (in the event for poor cycles
        too, but a poor cycle has no finding to show: screens say "poor")."""
        return four_class_from_flags(self.crackle, self.wheeze)

    @property
    def poor(self) -> bool:
        return bool(self.reasons)

    @property
    def quality(self) -> str:
        """The event's quality status: ``"poor"`` or ``"ok"``."""
        return POOR if self.poor else "ok"

    @property
    def quality_reason(self) -> str | None:
        """The reasons joined for the event (``"clipping, noise"``), None when ok."""
        return ", ".join(self.reasons) or None

    @property
    def count_key(self) -> str:
        """Where the record counts this cycle: ``"poor"``, else its finding."""
        return count_key(self.as_cycle_finding())

    def as_cycle_finding(self) -> CycleFinding:
        """What the record rule needs of this cycle."""
        return CycleFinding(self.crackle, self.wheeze, self.poor, self.p_crackle,
                            self.p_wheeze)


def assess_cycle(*, crackle: bool, wheeze: bool, model_poor: bool, clipped_fraction: float,
                 dbfs: float, p_crackle: float | None = None, p_wheeze: float | None = None
                 ) -> CycleAssessment:
    """A cycle's finding from the model's flags and its quality from the signal and model."""
    return CycleAssessment(bool(crackle), bool(wheeze),
                           quality_reasons(clipped_fraction=clipped_fraction, dbfs=dbfs,
                                           model_poor=model_poor),
                           _probability(p_crackle), _probability(p_wheeze))


def _probability(value: Any) -> float | None:
    return None if value is None else float(value)


def finding_of_cycle_event(event: Mapping[str, Any]) -> CycleFinding | None:
    """What the record rule needs of a ``cycle`` event; None for a settling cycle.

    A settling cycle (the channel normaliser still warming up) has no finding and is left
    out of the record, on the edge and in every reader of saved events alike.
    """
    quality = event["quality"]
    if quality.get("settling"):
        return None
    crackle, wheeze = flags_from_four_class(event["finding"])
    return CycleFinding(crackle, wheeze, quality["status"] == POOR,
                        _probability(event.get("p_crackle")), _probability(event.get("p_wheeze")))


def count_key(finding: CycleFinding) -> str:
    """Where the record counts a cycle: ``"poor"``, else its finding."""
    return POOR if finding.poor_quality else four_class_from_flags(finding.crackle,
                                                                   finding.wheeze)


class RecordTally:
    """The running record of one stream or site: its cycles, their counts and the verdict.

    The one tally of the project: the edge feeds it assessments, the host (dashboard, takes,
    review) the ``cycle`` events it received or saved.

    Parameters
    ----------
    rule : VerdictRule, optional
        The record rule's thresholds (the model manifest's); "any cycle counts" by default.
        It may be replaced later (``tally.rule = ...``): the verdict is computed on demand.
    """

    def __init__(self, rule: VerdictRule | None = None) -> None:
        self.rule = rule or VerdictRule()
        self.findings: list[CycleFinding] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)

    def add(self, cycle: CycleAssessment) -> Verdict:
        """Count one more cycle and return the record verdict including it."""
        return self.add_finding(cycle.as_cycle_finding())

    def add_finding(self, finding: CycleFinding) -> Verdict:
        """Count one more cycle given as the record rule sees it."""
        self.findings.append(finding)
        self.counts[count_key(finding)] += 1
        return self.verdict()

    def add_event(self, event: Mapping[str, Any]) -> Verdict | None:
        """Count a ``cycle`` event; None (nothing counted) for a settling cycle."""
        finding = finding_of_cycle_event(event)
        return None if finding is None else self.add_finding(finding)

    def reset(self) -> None:
        """Start the record over (a new auscultation site)."""
        self.findings.clear()
        self.counts = dict.fromkeys(COUNT_KEYS, 0)

    def verdict(self) -> Verdict:
        """The record verdict over every cycle added so far (Poor Quality before any)."""
        return record_verdict(self.findings, self.rule)

    @classmethod
    def of_events(cls, events: Iterable[Mapping[str, Any]], rule: VerdictRule | None = None
                  ) -> RecordTally:
        """The tally of saved ``cycle`` events (settling ones left out)."""
        tally = cls(rule)
        for event in events:
            tally.add_event(event)
        return tally


def rule_of_verdict_event(event: Mapping[str, Any]) -> VerdictRule | None:
    """The record rule a ``verdict`` event names (None for events written without one)."""
    rule = event.get("rule")
    if not isinstance(rule, Mapping):
        return None
    try:
        return VerdictRule(**rule)
    except TypeError:
        return None


class BreathRate:
    """Breaths per minute from good-quality detected cycles only.

    The rule: among the last :data:`BREATH_RATE_WINDOW` cycles (settling ones are not fed),
    take the good ones, those neither poor nor closed by the length limit; with at least
    :data:`BREATH_RATE_MIN_GOOD` of them the rate is 60 / their median duration, otherwise
    there is none. Noise, lost contact or a run of forced closes therefore shows no rate
    instead of one made from the detector's guesses, and the rate lapses as soon as good
    cycles become rare.
    """

    def __init__(self) -> None:
        self.recent: deque[float | None] = deque(maxlen=BREATH_RATE_WINDOW)

    def add(self, duration_s: float, *, good: bool) -> None:
        """One more detected cycle: its duration, and whether it may count."""
        self.recent.append(float(duration_s) if good and duration_s > 0 else None)

    def reset(self) -> None:
        self.recent.clear()

    def bpm(self) -> float | None:
        """The rate by the rule above, or None."""
        good = sorted(d for d in self.recent if d is not None)
        if len(good) < BREATH_RATE_MIN_GOOD:
            return None
        middle = len(good) // 2
        median = good[middle] if len(good) % 2 else (good[middle - 1] + good[middle]) / 2
        return 60.0 / median


def rate_problem(measured_hz: float, expected_hz: float) -> str | None:
    """A one-line warning when the measured sample rate is past :data:`RATE_TOLERANCE` of
    the expected one (None when within it)."""
    deviation = measured_hz / expected_hz - 1.0
    if abs(deviation) <= RATE_TOLERANCE:
        return None
    return (f"measured sample rate {measured_hz:.0f} Hz is {100 * deviation:+.0f} % off the "
            f"expected {expected_hz:.0f} Hz: timing and findings may be wrong; check the "
            "device clock")
