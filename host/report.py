"""Report PNG of one take: waveform and spectrogram with detected cycles shaded by finding.

matplotlib is imported only here and only when a report is asked for: it is not part of
the Raspberry Pi runtime. Without it the caller gets a one-line :class:`ReportError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FINDING_COLOURS: dict[str, str] = {"Normal": "#2ca02c", "Crackle": "#ff7f0e",
                                   "Wheeze": "#9467bd", "Both": "#d62728"}
POOR_COLOUR = "#7f7f7f"
SHADE_ALPHA = 0.3
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 7.5, 100
INTENDED_USE = ("Decision aid: reports auscultation findings to support a clinician; "
                "not a diagnosis.")


class ReportError(RuntimeError):
    """A report cannot be made (one-line message)."""


@dataclass
class ReportLayout:
    """Where things landed in the PNG (pixels, origin top-left), for checks and tooling."""

    path: Path
    width_px: int
    height_px: int
    waveform_box: tuple[int, int, int, int]  # left, top, right, bottom
    spans_px: list[tuple[int, int, str]] = field(default_factory=list)  # x0, x1, colour


def require_matplotlib() -> Any:
    """Import matplotlib or raise a one-line :class:`ReportError` saying how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise ReportError("reports need matplotlib: pip install matplotlib") from None
    return matplotlib


def _pyplot() -> Any:
    matplotlib = require_matplotlib()
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cycle_colour(cycle: Mapping[str, Any]) -> str:
    if cycle.get("quality", {}).get("status") == "poor":
        return POOR_COLOUR
    return FINDING_COLOURS.get(str(cycle.get("finding")), POOR_COLOUR)


def _envelope(audio: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min/max per bucket so hours of audio plot as fast as seconds."""
    n = audio.size
    buckets = max(1, min(buckets, n))
    edges = np.linspace(0, n, buckets + 1).astype(int)
    lows = np.minimum.reduceat(audio, edges[:-1])
    highs = np.maximum.reduceat(audio, edges[:-1])
    return edges[:-1], lows, highs


def make_report(audio: np.ndarray, sample_rate: int, cycles: Sequence[Mapping[str, Any]],
                summary_lines: Sequence[str], out_path: str | Path, *, first_index: int = 0,
                title: str = "", simulated: bool = False,
                site_lines: Sequence[str] = ()) -> ReportLayout:
    """Draw the report PNG (file mode 0600) and return where its parts are.

    Parameters
    ----------
    audio : ndarray of int16
        The take's raw samples; sample 0 is device index ``first_index``.
    sample_rate : int
        Samples per second.
    cycles : sequence of cycle events
        ``start``/``end`` device indices, ``finding`` and ``quality`` are used.
    summary_lines : sequence of str
        Text printed under the plots (verdict, counts, model, device...).
    out_path : path
        Where to write the PNG.
    title : str
        Heading (session and site).
    simulated : bool
        Adds a SIMULATED banner to the heading.
    site_lines : sequence of str
        The exam's verdict per site (``"p1: CAS (3 cycles)"``), printed beside the summary.
    """
    plt = _pyplot()
    from matplotlib.patches import Patch

    audio = np.asarray(audio, dtype=np.int16)
    if audio.size == 0:
        raise ReportError("the take has no audio to report on")
    seconds = audio.size / sample_rate
    scale = audio.astype(np.float32) / 32768.0
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 2.6, 1.4], hspace=0.35,
                            left=0.07, right=0.98, top=0.92, bottom=0.03)
    wave_ax = fig.add_subplot(grid[0])
    spec_ax = fig.add_subplot(grid[1], sharex=wave_ax)
    text_ax = fig.add_subplot(grid[2])
    text_ax.axis("off")

    starts, lows, highs = _envelope(scale, 2000)
    wave_ax.fill_between(starts / sample_rate, lows, highs, color="#1f3b73", linewidth=0.4)
    peak = float(np.max(np.abs(scale))) or 1.0
    wave_ax.set_ylim(-1.15 * peak, 1.15 * peak)
    wave_ax.set_xlim(0, seconds)
    wave_ax.set_ylabel("raw (FS)")
    nfft = 256 if sample_rate <= 16000 else 1024
    spec_ax.specgram(scale, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
    spec_ax.set_ylim(0, min(2000, sample_rate / 2))
    wave_ax.set_xlim(0, seconds)  # specgram moved the shared x limits
    spec_ax.set_ylabel("Hz")
    spec_ax.set_xlabel("seconds")

    spans = []
    for cycle in cycles:
        t0 = (cycle["start"] - first_index) / sample_rate
        t1 = (cycle["end"] - first_index) / sample_rate
        if t1 <= 0 or t0 >= seconds:
            continue
        colour = cycle_colour(cycle)
        wave_ax.axvspan(max(0.0, t0), min(seconds, t1), color=colour, alpha=SHADE_ALPHA,
                        linewidth=0)
        spec_ax.axvspan(max(0.0, t0), min(seconds, t1), ymin=0.94, ymax=1.0, color=colour,
                        linewidth=0)
        spans.append((max(0.0, t0), min(seconds, t1), colour))

    heading = ("SIMULATED – " if simulated else "") + (title or "recording")
    fig.suptitle(heading, fontsize=13, color="#b8860b" if simulated else "black",
                 fontweight="bold")
    wave_ax.legend(handles=[Patch(color=c, alpha=SHADE_ALPHA + 0.2, label=name)
                            for name, c in [*FINDING_COLOURS.items(), ("poor quality",
                                                                       POOR_COLOUR)]],
                   loc="upper right", ncol=5, fontsize=8, framealpha=0.9)
    text_ax.text(0.0, 1.0, "\n".join([*summary_lines, INTENDED_USE]), va="top", ha="left",
                 family="monospace", fontsize=9, transform=text_ax.transAxes)
    if site_lines:
        # Beside the take's own lines: one site a line, so seven ICBHI sites still fit.
        text_ax.text(0.72, 1.0, "\n".join(["per site (findings):", *site_lines]), va="top",
                     ha="left", family="monospace", fontsize=9, transform=text_ax.transAxes)

    layout = _layout(fig, wave_ax, spans, Path(out_path))
    _save_private(fig, Path(out_path))
    plt.close(fig)
    return layout


def _layout(fig: Any, wave_ax: Any, spans: list[tuple[float, float, str]], path: Path
            ) -> ReportLayout:
    fig.canvas.draw()
    width, height = fig.canvas.get_width_height()
    box = wave_ax.get_window_extent()
    to_px = wave_ax.transData.transform
    pixel_spans = [(round(to_px((t0, 0))[0]), round(to_px((t1, 0))[0]), colour)
                   for t0, t1, colour in spans]
    return ReportLayout(path=path, width_px=width, height_px=height,
                        waveform_box=(int(box.x0), int(height - box.y1), int(box.x1),
                                      int(height - box.y0)),
                        spans_px=pixel_spans)


def _save_private(fig: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=DPI)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
