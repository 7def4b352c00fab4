"""The report PNG says what was measured: scale, likelihoods, unclassified audio, title."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from steth.edge import events as ev
from steth.host.recorder import Recorder
from steth.host.review import load_session, report_take

RATE = 8000
SECONDS = 12.0
BREATH_FS = 0.05  # peak amplitude of the synthetic breaths, full scale = 1
CYCLE_S = [(1.0, 4.0), (4.0, 7.0), (7.0, 10.0)]  # the tail 10-12 s never closes into a cycle


def breaths_with_click(seed: int = 3) -> np.ndarray:
    """Breath-like noise (a 0.05 FS envelope at 20/min) with a full-scale click in 50 ms."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SECONDS * RATE)) / RATE
    envelope = BREATH_FS * np.abs(np.sin(np.pi * t / 3.0))
    noise = np.clip(rng.normal(0.0, 0.35, t.size), -1.0, 1.0)
    signal = envelope * noise
    signal[: int(0.05 * RATE)] += np.exp(-np.arange(int(0.05 * RATE)) / 40.0)  # start-up
    signal[int(CYCLE_S[-1][1] * RATE):] *= 0.1  # a quiet tail, so its marking shows
    return np.round(np.clip(signal, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def cycle(n: int, start_s: float, end_s: float, p_crackle: float, p_wheeze: float,
          **extra: Any) -> dict[str, Any]:
    start, end = round(start_s * RATE), round(end_s * RATE)
    finding = {(True, False): "Crackle", (False, True): "Wheeze", (True, True): "Both",
               (False, False): "Normal"}[(p_crackle >= 0.5, p_wheeze >= 0.5)]
    return ev.make_cycle(cycle_id=n, start=start, end=end, rate_hz=RATE,
                         wall_start=1.8e9 + start_s, finding=finding, p_crackle=p_crackle,
                         p_wheeze=p_wheeze, t=1.8e9 + end_s, **extra)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> tuple[Any, list[dict[str, Any]], np.ndarray]:
    from matplotlib.image import imread

    from steth.host.report import make_report

    cycles = [cycle(0, *CYCLE_S[0], 0.823, 0.104),
              cycle(1, *CYCLE_S[1], 0.91, 0.67, quality="poor", quality_reason="noise"),
              cycle(2, *CYCLE_S[2], 0.046, 0.557)]
    out = tmp_path_factory.mktemp("report") / "r.png"
    layout = make_report(breaths_with_click(), RATE, cycles, ["verdict --"], out,
                         title="synthetic")
    return layout, cycles, imread(out)[:, :, :3]


def test_a_start_up_click_does_not_flatten_the_breaths(drawn):
    layout, _, image = drawn
    # Drawn, the breath at 4.5 s fills much of the waveform panel (a click-scaled plot
    # leaves it a flat line a few pixels tall).
    left, top, right, bottom = layout.waveform_box
    x = left + round((right - left) * 4.5 / SECONDS)
    dark = (image[top:bottom, x - 3:x + 4].max(axis=2) < 0.6).any(axis=1)
    assert dark.sum() > 0.4 * (bottom - top), (dark.sum(), bottom - top)
    assert BREATH_FS / 2 < layout.wave_ylim < BREATH_FS * 2, layout.wave_ylim
    assert "clipped" in layout.wave_ylabel and "p99.5" in layout.wave_ylabel


def test_each_good_cycle_shows_its_rounded_likelihoods_and_poor_ones_none(drawn):
    layout, cycles, _ = drawn
    assert layout.likelihood_labels == ["C .82\nW .10", "", "C .05\nW .56"]
    assert len(layout.likelihood_labels) == len(layout.spans_px) == len(cycles)


@pytest.mark.parametrize(("calibrated", "words"), [(True, "likelihood"),
                                                   (False, "score (not calibrated)")])
def test_only_calibrated_probabilities_are_called_likelihoods(tmp_path, calibrated, words):
    from steth.host.report import make_report

    layout = make_report(breaths_with_click(), RATE, [cycle(0, 1.0, 4.0, 0.7, 0.2)], [],
                         tmp_path / "r.png", calibrated=calibrated)
    assert layout.likelihood_labels == ["C .70\nW .20"]
    assert words in layout.likelihood_key
    assert ("not calibrated" in layout.likelihood_key) is not calibrated


def test_settling_cycles_show_no_finding_and_no_likelihoods(tmp_path):
    from steth.host.report import FINDING_COLOURS, POOR_COLOUR, make_report

    cycles = [cycle(0, 1.0, 4.0, 0.9, 0.1, settling=True), cycle(1, 4.0, 7.0, 0.9, 0.1)]
    layout = make_report(breaths_with_click(), RATE, cycles, [], tmp_path / "r.png")
    assert [colour for _, _, colour in layout.spans_px] == [POOR_COLOUR, FINDING_COLOURS["Crackle"]]
    assert layout.likelihood_labels == ["", "C .90\nW .10"]


def test_audio_outside_any_cycle_is_marked_not_classified(drawn):
    layout, _, image = drawn
    left, top, right, bottom = layout.waveform_box
    # Grey hatching over the tail, a quarter of the panel down (above the quiet waveform).
    row = top + (bottom - top) // 4
    tail = image[row, left + round((right - left) * 10.3 / SECONDS):right - 3]
    greys = tail[(tail.max(axis=1) < 0.9) & (np.ptp(tail, axis=1) < 0.05)]
    assert len(greys) > 0.05 * len(tail), (len(greys), len(tail))
    assert layout.unclassified_s == [(0.0, 1.0), (10.0, SECONDS)]
    assert "not classified (no complete cycle)" in layout.unclassified_label


def test_no_cycle_at_all_marks_the_whole_take(tmp_path):
    from steth.host.report import make_report

    layout = make_report(breaths_with_click(), RATE, [], [], tmp_path / "r.png")
    assert layout.unclassified_s == [(0.0, SECONDS)]
    assert layout.likelihood_labels == []


def record(root: Path, *, started: float, simulated: bool, synchronised: bool,
           calibrated: bool) -> Path:
    """A session whose one take starts at ``started``, ten minutes after the session."""
    audio = breaths_with_click()
    now = [started - 600.0]
    recorder = Recorder(root, patient="P-0042", sites="p1,p2", recording=False,
                        wall_clock=lambda: now[0])
    now[0] = started
    recorder.start()
    recorder.on_event(ev.make_hello(
        device_id="FT232R-X", firmware="1.2.0", nominal_rate_hz=RATE, adc_bits=12,
        model_name="breathnet", model_version="0.3.0+seed1",
        model_hash="sha256:" + "ab" * 32, calibrated=calibrated,
        detector={"name": "breathseg", "version": "0.1.0", "hash": "sha256:" + "cd" * 32},
        transport="replay:synthetic", simulated=simulated, clock_synchronised=synchronised))
    pending = [cycle(n, *span, 0.2, 0.1, simulated=simulated)
               for n, span in enumerate(CYCLE_S)]
    for start in range(0, audio.size, 800):
        recorder.on_audio(start, audio[start:start + 800], RATE)
        while pending and pending[0]["end"] <= start + 800:
            recorder.on_event(pending.pop(0))
    recorder.close()
    return recorder.session_dir


@pytest.mark.parametrize("simulated", [False, True])
def test_title_names_patient_site_date_model_and_detector(tmp_path, monkeypatch, simulated):
    from steth.host import report

    started = 1796306700.0  # 2026-12-03 14:05 UTC
    # The simulated session also has an unsynchronised clock and an uncalibrated model.
    session = record(tmp_path, started=started, simulated=simulated,
                     synchronised=not simulated, calibrated=not simulated)
    meta = load_session(session)
    drawn: list[Any] = []
    real_make_report = report.make_report

    def keep_layout(*args: Any, **kwargs: Any) -> Any:
        drawn.append(real_make_report(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(report, "make_report", keep_layout)
    png = report_take(session, meta["takes"][0], meta)
    assert png.stat().st_size > 20_000 and len(drawn) == 1
    date = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(started))  # the take's start
    parts = drawn[0].title.split(" · ")
    assert parts == [("SIMULATED – " if simulated else "") + "patient P-0042", "site p1",
                     date + (" (clock not synchronised)" if simulated else ""),
                     "breathnet 0.3.0+seed1", "breathseg 0.1.0"]
    assert ("not calibrated" in drawn[0].likelihood_key) is simulated
