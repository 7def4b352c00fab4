"""Report PNG of one take: waveform and spectrogram with detected cycles shaded by finding.

Each good cycle carries its crackle and wheeze probabilities; audio no cycle covers is
hatched as not classified; the waveform is scaled to the breaths, not to a start-up click.
matplotlib is imported only here and only when a report is asked for: it is not part of
the Raspberry Pi runtime. Without it the caller gets a one-line :class:`ReportError`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.findings import finding_of_cycle_event

FINDING_COLOURS: dict[str, str] = {"Normal": "#2ca02c", "Crackle": "#ff7f0e",
                                   "Wheeze": "#9467bd", "Both": "#d62728"}
POOR_COLOUR = "#7f7f7f"
NO_FINDING_LABEL = "no finding (poor / settling)"
UNCLASSIFIED_COLOUR = "#8c8c8c"
UNCLASSIFIED_LABEL = "not classified (no complete cycle)"
SHADE_ALPHA = 0.3
WIDTH_IN, HEIGHT_IN, DPI = 12.0, 7.5, 100
WAVE_PERCENTILE = 99.5
WAVE_YLABEL = f"raw (FS, clipped at p{WAVE_PERCENTILE:g})"
# A device's first half second can hold a power-up click or DC settling, far louder than
# any breath; scaling to it would draw the breaths as a flat line.
STARTUP_S = 0.5
# Axis limits as multiples of the clip level: room below the waveform, and room above it
# for each cycle's likelihood text.
HEADROOM_BELOW, HEADROOM_ABOVE = 1.15, 1.6
MIN_UNCLASSIFIED_S = 0.05  # shorter stretches are rounding between adjacent cycles
LABEL_PT = 7
TITLE_SEPARATOR = " · "
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
    title: str = ""  # the heading as drawn, SIMULATED prefix included
    wave_ylim: float = 1.0  # the waveform's clip level (full scale = 1)
    wave_ylabel: str = WAVE_YLABEL
    # One per entry of spans_px: the text drawn over that cycle, "" when it shows no finding.
    likelihood_labels: list[str] = field(default_factory=list)
    likelihood_key: str = ""  # what C and W stand for (likelihoods only when calibrated)
    unclassified_s: list[tuple[float, float]] = field(default_factory=list)  # from audio start
    unclassified_label: str = UNCLASSIFIED_LABEL


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


def shows_finding(cycle: Mapping[str, Any]) -> bool:
    """Whether a cycle has a finding to show: neither poor nor in the normaliser's warm-up
    (the edge's :func:`~steth.edge.findings.finding_of_cycle_event`)."""
    finding = finding_of_cycle_event(cycle)
    return finding is not None and not finding.poor_quality


def cycle_colour(cycle: Mapping[str, Any]) -> str:
    """The shade of a cycle: its finding's colour, grey when it shows no finding."""
    if not shows_finding(cycle):
        return POOR_COLOUR
    return FINDING_COLOURS.get(str(cycle.get("finding")), POOR_COLOUR)


def _two_digits(probability: float) -> str:
    return f"{float(probability):.2f}".removeprefix("0")


def likelihood_text(cycle: Mapping[str, Any], *, one_line: bool = False) -> str:
    """The text drawn over a cycle, e.g. ``"C .82\\nW .10"``; ``""`` with no finding to show.

    Parameters
    ----------
    cycle : cycle event
        ``p_crackle``, ``p_wheeze`` and ``quality`` are used.
    one_line : bool
        Crackle and wheeze on one line (for a span too narrow for two short lines).

    Returns
    -------
    str
        The two probabilities rounded to two decimals, or ``""`` for a poor or settling
        cycle, whose probabilities are not findings.
    """
    if not shows_finding(cycle):
        return ""
    separator = " " if one_line else "\n"
    return (f"C {_two_digits(cycle['p_crackle'])}{separator}"
            f"W {_two_digits(cycle['p_wheeze'])}")


def likelihood_key(calibrated: bool | None) -> str:
    """What the C and W numbers are: likelihoods only if the model is calibrated."""
    if calibrated:
        return "C / W: crackle / wheeze likelihood of the cycle"
    if calibrated is None:
        return "C / W: crackle / wheeze model score (calibration not recorded)"
    return "C / W: crackle / wheeze model score (not calibrated), not a likelihood"


def wave_limit(scale: np.ndarray, sample_rate: int) -> float:
    """The waveform's clip level: a high percentile of ``|audio|`` after the start-up.

    Parameters
    ----------
    scale : ndarray of float
        Samples as fractions of full scale.
    sample_rate : int
        Samples per second.

    Returns
    -------
    float
        The :data:`WAVE_PERCENTILE` of ``|scale|``, leaving out the first
        :data:`STARTUP_S` when at least as much audio follows; the peak if that is 0
        (nearly silent audio), and 1.0 for silence.
    """
    skip = int(STARTUP_S * sample_rate)
    body = np.abs(scale[skip:] if scale.size >= 2 * skip else scale)
    for level in (np.percentile(body, WAVE_PERCENTILE), body.max(), np.abs(scale).max()):
        if level > 0:
            return float(level)
    return 1.0


def unclassified_spans(spans: Sequence[tuple[float, float]], seconds: float
                       ) -> list[tuple[float, float]]:
    """The stretches of ``[0, seconds]`` that no span covers (at least MIN_UNCLASSIFIED_S).

    Parameters
    ----------
    spans : sequence of (start, end)
        Cycle spans in seconds from the audio's start, clipped to the audio.
    seconds : float
        The audio's duration.

    Returns
    -------
    list of (start, end)
        In time order: before the first cycle, between cycles, after the last one.
    """
    uncovered, reached = [], 0.0
    for t0, t1 in sorted(spans):
        if t0 - reached >= MIN_UNCLASSIFIED_S:
            uncovered.append((reached, t0))
        reached = max(reached, t1)
    if seconds - reached >= MIN_UNCLASSIFIED_S:
        uncovered.append((reached, seconds))
    return uncovered


def _when(unix: float | None, synchronised: bool) -> str:
    if unix is None:
        return "date not recorded"
    text = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(float(unix)))
    return text if synchronised else f"{text} (clock not synchronised)"


def _named(part: Mapping[str, Any] | None, kind: str) -> str:
    if not part:
        return f"{kind} not recorded"
    return f"{part.get('name', '?')} {part.get('version', '?')}"


def report_title(meta: Mapping[str, Any], take: Mapping[str, Any]) -> str:
    """The heading of a take's report: pseudonym, site, start, model and detector.

    Parameters
    ----------
    meta : mapping
        The session (``session.json``): ``patient``, ``created_unix``, ``model``,
        ``detector`` and ``unsynchronised_clock`` are used.
    take : mapping
        The take: ``site`` and ``started_unix`` (the session's start when absent).

    Returns
    -------
    str
        e.g. ``"patient P-0042 · site p1 · 2026-12-03 14:05 UTC · breathnet 0.3.0+seed1 ·
        breathseg 0.1.0"`` (local time; the SIMULATED prefix is :func:`make_report`'s).
    """
    started = take.get("started_unix", meta.get("created_unix"))
    return TITLE_SEPARATOR.join([
        f"patient {meta.get('patient') or '?'}", f"site {take.get('site') or '?'}",
        _when(started, not meta.get("unsynchronised_clock")),
        _named(meta.get("model"), "model"), _named(meta.get("detector"), "detector")])


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
                site_lines: Sequence[str] = (), calibrated: bool | None = None
                ) -> ReportLayout:
    """Draw the report PNG (file mode 0600) and return where its parts are.

    Parameters
    ----------
    audio : ndarray of int16
        The take's raw samples; sample 0 is device index ``first_index``.
    sample_rate : int
        Samples per second.
    cycles : sequence of cycle events
        ``start``/``end`` device indices, ``finding``, ``p_crackle``, ``p_wheeze`` and
        ``quality`` are used.
    summary_lines : sequence of str
        Text printed under the plots (verdict, counts, model, device...).
    out_path : path
        Where to write the PNG.
    title : str
        Heading (:func:`report_title` for a recorded take).
    simulated : bool
        Adds a SIMULATED banner to the heading.
    site_lines : sequence of str
        The exam's verdict per site (``"p1: CAS (3 cycles)"``), printed beside the summary.
    calibrated : bool or None
        Whether the model's probabilities may be read as likelihoods (the hello's
        ``model.calibrated``; None when not recorded); the key over the plot says which.

    Returns
    -------
    ReportLayout
        Pixel positions of the waveform and cycle spans, and what was drawn: the heading,
        the clip level, each cycle's likelihood text and the unclassified stretches.
    """
    plt = _pyplot()

    audio = np.asarray(audio, dtype=np.int16)
    if audio.size == 0:
        raise ReportError("the take has no audio to report on")
    seconds = audio.size / sample_rate
    scale = audio.astype(np.float32) / 32768.0
    fig = plt.figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    grid = fig.add_gridspec(3, 1, height_ratios=[2.2, 2.6, 1.4], hspace=0.35,
                            left=0.07, right=0.98, top=0.9, bottom=0.03)
    wave_ax = fig.add_subplot(grid[0])
    spec_ax = fig.add_subplot(grid[1], sharex=wave_ax)
    text_ax = fig.add_subplot(grid[2])
    text_ax.axis("off")

    limit = wave_limit(scale, sample_rate)
    _draw_waveform(wave_ax, scale, sample_rate, limit)
    nfft = 256 if sample_rate <= 16000 else 1024
    spec_ax.specgram(scale, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
    spec_ax.set_ylim(0, min(2000, sample_rate / 2))
    wave_ax.set_xlim(0, seconds)  # specgram moved the shared x limits
    spec_ax.set_ylabel("Hz")
    spec_ax.set_xlabel("seconds")

    spans, labels = _draw_cycles(wave_ax, spec_ax, cycles, first_index, sample_rate, seconds)
    unclassified = unclassified_spans([(t0, t1) for t0, t1, _ in spans], seconds)
    _draw_unclassified(wave_ax, spec_ax, unclassified, limit, seconds)

    heading = ("SIMULATED – " if simulated else "") + (title or "recording")
    fig.suptitle(heading, fontsize=_title_pt(heading),
                 color="#b8860b" if simulated else "black", fontweight="bold")
    key = likelihood_key(calibrated)
    _draw_key(wave_ax, key)
    text_ax.text(0.0, 1.0, "\n".join([*summary_lines, INTENDED_USE]), va="top", ha="left",
                 family="monospace", fontsize=9, transform=text_ax.transAxes)
    if site_lines:
        # Beside the take's own lines: one site a line, so seven ICBHI sites still fit.
        text_ax.text(0.72, 1.0, "\n".join(["per site (findings):", *site_lines]), va="top",
                     ha="left", family="monospace", fontsize=9, transform=text_ax.transAxes)

    layout = _layout(fig, wave_ax, spans, Path(out_path))
    layout.title, layout.wave_ylim = heading, limit
    layout.likelihood_labels, layout.likelihood_key = labels, key
    layout.unclassified_s = unclassified
    _save_private(fig, Path(out_path))
    plt.close(fig)
    return layout


def _title_pt(heading: str) -> float:
    # Bold 13 pt fits about 110 characters across the page; a longer heading (a simulated
    # take with an unsynchronised clock) gets smaller type rather than losing its ends.
    return max(8.0, min(13.0, 13.0 * 110 / max(1, len(heading))))


def _draw_waveform(ax: Any, scale: np.ndarray, sample_rate: int, limit: float) -> None:
    starts, lows, highs = _envelope(scale, 2000)
    # Clipped, not cut off by the axis: louder stretches show as flat tops at the limit.
    ax.fill_between(starts / sample_rate, np.clip(lows, -limit, limit),
                    np.clip(highs, -limit, limit), color="#1f3b73", linewidth=0.4)
    ax.set_ylim(-HEADROOM_BELOW * limit, HEADROOM_ABOVE * limit)
    ax.set_ylabel(WAVE_YLABEL)


def _width_px(ax: Any, t0: float, t1: float, seconds: float) -> float:
    return float(ax.get_window_extent().width) * (t1 - t0) / seconds


def _fits(text: str, width_px: float) -> bool:
    # An average glyph is about 0.6 em wide; close enough to choose between layouts.
    longest = max((len(line) for line in text.splitlines()), default=0)
    return longest * 0.6 * LABEL_PT * DPI / 72 <= width_px


def _draw_cycles(wave_ax: Any, spec_ax: Any, cycles: Sequence[Mapping[str, Any]],
                 first_index: int, sample_rate: int, seconds: float
                 ) -> tuple[list[tuple[float, float, str]], list[str]]:
    """Shade each cycle inside the audio and write its likelihoods over it."""
    spans, labels = [], []
    for cycle in cycles:
        t0 = max(0.0, (cycle["start"] - first_index) / sample_rate)
        t1 = min(seconds, (cycle["end"] - first_index) / sample_rate)
        if t1 <= 0 or t0 >= seconds:
            continue
        colour = cycle_colour(cycle)
        wave_ax.axvspan(t0, t1, color=colour, alpha=SHADE_ALPHA, linewidth=0)
        spec_ax.axvspan(t0, t1, ymin=0.94, ymax=1.0, color=colour, linewidth=0)
        spans.append((t0, t1, colour))
        labels.append(_draw_likelihoods(wave_ax, cycle, t0, t1, seconds))
    return spans, labels


def _draw_likelihoods(ax: Any, cycle: Mapping[str, Any], t0: float, t1: float,
                      seconds: float) -> str:
    text = likelihood_text(cycle)
    if not text:
        return ""
    narrow = not _fits(text, _width_px(ax, t0, t1, seconds))
    if narrow:
        text = likelihood_text(cycle, one_line=True)
    ax.text((t0 + t1) / 2, 0.98, text, transform=ax.get_xaxis_transform(), ha="center",
            va="top", fontsize=LABEL_PT, family="monospace", rotation=90 if narrow else 0,
            clip_on=True)
    return text


def _draw_unclassified(wave_ax: Any, spec_ax: Any, spans: Sequence[tuple[float, float]],
                       limit: float, seconds: float) -> None:
    """Hatch audio no cycle covers: the model never heard it, so it has no finding."""
    for t0, t1 in spans:
        # Over the waveform's range only, under the envelope, so the audio stays visible.
        wave_ax.fill_between([t0, t1], -limit, limit, facecolor="none",
                             edgecolor=UNCLASSIFIED_COLOUR, hatch="///", linewidth=0,
                             zorder=0.5)
        spec_ax.axvspan(t0, t1, ymin=0.94, ymax=1.0, facecolor="white",
                        edgecolor=UNCLASSIFIED_COLOUR, hatch="///", linewidth=0)
        width = _width_px(wave_ax, t0, t1, seconds)
        label = next((text for text in (UNCLASSIFIED_LABEL, "not classified")
                      if _fits(text, width)), "")
        if label:
            wave_ax.text((t0 + t1) / 2, 0.98, label, transform=wave_ax.get_xaxis_transform(),
                         ha="center", va="top", fontsize=LABEL_PT, color="#404040",
                         clip_on=True)


def _draw_key(ax: Any, key: str) -> None:
    """The legend and the likelihood key, above the waveform so they hide no cycle."""
    from matplotlib.patches import Patch

    handles = [Patch(color=c, alpha=SHADE_ALPHA + 0.2, label=name)
               for name, c in [*FINDING_COLOURS.items(), (NO_FINDING_LABEL, POOR_COLOUR)]]
    handles.append(Patch(facecolor="white", edgecolor=UNCLASSIFIED_COLOUR, hatch="///",
                         label=UNCLASSIFIED_LABEL))
    ax.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=6,
              fontsize=8, frameon=False, borderaxespad=0.2, columnspacing=1.0,
              handlelength=1.5, handletextpad=0.4)
    ax.text(0.0, 1.02, key, transform=ax.transAxes, ha="left", va="bottom", fontsize=8)


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
