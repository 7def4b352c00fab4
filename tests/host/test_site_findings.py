"""Per-site findings: a take's verdict covers that take's own cycles (not other sites, not the
time before recording started), through the edge's record tally; the exam summary and the
report list the verdict of every site."""

from __future__ import annotations

import json

import numpy as np

from steth.edge import events as ev
from steth.host import review
from steth.host.recorder import Recorder

RATE = 8000
CYCLE = 3 * RATE


def hello() -> dict:
    return ev.make_hello(device_id="D1", firmware="1.2.0", nominal_rate_hz=RATE, adc_bits=12,
                         model_name="m", model_version="1", model_hash="sha256:ab",
                         calibrated=True, transport="serial:/dev/ttyUSB0", simulated=False)


def cycle(n: int, finding: str, settling: bool = False) -> dict:
    return ev.make_cycle(cycle_id=n, start=n * CYCLE, end=(n + 1) * CYCLE, rate_hz=RATE,
                         wall_start=1.8e9 + 3 * n, finding=finding, p_crackle=0.5,
                         p_wheeze=0.5, settling=settling)


class Edge:
    """What the edge sends: audio, cycle events and its stream-wide verdicts."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.n = 0
        self.findings: list[str] = []

    def breathe(self, finding: str) -> None:
        start = self.n * CYCLE
        for offset in range(0, CYCLE, 800):
            self.recorder.on_audio(start + offset, np.zeros(800, np.int16), RATE)
        self.recorder.on_event(cycle(self.n, finding))
        self.findings.append(finding)
        wheeze = any(f in ("Wheeze", "Both") for f in self.findings)
        crackle = any(f in ("Crackle", "Both") for f in self.findings)
        label = {(True, True): "CAS & DAS", (False, True): "CAS", (True, False): "DAS",
                 (False, False): "Normal"}[(crackle, wheeze)]
        counts = {name: self.findings.count(name) for name in set(self.findings)}
        self.recorder.on_event(ev.make_verdict(verdict=label, cycles=len(self.findings),
                                               good_cycles=len(self.findings), counts=counts))
        self.n += 1


def exam(tmp_path) -> Recorder:
    recorder = Recorder(tmp_path, patient="P-1", sites="p1,p2", recording=False)
    recorder.on_event(hello())
    edge = Edge(recorder)
    edge.breathe("Crackle")  # before recording started
    recorder.toggle()
    for finding in ("Wheeze", "Wheeze", "Normal"):
        edge.breathe(finding)
    recorder.next_site()
    for _ in range(3):
        edge.breathe("Normal")
    recorder.close()
    return recorder


def test_each_take_stores_the_verdict_of_its_own_cycles(tmp_path):
    recorder = exam(tmp_path)
    meta = json.loads((recorder.session_dir / "session.json").read_text())
    p1, p2 = meta["takes"]
    assert p1["site"] == "p1" and p1["verdict"]["verdict"] == "CAS"  # not the crackle before
    assert p1["verdict"]["cycles"] == 3
    assert p2["site"] == "p2" and p2["verdict"]["verdict"] == "Normal", p2["verdict"]
    assert p2["verdict"]["cycles"] == 3 and p2["verdict"]["counts"]["Normal"] == 3


def test_the_exam_summary_lists_each_site(tmp_path):
    recorder = exam(tmp_path)
    shown = review.format_session(recorder.session_dir)
    assert "site p1: CAS (3 cycles)" in shown, shown
    assert "site p2: Normal (3 cycles)" in shown, shown


def test_review_counts_come_from_the_edge_tally_without_settling_cycles():
    cycles = [cycle(0, "Wheeze", settling=True), cycle(1, "Crackle")]
    assert review.finding_counts(cycles) == {"Normal": 0, "Crackle": 1, "Wheeze": 0,
                                             "Both": 0, "poor": 0}


def test_the_report_lists_the_verdict_of_every_site(tmp_path, monkeypatch):
    recorder = exam(tmp_path)
    meta = review.load_session(recorder.session_dir)
    seen: dict = {}

    def fake_report(audio, rate, cycles, summary_lines, out_path, **kwargs):
        seen["lines"] = [*summary_lines, *kwargs.get("site_lines", ())]

    monkeypatch.setattr("steth.host.report.make_report", fake_report)
    review.report_take(recorder.session_dir, meta["takes"][1], meta)
    text = "\n".join(seen["lines"])
    assert "p1: CAS (3 cycles)" in text and "p2: Normal (3 cycles)" in text, text
