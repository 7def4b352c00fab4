"""``edge-run``: read the stethoscope, find breath cycles, report findings live.

transport -> decode -> pipeline (filter, segment, infer) -> events -> dashboard / JSON lines
/ event file / localhost TCP, with the raw audio optionally recorded.

Findings support a clinician; they are not a diagnosis. ``--simulate`` is the only way to
get synthetic audio, and everything it produces is marked SIMULATED.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from edge import events as ev
from edge.decode import AudioChunk, ProtocolVersionError, StreamDecoder
from edge.event_server import ServerError, TokenError, add_server_arguments, open_server
from edge.features import FeatureConfig
from edge.infer import CycleModel, ModelError
from edge.pipeline import Pipeline
from edge.segment import DetectorWeightsError, default_weights_path, load_weights
from edge.transport import SourceError, Transport, add_source_arguments, open_transport

EXIT_USAGE, EXIT_MODEL, EXIT_PROTOCOL, EXIT_SOURCE = 2, 3, 4, 5
DEFAULT_MODEL_NAME = "breathnet.int8.onnx"


def default_model_path() -> Path:
    """The embedded default model, shipped inside the package."""
    import models

    return Path(models.__file__).resolve().parent / "exports" / DEFAULT_MODEL_NAME


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-run",
        description="Live crackle/wheeze findings from a digital stethoscope (a decision aid "
                    "for clinicians, not a diagnosis).",
        epilog="examples:\n"
               "  edge-run --port /dev/ttyUSB0              live dashboard from the device\n"
               "  edge-run --simulate                       SIMULATED patient, no hardware\n"
               "  edge-run --port /dev/stethoscope --no-dashboard --record ~/recordings\n"
               "  edge-run --replay rec.flac --speed 10 --no-dashboard > events.jsonl",
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
    out.add_argument("--no-dashboard", action="store_true",
                     help="print JSON-lines events to stdout instead of the dashboard")
    out.add_argument("--events-file", type=Path, help="also append events to this file (0600)")
    out.add_argument("--duration", type=float, default=0.0,
                     help="stop after this many seconds (default: run until stopped)")
    out.add_argument("--sim-duration", type=float, default=0.0, metavar="SECONDS",
                     help="with --simulate: the simulated device goes silent after this many "
                          "seconds while edge-run keeps running (shows NO SIGNAL)")
    add_server_arguments(parser)
    from host.listen import add_listen_arguments
    from host.recorder import add_recorder_arguments

    add_recorder_arguments(parser)
    add_listen_arguments(parser)
    return parser


def load_model(args: argparse.Namespace) -> CycleModel:
    path = args.model or default_model_path()
    return CycleModel(path, expected_feature_hash=FeatureConfig().hash(), threads=args.threads)


class Sinks:
    """Where events go: a dashboard queue or stdout, plus an optional file, TCP server and
    recorder."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.writers: list[ev.EventWriter] = []
        self.recorder = None
        self.dashboard_queue: queue.Queue | None = None
        if args.no_dashboard:
            self.writers.append(ev.StreamWriter(sys.stdout))
        else:
            self.dashboard_queue = queue.Queue()
        if args.events_file:
            self.writers.append(ev.FileWriter(args.events_file))
        self.lock = threading.Lock()

    def emit(self, event: dict) -> None:
        with self.lock:
            for writer in self.writers:
                writer.write(event)
            if self.dashboard_queue is not None:
                self.dashboard_queue.put(event)
            if self.recorder is not None:
                self.recorder.on_event(event)

    def close(self) -> None:
        if self.dashboard_queue is not None:
            self.dashboard_queue.put(None)
        for writer in self.writers:
            writer.close()
        if self.recorder is not None:
            self.recorder.close()


def stream(transport: Transport, pipeline: Pipeline, stop: threading.Event, duration: float,
           on_audio: Callable[[AudioChunk], None] | None = None,
           silent_after: float = 0.0) -> None:
    """The I/O loop: read, decode, feed the pipeline, tick; until stopped or the source ends.

    ``silent_after`` (simulation only) stops reading the source after that many seconds,
    which is what a device that stopped sending looks like.
    """
    decoder = StreamDecoder()
    start = time.monotonic()
    deadline = start + duration if duration > 0 else float("inf")
    while not stop.is_set() and time.monotonic() < deadline and not transport.ended:
        now = time.monotonic()
        if silent_after and now - start >= silent_after:
            time.sleep(0.05)
            pipeline.tick(time.monotonic(), decoder.stats())
            continue
        request = decoder.device_info_request(now)
        if request is not None:
            transport.write(request)
        data = transport.read(0.05)
        now = time.monotonic()
        if data:
            for item in decoder.feed(data, now):
                pipeline.handle(item, now)
                if on_audio is not None and isinstance(item, AudioChunk):
                    on_audio(item)
        pipeline.tick(now, decoder.stats())


def run(args: argparse.Namespace) -> int:
    try:
        model = load_model(args)
        load_weights(default_weights_path(), model.manifest.feature_config)
    except (ModelError, DetectorWeightsError) as exc:
        print(f"edge-run: {exc}", file=sys.stderr)
        return EXIT_MODEL
    try:
        transport = open_transport(args)
    except SourceError as exc:
        print(f"edge-run: {exc}", file=sys.stderr)
        return EXIT_SOURCE
    simulated = bool(getattr(transport, "simulated", False))
    if args.sim_duration and not simulated:
        print("edge-run: --sim-duration only applies to --simulate", file=sys.stderr)
        transport.close()
        return EXIT_USAGE
    if simulated:
        print("edge-run: SIMULATED patient — synthetic audio, not a real recording",
              file=sys.stderr)
    sinks = Sinks(args)
    try:
        open_outputs(args, sinks, model)
    except (TokenError, ServerError, OSError) as exc:
        print(f"edge-run: {exc}", file=sys.stderr)
        transport.close()
        sinks.close()
        return EXIT_USAGE
    pipeline = Pipeline(model, sinks.emit, simulated=simulated, transport=transport.name,
                        mains_hz=args.mains)
    from host.listen import NoOutputDeviceError, open_listener

    try:
        listener = open_listener(args, pipeline.features.sample_rate)
    except NoOutputDeviceError as exc:
        print(f"edge-run: {exc}", file=sys.stderr)
        pipeline.close()
        transport.close()
        sinks.close()
        return EXIT_USAGE
    if listener is not None:
        pipeline.on_filtered = listener.feed
    stop = threading.Event()
    dashboard_thread = start_dashboard(sinks, stop)
    recorder = sinks.recorder
    on_audio = None
    if recorder is not None:
        def on_audio(chunk: AudioChunk) -> None:
            recorder.on_audio(chunk.start_index, chunk.samples, chunk.sample_rate)
    status = 0
    try:
        stream(transport, pipeline, stop, args.duration, on_audio, args.sim_duration)
    except ProtocolVersionError as exc:
        print(f"edge-run: {exc}", file=sys.stderr)
        status = EXIT_PROTOCOL
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        pipeline.close()
        if listener is not None:
            listener.close()
        transport.close()
        sinks.close()
        if dashboard_thread is not None:
            dashboard_thread.join()
    return status


def open_outputs(args: argparse.Namespace, sinks: Sinks, model: CycleModel) -> None:
    """TCP server and recorder, when asked for; their errors are one line each."""
    server = open_server(args)
    if server is not None:
        sinks.writers.append(server)
    from host.recorder import RecorderError, open_recorder

    settings = {"model": model.manifest.name, "model_version": model.manifest.version,
                "model_sha256": model.manifest.weights_sha256, "mains_hz": args.mains}
    try:
        sinks.recorder = open_recorder(
            args, settings=settings, emit=sinks.emit,
            on_warning=lambda text: sinks.emit(ev.make_status(level="warning", message=text)))
    except RecorderError as exc:
        raise OSError(str(exc)) from None


def start_dashboard(sinks: Sinks, stop: threading.Event) -> threading.Thread | None:
    if sinks.dashboard_queue is None:
        return None
    from host.dashboard import Dashboard

    actions = sinks.recorder.actions(quit=stop.set) if sinks.recorder is not None else None
    thread = threading.Thread(target=Dashboard().run,
                              args=(sinks.dashboard_queue, stop, actions),
                              name="dashboard", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
