"""``edge-run``: the bedside console — the headless edge plus dashboard, recorder, listener.

The composition root: :mod:`steth.edge.runner` opens the source, model, pipeline and the
headless sinks; this module only adds the bedside pieces and wires them together.

Findings support a clinician; they are not a diagnosis. ``--simulate`` is the only way to
get synthetic audio, and everything it produces is marked SIMULATED.
"""

from __future__ import annotations

import argparse
import dataclasses
import queue
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from steth.edge import events as ev
from steth.edge.assets import DEFAULT_MODEL_NAME
from steth.edge.decode import AudioChunk
from steth.edge.event_server import TcpEventServer
from steth.edge.event_writers import EventWriter, StreamWriter
from steth.edge.runner import (
    EXIT_MODEL,
    EXIT_PROTOCOL,
    EXIT_SOURCE,
    EXIT_USAGE,
    EdgeSession,
    StartupError,
    add_runner_arguments,
    open_session,
    run_cli,
    seconds_ok,
)
from steth.edge.runner import number_problem as runner_number_problem
from steth.host.dashboard import Dashboard, DashboardActions
from steth.host.listen import NoOutputDeviceError, add_listen_arguments, open_listener
from steth.host.recorder import Recorder
from steth.host.recorder_cli import add_recorder_arguments, open_recorder
from steth.host.session_files import RecorderError

__all__ = ["EXIT_MODEL", "EXIT_PROTOCOL", "EXIT_SOURCE", "EXIT_USAGE", "build_parser", "main"]


class QueueWriter:
    """Events into the dashboard's queue; ``None`` on close tells the dashboard to stop."""

    label = "dashboard"

    def __init__(self) -> None:
        self.queue: queue.Queue[Mapping[str, Any] | None] = queue.Queue()

    def write(self, event: Mapping[str, Any]) -> None:
        self.queue.put(event)

    def close(self) -> None:
        self.queue.put(None)


class RecorderWriter:
    """The recorder as an event sink (it also takes the raw audio, see :func:`run`)."""

    label = "recorder"

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def write(self, event: Mapping[str, Any]) -> None:
        self.recorder.on_event(event)

    def close(self) -> None:
        self.recorder.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-run",
        description="Live crackle/wheeze findings from a digital stethoscope (a decision aid "
                    "for clinicians, not a diagnosis).",
        epilog="examples:\n"
               "  edge-run --port /dev/ttyUSB0              live dashboard from the device\n"
               "  edge-run --simulate                       SIMULATED patient, no hardware\n"
               "  edge-run --port /dev/stethoscope --no-dashboard --record ~/recordings\n"
               "  edge-run --replay rec.flac --speed 10 --no-dashboard > events.jsonl\n"
               f"\nThe default model is the embedded {DEFAULT_MODEL_NAME}.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runner_arguments(parser)
    parser.add_argument("--no-dashboard", action="store_true",
                        help="print JSON-lines events to stdout instead of the dashboard")
    add_recorder_arguments(parser)
    add_listen_arguments(parser)
    return parser


def recorder_warning_sink(write: Callable[[dict[str, Any]], None]
                          ) -> Callable[[str, str | None], None]:
    """Turn the recorder's warnings into ``status`` events (with their code) on ``write``."""
    def warn(message: str, code: str | None) -> None:
        write(ev.make_status(level="warning", message=message, code=code))

    return warn


def attach_recorder(args: argparse.Namespace, session: EdgeSession) -> Recorder | None:
    """The recorder, when asked for, as one more sink that also receives the raw audio."""
    manifest = session.model.manifest
    settings = {"model": manifest.name, "model_version": manifest.version,
                "model_sha256": manifest.weights_sha256, "mains_hz": args.mains}
    recorder = open_recorder(
        args, settings=settings, emit=session.sinks.write,
        on_warning=recorder_warning_sink(session.sinks.write))
    if recorder is None:
        return None
    session.sinks.add(RecorderWriter(recorder))

    def on_audio(chunk: AudioChunk) -> None:
        recorder.on_audio(chunk.start_index, chunk.samples, chunk.sample_rate)

    session.on_audio = on_audio
    return recorder


def dashboard_actions(session: EdgeSession, recorder: Recorder | None) -> DashboardActions:
    """The keys: the recorder's, with "next site" also restarting the front end's running
    statistics (channel normaliser, signal guard), which belong to one chest position."""
    if recorder is None:
        def next_site() -> str | None:
            session.pipeline.new_site()
            return "new site (not recording)"

        return DashboardActions(next_site=next_site, quit=session.stop.set)
    actions = recorder.actions(quit=session.stop.set)
    recorder_next = actions.next_site

    def next_site_and_restart() -> str | None:
        session.pipeline.new_site()
        return recorder_next() if recorder_next is not None else None

    return dataclasses.replace(actions, next_site=next_site_and_restart)


def start_dashboard(writer: QueueWriter, session: EdgeSession,
                    recorder: Recorder | None) -> threading.Thread:
    actions = dashboard_actions(session, recorder)
    thread = threading.Thread(target=Dashboard().run, args=(writer.queue, session.stop, actions),
                              name="dashboard", daemon=True)
    thread.start()
    return thread


MAX_LISTEN_DELAY_S = 10.0  # the playback buffer is sized from it


def number_problem(args: argparse.Namespace) -> str | None:
    """The first numeric option out of range, as one line saying what it takes: the
    runner's options (:func:`steth.edge.runner.number_problem`), then listening."""
    problem = runner_number_problem(args, "edge-run")
    if problem is not None:
        return problem
    rules = [
        ("--volume", args.volume, 0.0 <= args.volume <= 1.0, "between 0 and 1"),
        ("--listen-delay", args.listen_delay, seconds_ok(args.listen_delay, MAX_LISTEN_DELAY_S),
         f"between 0 and {MAX_LISTEN_DELAY_S:g} seconds"),
    ]
    for option, value, ok, wanted in rules:
        if not ok:
            return f"edge-run: {option} must be {wanted}, not {value}"
    return None


def server_warnings(session: EdgeSession) -> list[str]:
    """The event server's warnings (plain TCP off the host), for the screen: the dashboard
    covers the terminal, so the line open_server printed on stderr is not seen there."""
    return [writer.warning for writer in session.sinks.writers
            if isinstance(writer, TcpEventServer) and writer.warning]


def run(args: argparse.Namespace) -> int:
    problem = number_problem(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    dashboard = None if args.no_dashboard else QueueWriter()
    stdout = StreamWriter(sys.stdout)
    writers: list[EventWriter] = [dashboard if dashboard is not None else stdout]
    try:
        session = open_session(args, writers)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    if dashboard is None:
        session.watch_stdout(stdout)
    for warning in server_warnings(session):
        session.sinks.write(ev.make_status(level="warning", message=warning, code="insecure",
                                           simulated=session.pipeline.simulated))
    listener = None
    dashboard_thread = None
    try:
        try:
            recorder = attach_recorder(args, session)
            listener = open_listener(args, session.pipeline.features.sample_rate)
        except (RecorderError, NoOutputDeviceError) as exc:
            print(f"edge-run: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if listener is not None:
            session.pipeline.on_filtered = listener.feed
        if dashboard is not None:
            dashboard_thread = start_dashboard(dashboard, session, recorder)
        return session.run()
    finally:
        session.close()  # closing the sinks also tells the dashboard to stop
        if listener is not None:
            listener.close()
        if dashboard_thread is not None:
            dashboard_thread.join()


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
