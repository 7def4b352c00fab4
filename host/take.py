"""One take: a continuous recording at one auscultation site, written as it arrives.

The device's raw int16 audio is appended to ``audio.s16le.part`` with unbuffered writes (its
header ``audio.part.json`` says how to read it); the session's flusher calls :meth:`Take.sync`
so nothing stays un-fsynced for long. Samples lost in transit are zero-filled, up to
``MAX_ZERO_FILL_S``, so audio offsets stay equal to device sample indices minus the first; a
longer gap, another sample rate or an index that went back ends the take ("new-take") and the
recorder starts another. Cycles go to ``cycles.csv`` and ``cycles.jsonl``, every other event
to ``events.jsonl``.

A take's verdict is its own: the edge's record tally (:class:`edge.findings.RecordTally`,
with the rule the edge's verdict events name) over the cycles that began inside the take
(:func:`in_take`), never the edge's running verdict, which also covers other sites and the
time before recording started.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.event_writers import make_private_dir
from steth.edge.events import make_verdict
from steth.edge.findings import RecordTally, rule_of_verdict_event
from steth.host.session_files import (
    CSV_COLUMNS,
    CYCLES_CSV,
    CYCLES_JSONL,
    EVENTS_JSONL,
    RAW_AUDIO,
    RAW_HEADER,
    LineLog,
    csv_row,
    open_private,
    write_json_atomic,
)

MAX_ZERO_FILL_S = 60.0
RESTART_TOLERANCE_S = 1.0  # an index this far behind means the device restarted

Writer = Callable[[int, bytes], int]


def in_take(cycle: Mapping[str, Any], first_index: int | None) -> bool:
    """Whether a cycle event belongs to a take whose audio starts at ``first_index``.

    Device sample indices, not clocks, decide (a remote recorder's clock may differ): a
    cycle that began before the take's first sample was heard before recording started, or
    at the previous site.
    """
    return first_index is not None and int(cycle["start"]) >= first_index


@dataclass
class Take:
    """One continuous recording at one site (a folder of the session)."""

    folder: Path
    site: str
    number: int
    started_unix: float
    started_monotonic: float
    write: Writer
    sample_rate: int | None = None
    first_index: int | None = None
    next_index: int | None = None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    cycles: int = 0
    tally: RecordTally = field(default_factory=RecordTally)
    simulated: bool = False
    state: str = "recording"
    _audio_fd: int | None = None
    _audio_dirty: bool = False
    _written_bytes: int = 0

    def open(self) -> None:
        make_private_dir(self.folder)
        self.cycles_csv = LineLog(self.folder / CYCLES_CSV, header=",".join(CSV_COLUMNS) + "\n")
        self.cycles_jsonl = LineLog(self.folder / CYCLES_JSONL)
        self.events = LineLog(self.folder / EVENTS_JSONL)

    # -------------------------------------------------------------- audio

    def append_audio(self, start_index: int, samples: np.ndarray, sample_rate: int) -> str:
        """Append samples; returns "ok", or "new-take" when they cannot continue this take."""
        if self.sample_rate is None:
            self._begin_audio(start_index, sample_rate)
        elif sample_rate != self.sample_rate:
            return "new-take"
        assert self.next_index is not None and self.sample_rate is not None
        lost = start_index - self.next_index
        if lost > MAX_ZERO_FILL_S * self.sample_rate:
            return "new-take"
        assert self.first_index is not None
        if lost < -RESTART_TOLERANCE_S * self.sample_rate or start_index < self.first_index:
            return "new-take"  # the device's index went back: it restarted
        if lost > 0:
            self._fill_gap(lost)
        elif lost < 0:
            samples = samples[-lost:]  # overlap with what we have: keep only the new tail
            if samples.size == 0:
                return "ok"
        self._write_samples(samples)
        return "ok"

    def _begin_audio(self, start_index: int, sample_rate: int) -> None:
        self.sample_rate = int(sample_rate)
        self.first_index = self.next_index = int(start_index)
        write_json_atomic(self.folder / RAW_HEADER, {
            "format": "s16le", "channels": 1, "sample_rate": self.sample_rate,
            "first_index": self.first_index, "site": self.site,
            "started_unix": self.started_unix})
        self._audio_fd = open_private(self.folder / RAW_AUDIO, os.O_WRONLY | os.O_APPEND)

    def _fill_gap(self, lost: int) -> None:
        assert self.next_index is not None
        gap = {"at_index": self.next_index, "lost_samples": int(lost), "filled": "zeros"}
        self.gaps.append(gap)
        self.events.append(json.dumps({"recorder_gap": gap}) + "\n")
        self._write_samples(np.zeros(lost, dtype=np.int16))

    def _write_samples(self, samples: np.ndarray) -> None:
        assert self._audio_fd is not None and self.next_index is not None
        data = np.ascontiguousarray(samples, dtype="<i2").tobytes()
        written = 0
        try:
            while written < len(data):
                written += self.write(self._audio_fd, data[written:])
        finally:
            self._written_bytes += written
            self._audio_dirty = self._audio_dirty or written > 0
            if written % 2:  # never leave half a sample behind a failed write
                os.ftruncate(self._audio_fd, self._written_bytes - 1)
                self._written_bytes -= 1
                written -= 1
            self.next_index += written // 2

    @property
    def samples(self) -> int:
        return self._written_bytes // 2

    # -------------------------------------------------------------- events

    def add_cycle(self, event: Mapping[str, Any]) -> None:
        self.cycles_jsonl.append(json.dumps(event, separators=(",", ":")) + "\n")
        self.cycles_csv.append(csv_row(event, self.first_index))
        self.cycles += 1
        if in_take(event, self.first_index):
            self.tally.add_event(event)
        self.simulated = self.simulated or bool(event.get("simulated"))

    def add_event(self, event: Mapping[str, Any]) -> None:
        """Store an event; the edge's verdict is replaced by this take's own (same rule)."""
        if event.get("type") == "verdict":
            self.tally.rule = rule_of_verdict_event(event) or self.tally.rule
            event = self._verdict_event(event.get("t"))
        self.events.append(json.dumps(event, separators=(",", ":")) + "\n")

    @property
    def verdict(self) -> dict[str, Any] | None:
        """This take's verdict event, None before any of its cycles counted."""
        return self._verdict_event() if self.tally.findings else None

    def _verdict_event(self, t: float | None = None) -> dict[str, Any]:
        verdict = self.tally.verdict()
        return make_verdict(verdict=verdict.label, cycles=verdict.n_cycles,
                            good_cycles=verdict.n_good_cycles, counts=self.tally.counts,
                            rule=self.tally.rule.to_dict(), simulated=self.simulated, t=t)

    def sync(self) -> None:
        if self._audio_fd is not None and self._audio_dirty:
            os.fsync(self._audio_fd)
            self._audio_dirty = False
        for log in (self.cycles_csv, self.cycles_jsonl, self.events):
            log.sync()

    def close_files(self) -> None:
        self.sync()
        if self._audio_fd is not None:
            os.close(self._audio_fd)
            self._audio_fd = None
        for log in (self.cycles_csv, self.cycles_jsonl, self.events):
            log.close()

    def _summary_verdict(self) -> dict[str, Any] | None:
        verdict = self.verdict
        return None if verdict is None else {
            k: verdict[k] for k in ("verdict", "cycles", "good_cycles", "counts", "rule")}

    def summary(self) -> dict[str, Any]:
        return {
            "folder": self.folder.name, "site": self.site, "number": self.number,
            "state": self.state, "started_unix": self.started_unix,
            "started_monotonic": self.started_monotonic, "sample_rate": self.sample_rate,
            "first_index": self.first_index, "samples": self.samples,
            "duration_s": (self.samples / self.sample_rate) if self.sample_rate else 0.0,
            "gaps": self.gaps, "marks": self.marks, "cycles": self.cycles,
            "verdict": self._summary_verdict(),
        }
