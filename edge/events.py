"""Builders of the event stream: one function per event type, each returning a valid event.

A builder fills in the schema version, the emission time (``time.time()`` unless ``t`` is
given) and the SIMULATED flag, rounds numbers to the precision the schema documents and
clamps what must stay in range, so what it returns passes :func:`edge.event_schema.validate`.
The schema itself is :mod:`edge.event_schema`; the writers are :mod:`edge.event_writers`.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from steth.edge.event_schema import AUDIO_ENCODING, FINDINGS, MAX_ENVELOPE, SCHEMA_VERSION


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
               thresholds: Mapping[str, float] | None = None,
               detector: Mapping[str, str] | None = None,
               t: float | None = None) -> dict[str, Any]:
    """Build the ``hello`` that opens a stream (device, model, transport, SIMULATED flag).

    ``thresholds`` are the model's decision thresholds in use and ``detector`` the
    breath-cycle detector's name, version and hash, so a session says exactly what decided.
    """
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
    if thresholds is not None:
        event["model"]["thresholds"] = {k: float(v) for k, v in thresholds.items()}
    if detector is not None:
        event["detector"] = dict(detector)
    if software is not None:
        event["software"] = software
    if settings is not None:
        event["settings"] = dict(settings)
    return event


def make_link(*, bytes_: int, frames: int, frames_per_s: float, crc_errors: int, gaps: int,
              resyncs: int, nominal_rate_hz: float | None, measured_rate_hz: float | None,
              battery_pct: float | None = None, clipping: float = 0.0,
              skipped_bytes: int | None = None, version_errors: int | None = None,
              simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``link`` statistics event (cumulative counters since the stream opened).

    A ``nominal_rate_hz`` of 0 or None (device info not received yet) is sent as null.
    ``version_errors`` counts frames of another protocol major that were skipped.
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
    if version_errors is not None:
        event["version_errors"] = int(version_errors)
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
               latency_ms: float | None = 0.0, breath_rate_bpm: float | None = None,
               settling: bool = False, unfamiliar: bool | None = None,
               signal_distance: float | None = None,
               simulated: bool = False, t: float | None = None) -> dict[str, Any]:
    """Build a ``cycle`` event; ``start``/``end`` are device sample indices, end exclusive.

    ``settling``: the channel normaliser had not settled (show no finding). ``unfamiliar``:
    the signal guard's state (None when the model has no guard or it has not decided);
    ``signal_distance`` its distance from the training data.

    ``wall_start`` is the wall-clock time (Unix seconds) of sample ``start``, so a reader
    can place the cycle on a clock without knowing the stream's history. ``latency_ms``
    (cycle closed to event emitted) is None where it does not apply: a saved recording
    classified again.
    """
    event = _base("cycle", t, simulated)
    event.update({
        "id": int(cycle_id), "start": int(start), "end": int(end), "rate_hz": float(rate_hz),
        "wall_start": round(float(wall_start), 3),
        "duration_s": round((int(end) - int(start)) / float(rate_hz), 4),
        "finding": finding, "p_crackle": round(float(p_crackle), 4),
        "p_wheeze": round(float(p_wheeze), 4), "subtype": subtype,
        "quality": {"status": quality, "reason": quality_reason, "settling": bool(settling),
                    "unfamiliar": unfamiliar,
                    "signal_distance": None if signal_distance is None
                    else round(float(signal_distance), 2)},
        "latency_ms": None if latency_ms is None else round(float(latency_ms), 1),
        "breath_rate_bpm": None if breath_rate_bpm is None else round(breath_rate_bpm, 1),
    })
    return event


def make_verdict(*, verdict: str, cycles: int, good_cycles: int, counts: Mapping[str, int],
                 rule: Mapping[str, float] | None = None, simulated: bool = False,
                 t: float | None = None) -> dict[str, Any]:
    """Build a record-level ``verdict`` with the cycle counts behind it.

    ``counts`` maps each finding to its number of good-quality cycles, plus ``poor`` for
    the poor-quality cycles (whatever their finding), so the counts add up to ``cycles``.
    ``rule`` is the record rule's thresholds (``VerdictRule.to_dict()``), so a reader can
    apply the same rule to part of the cycles (one take, one site).
    """
    event = _base("verdict", t, simulated)
    full = {name: int(counts.get(name, 0)) for name in (*FINDINGS, "poor")}
    event.update({"verdict": verdict, "cycles": int(cycles), "good_cycles": int(good_cycles),
                  "counts": full})
    if rule is not None:
        event["rule"] = dict(rule)
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
    """Build a ``stale`` event: ``state="stale"`` once no audio arrived for
    :data:`edge.findings.STALE_AFTER_S`, then ``"recovered"`` when audio returns."""
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
    import numpy as np  # local: the other builders need no third-party package

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
