"""Crash-safe recorder: raw device audio, cycles and session metadata for an exam.

Layout of one session (folders 0700, files 0600)::

    <root>/<session_id>/session.json           exam, device, model, settings, clock, takes
    <root>/<session_id>/identity.json          who and when, written once (for recovery)
    <root>/<session_id>/01-p1/audio.flac       raw (unfiltered) int16 at the device rate
    <root>/<session_id>/01-p1/cycles.csv       one row per breath cycle
    <root>/<session_id>/01-p1/cycles.jsonl     the cycle events as received
    <root>/<session_id>/01-p1/events.jsonl     hello, verdicts, gaps, stale, marks, status
    <root>/<session_id>/01-p1/take.json        summary of the take (written on close)

Each take (one continuous recording at one auscultation site, :mod:`steth.host.take`)
streams its audio to ``audio.s16le.part`` with unbuffered writes and fsyncs it at least every
``fsync_s`` seconds; ``audio.part.json`` says how to read it. ``close()`` converts it to FLAC
(or WAV). After a crash, :func:`steth.host.recovery.recover_session` (CLI: ``steth-session
recover``) finishes the job. Lost samples are zero-filled (up to a minute) so audio offsets
stay aligned with the device's sample index; every gap is listed in ``session.json``. The
file names and crash-safe writes are in :mod:`steth.host.session_files`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.event_writers import make_private_dir
from steth.edge.events import make_mark
from steth.host.dashboard import DashboardActions, RecordingStatus
from steth.host.session_files import (
    SESSION_FILE,
    SESSION_SCHEMA,
    TAKE_FILE,
    RecorderError,
    finalize_take,
    write_identity,
    write_json_atomic,
)
from steth.host.take import Take, Writer

MARK_SOURCE = "operator-recorder"  # source of the mark events the recorder emits
SPRSOUND_SITES: tuple[str, ...] = ("p1", "p2", "p3", "p4")
ICBHI_SITES: tuple[str, ...] = ("Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr")
SITE_PRESETS: dict[str, tuple[str, ...]] = {"sprsound": SPRSOUND_SITES, "icbhi": ICBHI_SITES}
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# Codes of the warnings the recorder raises (docs/events.md, status events).
DISK_FULL, RECORDING_ERROR, REPORT_ERROR = "disk_full", "recording_error", "report_error"


def write_error_code(exc: OSError) -> str:
    """``disk_full`` for a full disk or quota, ``recording_error`` for any other failure."""
    return DISK_FULL if exc.errno in DISK_FULL_ERRNOS else RECORDING_ERROR
# A pseudonym becomes part of folder and zip names, so it must never be a name: one token of
# letters, digits, - and _ (a space is the surest sign of "First Last").
DEFAULT_PSEUDONYM_PATTERN = r"[A-Za-z0-9_-]{1,40}"


# ----------------------------------------------------------------------------- sites

def safe_name(text: str, fallback: str) -> str:
    """A folder-safe token (letters, digits, - and _)."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")[:40]
    return cleaned or fallback


def check_pseudonym(patient: str, pattern: str = DEFAULT_PSEUDONYM_PATTERN) -> str:
    """Return ``patient`` if it is a pseudonym that ``pattern`` matches in full.

    Whatever the pattern, the pseudonym must also be usable as it is in a folder name, so
    the folder says exactly what session.json says.

    Raises
    ------
    RecorderError
        With a one-line message (also for a pattern that is not a regular expression).
    """
    try:
        matched = re.fullmatch(pattern, patient) is not None
    except re.error as exc:
        raise RecorderError(f"--pseudonym-pattern {pattern!r} is not a regular expression: "
                            f"{exc}") from None
    if not matched:
        raise RecorderError(f"patient {patient!r} is not a pseudonym (it must match "
                            f"{pattern}; never record a real name)")
    if safe_name(patient, "") != patient:
        raise RecorderError(f"patient {patient!r} cannot be part of a folder name (at most "
                            "40 letters, digits, - and _)")
    return patient


def resolve_sites(sites: str | Sequence[str]) -> tuple[str, ...]:
    """``"sprsound"``/``"icbhi"`` presets, a comma list, or a sequence of site names."""
    if isinstance(sites, str):
        if sites.lower() in SITE_PRESETS:
            return SITE_PRESETS[sites.lower()]
        sites = [s.strip() for s in sites.split(",") if s.strip()]
    resolved = tuple(safe_name(s, "site") for s in sites)
    if not resolved:
        raise RecorderError("no auscultation sites given (e.g. --sites sprsound or p1,p2)")
    return resolved


# ----------------------------------------------------------------------------- the session

class Recorder:
    """An exam session: patient pseudonym, operator, sites, and one take per recording.

    The edge CLI calls :meth:`on_audio` with every decoded chunk (raw, before filtering) and
    :meth:`on_event` with every event; the dashboard gets :meth:`actions`.

    Parameters
    ----------
    root : path
        Folder holding all sessions (created 0700).
    patient : str
        Patient pseudonym (never a real name; it becomes part of the folder name).
    pseudonym_pattern : str
        Regular expression ``patient`` must match in full (see :func:`check_pseudonym`).
    operator : str
        Who records.
    sites : str or sequence of str
        ``"sprsound"`` (p1–p4), ``"icbhi"`` (Tc, Al, Ar, Pl, Pr, Ll, Lr) or explicit names.
    settings : mapping, optional
        Recorded verbatim in session.json (filter band, gain, ...).
    recording : bool
        Start recording at once (headless ``--record``) or wait for the r key.
    audio_format : "flac" or "wav"
        The format a take is converted to on close.
    fsync_s : float
        Longest time written data may stay un-fsynced.
    on_warning : callable, optional
        Called with a one-line message and its code (``disk_full``, ``recording_error``,
        ``report_error``) when recording stops by itself or a take cannot be finished; the
        CLI forwards it as a ``status`` event.
    emit : callable, optional
        Receives a ``mark`` event when the operator presses m, so the mark reaches the
        event stream; the recorder does not store that event a second time.
    make_reports : bool
        Also draw each take's report.png when it closes (needs matplotlib, which the Pi
        runtime does not have; checked at start).
    write : callable, optional
        ``os.write`` replacement (tests inject a full disk).
    """

    def __init__(self, root: str | Path, patient: str = "anonymous", operator: str = "",
                 sites: str | Sequence[str] = "sprsound",
                 settings: Mapping[str, Any] | None = None, recording: bool = True,
                 audio_format: str = "flac", fsync_s: float = 0.5,
                 on_warning: Callable[[str, str | None], None] | None = None,
                 emit: Callable[[dict[str, Any]], None] | None = None,
                 make_reports: bool = False,
                 write: Writer = os.write, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 pseudonym_pattern: str = DEFAULT_PSEUDONYM_PATTERN) -> None:
        check_pseudonym(patient, pseudonym_pattern)
        if audio_format not in ("flac", "wav"):
            raise RecorderError(f"audio format must be flac or wav, not {audio_format!r}")
        if make_reports:
            from steth.host.report import ReportError, require_matplotlib

            try:
                require_matplotlib()
            except ReportError as exc:
                raise RecorderError(str(exc)) from None
        self.make_reports = make_reports
        self.sites = resolve_sites(sites)
        self.site_index = 0
        self.audio_format = audio_format
        self._write = write
        self._clock, self._wall = clock, wall_clock
        self._on_warning = on_warning
        self._emit = emit
        self.warning: str | None = None
        self._lock = threading.RLock()
        self._take: Take | None = None
        self._takes: list[dict[str, Any]] = []
        self._finishers: list[threading.Thread] = []
        self._hello: dict[str, Any] | None = None
        self._last_index: int | None = None
        self.session_dir = self._new_session_dir(Path(root), patient)
        self.meta: dict[str, Any] = {
            "schema": SESSION_SCHEMA, "session_id": self.session_dir.name,
            "patient": patient, "operator": operator, "sites": list(self.sites),
            "created_unix": wall_clock(), "created_monotonic": clock(),
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall_clock())),
            "clock_synchronised": None, "unsynchronised_clock": True,
            "device": None, "transport": None, "simulated": None, "model": None,
            "software": None, "settings": dict(settings or {}), "audio_format": audio_format,
            "state": "open", "takes": self._takes, "warnings": [],
        }
        write_identity(self.session_dir, self.meta)
        self._save()
        self._stop_flusher = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(fsync_s,),
                                         name="recorder-fsync", daemon=True)
        self._flusher.start()
        if recording:
            self.start()

    @staticmethod
    def _new_session_dir(root: Path, patient: str) -> Path:
        make_private_dir(root)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        base = f"{stamp}-{safe_name(patient, 'anonymous')}"
        for n in range(1, 1000):
            candidate = root / (base if n == 1 else f"{base}-{n}")
            try:
                candidate.mkdir(mode=0o700)
            except FileExistsError:
                continue
            os.chmod(candidate, 0o700)
            return candidate
        raise RecorderError(f"cannot create a session folder in {root}")

    # -------------------------------------------------------------- controls

    @property
    def site(self) -> str:
        return self.sites[self.site_index]

    @property
    def recording(self) -> bool:
        return self._take is not None

    def start(self) -> bool:
        """Start a new take at the current site (no-op when already recording)."""
        with self._lock:
            if self._take is None:
                number = len(self._takes) + 1
                take = Take(folder=self.session_dir / f"{number:02d}-{self.site}",
                            site=self.site, number=number, started_unix=self._wall(),
                            started_monotonic=self._clock(), write=self._write)
                take.open()
                if self._hello is not None:
                    take.add_event(self._hello)
                self._take = take
                self._takes.append(take.summary())
                self.warning = None
                self._save()
            return True

    def stop(self, state: str = "closed") -> bool:
        """Close the current take; its audio is converted on a background thread (so
        neither the I/O thread nor the screen waits for it). Returns False (not recording)."""
        with self._lock:
            take, self._take = self._take, None
            if take is None:
                return False
            take.state = state
            try:
                take.close_files()
            except OSError as exc:
                self._warn(f"recording stopped: {exc.strerror}; data kept, run "
                           f"steth-session recover {self.session_dir}", write_error_code(exc))
            self._takes[take.number - 1] = take.summary()
            self._save_quietly()
        if state == "closed":
            worker = threading.Thread(target=self._finish, args=(take,), daemon=False,
                                      name=f"recorder-finish-{take.folder.name}")
            worker.start()
            self._finishers.append(worker)
        return False

    def _finish(self, take: Take) -> None:
        """Convert a closed take's audio and write take.json."""
        problem, code = None, None
        try:
            finalize_take(take.folder, self.audio_format)
            write_json_atomic(take.folder / TAKE_FILE, take.summary())
        except Exception as exc:  # any failure leaves the part files for `recover`
            take.state = "needs-recover"
            code = write_error_code(exc) if isinstance(exc, OSError) else RECORDING_ERROR
            problem = (f"could not finish {take.folder.name}: "
                       f"{getattr(exc, 'strerror', None) or exc}; run steth-session recover "
                       f"{self.session_dir}")
        if problem is None and self.make_reports and take.samples:
            problem, code = self._report(take), REPORT_ERROR
        with self._lock:
            if problem:
                self._warn(problem, code)
            self._takes[take.number - 1] = take.summary()
            self._save_quietly()

    def _report(self, take: Take) -> str | None:
        """Draw report.png for a finished take; returns a warning or None."""
        from steth.host.review import report_take

        try:
            report_take(self.session_dir, take.summary(), self.meta)
        except Exception as exc:  # a report is a convenience: never lose the take over it
            return f"no report for {take.folder.name}: {exc}"
        return None

    def toggle(self) -> bool:
        """Start or stop recording; returns True when recording afterwards."""
        with self._lock:
            return self.stop() if self.recording else self.start()

    def next_site(self) -> str:
        """Move to the next site; a running recording continues there as a new take."""
        with self._lock:
            was_recording = self.recording
            if was_recording:
                self.stop()
            self.site_index = (self.site_index + 1) % len(self.sites)
            if was_recording:
                self.start()
            return self.site

    def mark(self, label: str = "") -> str:
        """Bookmark the latest sample; returns a short description."""
        with self._lock:
            mark: dict[str, Any] = {"index": self._last_index, "label": label,
                                    "site": self.site, "unix": self._wall()}
            if self._take is not None:
                self._take.marks.append(mark)
                self._take.add_event({"recorder_mark": mark})
                self._takes[self._take.number - 1] = self._take.summary()
                self._save_quietly()
            count = sum(len(t["marks"]) for t in self._takes)
        if self._emit is not None:
            simulated = bool(self._hello and self._hello.get("simulated"))
            self._emit(make_mark(label=label, index=mark["index"], source=MARK_SOURCE,
                                 site=mark["site"], simulated=simulated))
        return f"#{count} at sample {mark['index']}"

    def status(self) -> RecordingStatus:
        take = self._take
        return RecordingStatus(recording=take is not None, site=self.site,
                               path=str(take.folder) if take else str(self.session_dir),
                               warning=self.warning)

    def actions(self, quit: Callable[[], None] | None = None) -> DashboardActions:
        """Key callbacks for :class:`host.dashboard.Dashboard`."""
        return DashboardActions(toggle_recording=self.toggle, mark=self.mark,
                                next_site=self.next_site, quit=quit,
                                recording_status=self.status)

    def close(self) -> None:
        """Stop recording, wait for every conversion, write the final session.json."""
        self.stop()
        for worker in self._finishers:
            worker.join()
        with self._lock:
            self._stop_flusher.set()
            self.meta["state"] = "closed"
            self._save_quietly()

    # -------------------------------------------------------------- data in

    def on_audio(self, start_index: int, samples: np.ndarray, sample_rate: int) -> None:
        """Record raw int16 samples that start at device sample ``start_index``."""
        with self._lock:
            self._last_index = int(start_index) + len(samples)
            take = self._take
            if take is None:
                return
            try:
                if take.append_audio(int(start_index), np.asarray(samples), sample_rate) \
                        == "new-take":
                    self.stop()
                    self.start()
                    assert self._take is not None
                    self._take.append_audio(int(start_index), np.asarray(samples), sample_rate)
            except OSError as exc:
                self._stop_on_error(exc)

    def on_event(self, event: Mapping[str, Any]) -> None:
        """Record an event (cycles to CSV/JSONL; hello, verdict, gap, mark... to events)."""
        kind = event.get("type")
        if kind in ("level", "link", "audio"):
            return
        if kind == "mark" and event.get("source") == MARK_SOURCE:
            return  # our own mark coming back through the stream: stored already
        with self._lock:
            take = self._take
            try:
                if kind == "hello":
                    self._on_hello(event)
                if take is None:
                    return
                if kind == "cycle":
                    take.add_cycle(event)
                elif kind != "hello":
                    take.add_event(event)
                if kind == "gap":
                    take.gaps.append({"edge_gap": {k: event[k] for k in (
                        "expected_index", "received_index", "lost_samples", "reason")}})
                if kind in ("gap", "mark"):
                    self._save()
            except OSError as exc:
                self._stop_on_error(exc)

    def _on_hello(self, event: Mapping[str, Any]) -> None:
        self._hello = dict(event)
        synced = event.get("clock_synchronised")
        self.meta.update({
            "device": event["device"], "transport": event["transport"],
            "simulated": bool(event.get("simulated")), "model": event["model"],
            "detector": event.get("detector"),
            "software": event.get("software"), "clock_synchronised": synced,
            "unsynchronised_clock": synced is not True,
        })
        self.meta["settings"].update(event.get("settings") or {})
        if self._take is not None:
            self._take.add_event(event)
        self._save_quietly()

    # -------------------------------------------------------------- durability

    def _flush_loop(self, interval: float) -> None:
        while not self._stop_flusher.wait(interval):
            with self._lock:
                if self._take is None:
                    continue
                try:
                    self._take.sync()
                except OSError as exc:
                    self._stop_on_error(exc)

    def _stop_on_error(self, exc: OSError) -> None:
        """A write failed: stop recording, keep what is on disk, tell the operator."""
        reason = "disk full" if exc.errno in DISK_FULL_ERRNOS else (exc.strerror or str(exc))
        take = self._take
        self._take = None
        if take is not None:
            take.state = f"stopped: {reason}"
            with contextlib.suppress(OSError):
                take.close_files()
            self._takes[take.number - 1] = take.summary()
        self._warn(f"{reason}: recording stopped, data kept; free space, then "
                   f"steth-session recover {self.session_dir}", write_error_code(exc))
        self._save_quietly()

    def _warn(self, message: str, code: str | None) -> None:
        self.warning = message
        self.meta["warnings"].append({"unix": self._wall(), "message": message, "code": code})
        if self._on_warning is not None:
            self._on_warning(message, code)

    def _save(self) -> None:
        if self._take is not None:
            self._takes[self._take.number - 1] = self._take.summary()
        write_json_atomic(self.session_dir / SESSION_FILE, self.meta)

    def _save_quietly(self) -> None:
        """Save session.json if the disk lets us; the previous version stays otherwise."""
        with contextlib.suppress(OSError):
            self._save()
