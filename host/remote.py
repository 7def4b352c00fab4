"""`steth-console`: attach the dashboard to a running `edge-run` over its event stream.

The edge binds 127.0.0.1, so from another machine open an SSH tunnel first::

    ssh -N -L 8765:127.0.0.1:8765 pi@bedside &
    STETH_TOKEN_FILE=~/.config/steth/token steth-console

An edge that serves TLS off the host (``edge-run --tls-cert``) is reached directly and its
certificate checked against ``--ca-file``; plain TCP to another machine is refused unless
``--insecure`` says so (and then a warning is shown). The shared token comes from
``--token-file FILE``, ``$STETH_TOKEN_FILE`` or ``$STETH_TOKEN`` (never the command line).
``--record DIR`` also saves the raw audio and findings here (the edge then sends audio
events); ``--listen`` plays the stream.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge import events as ev
from steth.edge.event_schema import EventError, iter_jsonl
from steth.edge.event_server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    AuthError,
    EventClient,
    TlsError,
    TokenError,
    is_loopback,
    load_token,
    write_new_token,
)
from steth.edge.filter import FilterChain, FilterConfig
from steth.host.dashboard import Dashboard, DashboardActions
from steth.host.listen import Listener, NoOutputDeviceError, add_listen_arguments, open_listener
from steth.host.recorder import Recorder
from steth.host.recorder_cli import (
    add_recorder_arguments,
    check_recorder_arguments,
    open_recorder,
)
from steth.host.session_files import RecorderError


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: "--token SECRET" must fail, not be read as --token-file
    parser = argparse.ArgumentParser(prog="steth-console", description=__doc__.splitlines()[0],
                                     allow_abbrev=False)
    parser.add_argument("--host", default=DEFAULT_HOST, help="event stream host (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="event stream port")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="file holding the shared token (mode 0600)")
    parser.add_argument("--ca-file", type=Path, metavar="CA.pem", default=None,
                        help="connect with TLS and trust only certificates from this file "
                             "(the edge's --tls-cert; see hardware/pi/INSTALL.md)")
    parser.add_argument("--server-name", default=None, metavar="NAME",
                        help="name in the edge's certificate, when --host differs (default "
                             "--host)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain TCP to a host that is not this machine (the token "
                             "and findings cross the network readable; a warning is shown)")
    parser.add_argument("--new-token", type=Path, metavar="FILE", default=None,
                        help="create FILE with a fresh token (0600) and exit")
    parser.add_argument("--replay", type=Path, metavar="EVENTS.jsonl", default=None,
                        help="show a saved event file instead of attaching (no token needed)")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="replay speed factor (with --replay)")
    add_listen_arguments(parser)
    add_recorder_arguments(parser)
    return parser


class TransportError(RuntimeError):
    """Plain TCP to another machine without --insecure (one-line message)."""


def transport_warning(args: argparse.Namespace) -> str | None:
    """The warning for plain TCP off this machine (None when TLS or loopback).

    Raises
    ------
    TransportError
        Plain TCP off the host without ``--insecure``.
    """
    if args.ca_file is not None or is_loopback(args.host):
        return None
    if not args.insecure:
        raise TransportError(f"{args.host} is not this machine: the token and findings would "
                             "cross the network in plain TCP; pass --ca-file CA.pem (edge-run "
                             "--tls-cert), use an SSH tunnel, or pass --insecure")
    return (f"WARNING: plain TCP to {args.host}:{args.port} (--insecure): the token, findings "
            "and audio are readable on the network")


def pump(client: Iterable[dict[str, Any]], events: queue.Queue[dict[str, Any] | None],
         recorder: Recorder | None, listener: Listener | None, stop: threading.Event) -> None:
    """Move events from the stream into the dashboard queue, recorder and listener.

    The recorder gets the raw samples; the listener hears them through the same streaming
    band-pass the classifier uses (``edge.filter.FilterChain``).
    """
    chain: FilterChain | None = None
    chain_rate = 0
    try:
        for event in client:
            if stop.is_set():
                break
            if event["type"] == "audio":
                samples = ev.decode_audio(event)
                rate = int(event["rate_hz"])
                if recorder is not None:
                    recorder.on_audio(event["start"], samples, rate)
                if listener is not None:
                    if chain is None or rate != chain_rate:
                        chain, chain_rate = FilterChain(rate), rate
                    listener.feed(chain.process(samples.astype(np.float64) / 32768.0))
                continue  # audio is not for the screen
            if recorder is not None:
                recorder.on_event(event)
            events.put(event)
    except OSError:
        pass  # the connection dropped; the dashboard shows STREAM ENDED
    except EventError as exc:
        events.put(ev.make_status(level="error", message=str(exc), code="schema"))
    finally:
        events.put(None)


def replay_file(path: Path, events: queue.Queue[dict[str, Any] | None], stop: threading.Event,
                speed: float = 1.0, end_marker: bool = False) -> None:
    """Feed a JSON-lines event file at its recorded pace (divided by ``speed``).

    At the end the feed simply stops, like a device that went silent, so a live screen
    shows NO SIGNAL; with ``end_marker`` a final None ends the stream (plain log output).
    """
    previous: float | None = None
    for event in iter_jsonl(path):
        pause = 0.0 if previous is None else (event["t"] - previous) / max(speed, 1e-3)
        if pause > 0 and stop.wait(pause):
            return
        previous = event["t"]
        events.put(event)
    if end_marker:
        events.put(None)


def replay(args: argparse.Namespace, dashboard: Dashboard | None = None,
           stop: threading.Event | None = None) -> int:
    """Show a saved event file on the dashboard (``--replay``)."""
    list(iter_jsonl(args.replay))  # fail early, with the line number, on a bad file
    stop = stop or threading.Event()
    dashboard = dashboard or Dashboard()
    events: queue.Queue[dict[str, Any] | None] = queue.Queue()
    feeder = threading.Thread(target=replay_file, name="replay", daemon=True, args=(
        args.replay, events, stop, args.speed, not dashboard.console.is_terminal))
    feeder.start()
    try:
        dashboard.run(events, stop, DashboardActions())
    finally:
        stop.set()
    return 0


def attach(args: argparse.Namespace, dashboard: Dashboard | None = None,
           stop: threading.Event | None = None) -> int:
    """Connect, then run the dashboard until q (or ``stop``); returns the exit code."""
    check_recorder_arguments(args)  # a real name is refused before anything connects
    warning = transport_warning(args)
    token = load_token(args.token_file)
    wants_audio = args.record is not None or args.listen
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    client = EventClient(token, args.host, args.port, audio=wants_audio, ca_file=args.ca_file,
                         server_name=args.server_name)
    recorder = listener = None
    stop = stop or threading.Event()
    try:
        recorder = open_recorder(args, settings={"remote": f"{args.host}:{args.port}"})
        # the filter chain resamples every device rate to the model rate: that is what plays
        listener = open_listener(args, FilterConfig().target_rate)
        events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        if warning is not None:  # the screen too: stderr is hidden behind the dashboard
            events.put(ev.make_status(level="warning", message=warning, code="insecure"))
        reader = threading.Thread(target=pump, args=(client, events, recorder, listener, stop),
                                  name="remote-reader", daemon=True)
        reader.start()
        actions = recorder.actions() if recorder is not None else DashboardActions()
        (dashboard or Dashboard()).run(events, stop, actions)
    finally:
        stop.set()
        client.close()
        if recorder is not None:
            recorder.close()
        if listener is not None:
            listener.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point (``steth-console``)."""
    args = build_parser().parse_args(argv)
    try:
        if args.new_token is not None:
            write_new_token(args.new_token)
            print(f"wrote a new token to {args.new_token} (mode 0600); copy it to the edge "
                  "and point STETH_TOKEN_FILE at it on both sides")
            return 0
        if args.replay is not None:
            return replay(args)
        return attach(args)
    except BrokenPipeError:
        # the reader of our plain output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except FileNotFoundError as exc:
        print(f"steth-console: {exc.filename} not found", file=sys.stderr)
    except EventError as exc:
        print(f"steth-console: {exc}", file=sys.stderr)
    except FileExistsError:
        print(f"steth-console: {args.new_token} exists; choose another file", file=sys.stderr)
    except (TokenError, AuthError, NoOutputDeviceError, RecorderError, TransportError,
            TlsError) as exc:
        print(f"steth-console: {exc}", file=sys.stderr)
    except ConnectionRefusedError:
        print(f"steth-console: nothing listens on {args.host}:{args.port}: start edge-run with "
              "its event server, or open the SSH tunnel", file=sys.stderr)
    except OSError as exc:
        print(f"steth-console: cannot reach {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
