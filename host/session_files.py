"""Session files on disk: names, private 0600 writes, atomic JSON, line logs, take audio.

The session layout is described in :mod:`steth.host.recorder`. Everything here is written so
that a kill at any moment leaves something readable: JSON files are replaced atomically, CSV
and JSON lines are appended with unbuffered writes (a torn last line is cut on recovery), and
a finished audio file appears by rename only once it is complete. Files are 0600 because they
hold patient recordings.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

SESSION_FILE = "session.json"
# Written once when the session opens and never again: session.json is rewritten on every
# change, so it is the file a crash or a bad disk is likeliest to damage.
IDENTITY_FILE = "identity.json"
IDENTITY_FIELDS: tuple[str, ...] = (
    "schema", "session_id", "patient", "operator", "sites", "created_unix", "created_utc",
    "settings", "audio_format",
)
DAMAGED_SUFFIX = ".damaged"
RAW_AUDIO = "audio.s16le.part"
RAW_HEADER = "audio.part.json"
CYCLES_CSV = "cycles.csv"
CYCLES_JSONL = "cycles.jsonl"
EVENTS_JSONL = "events.jsonl"
TAKE_FILE = "take.json"
SESSION_SCHEMA = 1
CSV_COLUMNS: tuple[str, ...] = (
    "id", "start", "end", "offset_s", "duration_s", "wall_start", "finding", "p_crackle",
    "p_wheeze", "subtype", "quality", "quality_reason", "latency_ms", "breath_rate_bpm",
)


class RecorderError(RuntimeError):
    """An expected recording failure, with a one-line message."""


# ----------------------------------------------------------------------------- file helpers

def open_private(path: Path, flags: int) -> int:
    fd = os.open(path, flags | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = open_private(tmp, os.O_WRONLY | os.O_TRUNC)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=False)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_identity(folder: Path, meta: Mapping[str, Any]) -> None:
    """Write the redundant, write-once copy of who and when (:data:`IDENTITY_FIELDS`)."""
    write_json_atomic(folder / IDENTITY_FILE, {k: meta.get(k) for k in IDENTITY_FIELDS})


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing, unreadable or damaged."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LineLog:
    """An append-only text file (CSV or JSON lines) that survives a kill."""

    def __init__(self, path: Path, header: str | None = None) -> None:
        new = not path.exists() or path.stat().st_size == 0
        self._fd = open_private(path, os.O_WRONLY | os.O_APPEND)
        self.dirty = False
        if new and header:
            self.append(header)

    def append(self, line: str) -> None:
        data = line.encode("utf-8")
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fsync(self._fd)
            self.dirty = False

    def close(self) -> None:
        self.sync()
        os.close(self._fd)


def csv_row(event: Mapping[str, Any], first_index: int | None) -> str:
    """One CSV line for a cycle event; ``offset_s`` is its start within the take's audio."""
    offset = None
    if first_index is not None:
        offset = round((event["start"] - first_index) / event["rate_hz"], 4)
    values = {
        "id": event["id"], "start": event["start"], "end": event["end"], "offset_s": offset,
        "duration_s": event["duration_s"], "wall_start": event["wall_start"],
        "finding": event["finding"], "p_crackle": event["p_crackle"],
        "p_wheeze": event["p_wheeze"], "subtype": event.get("subtype"),
        "quality": event["quality"]["status"], "quality_reason": event["quality"].get("reason"),
        "latency_ms": event["latency_ms"], "breath_rate_bpm": event.get("breath_rate_bpm"),
    }
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(
        "" if values[c] is None else values[c] for c in CSV_COLUMNS)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- take audio

def finalize_take(folder: Path, audio_format: str = "flac") -> Path | None:
    """Convert a take's raw part file to FLAC/WAV (atomically) and remove the part files.

    Safe to call again after a crash at any point: a finished audio file is kept, a
    half-written temporary one is redone.
    """
    import soundfile as sf

    raw, header_path = folder / RAW_AUDIO, folder / RAW_HEADER
    final = folder / f"audio.{audio_format}"
    if not raw.exists():
        return final if final.exists() else None
    header = json.loads(header_path.read_text(encoding="utf-8"))
    size = raw.stat().st_size
    if size % 2:
        os.truncate(raw, size - 1)  # a kill mid-sample leaves one stray byte
    tmp = folder / f"audio.tmp.{audio_format}"
    sub = "PCM_16"
    with sf.SoundFile(tmp, "w", samplerate=int(header["sample_rate"]), channels=1,
                      subtype=sub, format=audio_format.upper()) as out, open(raw, "rb") as src:
        while block := src.read(1 << 20):
            out.write(np.frombuffer(block, dtype="<i2"))
    os.chmod(tmp, 0o600)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(folder)
    raw.unlink()
    header_path.unlink()
    return final


def read_take_audio(folder: Path) -> tuple[np.ndarray, int]:
    """Return (int16 samples, sample rate) of a take, finished or still a part file."""
    import soundfile as sf

    for name in ("audio.flac", "audio.wav"):
        if (folder / name).exists():
            data, rate = sf.read(folder / name, dtype="int16", always_2d=False)
            return np.asarray(data, dtype=np.int16), int(rate)
    if (folder / RAW_AUDIO).exists():
        header = json.loads((folder / RAW_HEADER).read_text(encoding="utf-8"))
        raw = (folder / RAW_AUDIO).read_bytes()
        return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2").astype(np.int16), int(
            header["sample_rate"])
    raise RecorderError(f"{folder} has no audio")


def take_folders(session_dir: Path) -> list[Path]:
    """The take folders of a session, in recording order."""
    return sorted(p for p in session_dir.iterdir()
                  if p.is_dir() and re.fullmatch(r"\d{2,}-[A-Za-z0-9_-]+", p.name))
