"""Exam sessions: report PNG from a real recording, export, delete, review, reclassify."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from steth.edge import events as ev
from steth.edge.event_schema import parse_line
from steth.edge.labels import event_to_four_class
from steth.host import sessions
from steth.host.recorder import Recorder
from steth.host.session_files import take_folders

RECORDING = "40801342_4.0_1_p2_898"  # SPRSound test: five annotated fine crackles (DAS)


def real_recording(shared_data: Path) -> tuple[np.ndarray, int, list[dict]]:
    import soundfile as sf

    base = shared_data / "sprsound2022" / "test"
    audio, rate = sf.read(base / "audio" / f"{RECORDING}.flac", dtype="int16")
    annotation = json.loads((base / "annotations" / f"{RECORDING}.json").read_text())
    events = sorted(annotation["event_annotation"], key=lambda e: int(e["start"]))
    cycles = []
    for n, item in enumerate(events):
        start, end = int(item["start"]) * rate // 1000, int(item["end"]) * rate // 1000
        cycles.append(ev.make_cycle(
            cycle_id=n, start=start, end=end, rate_hz=rate, wall_start=1.8e9 + start / rate,
            finding=event_to_four_class(item["type"]), p_crackle=0.9, p_wheeze=0.1,
            subtype=item["type"], t=1.8e9 + end / rate))
    return np.asarray(audio, dtype=np.int16), int(rate), cycles


def record_session(root: Path, audio: np.ndarray, rate: int, cycles: list[dict],
                   patient: str = "P-017") -> Path:
    recorder = Recorder(root, patient=patient, operator="nurse b", sites="sprsound")
    recorder.on_event(ev.make_hello(
        device_id="FT232R-X", firmware="1.2.0", nominal_rate_hz=rate, adc_bits=12,
        model_name="crnn-int8", model_version="0.3.1", model_hash="sha256:" + "ab" * 32,
        calibrated=True, transport="replay:" + RECORDING, simulated=False,
        clock_synchronised=False))
    pending = list(cycles)
    for start in range(0, audio.size, 160):
        recorder.on_audio(start, audio[start:start + 160], rate)
        while pending and pending[0]["end"] <= start + 160:
            recorder.on_event(pending.pop(0))
    flags = [(c["finding"] in ("Crackle", "Both"), c["finding"] in ("Wheeze", "Both"))
             for c in cycles]
    counts = {"Crackle": sum(1 for c in cycles if c["finding"] == "Crackle")}
    counts["Normal"] = len(cycles) - counts["Crackle"]
    assert all(not w for _, w in flags)
    recorder.on_event(ev.make_verdict(verdict="DAS", cycles=len(cycles),
                                      good_cycles=len(cycles), counts=counts))
    recorder.close()
    return recorder.session_dir


@pytest.fixture(scope="module")
def real(shared_data):
    return real_recording(shared_data)


def test_report_png_from_real_recording_has_shaded_cycles(tmp_path, real):
    from matplotlib.image import imread

    from steth.host.report import FINDING_COLOURS, SHADE_ALPHA, make_report

    audio, rate, cycles = real
    layout = make_report(audio, rate, cycles, ["verdict DAS (5 cycles)"], tmp_path / "r.png",
                         title=RECORDING)
    image = imread(tmp_path / "r.png")[:, :, :3]
    assert image.shape[:2] == (layout.height_px, layout.width_px) == (750, 1200)
    assert stat.S_IMODE(os.stat(tmp_path / "r.png").st_mode) == 0o600
    assert len(layout.spans_px) == len(cycles) == 5
    orange = np.array([int(FINDING_COLOURS["Crackle"][i:i + 2], 16) / 255 for i in (1, 3, 5)])
    shade = 1 - SHADE_ALPHA * (1 - orange)  # the shade over a white background
    left, _, right, bottom = layout.waveform_box
    row = bottom - 4  # below the waveform (y limits leave 15 % headroom), above the axis
    shaded_columns = np.zeros(layout.width_px, dtype=bool)
    for x0, x1, _ in layout.spans_px:
        shaded_columns[x0 + 2:x1 - 2] = True
        middle = image[row, (x0 + x1) // 2]
        assert np.allclose(middle, shade, atol=0.04), (middle, shade)
    plain = [x for x in range(left + 5, right - 5) if not shaded_columns[x - 3:x + 4].any()]
    assert plain and all(np.allclose(image[row, x], 1.0, atol=0.04) for x in plain[::25])
    # the spectrogram is drawn (not a blank panel): many distinct colours below the waveform
    spectrum = image[bottom + 80:bottom + 200, left + 60:right - 60].reshape(-1, 3)
    assert len(np.unique(np.round(spectrum, 2), axis=0)) > 50


def test_cli_report_show_export_delete_on_a_real_recording(tmp_path, real, capsys,
                                                          monkeypatch):
    audio, rate, cycles = real
    root = tmp_path / "rec"
    session = record_session(root, audio, rate, cycles)
    other = record_session(root, audio[:8000], rate, [], patient="P-018")
    monkeypatch.chdir(tmp_path)

    assert sessions.main(["--root", str(root), "list"]) == 0
    listing = capsys.readouterr().out
    assert session.name in listing and other.name in listing and "DAS" in listing

    assert sessions.main(["--root", str(root), "show", session.name]) == 0
    shown = capsys.readouterr().out
    assert "patient P-017" in shown and "Crackle 5" in shown
    assert "record verdict (findings, not a diagnosis): DAS (5 cycles)" in shown
    assert "not synchronised" in shown

    assert sessions.main(["--root", str(root), "report", session.name]) == 0
    png = take_folders(session)[0] / "report.png"
    assert png.stat().st_size > 20_000 and capsys.readouterr().out.strip() == str(png)

    before = set(tmp_path.iterdir())
    assert sessions.main(["--root", str(root), "export", session.name]) == 0
    zipped = tmp_path / f"{session.name}.zip"
    assert set(tmp_path.iterdir()) - before == {zipped}  # no temporary files left behind
    assert stat.S_IMODE(zipped.stat().st_mode) == 0o600
    names = set(zipfile.ZipFile(zipped).namelist())
    take = f"{session.name}/01-p1"
    assert {f"{session.name}/session.json", f"{take}/audio.flac", f"{take}/cycles.csv",
            f"{take}/cycles.jsonl", f"{take}/report.png", f"{take}/take.json"} <= names
    with zipfile.ZipFile(zipped) as archive, archive.open(f"{take}/audio.flac") as handle:
        import soundfile as sf

        exported, _ = sf.read(handle, dtype="int16")
    assert np.array_equal(exported, audio)
    assert sessions.main(["--root", str(root), "export", session.name]) == 1
    assert "exists" in capsys.readouterr().err

    assert sessions.main(["--root", str(root), "delete", "--yes", session.name]) == 0
    assert not session.exists()
    assert sorted(p.name for p in root.iterdir()) == [other.name]  # nothing stray, other kept
    assert sessions.main(["--root", str(root), "show", session.name]) == 1
    assert "no session" in capsys.readouterr().err


def test_export_refuses_an_interrupted_session(tmp_path, capsys):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(0, np.zeros(800, dtype=np.int16), 8000)
    recorder._take.sync()  # simulate a crash: the part file stays
    assert sessions.main(["--root", str(tmp_path), "export", recorder.session_dir.name,
                          "-o", str(tmp_path / "x.zip")]) == 1
    assert "recover" in capsys.readouterr().err and not (tmp_path / "x.zip").exists()
    assert sessions.main(["--root", str(tmp_path), "recover", recorder.session_dir.name]) == 0
    assert "1 takes, 0.1 s" in capsys.readouterr().out
    recorder._stop_flusher.set()


def test_reclassify_uses_the_given_classifier_and_keeps_originals(tmp_path):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(4000, np.arange(16000, dtype=np.int16), 8000)
    recorder.close()
    seen = []

    def classify(samples: np.ndarray, rate: int, clock):
        seen.append((samples.size, rate))
        yield ev.make_cycle(cycle_id=0, start=0, end=8000, rate_hz=rate, wall_start=clock(0),
                            finding="Wheeze", p_crackle=0.1, p_wheeze=0.8)

    args = sessions.build_parser().parse_args(
        ["--root", str(tmp_path), "reclassify", recorder.session_dir.name])
    out = sessions.run(args, classifier=classify)
    assert seen == [(16000, 8000)]
    assert out.splitlines()[1].split() == ["01-p1", "p1", "0", "1", "0", "0", "--", "->",
                                           "CAS"], out
    folder = take_folders(recorder.session_dir)[0]
    line = (folder / "cycles.reclassified.jsonl").read_text().splitlines()[0]
    assert parse_line(line)["start"] == 4000  # shifted to device indices
    assert (folder / "cycles.jsonl").read_text() == ""


def test_reclassify_without_pipeline_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.close()
    monkeypatch.setitem(sys.modules, "steth.edge.pipeline", None)
    assert sessions.main(["--root", str(tmp_path), "reclassify",
                          recorder.session_dir.name]) == 1
    err = capsys.readouterr().err
    assert err.startswith("steth-session: reclassify needs steth.edge.pipeline")
    assert err.count("\n") == 1


def test_report_without_matplotlib_says_pip_install(tmp_path, capsys, monkeypatch):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(0, np.ones(800, dtype=np.int16), 8000)
    recorder.close()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert sessions.main(["--root", str(tmp_path), "report", recorder.session_dir.name]) == 1
    assert capsys.readouterr().err == ("steth-session: reports need matplotlib: "
                                       "pip install matplotlib\n")


def test_runtime_modules_do_not_import_matplotlib():
    code = ("import sys, steth.host.dashboard, steth.host.recorder, steth.host.sessions, "
            "steth.host.remote, steth.host.listen, steth.host.review, steth.edge.events, "
            "steth.edge.event_server; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_recorder_draws_reports_on_close_or_refuses_without_matplotlib(tmp_path, monkeypatch):
    from steth.host.session_files import RecorderError

    recorder = Recorder(tmp_path, sites="p1", make_reports=True)
    tone = (np.sin(np.arange(8000) / 3) * 8000).astype(np.int16)
    recorder.on_audio(0, tone, 8000)
    recorder.on_event(ev.make_cycle(cycle_id=0, start=1000, end=5000, rate_hz=8000,
                                    wall_start=1.0, finding="Crackle", p_crackle=0.9,
                                    p_wheeze=0.1))
    recorder.close()
    png = take_folders(recorder.session_dir)[0] / "report.png"
    assert png.stat().st_size > 10_000 and stat.S_IMODE(png.stat().st_mode) == 0o600
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(RecorderError, match="pip install matplotlib"):
        Recorder(tmp_path, sites="p1", make_reports=True)


def test_reclassify_runs_the_streaming_pipeline_on_a_real_recording(tmp_path, real, capsys):
    """`steth-session reclassify` with the committed model on a recorded SPRSound take."""
    from steth.edge.pipeline import classify_recording

    audio, rate, annotated = real
    root = tmp_path / "rec"
    session = record_session(root, audio, rate, annotated)
    folder = take_folders(session)[0]
    original = (folder / "cycles.jsonl").read_text()

    assert sessions.main(["--root", str(root), "reclassify", session.name]) == 0
    out = capsys.readouterr().out
    rows = (folder / "cycles.reclassified.csv").read_text().splitlines()
    cycles = [parse_line(line) for line in
              (folder / "cycles.reclassified.jsonl").read_text().splitlines()]
    assert len(rows) == len(cycles) + 1 and cycles, out  # header + one row per cycle
    first = json.loads((session / "session.json").read_text())["takes"][0]["first_index"]
    assert all(first <= c["start"] < c["end"] <= first + audio.size for c in cycles)
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(cycles))
    # Same pipeline, same answer: the session command adds nothing of its own.
    direct = classify_recording(audio, rate)
    assert [(c["start"] - first, c["end"] - first, c["finding"]) for c in cycles] == \
        [(c["start"], c["end"], c["finding"]) for c in direct]
    # Five fine crackles are annotated in this recording: the model must report some.
    assert any(c["finding"] in ("Crackle", "Both") for c in cycles), cycles
    row = next(line.split() for line in out.splitlines() if line.startswith(folder.name))
    assert row[2:4] == ["5", str(len(cycles))], out
    assert (folder / "cycles.jsonl").read_text() == original  # the originals stay
    assert stat.S_IMODE((folder / "cycles.reclassified.csv").stat().st_mode) == 0o600


def test_reclassify_with_a_missing_model_is_a_one_line_error(tmp_path, capsys):
    recorder = Recorder(tmp_path, sites="p1")
    recorder.on_audio(0, np.zeros(8000, dtype=np.int16), 8000)
    recorder.close()
    assert sessions.main(["--root", str(tmp_path), "reclassify", recorder.session_dir.name,
                          "--model", str(tmp_path / "nope.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("steth-session: ") and "--model" in err and err.count("\n") == 1
