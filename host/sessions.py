"""`steth-session`: list, show, export, delete, recover, report and reclassify sessions.

Sessions live under ``--root`` (default ``$STETH_RECORDINGS`` or ``./recordings``); a
SESSION argument is a session id under the root or a path to a session folder. Nothing
leaves the machine unless the operator exports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from steth.host.recovery import recover_session
from steth.host.review import (
    Classifier,
    format_reruns,
    format_session,
    load_session,
    reclassify,
    report_take,
)
from steth.host.session_files import RAW_AUDIO, SESSION_FILE, RecorderError, take_folders

ROOT_ENV = "STETH_RECORDINGS"
EXPORTED_FILES = ("audio.flac", "audio.wav", "cycles.csv", "cycles.jsonl", "events.jsonl",
                  "take.json", "report.png", "cycles.reclassified.csv",
                  "cycles.reclassified.jsonl", "reclassified.json")


class SessionError(RuntimeError):
    """An expected failure of a session command (one-line message)."""


def default_root() -> Path:
    return Path(os.environ.get(ROOT_ENV, "recordings"))


def find_session(root: Path, name: str) -> Path:
    """Resolve a session id (under ``root``) or a folder path."""
    for candidate in (Path(name), root / name):
        if (candidate / SESSION_FILE).is_file():
            return candidate
    raise SessionError(f"no session {name!r} under {root} (see: steth-session list)")


def list_sessions(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / SESSION_FILE).is_file())


def format_list(root: Path) -> str:
    rows = []
    for folder in list_sessions(root):
        try:
            meta = load_session(folder)
        except RecorderError as exc:
            rows.append(f"{folder.name:<40} {exc}")
            continue
        takes = meta.get("takes", [])
        seconds = sum(t.get("duration_s", 0) for t in takes)
        verdicts = ",".join(sorted({t["verdict"]["verdict"] for t in takes if t.get("verdict")}))
        flag = " SIMULATED" if meta.get("simulated") else ""
        rows.append(f"{folder.name:<40} {len(takes):>2} takes {seconds:7.1f} s  "
                    f"{meta.get('state', '?'):<9} {verdicts or '--'}{flag}")
    return "\n".join(rows) if rows else f"no sessions under {root}"


def export_session(session_dir: Path, out: Path | None = None, force: bool = False) -> Path:
    """Zip a session's audio, findings and metadata (0600, written atomically)."""
    if any(session_dir.rglob(RAW_AUDIO)):
        raise SessionError(f"{session_dir.name} was interrupted; run first: "
                           f"steth-session recover {session_dir}")
    out = out or Path(f"{session_dir.name}.zip")
    if not out.parent.is_dir():
        raise SessionError(f"folder {out.parent} does not exist: create it or choose another "
                           "--output")
    if out.exists() and not force:
        raise SessionError(f"{out} exists; choose another --output or pass --force")
    tmp = out.with_name(f".{out.name}.partial")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(
                handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.write(session_dir / SESSION_FILE, f"{session_dir.name}/{SESSION_FILE}")
            for folder in take_folders(session_dir):
                for name in EXPORTED_FILES:
                    if (folder / name).is_file():
                        archive.write(folder / name, f"{session_dir.name}/{folder.name}/{name}")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out


def delete_session(session_dir: Path) -> None:
    """Remove a session folder and everything in it."""
    shutil.rmtree(session_dir)
    if session_dir.exists():
        raise SessionError(f"could not delete {session_dir} completely")


def load_pipeline_classifier(model_path: Path | None = None
                             ) -> tuple[Classifier, dict[str, object]]:
    """The streaming pipeline's classifier with the model loaded once, and the model's name.

    Uses ``steth.edge.pipeline.classify_recording`` (cycle events with start/end relative to
    sample 0); ``model_path`` defaults to the model ``edge-run`` embeds. The second value
    (name, version, SHA-256, detector) is stored with the re-classified cycles.
    """
    try:
        pipeline = importlib.import_module("steth.edge.pipeline")
        from steth.edge.infer import ModelError
        from steth.edge.loading import load_model
        from steth.edge.segment import DetectorWeightsError
    except ImportError as exc:
        raise SessionError(f"reclassify needs steth.edge.pipeline ({exc})") from None
    try:
        model = load_model(model_path)
    except (ModelError, DetectorWeightsError) as exc:
        raise SessionError(f"{exc} (choose another --model)") from None
    manifest = model.manifest
    identity: dict[str, object] = {
        "name": manifest.name, "version": manifest.version, "hash": manifest.weights_sha256,
        "path": str(model_path) if model_path else "embedded"}

    def classify(samples: np.ndarray, rate: int, clock: Callable[[int], float]
                 ) -> list[dict]:
        return pipeline.classify_recording(samples, rate, model, clock=clock)

    return classify, identity


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise SessionError("refusing to delete without --yes (stdin is not a terminal)")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="steth-session", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=None,
                        help=f"sessions folder (default ${ROOT_ENV} or ./recordings)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list sessions")
    for name, text in [("show", "print a session's summary"),
                       ("recover", "finish an interrupted session (after a crash or power loss)"),
                       ("report", "(re)generate report.png for each take (needs matplotlib)"),
                       ("reclassify", "re-run classification on the audio with the current "
                                      "model")]:
        command = sub.add_parser(name, help=text)
        command.add_argument("session")
        if name == "reclassify":
            command.add_argument("--model", type=Path, default=None,
                                 help="model file with its .manifest.json (default: the one "
                                      "edge-run embeds)")
    export = sub.add_parser("export", help="zip audio + findings of a session")
    export.add_argument("session")
    export.add_argument("-o", "--output", type=Path, default=None,
                        help="zip file (default ./<session>.zip)")
    export.add_argument("--force", action="store_true", help="overwrite an existing zip")
    delete = sub.add_parser("delete", help="delete a session and all its files")
    delete.add_argument("session")
    delete.add_argument("--yes", action="store_true", help="do not ask")
    return parser


def run(args: argparse.Namespace, classifier: Classifier | None = None) -> str:
    """Execute one command; returns what to print. Raises SessionError/RecorderError."""
    root = args.root or default_root()
    if args.command == "list":
        if not root.is_dir():
            # A mistyped root must not look like "no sessions yet".
            where = "--root" if args.root else f"--root (or ${ROOT_ENV})"
            raise SessionError(f"{root} is not a folder: pass {where} the folder that holds "
                               "the sessions")
        return format_list(root)
    session = find_session(root, args.session)
    if args.command == "show":
        return format_session(session)
    if args.command == "recover":
        try:
            meta = recover_session(session)
        except (SessionError, RecorderError):
            raise
        except RuntimeError as exc:  # soundfile's decoding errors name the file
            detail = " ".join(str(exc).split())
            raise SessionError(f"cannot recover {session.name}: {detail} (restore the damaged "
                               "file from a backup)") from None
        return (f"recovered {session.name}: {len(meta['takes'])} takes, "
                f"{sum(t.get('duration_s', 0) for t in meta['takes']):.1f} s of audio")
    if args.command == "report":
        meta = load_session(session)
        paths = [report_take(session, take, meta) for take in meta.get("takes", [])
                 if take.get("samples")]
        return "\n".join(str(p) for p in paths) or "no take with audio to report on"
    if args.command == "reclassify":
        chosen, identity = ((classifier, {"name": "custom"}) if classifier
                            else load_pipeline_classifier(args.model))
        return format_reruns(reclassify(session, chosen, identity))
    if args.command == "export":
        return f"exported {export_session(session, args.output, args.force)}"
    if args.command == "delete":
        if not args.yes and not _confirm(f"delete {session} and all its recordings?"):
            return "not deleted"
        delete_session(session)
        return f"deleted {session}"
    raise SessionError(f"unknown command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``steth-session``)."""
    from steth.host.report import ReportError

    args = build_parser().parse_args(argv)
    try:
        print(run(args))
    except (SessionError, RecorderError, ReportError) as exc:
        print(f"steth-session: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"steth-session: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
