"""A failing source's one-line message ("not found ... retrying") reaches the event stream, so
a console that covers stderr (the dashboard) can show it."""

from __future__ import annotations

from steth.edge.runner import SOURCE_ERROR_CODE, build_parser, open_session


class Collect:
    def __init__(self) -> None:
        self.events: list[dict] = []

    def write(self, event: dict) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


def test_a_missing_port_is_a_status_event_as_well_as_a_stderr_line(capsys):
    args = build_parser().parse_args(["--port", "/dev/does-not-exist", "--duration", "0.5"])
    sink = Collect()
    session = open_session(args, [sink])
    try:
        assert session.run() == 0
    finally:
        session.close()
    assert "/dev/does-not-exist" in capsys.readouterr().err
    problems = [e for e in sink.events if e["type"] == "status" and e["level"] == "warning"]
    assert problems, sink.events
    assert problems[0]["code"] == SOURCE_ERROR_CODE
    assert "/dev/does-not-exist" in problems[0]["message"]
    assert "retrying" in problems[0]["message"]
