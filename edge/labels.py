"""Label spaces and the one rule that turns cycle findings into a record verdict.

Imported by training, evaluation and the edge, so a finding means the same everywhere.

- 4-class (ICBHI): Normal / Crackle / Wheeze / Both, and its multi-label form
  (crackle, wheeze).
- SPRSound event 7-class: Normal, Rhonchi, Wheeze, Stridor, Coarse Crackle, Fine Crackle,
  Wheeze+Crackle.
- SPRSound record 5-class: Normal, CAS, DAS, CAS & DAS, Poor Quality, and the record
  verdict: a counting rule, or linear scores learned from records (:class:`LearnedVerdict`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

FOUR_CLASSES: tuple[str, ...] = ("Normal", "Crackle", "Wheeze", "Both")
EVENT_CLASSES: tuple[str, ...] = (
    "Normal", "Rhonchi", "Wheeze", "Stridor", "Coarse Crackle", "Fine Crackle", "Wheeze+Crackle",
)
RECORD_CLASSES: tuple[str, ...] = ("Normal", "CAS", "DAS", "CAS & DAS", "Poor Quality")
POOR_QUALITY = "Poor Quality"

CONTINUOUS_EVENTS = frozenset({"Wheeze", "Rhonchi", "Stridor"})
DISCONTINUOUS_EVENTS = frozenset({"Fine Crackle", "Coarse Crackle"})


class _Flags(Protocol):
    """0/1 flags that add and scale elementwise: ints, NumPy arrays, torch tensors."""

    def __add__(self, other: Any) -> Any: ...

    def __rmul__(self, other: int) -> Any: ...


FlagT = TypeVar("FlagT", bound=_Flags)


def four_class_index(crackle: FlagT, wheeze: FlagT) -> FlagT:
    """Index into FOUR_CLASSES of 0/1 crackle and wheeze flags (ints, arrays or tensors)."""
    return cast(FlagT, crackle + 2 * wheeze)


def four_class_from_flags(crackle: bool, wheeze: bool) -> str:
    """Multi-label (crackle, wheeze) to the 4-class name."""
    return FOUR_CLASSES[four_class_index(int(bool(crackle)), int(bool(wheeze)))]


def flags_from_four_class(name: str) -> tuple[bool, bool]:
    """4-class name to (crackle, wheeze)."""
    index = FOUR_CLASSES.index(name)
    return bool(index & 1), bool(index & 2)


def event_to_flags(event_type: str) -> tuple[bool, bool]:
    """SPRSound event type to (crackle, wheeze): crackle = any crackle, wheeze = any CAS."""
    if event_type not in EVENT_CLASSES:
        raise ValueError(f"unknown SPRSound event type {event_type!r}")
    if event_type == "Wheeze+Crackle":
        return True, True
    return event_type in DISCONTINUOUS_EVENTS, event_type in CONTINUOUS_EVENTS


def event_to_four_class(event_type: str) -> str:
    return four_class_from_flags(*event_to_flags(event_type))


def is_adventitious_event(event_type: str) -> bool:
    return event_type != "Normal"


def record_from_flags(has_crackle: bool, has_wheeze: bool) -> str:
    """Record class from whether any CAS / DAS is present."""
    if has_crackle and has_wheeze:
        return "CAS & DAS"
    if has_wheeze:
        return "CAS"
    if has_crackle:
        return "DAS"
    return "Normal"


PRESENCE_FEATURES: tuple[str, ...] = (
    "share of good cycles flagged", "mean of the two highest likelihoods", "mean likelihood")
POOR_FEATURES: tuple[str, ...] = ("share of cycles poor", "log(1 + cycles)")


@dataclass(frozen=True)
class LearnedVerdict:
    """Linear record scores learned from records: a part is present (a record is Poor
    Quality) when its score ``bias + weights . features`` is above zero.

    Each tuple is the bias followed by one weight per feature, in the order of
    :data:`PRESENCE_FEATURES` (crackle, wheeze; over the good cycles) or
    :data:`POOR_FEATURES` (poor; over every cycle). The decision thresholds are folded into
    the biases, so the verdict needs nothing else.
    """

    crackle: tuple[float, ...]
    wheeze: tuple[float, ...]
    poor: tuple[float, ...]
    # The most cycles a fitted record had. A longer record counts as this many in
    # log(1 + cycles): the scores were never fitted beyond it, and a site monitored for
    # minutes must not drift into Poor Quality by its length alone.
    max_cycles: int | None = None

    def __post_init__(self) -> None:
        for name, size in (("crackle", len(PRESENCE_FEATURES)),
                           ("wheeze", len(PRESENCE_FEATURES)), ("poor", len(POOR_FEATURES))):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) != size + 1:
                raise ValueError(f"learned verdict: {name} needs a bias and {size} weights, "
                                 f"got {len(values)} numbers")
            object.__setattr__(self, name, values)

    def to_dict(self) -> dict:
        fields: dict[str, Any] = {"crackle": list(self.crackle), "wheeze": list(self.wheeze),
                                  "poor": list(self.poor)}
        if self.max_cycles is not None:
            fields["max_cycles"] = self.max_cycles
        return fields


def _linear(coefficients: Sequence[float], features: Sequence[float]) -> float:
    return coefficients[0] + sum(w * x for w, x in zip(coefficients[1:], features, strict=True))


def presence_features(good: Sequence[CycleFinding], part: str) -> tuple[float, ...]:
    """:data:`PRESENCE_FEATURES` of ``part`` ("crackle" or "wheeze") over good cycles.

    A cycle without a likelihood (written before likelihoods were kept) counts with its
    flag as 1 or 0.
    """
    flags = [bool(getattr(c, part)) for c in good]
    likelihoods = sorted((float(flag) if p is None else float(p)
                          for flag, p in zip(flags, (getattr(c, f"p_{part}") for c in good),
                                             strict=True)), reverse=True)
    if not good:
        return 0.0, 0.0, 0.0
    top = likelihoods[:2]
    return sum(flags) / len(good), sum(top) / len(top), sum(likelihoods) / len(likelihoods)


def poor_features(cycles: Sequence[CycleFinding], max_cycles: int | None = None
                  ) -> tuple[float, ...]:
    """:data:`POOR_FEATURES` over every cycle of a record, the count capped at
    ``max_cycles`` when given."""
    n_poor = sum(c.poor_quality for c in cycles)
    counted = len(cycles) if max_cycles is None else min(len(cycles), max_cycles)
    return (n_poor / len(cycles) if cycles else 1.0), math.log1p(counted)


@dataclass(frozen=True)
class VerdictRule:
    """Parameters of the record verdict; they travel in the model manifest.

    A finding must appear in at least ``min_cycles`` cycles and in at least
    ``min_fraction`` of the good-quality cycles to count for the record, which keeps one
    spurious cycle from flipping a record. A record is Poor Quality when too few cycles
    were usable. With ``learned`` (:class:`LearnedVerdict`, fitted on records), its scores
    decide Poor Quality and each finding instead, and ``min_good_cycles`` still applies.
    """

    min_cycles: int = 1
    min_fraction: float = 0.0
    poor_quality_fraction: float = 0.5  # share of poor cycles that makes the record poor
    min_good_cycles: int = 1
    learned: LearnedVerdict | None = None

    def __post_init__(self) -> None:
        if isinstance(self.learned, Mapping):  # read back from a manifest or an event
            object.__setattr__(self, "learned", LearnedVerdict(**self.learned))

    def to_dict(self) -> dict:
        fields: dict[str, Any] = {
            "min_cycles": self.min_cycles, "min_fraction": self.min_fraction,
            "poor_quality_fraction": self.poor_quality_fraction,
            "min_good_cycles": self.min_good_cycles}
        if self.learned is not None:
            fields["learned"] = self.learned.to_dict()
        return fields


@dataclass(frozen=True)
class CycleFinding:
    """What the record verdict needs to know about one cycle: its flags, its quality and
    (for a learned verdict) the model's likelihoods behind the flags."""

    crackle: bool
    wheeze: bool
    poor_quality: bool = False
    p_crackle: float | None = None
    p_wheeze: float | None = None


@dataclass(frozen=True)
class Verdict:
    label: str
    n_cycles: int  # every cycle seen
    n_good_cycles: int  # the cycles the verdict rests on


def record_verdict(cycles: Sequence[CycleFinding] | Iterable[CycleFinding],
                   rule: VerdictRule | None = None) -> Verdict:
    """Turn per-cycle findings into a record verdict (Normal/CAS/DAS/CAS & DAS/Poor Quality).

    Parameters
    ----------
    cycles : sequence of CycleFinding
        Findings of every cycle of the record, in any order.
    rule : VerdictRule, optional
        Counting thresholds, or a learned verdict (``rule.learned``); defaults to "any
        cycle counts".

    Examples
    --------
    >>> record_verdict([CycleFinding(False, False), CycleFinding(True, False)]).label
    'DAS'
    >>> record_verdict([CycleFinding(True, False, poor_quality=True)]).label
    'Poor Quality'
    """
    rule = rule or VerdictRule()
    cycles = list(cycles)
    good = [c for c in cycles if not c.poor_quality]
    if rule.learned is not None:
        return _learned_verdict(cycles, good, rule)
    n_poor = len(cycles) - len(good)
    too_noisy = bool(cycles) and n_poor / len(cycles) >= rule.poor_quality_fraction
    if not cycles or too_noisy or len(good) < rule.min_good_cycles:
        return Verdict(POOR_QUALITY, len(cycles), len(good))

    def present(count: int) -> bool:
        return count >= rule.min_cycles and count / len(good) >= rule.min_fraction

    has_crackle = present(sum(c.crackle for c in good))
    has_wheeze = present(sum(c.wheeze for c in good))
    return Verdict(record_from_flags(has_crackle, has_wheeze), len(cycles), len(good))


def _learned_verdict(cycles: list[CycleFinding], good: list[CycleFinding],
                     rule: VerdictRule) -> Verdict:
    learned = rule.learned
    assert learned is not None
    if (not cycles or len(good) < rule.min_good_cycles
            or _linear(learned.poor, poor_features(cycles, learned.max_cycles)) > 0):
        return Verdict(POOR_QUALITY, len(cycles), len(good))
    has_crackle = _linear(learned.crackle, presence_features(good, "crackle")) > 0
    has_wheeze = _linear(learned.wheeze, presence_features(good, "wheeze")) > 0
    return Verdict(record_from_flags(has_crackle, has_wheeze), len(cycles), len(good))
