"""Small things a user sees: keys only when they work, whole words at 80 columns, a link
rate for now, one hello per device, a coded disk-full event."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from steth.edge import events as ev
from steth.edge.decode import LinkStats
from steth.edge.loading import load_model
from steth.edge.pipeline import Pipeline
from steth.edge.protocol import DeviceInfo
from steth.host.dashboard import DashboardActions, DashboardState, render_text
from steth.host.recorder import Recorder

T0 = 1_800_000_000.0


def hello() -> dict:
    return ev.make_hello(device_id="D1", firmware="1.2.0", nominal_rate_hz=8000, adc_bits=12,
                         model_name="m", model_version="1", model_hash="sha256:ab",
                         calibrated=True, transport="serial:/dev/ttyUSB0", simulated=False,
                         t=T0)


def footer_of(state: DashboardState) -> str:
    return render_text(state).splitlines()[-1]


def test_recording_keys_are_offered_only_when_a_recorder_is_attached(tmp_path):
    from steth.host.dashboard import keys_help

    not_recording = DashboardState()
    not_recording.keys_help = keys_help(DashboardActions(next_site=lambda: "p2",
                                                         quit=lambda: None))
    footer = footer_of(not_recording)
    assert "q quit" in footer and "n next site" in footer and "? help" in footer
    assert "r rec" not in footer and "m mark" not in footer
    recorder = Recorder(tmp_path, sites="p1,p2")
    recording = DashboardState()
    recording.keys_help = keys_help(recorder.actions(quit=lambda: None))
    recorder.close()
    footer = footer_of(recording)
    assert "r rec start/stop" in footer and "m mark" in footer and "n next site" in footer


def test_no_cycles_yet_is_shown_whole_at_80_columns():
    state = DashboardState()
    state.feed(hello())
    screen = render_text(state, 80, 24)
    assert "no cycles yet" in screen, screen


def link_stats(frames: int, started: float = 0.0) -> LinkStats:
    return LinkStats(bytes=frames * 100, frames=frames, crc_errors=0, gaps=0, resyncs=0,
                     skipped_bytes=0, measured_rate_hz=8000.0, nominal_rate_hz=8000,
                     last_frame_monotonic=None, started_monotonic=started)


def device_info(rate: int = 8000) -> DeviceInfo:
    return DeviceInfo(device_id=7, fw_major=1, fw_minor=2, fw_patch=0, sensor_type=0,
                      sample_rate_hz=rate, bit_depth=12, gain=1, codec=0, link=0,
                      frame_samples=256)


def pipeline(events: list[dict]) -> Pipeline:
    return Pipeline(load_model(), events.append, simulated=False, transport="serial")


def test_frames_per_second_is_the_last_interval_not_the_average_since_start():
    events: list[dict] = []
    pipe = pipeline(events)
    try:
        pipe.tick(1.0, link_stats(50))     # 50 frames in the first second
        pipe.tick(2.0, link_stats(50))     # then nothing: the device went silent
        pipe.tick(3.0, link_stats(50))
        pipe.tick(4.0, link_stats(80))     # 30 frames in the last second
    finally:
        pipe.close()
    rates = [e["frames_per_s"] for e in events if e["type"] == "link"]
    assert rates == [50.0, 0.0, 0.0, 30.0], rates


def test_one_hello_per_device_and_another_when_it_changes():
    events: list[dict] = []
    pipe = pipeline(events)
    try:
        pipe.handle(device_info(), 0.0)   # boot announcement
        pipe.handle(device_info(), 0.1)   # the same device answering GET_INFO
        pipe.handle(device_info(16000), 0.2)  # a device reset into another rate
    finally:
        pipe.close()
    hellos = [e for e in events if e["type"] == "hello"]
    assert [h["device"]["nominal_rate_hz"] for h in hellos] == [8000.0, 16000.0]


def test_edge_runner_sends_hello_once_at_stream_start():
    result = subprocess.run([sys.executable, "-m", "steth.edge.runner", "--simulate",
                             "--duration", "3"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    types = [json.loads(line)["type"] for line in result.stdout.splitlines() if line.strip()]
    assert types.count("hello") == 1, types[:10]


def full_disk(fd: int, data: bytes) -> int:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_warning_carries_the_disk_full_code(tmp_path):
    from steth.host.bedside import recorder_warning_sink

    events: list[dict] = []
    recorder = Recorder(tmp_path, sites="p1", write=full_disk,
                        on_warning=recorder_warning_sink(events.append))
    recorder.on_audio(0, np.zeros(800, dtype=np.int16), 8000)
    recorder.close()
    assert events and events[0]["code"] == "disk_full", events
    assert events[0]["message"].startswith("disk full: recording stopped, data kept")


def test_a_reader_that_closes_stdout_stops_edge_run_with_one_line(tmp_path):
    edge_run = str(Path(sys.executable).with_name("edge-run"))
    reader = subprocess.Popen([edge_run, "--simulate", "--no-dashboard", "--speed", "max"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout is not None and reader.stderr is not None
    first = reader.stdout.readline()  # what `| head -1` does before it closes the pipe
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert json.loads(first)["type"] == "hello"
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    lines = [line for line in err.splitlines() if "stdout" in line]
    assert len(lines) == 1 and "closed" in lines[0], err
    assert reader.returncode == 6, (reader.returncode, err)


def test_with_another_output_open_a_closed_stdout_does_not_stop_recording(tmp_path):
    edge_run = str(Path(sys.executable).with_name("edge-run"))
    events = tmp_path / "events.jsonl"
    reader = subprocess.Popen([edge_run, "--simulate", "--no-dashboard", "--speed", "10",
                               "--duration", "4", "--events-file", str(events)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert reader.stdout is not None
    reader.stdout.readline()
    reader.stdout.close()
    _, err = reader.communicate(timeout=60)
    assert reader.returncode == 0 and "Traceback" not in err, err
    assert "stdout" in err and "events file" in err, err
    kinds = [json.loads(line)["type"] for line in events.read_text().splitlines()]
    assert "cycle" in kinds  # the run went on after stdout closed
