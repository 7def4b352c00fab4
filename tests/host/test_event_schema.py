"""The event-stream schema: fixtures validate, builders agree with the docs, bad lines fail."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest

from steth.edge import events as ev
from steth.edge.event_schema import (
    EVENT_TYPES,
    MESSAGE_FIELDS,
    EventError,
    check,
    iter_jsonl,
    parse_line,
    validate,
    validate_stream,
)
from steth.edge.event_writers import FileWriter, StreamWriter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
NAMES = ("normal.jsonl", "simulated.jsonl", "gaps_stale.jsonl")


def load(name: str) -> list[dict]:
    return list(iter_jsonl(FIXTURES / name))


def _generator():
    spec = importlib.util.spec_from_file_location("gen_events", FIXTURES / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", NAMES)
def test_fixture_is_a_valid_stream(name):
    messages = load(name)
    assert messages[0]["type"] == "hello"
    assert validate_stream(messages) == []


def test_fixtures_cover_every_message_type():
    seen = {m["type"] for name in NAMES for m in load(name)}
    assert seen == set(EVENT_TYPES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_fixtures_equal_generator_output(name):
    assert (FIXTURES / name).read_text(encoding="utf-8") == _generator().render(name)


def test_every_simulated_event_is_flagged():
    messages = load("simulated.jsonl")
    assert all(m["simulated"] is True for m in messages)
    assert not any("simulated" in m and m["type"] != "hello" for m in load("normal.jsonl"))


def test_docs_name_every_type_and_field():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text()
    for kind, fields in MESSAGE_FIELDS.items():
        assert f"**{kind}**" in doc
        for field in fields:
            assert f"`{field}`" in doc, (kind, field)


def _first(name: str, kind: str) -> dict:
    return copy.deepcopy(next(m for m in load(name) if m["type"] == kind))


@pytest.mark.parametrize(("kind", "mutate", "expected"), [
    ("cycle", lambda m: m.update(finding="Rattle"), "finding"),
    ("cycle", lambda m: m.update(end=m["start"]), "end"),
    ("cycle", lambda m: m.update(duration_s=m["duration_s"] + 1), "duration_s"),
    ("cycle", lambda m: m.update(p_crackle=1.5), "p_crackle"),
    ("cycle", lambda m: m.pop("quality"), "quality: missing"),
    ("cycle", lambda m: m["quality"].update(status="meh"), "quality"),
    ("cycle", lambda m: m.update(start=True), "start"),
    ("cycle", lambda m: m.update(subtype=3), "subtype"),
    ("verdict", lambda m: m["counts"].update(Normal=99), "counts"),
    ("verdict", lambda m: m.update(verdict="Pneumonia"), "verdict"),
    ("hello", lambda m: m["model"].pop("calibrated"), "calibrated"),
    ("hello", lambda m: m.pop("simulated"), "simulated"),
    ("link", lambda m: m.update(crc_errors=-1), "crc_errors"),
    ("link", lambda m: m.update(battery_pct=140), "battery_pct"),
    ("level", lambda m: m.update(envelope=[0.1] * 65), "envelope"),
    ("level", lambda m: m.update(dbfs=3.0), "dbfs"),
    ("level", lambda m: m.update(v=2), "newer than supported"),
    ("level", lambda m: m.update(simulated=False), "simulated"),
    ("gap", lambda m: m.update(lost_samples=1), "lost_samples"),
    ("stale", lambda m: m.update(state="gone"), "state"),
])
def test_validator_rejects_bad_fields(kind, mutate, expected):
    source = "normal.jsonl" if kind not in ("gap", "stale") else "gaps_stale.jsonl"
    message = _first(source, kind)
    assert validate(message) == []
    mutate(message)
    errors = validate(message)
    assert any(expected in e for e in errors), errors
    with pytest.raises(EventError):
        check(message)


def test_audio_event_round_trips_samples():
    import numpy as np

    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    event = ev.make_audio(start=10, samples=samples, rate_hz=8000, t=1.0)
    assert validate(event) == []
    assert np.array_equal(ev.decode_audio(event), samples)
    event["n"] = 4
    assert any("length" in e for e in validate(event))


def test_parse_line_rejects_non_json_and_unknown_type():
    with pytest.raises(EventError, match="not a JSON line"):
        parse_line("{nope")
    with pytest.raises(EventError, match="type"):
        parse_line(json.dumps({"v": 1, "type": "weather", "t": 1.0}))
    with pytest.raises(EventError, match="finite"):
        parse_line('{"v":1,"type":"mark","t":NaN,"label":"","index":null,"source":"x"}')


def test_stream_rules_catch_unflagged_simulation_and_missing_hello():
    messages = load("simulated.jsonl")
    del messages[5]["simulated"]
    assert any("lacks simulated" in e for e in validate_stream(messages))
    assert any("start with hello" in e for e in validate_stream(load("normal.jsonl")[1:]))


def test_builders_clamp_level_and_mark_simulated():
    event = ev.make_level(index=1, dbfs=float("-inf"), envelope=[2.0, -1.0], phase="pause")
    assert event["dbfs"] == -200.0 and event["envelope"] == [1.0, 0.0]
    assert validate(ev.mark_simulated(event)) == []
    assert event["simulated"] is True


def test_file_writer_is_private_and_line_complete(tmp_path):
    path = tmp_path / "new" / "events.jsonl"
    writer = FileWriter(path, validate_events=True)
    for message in load("normal.jsonl")[:5]:
        writer.write(message)
    writer.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert [m["type"] for m in iter_jsonl(path)] == [m["type"] for m in load("normal.jsonl")[:5]]


def test_stream_writer_refuses_invalid_event_when_validating(capsys):
    writer = StreamWriter(sys.stdout, validate_events=True)
    writer.write(ev.make_mark(label="x", t=1.0))
    with pytest.raises(EventError):
        writer.write({"v": 1, "type": "mark", "t": 1.0})
    assert capsys.readouterr().out.count("\n") == 1
