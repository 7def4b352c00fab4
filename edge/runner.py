"""The headless edge: choose the source, run the one I/O loop, send events to the sinks.

transport -> decode -> pipeline (filter, segment, infer, findings) -> events -> sinks

``python -m steth.edge.runner --simulate --duration 10`` prints JSON-lines events; the
bedside console (``edge-run``, :mod:`steth.host.bedside`) adds the dashboard, the recorder and
the listener on top of the same :class:`EdgeSession`.

Findings support a clinician; they are not a diagnosis. ``--simulate`` is the only way to
get synthetic audio, and everything it produces is marked SIMULATED.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from steth.edge import events as ev
from steth.edge.assets import DEFAULT_MODEL_NAME
from steth.edge.decode import AudioChunk, DecodedItem, ProtocolVersionError, StreamDecoder
from steth.edge.event_server import ServerError, TokenError, add_server_arguments, open_server
from steth.edge.event_writers import EventWriter, FileWriter, MultiWriter, StreamWriter
from steth.edge.infer import CycleModel, ModelError
from steth.edge.loading import load_model
from steth.edge.pipeline import FAST_BLOCK_S, Pipeline
from steth.edge.segment import DetectorWeightsError
from steth.edge.transport import SourceError, Transport, add_source_arguments, open_transport
from steth.edge.transports.base import print_to_stderr

EXIT_USAGE, EXIT_MODEL, EXIT_PROTOCOL, EXIT_SOURCE, EXIT_OUTPUT = 2, 3, 4, 5, 6
READ_TIMEOUT_S = 0.05
PROTOCOL_VERSION_CODE = "protocol_version"  # status code: the device speaks another major
SOURCE_ERROR_CODE = "source_error"  # status code: the source is failing and being retried
SOURCE_CODE = "source"  # status code: other source news (reconnected, connected)


class StartupError(Exception):
    """Start-up failed in an expected way; ``code`` is the exit code, the message one line."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class SourceMessages:
    """The transport's one-line messages: on stderr, and as ``status`` events once the
    sinks exist, because a full-screen console covers stderr.

    A message that ends in a retry ("... retrying", "... reconnecting") is a warning with
    code :data:`SOURCE_ERROR_CODE`; any other (e.g. "reconnected ...") is info with
    :data:`SOURCE_CODE`. Messages from before the sinks are attached are kept and sent then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._emit: Callable[[dict], None] | None = None
        self._simulated = False
        self._early: list[str] = []

    def __call__(self, message: str) -> None:
        print_to_stderr(message)
        with self._lock:
            if self._emit is None:
                self._early.append(message)
                return
            emit = self._emit
        emit(self._event(message))

    def attach(self, emit: Callable[[dict], None], simulated: bool) -> None:
        with self._lock:
            self._emit, self._simulated = emit, simulated
            early, self._early = self._early, []
        for message in early:
            emit(self._event(message))

    def _event(self, message: str) -> dict:
        failing = message.rstrip().endswith(("retrying", "reconnecting"))
        return ev.make_status(level="warning" if failing else "info", message=message,
                              code=SOURCE_ERROR_CODE if failing else SOURCE_CODE,
                              simulated=self._simulated)


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Source, model, signal and headless output options shared by both front doors."""
    add_source_arguments(parser)
    model = parser.add_argument_group("model")
    model.add_argument("--model", type=Path, default=None,
                       help="model file with its .manifest.json (default: the embedded "
                            f"{DEFAULT_MODEL_NAME})")
    model.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    dsp = parser.add_argument_group("signal")
    dsp.add_argument("--mains", type=float, choices=(0.0, 50.0, 60.0), default=0.0,
                     help="notch out 50 or 60 Hz mains hum (default off)")
    out = parser.add_argument_group("output")
    out.add_argument("--events-file", type=Path, help="also append events to this file (0600)")
    out.add_argument("--duration", type=float, default=0.0,
                     help="stop after this many seconds (default: run until stopped)")
    out.add_argument("--sim-duration", type=float, default=0.0, metavar="SECONDS",
                     help="with --simulate: the simulated device goes silent after this many "
                          "seconds while the edge keeps running (shows NO SIGNAL)")
    add_server_arguments(parser)


def seconds_ok(value: float, upper: float = math.inf) -> bool:
    """A finite number of seconds from 0 to ``upper``."""
    return math.isfinite(value) and 0.0 <= value <= upper


def number_problem(args: argparse.Namespace, prog: str) -> str | None:
    """The first numeric runner option out of range, as one line saying what it takes.

    Out of range these would otherwise run forever (a negative or NaN duration), quietly
    change meaning (0 threads is every core, a negative --sim-duration is silent at once),
    hang (tens of thousands of threads) or fail deep inside with a traceback (a port past
    65535).
    """
    serve = getattr(args, "serve", None)
    cores = os.cpu_count() or 1
    rules = [
        ("--duration", args.duration, seconds_ok(args.duration),
         "0 (run until stopped) or a positive number of seconds"),
        ("--sim-duration", args.sim_duration, seconds_ok(args.sim_duration),
         "0 (never silent) or a positive number of seconds"),
        ("--threads", args.threads, 1 <= args.threads <= cores,
         f"1 to {cores} inference threads (the cores of this machine)"),
        ("--baud", args.baud, args.baud > 0, "a positive line rate, e.g. 921600"),
        ("--serve", serve, serve is None or 1 <= serve <= 65535, "a TCP port from 1 to 65535"),
    ]
    for option, value, ok, wanted in rules:
        if not ok:
            return f"{prog}: {option} must be {wanted}, not {value}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m steth.edge.runner",
        description="Headless edge: live crackle/wheeze findings as JSON-lines events on "
                    "stdout (a decision aid for clinicians, not a diagnosis).",
        epilog="examples:\n"
               "  python -m steth.edge.runner --simulate --duration 30    SIMULATED patient\n"
               "  python -m steth.edge.runner --port /dev/ttyUSB0 --events-file ev.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_runner_arguments(parser)
    return parser


def io_loop(transport: Transport, decoder: StreamDecoder,
            on_item: Callable[[DecodedItem, float], None], *, stop: threading.Event | None = None,
            duration: float = 0.0, on_tick: Callable[[float], None] | None = None,
            silent_after: float = 0.0, clock: Callable[[], float] = time.monotonic) -> None:
    """Read, decode, hand each item on, tick; until stopped, the deadline, or the source ends.

    While no DeviceInfo has arrived it asks the device for one (GET_INFO, at most once a
    second), because audio is not trusted before it. ``silent_after`` (simulation only)
    stops reading after that many seconds, which is what a device that stopped sending
    looks like, while ticks go on so the silence is reported.

    Raises
    ------
    ProtocolVersionError
        The device announced another protocol major version (fatal; a stray frame of
        another major mid-stream is only counted and skipped by the decoder).
    """
    start = clock()
    deadline = start + duration if duration > 0 else float("inf")
    while (stop is None or not stop.is_set()) and clock() < deadline and not transport.ended:
        now = clock()
        if silent_after and now - start >= silent_after:
            time.sleep(READ_TIMEOUT_S)
            if on_tick is not None:
                on_tick(clock())
            continue
        request = decoder.device_info_request(now)
        if request is not None:
            transport.write(request)
        data = transport.read(min(READ_TIMEOUT_S, max(0.0, deadline - clock())))
        now = clock()
        if data:
            for item in decoder.feed(data, now):
                on_item(item, now)
        if on_tick is not None:
            on_tick(now)


def run_decoder_only(transport: Transport, decoder: StreamDecoder, seconds: float, *,
                     clock: Callable[[], float] = time.monotonic) -> list[DecodedItem]:
    """:func:`io_loop` for ``seconds`` without a pipeline; the decoded items in stream order."""
    items: list[DecodedItem] = []
    io_loop(transport, decoder, lambda item, _now: items.append(item), duration=seconds,
            clock=clock)
    return items


@dataclass
class EdgeSession:
    """An opened source, model, pipeline and sinks; :meth:`run` streams until done."""

    args: argparse.Namespace
    model: CycleModel
    transport: Transport
    sinks: MultiWriter
    pipeline: Pipeline
    stop: threading.Event = field(default_factory=threading.Event)
    on_audio: Callable[[AudioChunk], None] | None = None
    output_lost: bool = False  # stdout closed with no other output open: the run stopped
    prog: str = "edge-run"  # what one-line notices start with

    def watch_stdout(self, writer: StreamWriter) -> None:
        """Decide what a reader closing stdout means: stop when it was the only output."""
        def closed() -> None:
            others = [w for w in self.sinks.writers if w is not writer]
            if others:
                # Each writer names itself (edge cannot know host's recorder or dashboard).
                names = ", ".join(getattr(w, "label", type(w).__name__) for w in others)
                print(f"{self.prog}: stdout was closed by its reader; events go on to the "
                      f"{names}", file=sys.stderr)
                return
            print(f"{self.prog}: stdout was closed by its reader and nothing else receives "
                  "the events; stopping (add --events-file or --record to keep running)",
                  file=sys.stderr)
            self.output_lost = True
            self.stop.set()

        writer.on_closed = closed

    def run(self) -> int:
        """Stream until stopped; 0, or :data:`EXIT_PROTOCOL` for another protocol major."""
        decoder = StreamDecoder()

        def on_item(item: DecodedItem, now: float) -> None:
            self.pipeline.handle(item, now)
            if self.on_audio is not None and isinstance(item, AudioChunk):
                self.on_audio(item)

        try:
            io_loop(self.transport, decoder, on_item, stop=self.stop,
                    duration=self.args.duration, silent_after=self.args.sim_duration,
                    on_tick=lambda now: self.pipeline.tick(now, decoder.stats()))
        except ProtocolVersionError as exc:
            print(f"edge-run: {exc}", file=sys.stderr)
            # The dashboard covers stderr: the reason must also reach the screen.
            self.sinks.write(ev.make_status(level="error", message=str(exc),
                                            code=PROTOCOL_VERSION_CODE,
                                            simulated=self.pipeline.simulated))
            return EXIT_PROTOCOL
        except KeyboardInterrupt:
            pass
        return EXIT_OUTPUT if self.output_lost else 0

    def close(self) -> None:
        self.stop.set()
        self.pipeline.close()
        self.transport.close()
        self.sinks.close()


def open_session(args: argparse.Namespace, writers: list[EventWriter],
                 prog: str = "edge-run") -> EdgeSession:
    """Load the model, open the source and the headless sinks, start the pipeline.

    ``writers`` are the caller's own sinks (stdout, a dashboard queue); the events file and
    the TCP server are added here when asked for.

    Raises
    ------
    StartupError
        With the exit code and a one-line message; nothing is left open.
    """
    try:
        model = load_model(args.model, threads=args.threads)
    except (ModelError, DetectorWeightsError) as exc:
        raise StartupError(EXIT_MODEL, f"{prog}: {exc}") from None
    messages = SourceMessages()
    try:
        transport = open_transport(args, on_message=messages)
    except SourceError as exc:
        raise StartupError(EXIT_SOURCE, f"{prog}: {exc}") from None
    simulated = bool(getattr(transport, "simulated", False))
    if args.sim_duration and not simulated:
        transport.close()
        raise StartupError(EXIT_USAGE, f"{prog}: --sim-duration only applies to --simulate")
    if simulated:
        print(f"{prog}: SIMULATED patient — synthetic audio, not a real recording",
              file=sys.stderr)
    if args.events_file and Path(args.events_file).is_dir():
        transport.close()
        raise StartupError(EXIT_USAGE, f"{prog}: --events-file {args.events_file} is a folder: "
                           f"name a file in it, e.g. {Path(args.events_file) / 'events.jsonl'}")
    sinks = MultiWriter(writers)
    try:
        if args.events_file:
            sinks.add(FileWriter(args.events_file))
        server = open_server(args)
        if server is not None:
            sinks.add(server)
    except (TokenError, ServerError, OSError) as exc:
        transport.close()
        sinks.close()
        raise StartupError(EXIT_USAGE, f"{prog}: {exc}") from None
    # Replays and the simulation are paced by --speed; a device by its own clock.
    paced = bool(getattr(args, "replay", None) or getattr(args, "simulate", False))
    pipeline = Pipeline(model, sinks.write, simulated=simulated, transport=transport.name,
                        mains_hz=args.mains, rate_speed=args.speed if paced else 1.0,
                        block_s=FAST_BLOCK_S)
    messages.attach(sinks.write, simulated)
    return EdgeSession(args, model, transport, sinks, pipeline, prog=prog)


def run(args: argparse.Namespace, prog: str = "python -m steth.edge.runner") -> int:
    """The headless edge: JSON-lines events on stdout until stopped."""
    problem = number_problem(args, prog)
    if problem is not None:
        print(problem, file=sys.stderr)
        return EXIT_USAGE
    stdout = StreamWriter(sys.stdout)
    try:
        session = open_session(args, [stdout], prog=prog)
    except StartupError as exc:
        print(exc, file=sys.stderr)
        return exc.code
    session.watch_stdout(stdout)
    try:
        return session.run()
    finally:
        session.close()


def run_cli(parser: argparse.ArgumentParser, run_args: Callable[[argparse.Namespace], int],
            argv: list[str] | None = None) -> int:
    """Parse, run, and turn Ctrl-C outside the I/O loop into exit code 130."""
    args = parser.parse_args(argv)
    try:
        return run_args(args)
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_cli(build_parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
