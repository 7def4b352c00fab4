"""Loaders for SPRSound 2022 and ICBHI 2017.

The data root comes from the caller (CLI flag or ``STETH_DATA``); ``../shared/data`` is only
the default of the command-line tools. Every loading error names the file and the problem.

SPRSound layout::

    sprsound2022/{train,test}/audio/<id>.flac, .../annotations/<id>.json,
    test/inter_patient.txt, test/intra_patient.txt

ICBHI works on two layouts unchanged:

- this project's FLAC layout: ``icbhi2017/{official_split.txt, annotations/<name>.txt,
  audio/<name>.flac}``;
- the official download: ``ICBHI_final_database/<name>.wav`` beside ``<name>.txt``, with the
  split file given explicitly or found beside the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from steth.edge.labels import EVENT_CLASSES, POOR_QUALITY, RECORD_CLASSES

DEFAULT_DATA_ROOT = Path("../shared/data")

# ICBHI's official split puts these two patients in both halves; patient-disjointness checks
# must allow exactly them.
ICBHI_SHARED_PATIENTS = frozenset({"156", "218"})


class DataError(Exception):
    """A data file is missing or malformed; the message names the file."""


def default_data_root() -> Path:
    return Path(os.environ.get("STETH_DATA", DEFAULT_DATA_ROOT))


@dataclass(frozen=True)
class Event:
    """An annotated segment of a recording, in seconds."""

    start: float
    end: float
    label: str  # SPRSound event class, or ICBHI 4-class name
    crackle: bool
    wheeze: bool


@dataclass(frozen=True)
class Recording:
    """One recording with its annotations."""

    dataset: str  # "sprsound" or "icbhi"
    rec_id: str
    audio_path: Path
    patient: str
    split: str  # "train" or "test"
    record_label: str | None  # SPRSound record class; None for ICBHI
    events: tuple[Event, ...] = field(default_factory=tuple)
    subset: str | None = None  # SPRSound test: "inter" or "intra"
    location: str | None = None
    device: str | None = None

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.split}/{self.rec_id}"


def load_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read a WAV/FLAC file as float64 mono at ±1 full scale, with its native rate."""
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise DataError(f"{path}: cannot read audio ({exc})") from exc
    if audio.shape[0] == 0:
        raise DataError(f"{path}: audio file has no samples")
    return audio.mean(axis=1), int(rate)


# ---------------------------------------------------------------------------- SPRSound


def _sprsound_event(path: Path, raw: dict) -> Event:
    from steth.edge.labels import event_to_flags

    try:
        start, end, label = float(raw["start"]) / 1000.0, float(raw["end"]) / 1000.0, raw["type"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: malformed event {raw!r} ({exc})") from exc
    if label not in EVENT_CLASSES:
        raise DataError(f"{path}: unknown event type {label!r}")
    if not end > start >= 0:
        raise DataError(f"{path}: event with start {start} s and end {end} s")
    return Event(start, end, label, *event_to_flags(label))


def parse_sprsound_annotation(path: Path) -> tuple[str, tuple[Event, ...]]:
    """Record label and events of one SPRSound JSON file (times in ms, stored as strings)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read annotation ({exc})") from exc
    record = data.get("record_annotation") if isinstance(data, dict) else None
    if record not in RECORD_CLASSES:
        raise DataError(f"{path}: record_annotation {record!r} is not one of {RECORD_CLASSES}")
    events = tuple(_sprsound_event(path, e) for e in data.get("event_annotation") or [])
    if record == POOR_QUALITY and events:
        raise DataError(f"{path}: a Poor Quality record should have no events")
    return record, tuple(sorted(events, key=lambda e: e.start))


def _parse_sprsound_name(rec_id: str) -> tuple[str, str]:
    parts = rec_id.split("_")
    if len(parts) != 5:
        raise DataError(f"SPRSound id {rec_id!r} is not <patient>_<age>_<sex>_<loc>_<no>")
    return parts[0], parts[3]


def load_sprsound(root: Path, split: str) -> list[Recording]:
    """All recordings of the official ``train`` or ``test`` split.

    Test recordings carry ``subset`` = "inter" (patients unseen in train) or "intra".
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    base = Path(root) / "sprsound2022" / split
    ann_dir, audio_dir = base / "annotations", base / "audio"
    if not ann_dir.is_dir():
        raise DataError(f"{ann_dir}: SPRSound annotation folder not found (is --data right?)")
    subsets: dict[str, str] = {}
    if split == "test":
        for subset in ("inter", "intra"):
            list_path = base / f"{subset}_patient.txt"
            if not list_path.is_file():
                raise DataError(f"{list_path}: SPRSound test subset list not found")
            for line in list_path.read_text().split():
                # ids contain a dot (the age), so only a known extension is stripped
                subsets[line.removesuffix(".json").removesuffix(".flac")] = subset
    recordings = []
    for ann_path in sorted(ann_dir.glob("*.json")):
        rec_id = ann_path.stem
        patient, location = _parse_sprsound_name(rec_id)
        audio_path = audio_dir / f"{rec_id}.flac"
        if not audio_path.is_file():
            raise DataError(f"{audio_path}: audio missing for annotation {ann_path.name}")
        record, events = parse_sprsound_annotation(ann_path)
        recordings.append(Recording("sprsound", rec_id, audio_path, patient, split, record,
                                    events, subsets.get(rec_id), location, "Yunting II"))
    if split == "test" and subsets and len(subsets) != len(recordings):
        raise DataError(f"{base}: inter+intra lists name {len(subsets)} ids, "
                        f"annotations {len(recordings)}")
    return recordings


# ---------------------------------------------------------------------------- ICBHI


def parse_icbhi_cycles(path: Path) -> tuple[Event, ...]:
    """Cycles of one ICBHI annotation file: ``start end crackle wheeze`` per line, seconds."""
    from steth.edge.labels import four_class_from_flags

    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DataError(f"{path}: cannot read cycle annotation ({exc})") from exc
    cycles = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            start, end = float(fields[0]), float(fields[1])
            crackle, wheeze = int(fields[2]), int(fields[3])
        except (IndexError, ValueError) as exc:
            raise DataError(f"{path}:{number}: expected 'start end crackle wheeze'") from exc
        if crackle not in (0, 1) or wheeze not in (0, 1) or not end > start:
            raise DataError(f"{path}:{number}: bad cycle {line!r}")
        cycles.append(Event(start, end, four_class_from_flags(bool(crackle), bool(wheeze)),
                            bool(crackle), bool(wheeze)))
    return tuple(cycles)


def read_icbhi_split(path: Path) -> dict[str, str]:
    """``name -> train|test`` from the official split file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ICBHI split file ({exc})") from exc
    split = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or fields[1] not in ("train", "test"):
            raise DataError(f"{path}:{number}: expected '<name> <train|test>'")
        split[fields[0]] = fields[1]
    return split


def _icbhi_layout(root: Path) -> tuple[Path, Path, Path]:
    """(split file, annotation folder, audio folder) for either supported layout."""
    root = Path(root)
    flac_layout = root / "icbhi2017"
    if (flac_layout / "annotations").is_dir():
        return flac_layout / "official_split.txt", flac_layout / "annotations", \
            flac_layout / "audio"
    official = root if root.name == "ICBHI_final_database" else root / "ICBHI_final_database"
    if official.is_dir():
        for candidate in (official / "official_split.txt", official.parent / "official_split.txt",
                          official.parent / "ICBHI_challenge_train_test.txt"):
            if candidate.is_file():
                return candidate, official, official
        raise DataError(f"{official}: no split file (official_split.txt or "
                        "ICBHI_challenge_train_test.txt) beside it")
    raise DataError(f"{root}: neither icbhi2017/ nor ICBHI_final_database/ found")


def _icbhi_audio(audio_dir: Path, name: str) -> Path | None:
    for ext in (".flac", ".wav"):
        candidate = audio_dir / f"{name}{ext}"
        if candidate.is_file():
            return candidate
    return None


def load_icbhi(root: Path, split: str | None = None, *,
               require_audio: bool = True) -> list[Recording]:
    """ICBHI recordings of the official split (``split`` None = both halves).

    With ``require_audio`` (the default) recordings without an audio file are left out,
    which is how the partial FLAC set in this project's data folder is used.
    """
    split_path, ann_dir, audio_dir = _icbhi_layout(Path(root))
    recordings = []
    for name, half in sorted(read_icbhi_split(split_path).items()):
        if split is not None and half != split:
            continue
        audio_path = _icbhi_audio(audio_dir, name)
        if audio_path is None and require_audio:
            continue
        ann_path = ann_dir / f"{name}.txt"
        if not ann_path.is_file():
            raise DataError(f"{ann_path}: cycle annotation missing for {name}")
        fields = name.split("_")
        if len(fields) != 5:
            raise DataError(f"{split_path}: ICBHI name {name!r} is not "
                            "<patient>_<index>_<location>_<mode>_<device>")
        recordings.append(Recording("icbhi", name, audio_path or ann_path.with_suffix(".wav"),
                                    fields[0], half, None, parse_icbhi_cycles(ann_path),
                                    None, fields[2], fields[4]))
    return recordings


def iter_events(recordings: list[Recording]) -> Iterator[tuple[Recording, Event]]:
    for rec in recordings:
        for event in rec.events:
            yield rec, event
