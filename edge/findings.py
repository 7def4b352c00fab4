"""What a breath cycle shows, how the record adds up, and when a signal is stale.

Pure rules between the model's outputs and the events (no I/O, no clock, no numpy):

- the per-cycle gate: a cycle's finding (Normal, Crackle, Wheeze or Both) comes from the
  model's crackle and wheeze flags; the cycle is poor when its audio clipped, when it was
  too quiet for a chest-piece on skin, or when the model's quality head calls it noise;
- the record tally: every cycle's finding in arrival order, the counts a ``verdict`` event
  carries (good cycles by finding, poor cycles apart whatever their finding) and the
  verdict of the shared record rule (:func:`edge.labels.record_verdict`);
- :data:`STALE_AFTER_S`, the one freshness limit: audio (and with it the last finding)
  older than this is reported, and shown, as stale.
"""

from __future__ import annotations

from dataclasses import dataclass

from steth.edge.labels import (
    FOUR_CLASSES,
    CycleFinding,
    Verdict,
    VerdictRule,
    four_class_from_flags,
    record_verdict,
)

# Seconds without new audio after which the signal, and the finding on screen, is stale.
STALE_AFTER_S = 2.0

CLIP_FRACTION_POOR = 0.001  # more clipped samples than this share makes a cycle poor
CONTACT_LOSS_DBFS = -75.0  # a cycle quieter than this: the chest-piece is not on skin

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
    """

    crackle: bool
    wheeze: bool
    reasons: tuple[str, ...] = ()

    @property
    def finding(self) -> str:
        """Normal, Crackle, Wheeze or Both (reported for poor cycles too)."""
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
        return POOR if self.poor else self.finding

    def as_cycle_finding(self) -> CycleFinding:
        """What the record rule needs of this cycle."""
        return CycleFinding(self.crackle, self.wheeze, self.poor)


def assess_cycle(*, crackle: bool, wheeze: bool, model_poor: bool, clipped_fraction: float,
                 dbfs: float) -> CycleAssessment:
    """A cycle's finding from the model's flags and its quality from the signal and model."""
    return CycleAssessment(bool(crackle), bool(wheeze),
                           quality_reasons(clipped_fraction=clipped_fraction, dbfs=dbfs,
                                           model_poor=model_poor))


class RecordTally:
    """The running record of one stream: its cycles, their counts and the verdict.

    Parameters
    ----------
    rule : VerdictRule, optional
        The record rule's thresholds (the model manifest's); "any cycle counts" by default.
    """

    def __init__(self, rule: VerdictRule | None = None) -> None:
        self.rule = rule or VerdictRule()
        self.findings: list[CycleFinding] = []
        self.counts: dict[str, int] = dict.fromkeys(COUNT_KEYS, 0)

    def add(self, cycle: CycleAssessment) -> Verdict:
        """Count one more cycle and return the record verdict including it."""
        self.findings.append(cycle.as_cycle_finding())
        self.counts[cycle.count_key] += 1
        return self.verdict()

    def verdict(self) -> Verdict:
        """The record verdict over every cycle added so far (Poor Quality before any)."""
        return record_verdict(self.findings, self.rule)
