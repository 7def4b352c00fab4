"""Review a saved session: summary, report PNGs, re-classification with the current model."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.event_schema import EventError, check, parse_line
from steth.edge.event_writers import dumps, make_private_dir
from steth.edge.findings import RecordTally
from steth.edge.labels import VerdictRule
from steth.host.session_files import (
    CSV_COLUMNS,
    CYCLES_JSONL,
    RAW_AUDIO,
    SESSION_FILE,
    LineLog,
    RecorderError,
    csv_row,
    read_take_audio,
    take_folders,
    write_json_atomic,
)
from steth.host.take import in_take

REPORT_FILE = "report.png"
RECLASSIFIED_CSV = "cycles.reclassified.csv"
RECLASSIFIED_JSONL = "cycles.reclassified.jsonl"
RECLASSIFIED_SUMMARY = "reclassified.json"

# (int16 samples, sample rate, the recording's clock of a sample index) -> cycle events
# with start/end relative to sample 0; edge.pipeline.classify_recording is one.
Classifier = Callable[[np.ndarray, int, Callable[[int], float]], Iterable[Mapping[str, Any]]]


def load_session(session_dir: str | Path) -> dict[str, Any]:
    path = Path(session_dir) / SESSION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecorderError(f"{session_dir} is not a session (no {SESSION_FILE})") from None
    except ValueError:
        raise RecorderError(f"{path} is damaged; run: steth-session recover {session_dir}"
                            ) from None


def load_cycles(take_dir: Path, name: str = CYCLES_JSONL) -> list[dict[str, Any]]:
    path = take_dir / name
    if not path.exists():
        return []
    cycles = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cycles.append(parse_line(line))
        except EventError as exc:
            raise RecorderError(f"{path} is damaged at line {number} ({exc}): run steth-session "
                                f"recover {take_dir.parent}, or restore it from a backup"
                                ) from None
    return cycles


def read_audio(take_dir: Path) -> tuple[np.ndarray, int]:
    """A take's audio; a file that cannot be decoded is a one-line error naming it."""
    try:
        return read_take_audio(take_dir)
    except RecorderError:
        raise
    except (RuntimeError, ValueError, KeyError) as exc:  # soundfile raises RuntimeErrors
        path = next((take_dir / name for name in ("audio.flac", "audio.wav", RAW_AUDIO)
                     if (take_dir / name).exists()), take_dir)
        raise RecorderError(f"{path} is damaged and cannot be read as audio "
                            f"({type(exc).__name__}): restore it from a backup") from None


def finding_counts(cycles: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Good cycles by finding and poor ones apart, by the edge's tally (no settling ones)."""
    return dict(RecordTally.of_events(cycles).counts)


def take_rule(take: Mapping[str, Any]) -> VerdictRule | None:
    """The record rule a take's verdict was made with (None for older sessions)."""
    rule = (take.get("verdict") or {}).get("rule")
    return VerdictRule(**rule) if isinstance(rule, Mapping) else None


def own_cycles(take: Mapping[str, Any], cycles: Iterable[Mapping[str, Any]]
               ) -> list[Mapping[str, Any]]:
    """The cycles that began inside the take (:func:`steth.host.take.in_take`)."""
    first = take.get("first_index")
    return [c for c in cycles if in_take(c, None if first is None else int(first))]


def site_verdicts(session_dir: Path, meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Each site's verdict over its takes' own cycles: ``(site, "CAS (3 cycles)")``.

    Sites in exam order, then any other site a take names; ``--`` for a site with no
    counted cycle. The rule is the one the takes recorded (the default for older sessions).
    """
    takes = list(meta.get("takes", []))
    sites = list(dict.fromkeys([*meta.get("sites", []), *(t.get("site") for t in takes)]))
    result = []
    for site in sites:
        here = [t for t in takes if t.get("site") == site]
        rule = next((r for r in map(take_rule, here) if r is not None), None)
        tally = RecordTally(rule)
        for take in here:
            for cycle in own_cycles(take, load_cycles(session_dir / take["folder"])):
                tally.add_event(cycle)
        verdict = tally.verdict()
        result.append((str(site), f"{verdict.label} ({verdict.n_cycles} cycles)"
                       if tally.findings else "--"))
    return result


def detector_line(detector: Mapping[str, Any] | None) -> str:
    """The breath-cycle detector a session ran with (older sessions did not record it)."""
    if not detector:
        return "detector not recorded"
    return (f"detector {detector.get('name', '?')} {detector.get('version', '?')} "
            f"{str(detector.get('hash', '?'))[:19]}")


def take_summary_lines(meta: Mapping[str, Any], take: Mapping[str, Any],
                       cycles: list[dict[str, Any]]) -> list[str]:
    """Plain-text summary of one take (used by `show` and printed into the report)."""
    counts = finding_counts(own_cycles(take, cycles))
    verdict = take.get("verdict")
    model = meta.get("model") or {}
    device = meta.get("device") or {}
    verdict_text = "--" if not verdict else f"{verdict['verdict']} ({verdict['cycles']} cycles)"
    lines = [
        f"site {take.get('site')}  take {take.get('folder')}  duration "
        f"{take.get('duration_s', 0):.1f} s  state {take.get('state')}",
        "findings: " + "  ".join(f"{k} {v}" for k, v in counts.items()),
        f"record verdict (findings, not a diagnosis): {verdict_text}",
        f"model {model.get('name', '?')} {model.get('version', '?')} "
        f"{str(model.get('hash', '?'))[:19]}  calibrated={model.get('calibrated')}",
        detector_line(meta.get("detector")),
        f"device {device.get('id', '?')} fw {device.get('firmware', '?')}  transport "
        f"{meta.get('transport')}  gaps {len(take.get('gaps', []))}  marks "
        f"{len(take.get('marks', []))}",
    ]
    if meta.get("unsynchronised_clock"):
        lines.append("wall clock was not synchronised: times of day may be off")
    return lines


def format_session(session_dir: Path) -> str:
    """Human summary of a session (the `show` command)."""
    meta = load_session(session_dir)
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(meta.get("created_unix", 0)))
    head = [f"session {meta.get('session_id')}"
            + ("  SIMULATED" if meta.get("simulated") else ""),
            f"patient {meta.get('patient')}  operator {meta.get('operator')}  started "
            f"{started}  state {meta.get('state')}"]
    head += ["", "per site (findings, not a diagnosis):"]
    head += [f"site {site}: {text}" for site, text in site_verdicts(session_dir, meta)]
    for take in meta.get("takes", []):
        folder = session_dir / take["folder"]
        head += ["", *take_summary_lines(meta, take, load_cycles(folder))]
    for warning in meta.get("warnings", []):
        head.append(f"warning: {warning['message']}")
    return "\n".join(head)


def report_take(session_dir: Path, take: Mapping[str, Any], meta: Mapping[str, Any]) -> Path:
    """Write ``report.png`` into a take folder."""
    from steth.host.report import make_report, report_title

    folder = session_dir / take["folder"]
    audio, rate = read_audio(folder)
    cycles = load_cycles(folder)
    sites = [f"{site}: {text}" for site, text in site_verdicts(session_dir, meta)]
    make_report(audio, rate, cycles, take_summary_lines(meta, take, cycles),
                folder / REPORT_FILE, first_index=int(take.get("first_index") or 0),
                title=report_title(meta, take), simulated=bool(meta.get("simulated")),
                site_lines=sites, calibrated=(meta.get("model") or {}).get("calibrated"))
    return folder / REPORT_FILE


@dataclass(frozen=True)
class Rerun:
    """How one take's re-classification compares with what the live run stored."""

    folder: str
    site: str
    live: int  # live cycles that began inside the take
    rerun: int
    same: int  # cycles with the same boundaries in both
    changed: int  # of those, how many got another finding
    tail: int  # re-run cycles closed at the end of the audio
    other_new: int  # other re-run cycles the live run did not store
    only_live: int  # live cycles the re-run did not find again
    verdict_live: str
    verdict_rerun: str

    def explanation(self) -> str | None:
        """Why the counts differ, in words; None when they do not."""
        if self.live == self.rerun and self.same == self.live:
            return None
        parts = []
        if self.tail:
            parts.append(f"{self.tail} closed at the end of the audio (a live stream never "
                         "closes the breath still open when it stops)")
        if self.other_new:
            parts.append(f"{self.other_new} not stored live (the live model was busy and "
                         "dropped it, or the live detector had started before this take)")
        if self.only_live:
            parts.append(f"{self.only_live} live cycles not found again (the re-run starts "
                         "the detector at the take's first sample)")
        return f"{self.folder}: counts differ: " + "; ".join(parts)


def take_clock(take: Mapping[str, Any], live: Sequence[Mapping[str, Any]], rate: int
               ) -> Callable[[int], float]:
    """The recording's clock: Unix seconds of a sample index counted from the take's start.

    Fitted to the ``wall_start`` of the cycles stored live (a replay at ``--speed 10`` ran
    ten times faster than its audio); from the take's start time at real time when fewer
    than two live cycles are there to fit.
    """
    first = int(take.get("first_index") or 0)
    points = sorted({(int(c["start"]) - first, float(c["wall_start"])) for c in live})
    if len({index for index, _ in points}) >= 2:
        index, wall = np.array(points, dtype=np.float64).T
        slope, offset = (float(v) for v in np.polyfit(index, wall, 1))
        return lambda index: float(offset + slope * index)
    if points:
        index0, wall0 = points[0]
        return lambda index: wall0 + (index - index0) / rate
    started = float(take.get("started_unix") or 0.0)
    return lambda index: started + index / rate


def compare_runs(take: Mapping[str, Any], folder: str, live: Sequence[Mapping[str, Any]],
                 rerun: Sequence[Mapping[str, Any]], audio_end: int, rate: int) -> Rerun:
    """Pair live and re-run cycles by their boundaries and name what is left over."""
    spans = {(int(c["start"]), int(c["end"])): c for c in live}
    same = [(c, spans[(int(c["start"]), int(c["end"]))]) for c in rerun
            if (int(c["start"]), int(c["end"])) in spans]
    new = [c for c in rerun if (int(c["start"]), int(c["end"])) not in spans]
    # The detector closes the open cycle at the last whole frame, a few ms before the end.
    tail = [c for c in new if int(c["end"]) >= audio_end - rate // 10]
    rule = take_rule(take)
    return Rerun(
        folder=folder, site=str(take.get("site", "?")), live=len(live), rerun=len(rerun),
        same=len(same), changed=sum(1 for a, b in same if a["finding"] != b["finding"]),
        tail=len(tail), other_new=len(new) - len(tail), only_live=len(live) - len(same),
        verdict_live=_verdict_text(live, rule), verdict_rerun=_verdict_text(rerun, rule))


def _verdict_text(cycles: Iterable[Mapping[str, Any]], rule: VerdictRule | None) -> str:
    tally = RecordTally.of_events(cycles, rule)
    return tally.verdict().label if tally.findings else "--"


def format_reruns(reruns: Sequence[Rerun]) -> str:
    """The table ``steth-session reclassify`` prints, with a line for each count difference."""
    header = ("take", "site", "live", "re-run", "same", "changed", "verdict live -> re-run")
    rows = [(r.folder, r.site, str(r.live), str(r.rerun), str(r.same), str(r.changed),
             f"{r.verdict_live} -> {r.verdict_rerun}") for r in reruns]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join([*(cell.ljust(w) if i < 2 else cell.rjust(w)
                          for i, (cell, w) in enumerate(zip(row[:-1], widths, strict=True))),
                        row[-1]]) for row in [header, *rows]]
    lines += [text for text in (r.explanation() for r in reruns) if text]
    lines.append("live = cycles stored while recording; same = same boundaries; changed = of "
                 "those, another finding. Written to cycles.reclassified.csv/.jsonl; the "
                 "originals are untouched.")
    return "\n".join(lines)


def reclassify(session_dir: str | Path, classify: Classifier,
               model: Mapping[str, Any] | None = None) -> list[Rerun]:
    """Re-run classification on every take's audio with ``classify``.

    Writes ``cycles.reclassified.csv`` and ``.jsonl`` next to the originals (which stay
    untouched), and ``reclassified.json`` (the model used, when, and the comparison with
    the live run). Cycle indices from the classifier are relative to the take's first
    sample and are shifted to device indices; ``wall_start`` follows the recording's clock
    (:func:`take_clock`), and ``latency_ms`` is null because nothing was live.
    """
    session_dir = Path(session_dir)
    meta = load_session(session_dir)
    takes = {t["folder"]: t for t in meta.get("takes", [])}
    results = []
    for folder in take_folders(session_dir):
        take = takes.get(folder.name, {"folder": folder.name})
        first = int(take.get("first_index") or 0)
        audio, rate = read_audio(folder)
        live = own_cycles(take, load_cycles(folder))
        cycles = []
        for cycle in classify(audio, rate, take_clock(take, live, rate)):
            shifted = dict(cycle, start=cycle["start"] + first, end=cycle["end"] + first)
            cycles.append(check(shifted))
        _write_cycles(folder, cycles, first)
        rerun = compare_runs(take, folder.name, live, cycles, first + audio.size, rate)
        write_json_atomic(folder / RECLASSIFIED_SUMMARY, {
            "reclassified_unix": time.time(), "model": dict(model or {}),
            "comparison": asdict(rerun), "explanation": rerun.explanation()})
        results.append(rerun)
    return results


def _write_cycles(folder: Path, cycles: list[dict[str, Any]], first_index: int) -> None:
    make_private_dir(folder)
    for name in (RECLASSIFIED_CSV, RECLASSIFIED_JSONL):
        (folder / name).unlink(missing_ok=True)
    csv_log = LineLog(folder / RECLASSIFIED_CSV, header=",".join(CSV_COLUMNS) + "\n")
    jsonl_log = LineLog(folder / RECLASSIFIED_JSONL)
    for cycle in cycles:
        csv_log.append(csv_row(cycle, first_index))
        jsonl_log.append(dumps(cycle) + "\n")
    csv_log.close()
    jsonl_log.close()
