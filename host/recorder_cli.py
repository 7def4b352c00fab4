"""CLI glue: ``--record DIR`` and the exam options, and the :class:`Recorder` they ask for.

Shared by ``edge-run`` (:mod:`steth.host.bedside`) and ``steth-console``
(:mod:`steth.host.remote`), so both record an exam with the same options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from steth.host.recorder import DEFAULT_PSEUDONYM_PATTERN, Recorder, check_pseudonym
from steth.host.session_files import RecorderError


def add_recorder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--record DIR`` and the exam details, for edge-run and steth-console."""
    group = parser.add_argument_group("recording (exam session)")
    group.add_argument("--record", type=Path, metavar="DIR", default=None,
                       help="record raw audio and findings into a new session under DIR")
    group.add_argument("--patient", default="anonymous",
                       help="patient pseudonym, never a real name (it names the session "
                            "folder and the export zip)")
    group.add_argument("--pseudonym-pattern", default=DEFAULT_PSEUDONYM_PATTERN,
                       metavar="REGEX",
                       help="regular expression --patient must match in full (default "
                            f"{DEFAULT_PSEUDONYM_PATTERN}: letters, digits, - and _, no "
                            "spaces)")
    group.add_argument("--operator", default="", help="who examines")
    group.add_argument("--sites", default="sprsound",
                       help="sprsound (p1-p4), icbhi (Tc,Al,Ar,Pl,Pr,Ll,Lr) or a comma list")
    group.add_argument("--record-paused", action="store_true",
                       help="open the session but start recording only on the r key")
    group.add_argument("--audio-format", choices=("flac", "wav"), default="flac",
                       help="format of the finished audio (default flac)")
    group.add_argument("--report", action="store_true",
                       help="draw report.png for every take when it closes (needs matplotlib)")


def open_recorder(args: argparse.Namespace, settings: Mapping[str, Any] | None = None,
                  emit: Callable[[dict[str, Any]], None] | None = None,
                  on_warning: Callable[[str, str | None], None] | None = None) -> Recorder | None:
    """The recorder chosen by :func:`add_recorder_arguments` (None without ``--record``)."""
    if getattr(args, "record", None) is None:
        return None
    try:
        return Recorder(args.record, patient=args.patient, operator=args.operator,
                        sites=args.sites, settings=settings, recording=not args.record_paused,
                        audio_format=args.audio_format, emit=emit, on_warning=on_warning,
                        make_reports=args.report, pseudonym_pattern=args.pseudonym_pattern)
    except OSError as exc:
        # A file in the way, a read-only disk or no permission: the user picks another folder.
        raise RecorderError(f"cannot create a session under {args.record} "
                            f"({exc.strerror or exc}): pass --record a folder you can write "
                            "to") from None


def check_recorder_arguments(args: argparse.Namespace) -> None:
    """Refuse a patient name that is not a pseudonym before anything connects or opens.

    Raises
    ------
    RecorderError
        With a one-line message.
    """
    if getattr(args, "record", None) is not None:
        check_pseudonym(args.patient, args.pseudonym_pattern)
