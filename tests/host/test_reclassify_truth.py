"""`steth-session reclassify` tells the truth about a recorded take.

A real SPRSound recording is replayed through ``edge-run`` at ten times real time into a
session, as a user would record one, and then re-classified. The re-run keeps the take's
own clock, has no latency to report, says why its cycle count differs from the live run's,
and prints a table.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from steth.edge.event_schema import parse_line
from steth.host import sessions
from steth.host.session_files import take_folders
from tests.host.test_sessions import real_recording

EDGE_RUN = str(Path(sys.executable).with_name("edge-run"))


@pytest.fixture(scope="module")
def recorded(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """(sessions root, session folder) of a real recording replayed live at speed 10."""
    import soundfile as sf

    audio, rate, _ = real_recording(shared_data)
    base = tmp_path_factory.mktemp("reclassify")
    wav = base / "take.wav"
    sf.write(wav, audio, rate, subtype="PCM_16")
    root = base / "rec"
    result = subprocess.run(
        [EDGE_RUN, "--replay", str(wav), "--speed", "10", "--no-dashboard", "--record",
         str(root), "--patient", "P-017", "--sites", "p1", "--duration", "8"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (session,) = [p for p in root.iterdir() if p.is_dir()]
    return root, session


def jsonl(path: Path) -> list[dict]:
    return [parse_line(line) for line in path.read_text().splitlines() if line.strip()]


def reclassify(root: Path, session: Path, capsys) -> str:
    assert sessions.main(["--root", str(root), "reclassify", session.name]) == 0
    return capsys.readouterr().out


def test_reclassified_cycles_keep_the_recordings_clock(recorded, capsys):
    root, session = recorded
    reclassify(root, session, capsys)
    take = json.loads((session / "session.json").read_text())["takes"][0]
    folder = take_folders(session)[0]
    live = {(c["start"], c["end"]): c for c in jsonl(folder / "cycles.jsonl")}
    again = jsonl(folder / "cycles.reclassified.jsonl")
    assert live and again
    end_unix = take["started_unix"] + take["duration_s"]
    for cycle in again:
        # Inside the take, not at the moment of re-classification.
        assert take["started_unix"] - 1.0 <= cycle["wall_start"] <= end_unix, cycle
    same = [(c, live[(c["start"], c["end"])]) for c in again if (c["start"], c["end"]) in live]
    assert same
    for new, old in same:
        assert abs(new["wall_start"] - old["wall_start"]) < 0.5, (new, old)
    # The re-run follows the take's clock cycle by cycle: later cycles start later, at the
    # live pace (a replay at speed 10 runs ten times faster than its audio).
    starts = [c["wall_start"] for c in sorted(again, key=lambda c: c["start"])]
    assert all(b > a for a, b in itertools.pairwise(starts)), starts
    for new, old in same:
        assert abs(new["wall_start"] - old["wall_start"]) < 0.1, (new, old)


def test_live_cycles_replayed_fast_start_inside_the_session(recorded):
    _, session = recorded
    meta = json.loads((session / "session.json").read_text())
    folder = take_folders(session)[0]
    live = jsonl(folder / "cycles.jsonl")
    assert live
    assert min(c["wall_start"] for c in live) >= meta["created_unix"] - 0.5, live[0]


def test_reclassified_latency_is_not_applicable(recorded, capsys):
    root, session = recorded
    reclassify(root, session, capsys)
    folder = take_folders(session)[0]
    again = jsonl(folder / "cycles.reclassified.jsonl")
    assert again and all(c["latency_ms"] is None for c in again)
    rows = (folder / "cycles.reclassified.csv").read_text().splitlines()
    column = rows[0].split(",").index("latency_ms")
    assert all(row.split(",")[column] == "" for row in rows[1:])


def test_reclassify_prints_a_table_that_explains_the_counts(recorded, capsys):
    root, session = recorded
    out = reclassify(root, session, capsys)
    folder = take_folders(session)[0]
    live = jsonl(folder / "cycles.jsonl")
    again = jsonl(folder / "cycles.reclassified.jsonl")
    assert "{" not in out and "}" not in out
    lines = out.splitlines()
    header = lines[0].split()
    assert header[:4] == ["take", "site", "live", "re-run"], out
    row = next(line.split() for line in lines if line.startswith(folder.name))
    assert row[1] == "p1" and int(row[2]) == len(live) and int(row[3]) == len(again)
    live_spans = {(c["start"], c["end"]) for c in live}
    only_new = [c for c in again if (c["start"], c["end"]) not in live_spans]
    tail = [c for c in only_new if c["start"] >= max(c["end"] for c in live)]
    if len(again) != len(live):
        assert "differ" in out, out
    if tail:
        # The live stream never closes the breath still open when it stops; a re-run of
        # the file does, and says so.
        assert f"{len(tail)} closed at the end of the audio" in out, out
