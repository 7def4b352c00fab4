"""Recovery after a crash: make an interrupted session whole again (``steth-session recover``).

A kill can leave a take's audio as a part file (perhaps with half a sample at its end), a torn
last line in its CSV and JSON lines files, no ``take.json``, and a ``session.json`` that is
stale or missing. :func:`recover_session` finishes the audio, cuts torn lines, rebuilds each
take's summary from what is on disk and rewrites ``session.json``; running it again changes
nothing that matters.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from steth.host.session_files import (
    CYCLES_CSV,
    CYCLES_JSONL,
    DAMAGED_SUFFIX,
    EVENTS_JSONL,
    IDENTITY_FILE,
    RAW_AUDIO,
    RAW_HEADER,
    SESSION_FILE,
    SESSION_SCHEMA,
    TAKE_FILE,
    RecorderError,
    finalize_take,
    read_json_object,
    read_take_audio,
    take_folders,
    write_json_atomic,
)


def repair_line_file(path: Path, validate_json: bool) -> int:
    """Cut a trailing partial (or, for JSON lines, unparsable) line; return lines kept."""
    if not path.exists():
        return 0
    data = path.read_bytes()
    keep = data if data.endswith(b"\n") or not data else data[: data.rfind(b"\n") + 1]
    lines = keep.splitlines(keepends=True)
    if validate_json:
        while lines:
            try:
                json.loads(lines[-1])
                break
            except ValueError:
                lines.pop()
        keep = b"".join(lines)
    if keep != data:
        with open(path, "r+b") as handle:
            handle.truncate(len(keep))
            handle.flush()
            os.fsync(handle.fileno())
    return len(lines)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def recover_take(folder: Path, audio_format: str, previous: Mapping[str, Any] | None
                 ) -> dict[str, Any]:
    """Make one take whole again and return its summary."""
    header_path = folder / RAW_HEADER
    header = json.loads(header_path.read_text(encoding="utf-8")) if header_path.exists() \
        else None
    repair_line_file(folder / CYCLES_CSV, validate_json=False)
    cycles = repair_line_file(folder / CYCLES_JSONL, validate_json=True)
    repair_line_file(folder / EVENTS_JSONL, validate_json=True)
    if header is None and (folder / RAW_AUDIO).exists():
        # the kill came between creating the part file and its header: nothing to read it by
        (folder / RAW_AUDIO).unlink()
    finalize_take(folder, audio_format)
    summary = dict(previous or read_json_object(folder / TAKE_FILE) or {})
    number, _, site = folder.name.partition("-")
    summary.update({"folder": folder.name, "site": summary.get("site", site),
                    "number": int(number), "cycles": cycles})
    if header is not None:
        summary.update({"sample_rate": header["sample_rate"],
                        "first_index": header["first_index"]})
        summary.setdefault("started_unix", header.get("started_unix"))
    try:
        audio, rate = read_take_audio(folder)
        summary.update({"samples": int(audio.size), "duration_s": audio.size / rate,
                        "sample_rate": rate})
    except RecorderError:
        summary.update({"samples": 0, "duration_s": 0.0})
    events = _read_jsonl(folder / EVENTS_JSONL)
    summary["gaps"] = [e["recorder_gap"] for e in events if "recorder_gap" in e] + [
        {"edge_gap": {k: e[k] for k in ("expected_index", "received_index", "lost_samples",
                                         "reason")}} for e in events if e.get("type") == "gap"]
    summary["marks"] = [e["recorder_mark"] for e in events if "recorder_mark" in e]
    verdicts = [e for e in events if e.get("type") == "verdict"]
    summary["verdict"] = None if not verdicts else {
        k: verdicts[-1][k] for k in ("verdict", "cycles", "good_cycles", "counts")}
    state = str(summary.get("state", "recording"))
    if state != "closed" and not state.startswith("recovered"):
        summary["state"] = "recovered" if state == "recording" else f"recovered ({state})"
    write_json_atomic(folder / TAKE_FILE, summary)
    return summary


def recover_session(session_dir: str | Path) -> dict[str, Any]:
    """Make an interrupted session whole: finish audio, cut torn lines, rebuild session.json.

    A damaged session.json is kept as ``session.json.damaged``; who and when then come from
    ``identity.json`` (written once when the session opened), else from the folder name.
    Idempotent: running it on a finished session changes nothing that matters.

    Returns
    -------
    dict
        The new session.json content.
    """
    session_dir = Path(session_dir)
    if not session_dir.is_dir():
        raise RecorderError(f"no session folder {session_dir}")
    meta_path = session_dir / SESSION_FILE
    meta = read_json_object(meta_path)
    if meta is None:
        _keep_damaged(meta_path)
        meta = _rebuild_meta(session_dir)
    previous = {t.get("folder"): t for t in meta.get("takes", [])}
    audio_format = meta.get("audio_format", "flac")
    meta["takes"] = [recover_take(folder, audio_format, previous.get(folder.name))
                     for folder in take_folders(session_dir)]
    if meta.get("device") is None:
        _restore_hello(meta, session_dir)
    if meta.get("state") != "closed":
        meta["state"] = "recovered"
        meta["recovered_unix"] = time.time()
    write_json_atomic(meta_path, meta)
    return meta


def _keep_damaged(meta_path: Path) -> None:
    """Set a damaged session.json aside (it may still be read by hand); 0600 like the rest."""
    if not meta_path.exists():
        return
    kept = meta_path.with_name(meta_path.name + DAMAGED_SUFFIX)
    os.chmod(meta_path, 0o600)
    os.replace(meta_path, kept)


def _rebuild_meta(session_dir: Path) -> dict[str, Any]:
    """session.json content from identity.json, else from the folder name."""
    meta: dict[str, Any] = {"schema": SESSION_SCHEMA, "session_id": session_dir.name,
                            "patient": None, "operator": None, "created_unix": None,
                            "takes": [], "warnings": [], "audio_format": "flac",
                            "settings": {}, "device": None}
    identity = read_json_object(session_dir / IDENTITY_FILE)
    if identity is not None:
        meta.update({k: v for k, v in identity.items() if v is not None})
        meta["identity_from"] = IDENTITY_FILE
        return meta
    # <UTC stamp>-<pseudonym>[-n]: the recorder's folder name (see Recorder._new_session_dir)
    stamp, _, pseudonym = session_dir.name.partition("-")
    try:
        created = calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        return meta
    meta.update({"patient": pseudonym or None, "created_unix": float(created),
                 "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created)),
                 "identity_from": "folder name"})
    return meta


def _restore_hello(meta: dict[str, Any], session_dir: Path) -> None:
    """Take device/model facts from the first hello a take logged (session.json was lost)."""
    for folder in take_folders(session_dir):
        for event in _read_jsonl(folder / EVENTS_JSONL):
            if event.get("type") == "hello":
                synced = event.get("clock_synchronised")
                meta.update({"device": event["device"], "model": event["model"],
                             "transport": event["transport"],
                             "simulated": bool(event.get("simulated")),
                             "clock_synchronised": synced,
                             "unsynchronised_clock": synced is not True})
                return
