"""The event stream's schema: one versioned JSON-lines format shared by the edge and the host.

Every line is one JSON object with at least ``"v"`` (schema major version), ``"type"`` and
``"t"`` (wall-clock Unix seconds at emission). Events from a simulated source carry
``"simulated": true``. The full field list lives in ``docs/events.md``; this module is its
executable form: the field specifications and a dependency-free validator (the Pi runtime
has no jsonschema) for single events, JSON lines, files and whole streams. The builders
that produce valid events are in :mod:`edge.events`, the writers in :mod:`edge.event_writers`
(the TCP writer in :mod:`edge.event_server`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from steth.edge.labels import FOUR_CLASSES, RECORD_CLASSES

SCHEMA_VERSION = 1

FINDINGS: tuple[str, ...] = FOUR_CLASSES
VERDICTS: tuple[str, ...] = RECORD_CLASSES
QUALITY_STATUSES: tuple[str, ...] = ("ok", "poor")
BREATH_PHASES: tuple[str, ...] = ("inspiration", "expiration", "pause", "unknown")
STALE_STATES: tuple[str, ...] = ("stale", "recovered")
STATUS_LEVELS: tuple[str, ...] = ("info", "warning", "error")
MAX_ENVELOPE = 64  # points in one level event's envelope
AUDIO_ENCODING = "s16le-base64"

EVENT_TYPES: tuple[str, ...] = (
    "hello", "link", "level", "cycle", "verdict", "gap", "stale", "mark", "status", "audio",
)


class EventError(ValueError):
    """An event line that does not follow the schema."""


# ----------------------------------------------------------------------------- validator

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Field:
    """One field of a message: its check, and whether it may be absent or null."""

    check: Check
    required: bool = True
    nullable: bool = False


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def integer(minimum: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return "must be an integer"
        if minimum is not None and value < minimum:
            return f"must be >= {minimum}"
        return None
    return check


def number(minimum: float | None = None, maximum: float | None = None,
           exclusive_minimum: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if not _is_number(value):
            return "must be a finite number"
        if minimum is not None and (value < minimum or (exclusive_minimum and value == minimum)):
            return f"must be {'>' if exclusive_minimum else '>='} {minimum}"
        if maximum is not None and value > maximum:
            return f"must be <= {maximum}"
        return None
    return check


def text(non_empty: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return "must be a string"
        if non_empty and not value:
            return "must not be empty"
        return None
    return check


def boolean() -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, bool) else "must be true or false"
    return check


def one_of(choices: Sequence[str]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {list(choices)}"
    return check


def true_only() -> Check:
    def check(value: Any) -> str | None:
        return None if value is True else "must be true when present (omit it otherwise)"
    return check


def obj(fields: Mapping[str, Field]) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, dict):
            return "must be an object"
        errors = _check_fields(value, fields, "")
        return "; ".join(errors) if errors else None
    return check


def free_object() -> Check:
    def check(value: Any) -> str | None:
        return None if isinstance(value, dict) else "must be an object"
    return check


def number_list(minimum: float, maximum: float, max_len: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, list):
            return "must be a list"
        if len(value) > max_len:
            return f"must have at most {max_len} points"
        if not all(_is_number(x) and minimum <= x <= maximum for x in value):
            return f"must hold numbers in [{minimum}, {maximum}]"
        return None
    return check


def _check_fields(message: Mapping[str, Any], fields: Mapping[str, Field], prefix: str
                  ) -> list[str]:
    errors = []
    for name, spec in fields.items():
        where = f"{prefix}{name}"
        if name not in message:
            if spec.required:
                errors.append(f"{where}: missing")
            continue
        value = message[name]
        if value is None:
            if not spec.nullable:
                errors.append(f"{where}: must not be null")
            continue
        problem = spec.check(value)
        if problem:
            errors.append(f"{where}: {problem}")
    return errors


PROBABILITY = number(0.0, 1.0)
SAMPLE_INDEX = integer(0)

COMMON_FIELDS: dict[str, Field] = {
    "v": Field(integer(1)),
    "type": Field(one_of(EVENT_TYPES)),
    "t": Field(number(0.0)),
    "simulated": Field(true_only(), required=False),
}

DEVICE_FIELDS: dict[str, Field] = {
    "id": Field(text()),
    "firmware": Field(text()),
    "nominal_rate_hz": Field(number(0.0, exclusive_minimum=True)),
    "adc_bits": Field(integer(1), nullable=True),
    "gain": Field(number(0.0, exclusive_minimum=True), required=False, nullable=True),
}

MODEL_FIELDS: dict[str, Field] = {
    "name": Field(text(non_empty=True)),
    "version": Field(text(non_empty=True)),
    "hash": Field(text(non_empty=True)),
    "calibrated": Field(boolean()),
    "backend": Field(text(), required=False, nullable=True),
    "thresholds": Field(free_object(), required=False),
}

DETECTOR_FIELDS: dict[str, Field] = {
    "name": Field(text(non_empty=True)),
    "version": Field(text(non_empty=True)),
    "hash": Field(text(non_empty=True)),
}

QUALITY_FIELDS: dict[str, Field] = {
    "status": Field(one_of(QUALITY_STATUSES)),
    "reason": Field(text(), nullable=True),
    # Optional, so event files written before these fields still validate.
    "settling": Field(boolean(), required=False),
    "unfamiliar": Field(boolean(), required=False, nullable=True),
    "signal_distance": Field(number(0.0), required=False, nullable=True),
}

COUNT_FIELDS: dict[str, Field] = {name: Field(integer(0)) for name in (*FINDINGS, "poor")}

RULE_FIELDS: dict[str, Field] = {
    "min_cycles": Field(integer(0)),
    "min_fraction": Field(number(0.0, 1.0)),
    "poor_quality_fraction": Field(number(0.0, 1.0)),
    "min_good_cycles": Field(integer(0)),
    # A learned verdict's coefficients (edge.labels.LearnedVerdict): bias, then weights.
    "learned": Field(obj({"crackle": Field(number_list(-1e6, 1e6, 4)),
                          "wheeze": Field(number_list(-1e6, 1e6, 4)),
                          "poor": Field(number_list(-1e6, 1e6, 3)),
                          "max_cycles": Field(integer(1), required=False)}), required=False),
}

MESSAGE_FIELDS: dict[str, dict[str, Field]] = {
    "hello": {
        "device": Field(obj(DEVICE_FIELDS)),
        "model": Field(obj(MODEL_FIELDS)),
        "detector": Field(obj(DETECTOR_FIELDS), required=False),
        "transport": Field(text(non_empty=True)),
        "simulated": Field(boolean()),
        "clock_synchronised": Field(boolean(), nullable=True),
        "software": Field(text(), required=False),
        "settings": Field(free_object(), required=False),
    },
    "link": {
        "bytes": Field(integer(0)),
        "frames": Field(integer(0)),
        "frames_per_s": Field(number(0.0)),
        "crc_errors": Field(integer(0)),
        "gaps": Field(integer(0)),
        "resyncs": Field(integer(0)),
        "nominal_rate_hz": Field(number(0.0, exclusive_minimum=True), nullable=True),
        "measured_rate_hz": Field(number(0.0), nullable=True),
        "battery_pct": Field(number(0.0, 100.0), nullable=True),
        "clipping": Field(number(0.0, 1.0)),
        "skipped_bytes": Field(integer(0), required=False),
        "version_errors": Field(integer(0), required=False),
    },
    "level": {
        "index": Field(SAMPLE_INDEX),
        "dbfs": Field(number(-200.0, 0.0)),
        "envelope": Field(number_list(0.0, 1.0, MAX_ENVELOPE)),
        "phase": Field(one_of(BREATH_PHASES)),
        "breath_rate_bpm": Field(number(0.0), required=False, nullable=True),
    },
    "cycle": {
        "id": Field(integer(0)),
        "start": Field(SAMPLE_INDEX),
        "end": Field(SAMPLE_INDEX),
        "rate_hz": Field(number(0.0, exclusive_minimum=True)),
        "wall_start": Field(number(0.0)),
        "duration_s": Field(number(0.0, exclusive_minimum=True)),
        "finding": Field(one_of(FINDINGS)),
        "p_crackle": Field(PROBABILITY),
        "p_wheeze": Field(PROBABILITY),
        "subtype": Field(text(), nullable=True),
        "quality": Field(obj(QUALITY_FIELDS)),
        # Null where there is no live latency (a saved recording classified again).
        "latency_ms": Field(number(0.0), nullable=True),
        "breath_rate_bpm": Field(number(0.0), nullable=True),
    },
    "verdict": {
        "verdict": Field(one_of(VERDICTS)),
        "cycles": Field(integer(0)),
        "good_cycles": Field(integer(0)),
        "counts": Field(obj(COUNT_FIELDS)),
        # Optional, so event files written before the rule travelled still validate.
        "rule": Field(obj(RULE_FIELDS), required=False),
    },
    "gap": {
        "expected_index": Field(SAMPLE_INDEX),
        "received_index": Field(SAMPLE_INDEX),
        "lost_samples": Field(integer(0)),
        "reason": Field(text(non_empty=True)),
    },
    "stale": {
        "state": Field(one_of(STALE_STATES)),
        "silent_s": Field(number(0.0)),
        "last_index": Field(SAMPLE_INDEX, nullable=True),
    },
    "mark": {
        "label": Field(text()),
        "index": Field(SAMPLE_INDEX, nullable=True),
        "source": Field(text(non_empty=True)),
        "site": Field(text(), required=False, nullable=True),
    },
    "status": {
        "level": Field(one_of(STATUS_LEVELS)),
        "message": Field(text(non_empty=True)),
        "code": Field(text(), required=False, nullable=True),
    },
    "audio": {
        "start": Field(SAMPLE_INDEX),
        "rate_hz": Field(number(0.0, exclusive_minimum=True)),
        "n": Field(integer(1)),
        "encoding": Field(one_of((AUDIO_ENCODING,))),
        "data": Field(text(non_empty=True)),
    },
}


def _cross_field_errors(message: Mapping[str, Any]) -> list[str]:
    """Rules that relate two fields of one message (only run once the fields are valid)."""
    kind = message["type"]
    errors = []
    if kind == "cycle":
        if message["end"] <= message["start"]:
            errors.append("end: must be greater than start")
        else:
            expected = (message["end"] - message["start"]) / message["rate_hz"]
            if abs(expected - message["duration_s"]) > 1e-3:
                errors.append(f"duration_s: {message['duration_s']} != (end-start)/rate_hz "
                              f"= {expected:.4f}")
    elif kind == "verdict":
        if message["good_cycles"] > message["cycles"]:
            errors.append("good_cycles: must not exceed cycles")
        if sum(message["counts"].values()) != message["cycles"]:
            errors.append("counts: must add up to cycles")
        if message["cycles"] - message["counts"]["poor"] != message["good_cycles"]:
            errors.append("good_cycles: must equal cycles - counts.poor")
    elif kind == "gap":
        lost = message["received_index"] - message["expected_index"]
        if lost > 0 and lost != message["lost_samples"]:
            errors.append("lost_samples: must equal received_index - expected_index")
    elif kind == "audio":
        try:
            raw = base64.b64decode(message["data"], validate=True)
        except (binascii.Error, ValueError):
            return ["data: not valid base64"]
        if len(raw) != 2 * message["n"]:
            errors.append("data: length does not match n int16 samples")
    return errors


def validate(message: Any) -> list[str]:
    """Return every schema problem of one event (an empty list means valid).

    Unknown extra fields are allowed (a newer minor revision may add fields); an unknown
    type or a newer major version is an error.

    Parameters
    ----------
    message : Any
        A decoded JSON value.

    Returns
    -------
    list of str
        ``"field: problem"`` strings.
    """
    if not isinstance(message, dict):
        return ["event: must be a JSON object"]
    kind = message.get("type")
    type_fields = MESSAGE_FIELDS.get(kind, {}) if isinstance(kind, str) else {}
    # a type's own definition of a common field wins (hello's simulated may be false)
    common = {name: spec for name, spec in COMMON_FIELDS.items() if name not in type_fields}
    errors = _check_fields(message, common, "")
    version = message.get("v")
    if _is_int(version) and version > SCHEMA_VERSION:
        errors.append(f"v: schema version {version} is newer than supported "
                      f"({SCHEMA_VERSION}); update the software")
    if not type_fields:
        return errors
    type_errors = _check_fields(message, type_fields, "")
    errors += type_errors
    if not type_errors and not errors:
        errors += _cross_field_errors(message)
    return errors


def check(message: Any) -> dict[str, Any]:
    """Return ``message`` if it is a valid event, else raise :class:`EventError`."""
    errors = validate(message)
    if errors:
        kind = message.get("type", "?") if isinstance(message, dict) else "?"
        raise EventError(f"invalid {kind} event: " + "; ".join(errors))
    return message


def parse_line(line: str | bytes) -> dict[str, Any]:
    """Decode and validate one JSON line; raise :class:`EventError` on any problem."""
    try:
        message = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EventError(f"not a JSON line: {exc}") from None
    return check(message)


def iter_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the validated events of a JSON-lines file, skipping blank lines."""
    with open(path, encoding="utf-8") as handle:
        for number_, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield parse_line(line)
            except EventError as exc:
                raise EventError(f"{path}:{number_}: {exc}") from None


def validate_stream(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    """Check rules that span messages: first a hello, SIMULATED marking, ordering.

    Returns ``"#n: problem"`` strings (n counts from 1).
    """
    errors: list[str] = []
    simulated: bool | None = None
    last_cycle_end = -1
    for n, message in enumerate(messages, start=1):
        errors += [f"#{n}: {e}" for e in validate(message)]
        kind = message.get("type")
        if n == 1 and kind != "hello":
            errors.append(f"#{n}: a stream must start with hello")
        if kind == "hello":
            simulated = bool(message.get("simulated"))
        elif simulated and message.get("simulated") is not True:
            errors.append(f"#{n}: {kind} from a simulated source lacks simulated: true")
        elif simulated is False and message.get("simulated"):
            errors.append(f"#{n}: simulated {kind} in a stream whose hello is not simulated")
        if kind == "cycle" and _is_int(message.get("start")):
            if message["start"] < last_cycle_end:
                errors.append(f"#{n}: cycle overlaps the previous one")
            last_cycle_end = message.get("end", last_cycle_end)
    return errors
