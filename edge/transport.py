"""Input sources for ``edge-run``: one :class:`Transport` interface, five kinds of link.

- ``--port DEV``: the stethoscope on a serial port (reconnects; never simulates);
- ``--ble NAME_OR_ADDR`` (+ ``--ble-allow``): the BLE build over Nordic UART Service;
- ``--replay FILE``: a WAV/FLAC recording pushed through a pty as protocol bytes;
- ``--soundcard [DEVICE]``: a stethoscope that shows up as an audio input;
- ``--simulate``: a SIMULATED patient (only when asked; marked SIMULATED everywhere).

Every source delivers wire-protocol bytes (docs/protocol.md) to ``edge/decode.py``.
The implementations live in ``edge/transports/``; this module is the entry point the CLI
uses: :func:`add_source_arguments` and :func:`open_transport`.
"""

from __future__ import annotations

import argparse
import math

from steth.edge.simulate import PatientConfig
from steth.edge.transports.base import (
    Backoff,
    MessageSink,
    SourceError,
    Transport,
    TransportStatus,
    print_to_stderr,
)
from steth.edge.transports.serial_link import DEFAULT_BAUD, SerialTransport, check_serial_device
from steth.edge.transports.simulated import LinkFaults, SimulatedTransport

__all__ = [
    "Backoff",
    "SourceError",
    "Transport",
    "TransportStatus",
    "add_source_arguments",
    "open_transport",
]


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the mutually exclusive input-source options (exactly one is required).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The ``edge-run`` parser (or any other tool that reads the stethoscope).
    """
    group = parser.add_argument_group("input source (choose one)")
    sources = group.add_mutually_exclusive_group(required=True)
    sources.add_argument(
        "--port", metavar="DEV", help="serial port of the stethoscope, e.g. /dev/ttyUSB0"
    )
    sources.add_argument(
        "--ble", metavar="NAME_OR_ADDR", help="BLE stethoscope (Nordic UART Service)"
    )
    sources.add_argument("--replay", metavar="FILE", help="replay a WAV/FLAC file as a device")
    sources.add_argument(
        "--soundcard", metavar="DEVICE", nargs="?", const="default",
        help="record from an audio input (index or name; default input if omitted)",
    )  # fmt: skip
    sources.add_argument(
        "--simulate", action="store_true",
        help="SIMULATED patient (synthetic breathing; never real data)",
    )  # fmt: skip
    group.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help="serial line rate (default %(default)s)"
    )
    group.add_argument(
        "--ble-allow", metavar="ADDR", action="append", default=[],
        help="BLE address allowed to connect (repeat, or comma-separate); required with a name",
    )  # fmt: skip
    group.add_argument(
        "--speed", type=_positive_speed, default=1.0,
        help="replay/simulation pace: 1 real time, 10 faster, 'max' as fast as possible",
    )  # fmt: skip
    sim = parser.add_argument_group("SIMULATED patient (with --simulate)")
    sim.add_argument("--sim-rate-bpm", type=float, default=18.0, help="breaths per minute")
    sim.add_argument(
        "--sim-crackles", type=_fraction, nargs="?", const=1.0, default=0.0, metavar="FRACTION",
        help="share of breaths with fine crackles (flag alone: every breath)",
    )  # fmt: skip
    sim.add_argument(
        "--sim-wheezes", type=_fraction, nargs="?", const=1.0, default=0.0, metavar="FRACTION",
        help="share of breaths with a wheeze (flag alone: every breath)",
    )  # fmt: skip
    sim.add_argument(
        "--sim-crc-errors", type=_count, default=0, metavar="N", help="corrupt N frames"
    )
    sim.add_argument(
        "--sim-garbage", type=_count, default=0, metavar="N", help="insert N noise bursts"
    )
    sim.add_argument("--sim-drops", type=_count, default=0, metavar="N", help="drop N audio frames")
    sim.add_argument(
        "--sim-seed", type=_seed, default=0, help="random seed of the simulation (0 or more)"
    )


def open_transport(
    args: argparse.Namespace, on_message: MessageSink = print_to_stderr
) -> Transport:
    """Open the source chosen by :func:`add_source_arguments`.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    on_message : callable
        Receives one-line link messages (errors naming the fix, reconnects).

    Returns
    -------
    Transport
        The open source. A serial port that is missing at start is *not* an error: it is
        reported through ``on_message`` and retried. A path that exists but is not a serial
        device (a regular file, ``/dev/null``) is.

    Raises
    ------
    SourceError
        Bad input the user must fix (missing or unreadable file, a --port that is not a
        serial device, optional package not installed, allow-list problem);
        ``str(error)`` is one line.
    """
    if args.port:
        check_serial_device(args.port)
        return SerialTransport(args.port, args.baud, on_message=on_message)
    if args.replay:
        from steth.edge.transports.replay import ReplayTransport

        return ReplayTransport(args.replay, args.speed, on_message=on_message)
    if args.ble:
        from steth.edge.transports.ble import BleTransport

        allow = [part for value in args.ble_allow for part in value.split(",")]
        return BleTransport(args.ble, allow, on_message=on_message)
    if args.soundcard:
        from steth.edge.transports.soundcard import SoundCardTransport

        return SoundCardTransport(args.soundcard, on_message=on_message)
    if args.simulate:
        return SimulatedTransport(_patient(args), _faults(args), speed=args.speed)
    raise SourceError("choose an input: --port, --ble, --replay, --soundcard or --simulate")


def _patient(args: argparse.Namespace) -> PatientConfig:
    try:
        return PatientConfig(
            breath_rate_bpm=args.sim_rate_bpm, crackle_fraction=args.sim_crackles,
            wheeze_fraction=args.sim_wheezes, seed=args.sim_seed,
        )  # fmt: skip
    except ValueError as error:
        raise SourceError(f"bad simulation setting: {error}") from error


def _faults(args: argparse.Namespace) -> LinkFaults:
    return LinkFaults(
        crc_errors=args.sim_crc_errors, garbage_bursts=args.sim_garbage,
        dropped_frames=args.sim_drops,
    )  # fmt: skip


def _positive_speed(text: str) -> float:
    if text.strip().lower() in {"max", "inf"}:
        return math.inf
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"speed must be a number or 'max', not {text!r}"
        ) from error
    if not value > 0:
        raise argparse.ArgumentTypeError("speed must be greater than 0")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a fraction 0..1, not {text!r}") from error
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction 0..1, not {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a count, not {text!r}") from error
    if value < 0:
        raise argparse.ArgumentTypeError("counts cannot be negative")
    return value


def _seed(text: str) -> int:
    # numpy's generators take only non-negative seeds and would fail later, with a traceback.
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from error
    if value < 0:
        raise argparse.ArgumentTypeError("seeds cannot be negative")
    return value
