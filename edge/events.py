"""The event stream: one versioned JSON-lines schema shared by the edge and the host.

Every line is one JSON object with at least ``"v"`` (schema major version), ``"type"`` and
``"t"`` (wall-clock Unix seconds at emission). Events from a simulated source carry
``"simulated": true``. The full field list lives in ``docs/events.md``; this module is its
executable form: builders that produce valid events, a dependency-free validator (the Pi
runtime has no jsonschema), and writers to stdout or a file (the TCP writer is in
:mod:`edge.event_server`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from steth.edge.labels import FOUR_CLASSES, RECORD_CLASSES

SCHEMA_VERSION = 1

FINDINGS: tuple[str, ...] = FOUR_CLASSES
VERDICTS: tuple[str, ...] = RECORD_CLASSES
QUALITY_STATUSES: tuple[str, ...] = ("ok", "poor")
BREATH_PHASES: tuple[str, ...] = ("inspiration", "expiration", "pause", "unknown")
STALE_STATES: tuple[str, ...] = ("stale", "recovered")
STATUS_LEVELS: tuple[str, ...] = ("info", "warning", "error")
STALE_AFTER_S = 2.0  # "no signal" threshold of the stale event
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


def _is_int(value: Any) -> bool:
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
}

QUALITY_FIELDS: dict[str, Field] = {
    "status": Field(one_of(QUALITY_STATUSES)),
    "reason": Field(text(), nullable=True),
}

COUNT_FIELDS: dict[str, Field] = {name: Field(integer(0)) for name in (*FINDINGS, "poor")}

MESSAGE_FIELDS: dict[str, dict[str, Field]] = {
    "hello": {
        "device": Field(obj(DEVICE_FIELDS)),
        "model": Field(obj(MODEL_FIELDS)),
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
        "latency_ms": Field(number(0.0)),
        "breath_rate_bpm": Field(number(0.0), nullable=True),
    },
    "verdict": {
        "verdict": Field(one_of(VERDICTS)),
        "cycles": Field(integer(0)),
        "good_cycles": Field(integer(0)),
        "counts": Field(obj(COUNT_FIELDS)),
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


# ----------------------------------------------------------------------------- builders

def _base(kind: str, t: float | None, simulated: bool) -> dict[str, Any]:
    event: dict[str, Any] = {"v": SCHEMA_VERSION, "type": kind,
                             "t": round(time.time() if t is None else t, 3)}
    if simulated:
        event["simulated"] = True
    return event


def make_hello(*, device_id: str, firmware: str, nominal_rate_hz: float, adc_bits: int | None,
               model_name: str, model_version: str, model_hash: str, calibrated: bool,
               transport: str, simulated: bool, clock_synchronised: bool | None = None,
               gain: float | None = None, backend: str | None = None,
               software: str | None = None, settings: Mapping[str, Any] | None = None,
               t: float | None = None) -> dict[str, Any]:
    """Build the ``hello`` that opens a stream (device, model, transport, SIMULATED flag)."""
    event = _base("hello", t, simulated)
    event.update({
        "simulated": bool(simulated),
        "transport": transport,
        "device": {"id": device_id, "firmware": firmware,
                   "nominal_rate_hz": float(nominal_rate_hz), "adc_bits": adc_bits,
                   "gain": gain},
        "model": {"name": model_name, "version": model_version, "hash": model_hash,
                  "calibrated": bool(calibrated), "backend": backend},
        "clock_synchronised": clock_synchronised,
    })
    if software is not None:
        event["software"] = software
    if settings is not None:
        event["settings"] = dict(settings)
    return event


def make_link(*, bytes_: int, frames: int, frames_per_s: float, crc_errors: int, gaps: int,
              resyncs: int, nominal_rate_hz: float | None, measured_rate_hz: float | None,
              battery_pct: float | None = None, clipping: float = 0.0,
              skipped_bytes: int | None = None, simulated: bool = False,
              t: float | None = None) -> dict[str, Any]:
    """Build a ``link`` statistics event (cumulative counters since the stream opened).

    A ``nominal_rate_hz`` of 0 or None (device info not received yet) is sent as null.
    """
    event = _base("link", t, simulated)
    event.update({
        "bytes": int(bytes_), "frames": int(frames), "frames_per_s": round(frames_per_s, 2),
        "crc_errors": int(crc_errors), "gaps": int(gaps), "resyncs": int(resyncs),
        "nominal_rate_hz": float(nominal_rate_hz) if nominal_rate_hz else None,
        "measured_rate_hz": None if measured_rate_hz is None else round(measured_rate_hz, 2),
        "battery_pct": battery_pct, "clipping": round(float(clipping), 5),
    })
    if skipped_bytes is not None:
        event["skipped_bytes"] = int(skipped_bytes)
    return event


def make_level(*, index: int, dbfs: float, envelope: Sequence[float], phase: str,
               breath_rate_bpm: float | None = None, simulated: bool = False,
               t: float | None = None) -> dict[str, Any]:
    """Build a ``level`` event; ``dbfs`` is clamped to [-200, 0], the envelope to [0, 1]."""
    event = _base("level", t, simulated)
    points = [round(min(1.0, max(0.0, float(x))), 4) for x in envelope[-MAX_ENVELOPE:]]
    level = float(dbfs) if math.isfinite(dbfs) else -200.0
    event.update({"index": int(index), "dbfs": round(min(0.0, max(-200.0, level)), 2),
                  "envelope": points, "phase": phase, "breath_rate_bpm": breath_rate_bpm})
    return event


def make_cycle(*, cycle_id: int, start: int, end: int, rate_hz: float, wall_start: float,
               finding: str, p_crackle: float, p_wheeze: float, quality: str = "ok",
               quality_reason: str | None = None, subtype: str | None = None,
               latency_ms: float = 0.0, breath_rate_bpm: float | None = None,
               simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``cycle`` event; ``start``/``end`` are device sample indices, end exclusive.

    ``wall_start`` is the wall-clock time (Unix seconds) of sample ``start``, so a reader
    can place the cycle on a clock without knowing the stream's history.
    """
    event = _base("cycle", t, simulated)
    event.update({
        "id": int(cycle_id), "start": int(start), "end": int(end), "rate_hz": float(rate_hz),
        "wall_start": round(float(wall_start), 3),
        "duration_s": round((int(end) - int(start)) / float(rate_hz), 4),
        "finding": finding, "p_crackle": round(float(p_crackle), 4),
        "p_wheeze": round(float(p_wheeze), 4), "subtype": subtype,
        "quality": {"status": quality, "reason": quality_reason},
        "latency_ms": round(float(latency_ms), 1),
        "breath_rate_bpm": None if breath_rate_bpm is None else round(breath_rate_bpm, 1),
    })
    return event


def make_verdict(*, verdict: str, cycles: int, good_cycles: int, counts: Mapping[str, int],
                 simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a record-level ``verdict`` with the cycle counts behind it.

    ``counts`` maps each finding to its number of good-quality cycles, plus ``poor`` for
    the poor-quality cycles (whatever their finding), so the counts add up to ``cycles``.
    """
    event = _base("verdict", t, simulated)
    full = {name: int(counts.get(name, 0)) for name in (*FINDINGS, "poor")}
    event.update({"verdict": verdict, "cycles": int(cycles), "good_cycles": int(good_cycles),
                  "counts": full})
    return event


def make_gap(*, expected_index: int, received_index: int, lost_samples: int, reason: str,
             simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``gap`` event (samples lost between two received frames)."""
    event = _base("gap", t, simulated)
    event.update({"expected_index": int(expected_index), "received_index": int(received_index),
                  "lost_samples": int(lost_samples), "reason": reason})
    return event


def make_stale(*, state: str, silent_s: float, last_index: int | None,
               simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``stale`` event: ``state="stale"`` after >= 2 s without audio, then
    ``"recovered"`` when audio returns."""
    event = _base("stale", t, simulated)
    event.update({"state": state, "silent_s": round(float(silent_s), 3),
                  "last_index": last_index})
    return event


def make_mark(*, label: str = "", index: int | None = None, source: str = "operator",
              site: str | None = None, simulated: bool = False,
              t: float | None = None) -> dict[str, Any]:
    """Build a ``mark`` (an operator's bookmark at a device sample index)."""
    event = _base("mark", t, simulated)
    event.update({"label": label, "index": index, "source": source, "site": site})
    return event


def make_status(*, level: str, message: str, code: str | None = None,
                simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``status`` event (a human-readable notice, e.g. "recording stopped: disk full")."""
    event = _base("status", t, simulated)
    event.update({"level": level, "message": message, "code": code})
    return event


def make_audio(*, start: int, samples: Any, rate_hz: float, simulated: bool = False,
               t: float | None = None) -> dict[str, Any]:
    """Build an ``audio`` event carrying raw int16 samples (only sent to clients that ask)."""
    import numpy as np  # local: the validator itself must stay importable without numpy

    data = np.ascontiguousarray(samples, dtype="<i2")
    event = _base("audio", t, simulated)
    event.update({"start": int(start), "rate_hz": float(rate_hz), "n": int(data.size),
                  "encoding": AUDIO_ENCODING,
                  "data": base64.b64encode(data.tobytes()).decode("ascii")})
    return event


def decode_audio(event: Mapping[str, Any]) -> Any:
    """Return the int16 numpy samples of an ``audio`` event."""
    import numpy as np

    return np.frombuffer(base64.b64decode(event["data"]), dtype="<i2").astype(np.int16)


def mark_simulated(event: dict[str, Any]) -> dict[str, Any]:
    """Flag an event as coming from a simulated source (in place; returns it)."""
    event["simulated"] = True
    return event


# ----------------------------------------------------------------------------- writers

def dumps(event: Mapping[str, Any]) -> str:
    """One compact JSON line (no newline)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class EventWriter(Protocol):
    """Anything that accepts events: stdout, a file, the TCP server, the dashboard queue."""

    def write(self, event: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class StreamWriter:
    """Write events as JSON lines to a text stream (stdout by default), flushing each line."""

    def __init__(self, stream: IO[str] | None = None, validate_events: bool = False) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._validate = validate_events
        self._lock = threading.Lock()

    def write(self, event: Mapping[str, Any]) -> None:
        if self._validate:
            check(dict(event))
        line = dumps(event) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.flush()


class FileWriter:
    """Append events to a JSON-lines file created 0600 (parent folders 0700)."""

    def __init__(self, path: str | Path, validate_events: bool = False) -> None:
        self.path = Path(path)
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._handle = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._validate = validate_events
        self._lock = threading.Lock()

    def write(self, event: Mapping[str, Any]) -> None:
        if self._validate:
            check(dict(event))
        with self._lock:
            self._handle.write(dumps(event) + "\n")

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()


class MultiWriter:
    """Fan one event out to several writers, one event at a time.

    The pipeline's worker thread and the I/O thread both emit; the lock keeps every writer
    seeing the events in the same order. It is re-entrant because a writer (the recorder)
    may emit a warning while it handles an event.
    """

    def __init__(self, writers: Iterable[EventWriter] = ()) -> None:
        self.writers = list(writers)
        self._lock = threading.RLock()

    def add(self, writer: EventWriter) -> None:
        with self._lock:
            self.writers.append(writer)

    def write(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            for writer in self.writers:
                writer.write(event)

    def close(self) -> None:
        with self._lock:
            writers, self.writers = self.writers, []
        for writer in writers:
            writer.close()


def make_private_dir(path: str | Path) -> Path:
    """Create ``path`` and its missing parents with mode 0700.

    Folders that already exist are left alone (the user may point at a shared parent).
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    return path
