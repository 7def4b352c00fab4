"""Edge pipeline performance (``steth-pipeline-bench``): prints numbers, asserts nothing.

Real SPRSound test recordings (resampled to the device's 8 kHz as ``--replay`` does, then
concatenated) are framed in the wire protocol and pushed through the edge exactly as
``edge-run`` runs it: decode -> filter -> features -> detector -> inference thread -> events
(:class:`edge.pipeline.Pipeline`). The process is pinned to one core (``--core``) and the
model runs with one thread; torch is never imported.

1. Throughput: offline (the inference queue blocks instead of dropping), as a multiple of
   real time, by wall clock and by process CPU time. Target >= 50x.
2. Latency: real-time pacing (one 20 ms protocol frame every 20 ms); each cycle event's
   ``latency_ms`` (detector closes the cycle -> event emitted). Target p95 <= 300 ms.
3. CPU share of one core over the same real-time run (process CPU time / wall). Target
   <= 10 %.
4. Peak RSS (``VmHWM``): of an ``edge-run --replay ... --speed max --no-dashboard`` child
   (the real edge process) and of this process. Target <= 200 MB. Not ``ru_maxrss``: a
   forked child inherits its parent's high-water mark, even across exec.
5. Instruction counts with ``valgrind --tool=callgrind`` (apt: valgrind), by difference of
   two workload sizes so interpreter start-up and imports cancel: per second of audio for
   DSP + features + detector (decoded chunks, inference not submitted) and per model
   window; MACs per window from :func:`models.nets.conv_macs` (in a torch subprocess).
6. The Raspberry Pi 4 budget those imply, with the assumptions printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from steth.edge.assets import default_model_path
from steth.edge.decode import AudioChunk, StreamDecoder
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel, ModelError, cycle_windows
from steth.edge.pipeline import FAST_BLOCK_S, Pipeline
from steth.edge.protocol import NOMINAL_SAMPLE_RATE_HZ
from steth.edge.transports.framing import PcmStreamFramer, host_device_info
from steth.edge.transports.replay import load_replay_audio
from steth.models.datasets import DataError, default_data_root, load_sprsound

DEFAULT_MODEL = default_model_path()
RATE = NOMINAL_SAMPLE_RATE_HZ
FRAME_SAMPLES = 160  # 20 ms: what the wired firmware sends (docs/protocol.md 4.2)
TICK_EVERY_S = 0.04  # edge-run ticks after every read: ~ every frame or two when live
LINK_TICK_S = 1.0  # the cadence link events need: shows what per-read ticking costs
CALLGRIND_AUDIO_S = (5.0, 25.0)  # two DSP workload sizes; their difference is measured
CALLGRIND_WINDOWS = (10, 60)  # two inference workload sizes
TARGETS = {"throughput_x": 50.0, "latency_p95_ms": 300.0, "cpu_share": 0.10, "rss_mb": 200.0}
# Raspberry Pi 4 assumptions (section 6). x86-64 -> AArch64 instruction count ratio: numpy,
# scipy and onnxruntime use 256-bit AVX2 here and 128-bit NEON there; the Cortex-A72 has no
# int8 dot-product instructions (ARMv8.0). IPC: the A72 is 3-wide out of order; 0.7-1.2 is
# the usual range for interpreter + vectorised DSP code.
PI_CLOCK_HZ = (1.5e9, 1.8e9)
PI_IPC = (0.7, 1.2)
ARM_INSTRUCTION_RATIO = (1.0, 2.0)
PI_INT8_MACS_PER_CYCLE = (4.0, 8.0)  # NEON smull/smlal int8 GEMM, realistic not peak


@dataclass
class Stream:
    """Concatenated device audio and its wire-protocol frames."""

    pcm: np.ndarray  # int16 at RATE
    blobs: list[bytes]  # blobs[0] is DeviceInfo; then one 20 ms audio frame (+ Status) each
    recordings: int

    @property
    def seconds(self) -> float:
        return self.pcm.size / RATE


def load_pcm(data_root: Path, min_seconds: float) -> tuple[np.ndarray, int]:
    """SPRSound test recordings (sorted ids, in order), as ``--replay`` reads them, until
    ``min_seconds`` of audio; returns the int16 samples and how many recordings."""
    parts, total = [], 0
    for rec in load_sprsound(data_root, "test"):
        parts.append(load_replay_audio(rec.audio_path, RATE))
        total += parts[-1].size
        if total >= min_seconds * RATE:
            break
    return np.concatenate(parts), len(parts)


def load_stream(data_root: Path, min_seconds: float) -> Stream:
    """The audio of :func:`load_pcm` framed in the wire protocol, 20 ms per frame."""
    pcm, used = load_pcm(data_root, min_seconds)
    framer = PcmStreamFramer(host_device_info(0x42454E43, RATE, frame_samples=FRAME_SAMPLES))
    blobs = [framer.start()]
    for start in range(0, pcm.size - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        blobs.append(b"".join(framer.audio(pcm[start:start + FRAME_SAMPLES])))
    return Stream(pcm, blobs, used)


class Sink:
    """Thread-safe event collector (cycle events arrive from the inference thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[dict] = []

    def __call__(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)

    def cycles(self) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e["type"] == "cycle"]


def count_windows(model: CycleModel) -> list[int]:
    """Record how many model windows each cycle needs (wraps the instance's method)."""
    counts: list[int] = []
    original = model.predict_cycle

    def predict_cycle(frames: np.ndarray):  # type: ignore[no-untyped-def]
        counts.append(cycle_windows(frames, model.window).shape[0])
        return original(frames)

    model.predict_cycle = predict_cycle  # type: ignore[method-assign]
    return counts


def measure_throughput(model: CycleModel, stream: Stream, tick_every_s: float) -> dict:
    """Whole pipeline as fast as it goes (offline: inference blocks, nothing dropped).

    ``Pipeline.tick(now, decoder.stats())`` runs every ``tick_every_s`` of stream time, as
    ``edge-run`` calls it after every read.
    """
    sink = Sink()
    windows = count_windows(model)
    decoder = StreamDecoder()
    pipe = Pipeline(model, sink, simulated=False, transport="bench", offline=True,
                    block_s=FAST_BLOCK_S)
    frames_per_tick = max(1, round(tick_every_s * RATE / FRAME_SAMPLES))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for i, blob in enumerate(stream.blobs):
        now = i * FRAME_SAMPLES / RATE  # stream time: the offline clock
        for item in decoder.feed(blob, now):
            pipe.handle(item, now)
        if i % frames_per_tick == 0:
            pipe.tick(now, decoder.stats())
    pipe.close(timeout=None)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    del model.predict_cycle  # the counting wrapper
    cycles = sink.cycles()
    return {"audio_s": stream.seconds, "wall_s": wall, "cpu_s": cpu,
            "x_realtime_wall": stream.seconds / wall, "x_realtime_cpu": stream.seconds / cpu,
            "cycles": len(cycles), "windows": int(sum(windows)),
            "windows_per_cycle": float(np.mean(windows)) if windows else 0.0,
            "cycles_per_audio_s": len(cycles) / stream.seconds,
            "events": len(sink.events), "tick_every_s": tick_every_s}


def measure_realtime(model: CycleModel, stream: Stream, seconds: float) -> dict:
    """Stream at real-time pace for ``seconds``: cycle latency and CPU share of one core."""
    sink = Sink()
    decoder = StreamDecoder()
    pipe = Pipeline(model, sink, simulated=False, transport="bench", block_s=FAST_BLOCK_S)
    n_blobs = min(len(stream.blobs), 1 + int(seconds * RATE / FRAME_SAMPLES))
    frame_s = FRAME_SAMPLES / RATE
    wall0, cpu0 = time.monotonic(), time.process_time()
    for i in range(n_blobs):
        delay = wall0 + i * frame_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        for item in decoder.feed(stream.blobs[i], now):
            pipe.handle(item, now)
        pipe.tick(now, decoder.stats())
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    pipe.close(timeout=10.0)
    latencies = np.array([c["latency_ms"] for c in sink.cycles()])
    dropped = pipe.worker.dropped
    return {"wall_s": wall, "cpu_s": cpu, "cpu_share": cpu / wall, "cycles": latencies.size,
            "dropped": dropped,
            "latency_ms_p50": float(np.percentile(latencies, 50)) if latencies.size else None,
            "latency_ms_p95": float(np.percentile(latencies, 95)) if latencies.size else None,
            "latency_ms_max": float(latencies.max()) if latencies.size else None}


def peak_rss_mb(status_path: str = "/proc/self/status") -> float | None:
    """VmHWM of a process: its own peak RSS. (``ru_maxrss`` of a child is no use here: a
    forked child inherits the parent's high-water mark, even across exec.)"""
    try:
        text = Path(status_path).read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s*(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) / 1024.0 if match else None


# Runs edge-run in-process and reports its own VmHWM at exit (stdout carries the events);
# imports nothing else, so the number is edge-run's.
EDGE_RUN_WRAPPER = (
    "import sys\nfrom steth.host import bedside\n"
    "try:\n    status = bedside.main(sys.argv[1:])\n"
    "finally:\n    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "    print('VmHWM_MB', int(hwm[0].split()[1]) / 1024 if hwm else 'nan', file=sys.stderr)\n"
    "sys.exit(status)\n")


def measure_edge_run_rss(model_path: Path, audio_path: Path, core: int | None) -> dict:
    """Peak RSS and CPU of a real ``edge-run --replay`` process (stdout discarded)."""
    command = [sys.executable, "-c", EDGE_RUN_WRAPPER, "--replay", str(audio_path), "--speed",
               "max", "--no-dashboard", "--model", str(model_path)]
    if core is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(core), *command]
    wall0 = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    stderr = proc.stderr.read() if proc.stderr else ""
    exit_code = os.waitstatus_to_exitcode(status)
    match = re.search(r"VmHWM_MB ([\d.]+)", stderr)
    return {"exit": exit_code, "peak_rss_mb": float(match.group(1)) if match else None,
            "cpu_s": usage.ru_utime + usage.ru_stime, "wall_s": time.perf_counter() - wall0}


# ---------------------------------------------------------------- callgrind

def run_workload(kind: str, amount: float, model_path: Path, data_root: Path) -> None:
    """The fixed workloads callgrind counts (run in a child under valgrind)."""
    model = CycleModel(model_path, threads=1)
    if kind == "infer":
        rng = np.random.default_rng(0)
        window = rng.normal(-10.0, 3.0, size=(1, model.window, model.manifest.feature_config
                                              .n_mels)).astype(np.float32)
        for _ in range(int(amount)):
            model.predict_windows(window)
        return
    # Load the same audio for every size, so loading cancels in the difference.
    pcm = load_pcm(data_root, max(CALLGRIND_AUDIO_S))[0][:int(amount * RATE)]
    # "dsp" is the front end as edge-run runs it (blocks); "dsp-plain" a chunk at a time.
    pipe = Pipeline(model, lambda _event: None, simulated=False, transport="callgrind",
                    offline=True, block_s=0.0 if kind == "dsp-plain" else FAST_BLOCK_S)
    pipe.worker.submit = lambda _job: True  # type: ignore[method-assign]  # DSP only
    pipe.handle(host_device_info(0, RATE, frame_samples=FRAME_SAMPLES), 0.0)
    for start in range(0, pcm.size, FRAME_SAMPLES):
        pipe.handle(AudioChunk(start, pcm[start:start + FRAME_SAMPLES], RATE), start / RATE)
    pipe.finish(pcm.size / RATE)
    pipe.close(timeout=None)


def callgrind_instructions(kind: str, amount: float, model_path: Path, data_root: Path,
                           valgrind: str) -> int:
    with tempfile.TemporaryDirectory(prefix="steth-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}",
                   sys.executable, "-m", "steth.models.pipeline_bench", "--workload", kind,
                   "--amount", str(amount), "--model", str(model_path), "--data",
                   str(data_root)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            tail = " ".join(result.stderr.strip().splitlines()[-3:])
            raise RuntimeError(f"callgrind run failed ({tail})")
        match = re.search(r"^(?:summary|totals):\s*(\d+)", out.read_text(errors="replace"),
                          re.MULTILINE)
        if match is None:
            raise RuntimeError("no instruction total in the callgrind output")
        return int(match.group(1))


def measure_callgrind(model_paths: list[Path], data_root: Path) -> dict:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {"error": "valgrind not installed (apt-get install -y valgrind)"}
    small, large = CALLGRIND_AUDIO_S
    result: dict = {"per_window": {}, "block_s": FAST_BLOCK_S}
    for kind, key in (("dsp", "dsp_instructions_per_audio_s"),
                      ("dsp-plain", "dsp_plain_instructions_per_audio_s")):
        dsp = (callgrind_instructions(kind, large, model_paths[0], data_root, valgrind)
               - callgrind_instructions(kind, small, model_paths[0], data_root, valgrind))
        result[key] = dsp / (large - small)
    few, many = CALLGRIND_WINDOWS
    for path in model_paths:
        infer = (callgrind_instructions("infer", many, path, data_root, valgrind)
                 - callgrind_instructions("infer", few, path, data_root, valgrind))
        result["per_window"][path.name] = infer / (many - few)
    return result


def measure_window_cpu_ms(model_paths: list[Path], n: int = 200) -> dict[str, float]:
    """Median CPU milliseconds per single-window ``predict_windows`` call, per model (CPU
    time, so other jobs on a shared machine do not inflate it)."""
    result = {}
    for path in model_paths:
        model = CycleModel(path, threads=1)
        window = np.random.default_rng(0).normal(
            -10.0, 3.0, size=(1, model.window, model.manifest.feature_config.n_mels)
        ).astype(np.float32)
        model.predict_windows(window)  # warm-up: first call allocates
        times = []
        for _ in range(n):
            start = time.thread_time()
            model.predict_windows(window)
            times.append((time.thread_time() - start) * 1e3)
        result[path.name] = float(np.median(times))
    return result


def window_macs(model_path: Path) -> int | None:
    """MACs per model window from :func:`models.nets.conv_macs`, in a torch subprocess so
    this process stays torch-free."""
    manifest = json.loads(Path(str(model_path) + ".manifest.json").read_text())
    net = manifest.get("training", {}).get("config", {}).get("net")
    if net is None:
        return None
    code = ("import json,sys\nfrom models.nets import BreathNet, BreathNetConfig, conv_macs\n"
            "net=json.loads(sys.argv[1]); shape=json.loads(sys.argv[2])\n"
            "cfg=BreathNetConfig(**{k: tuple(v) if isinstance(v, list) else v "
            "for k, v in net.items()})\n"
            "print(conv_macs(BreathNet(cfg), tuple(shape)))")
    result = subprocess.run([sys.executable, "-c", code, json.dumps(net),
                             json.dumps(manifest["input"]["shape"])],
                            capture_output=True, text=True, check=False)
    return int(result.stdout.strip()) if result.returncode == 0 else None


# ---------------------------------------------------------------- Pi 4 budget

def pi_budget(dsp_ips: float, window_instr: float, windows_per_cycle: float,
              cycles_per_s: float, macs: int | None) -> dict:
    """Seconds of one Cortex-A72 core per second of audio and per cycle, best..worst."""
    best = ARM_INSTRUCTION_RATIO[0] / (PI_IPC[1] * PI_CLOCK_HZ[1])
    worst = ARM_INSTRUCTION_RATIO[1] / (PI_IPC[0] * PI_CLOCK_HZ[0])
    cycle_instr = window_instr * windows_per_cycle
    out = {
        "dsp_core_share": (dsp_ips * best, dsp_ips * worst),
        "inference_ms_per_cycle": (cycle_instr * best * 1e3, cycle_instr * worst * 1e3),
        "inference_core_share": (cycle_instr * cycles_per_s * best,
                                 cycle_instr * cycles_per_s * worst),
    }
    total = [out["dsp_core_share"][i] + out["inference_core_share"][i] for i in (0, 1)]
    out["total_core_share"] = tuple(total)
    out["x_realtime_one_core"] = (1.0 / total[1], 1.0 / total[0])
    if macs:
        out["mac_bound_ms_per_window"] = tuple(
            macs / (m * f) * 1e3 for m, f in ((PI_INT8_MACS_PER_CYCLE[1], PI_CLOCK_HZ[1]),
                                              (PI_INT8_MACS_PER_CYCLE[0], PI_CLOCK_HZ[0])))
    return out


# ---------------------------------------------------------------- report

def verdict(value: float | None, target: float, higher_is_better: bool) -> str:
    if value is None:
        return "not measured"
    ok = value >= target if higher_is_better else value <= target
    ratio = value / target
    return "meets target" if ok else f"MISSES target by {abs(1 - ratio) * 100:.0f} %"


def print_report(report: dict) -> None:
    t = report.get("throughput")
    if t:
        print(f"[1] throughput: {t['audio_s']:.1f} s of audio ({report['recordings']} SPRSound "
              f"test recordings) in {t['wall_s']:.2f} s wall / {t['cpu_s']:.2f} s CPU on core "
              f"{report['core']}: {t['x_realtime_wall']:.1f}x real time (wall), "
              f"{t['x_realtime_cpu']:.1f}x (CPU); {t['cycles']} cycles, "
              f"{t['windows_per_cycle']:.2f} windows/cycle -> "
              f"{verdict(t['x_realtime_wall'], TARGETS['throughput_x'], True)} (>= 50x; by "
              f"CPU time {verdict(t['x_realtime_cpu'], TARGETS['throughput_x'], True)}); "
              f"tick every {t['tick_every_s'] * 1000:.0f} ms of stream")
    t1 = report.get("throughput_1hz_ticks")
    if t1:
        print(f"    same with ticks once a second: {t1['x_realtime_wall']:.1f}x (wall), "
              f"{t1['x_realtime_cpu']:.1f}x (CPU) -- the difference is decoder.stats() per tick")
    r = report.get("realtime")
    if r:
        p95 = r["latency_ms_p95"]
        print(f"[2] latency (real time, {r['wall_s']:.0f} s, {r['cycles']} cycles, "
              f"{r['dropped']} dropped): cycle closed -> event p50 "
              f"{r['latency_ms_p50'] or float('nan'):.1f} ms, p95 {p95 or float('nan'):.1f} ms,"
              f" max {r['latency_ms_max'] or float('nan'):.1f} ms -> "
              f"{verdict(p95, TARGETS['latency_p95_ms'], False)} (<= 300 ms)")
        print(f"[3] CPU while streaming in real time: {r['cpu_s']:.2f} s CPU over "
              f"{r['wall_s']:.1f} s = {100 * r['cpu_share']:.1f} % of one core -> "
              f"{verdict(r['cpu_share'], TARGETS['cpu_share'], False)} (<= 10 %)")
    m = report.get("rss")
    if m:
        e = m["edge_run"]
        print(f"[4] peak RSS (VmHWM): edge-run --replay --speed max (exit {e['exit']}, "
              f"{e['cpu_s']:.1f} s CPU) {e['peak_rss_mb'] or float('nan'):.1f} MB -> "
              f"{verdict(e['peak_rss_mb'], TARGETS['rss_mb'], False)} (<= 200 MB); this "
              f"benchmark process {m['this_process_mb'] or float('nan'):.1f} MB")
    c = report.get("callgrind")
    if c and "error" not in c:
        print(f"[5] callgrind (x86-64 instructions): DSP+features+detector "
              f"{c['dsp_instructions_per_audio_s'] / 1e6:.1f} M per second of audio as "
              f"edge-run runs it ({1000 * c['block_s']:.0f} ms blocks) -> "
              f"{verdict(c['dsp_instructions_per_audio_s'], 15e6, False)} (<= 15 M); "
              f"{c['dsp_plain_instructions_per_audio_s'] / 1e6:.1f} M one "
              f"{1000 * FRAME_SAMPLES / RATE:.0f} ms frame at a time")
        for name, n in c["per_window"].items():
            print(f"    inference {name}: {n / 1e6:.2f} M per window (CycleModel."
                  f"predict_windows, one window)")
    elif c:
        print(f"[5] callgrind: {c['error']}")
    for name, ms in report.get("window_cpu_ms", {}).items():
        print(f"    CPU time per window {name}: {ms:.2f} ms median (one thread, this machine)")
    if report.get("macs"):
        print(f"    MACs per window {report['macs'] / 1e6:.1f} M (models.nets.conv_macs); per "
              f"cycle {report['macs'] * report['throughput']['windows_per_cycle'] / 1e6:.1f} M")
    b = report.get("pi4")
    if b:
        print("[6] Raspberry Pi 4 (Cortex-A72) budget, best..worst case; assumptions: clock "
              f"{PI_CLOCK_HZ[0] / 1e9:.1f}-{PI_CLOCK_HZ[1] / 1e9:.1f} GHz, IPC "
              f"{PI_IPC[0]}-{PI_IPC[1]}, AArch64/x86-64 instruction ratio "
              f"{ARM_INSTRUCTION_RATIO[0]}-{ARM_INSTRUCTION_RATIO[1]}, one core, "
              f"{report['throughput']['cycles_per_audio_s'] * 60:.0f} cycles/min as measured")
        for key, (lo, hi) in b.items():
            if "share" in key:
                print(f"    {key}: {100 * lo:.1f} .. {100 * hi:.1f} % of one core")
            else:
                print(f"    {key}: {lo:.2f} .. {hi:.2f}")


def pin_to_core(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})  # threads started later (inference, ORT) inherit it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-pipeline-bench",
        description="Edge pipeline performance on real SPRSound audio: throughput, cycle "
                    "latency, CPU share, RSS, callgrind instruction counts and the Pi 4 "
                    "budget they imply. Prints numbers; asserts nothing.")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--also-model", type=Path, action="append", default=[],
                        help="more models to count per-window instructions for (callgrind)")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--core", type=int, default=0, help="pin to this core (-1: no pin)")
    parser.add_argument("--throughput-seconds", type=float, default=300.0,
                        help="audio for the throughput run (default 300 s)")
    parser.add_argument("--realtime-seconds", type=float, default=60.0,
                        help="length of the real-time streaming run (default 60 s)")
    parser.add_argument("--skip-realtime", action="store_true")
    parser.add_argument("--skip-callgrind", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--workload", choices=("dsp", "dsp-plain", "infer"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--amount", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    core = None if args.core < 0 else args.core
    try:
        if args.workload:
            run_workload(args.workload, args.amount, args.model, args.data)
            return 0
        pin_to_core(core)
        model = CycleModel(args.model, expected_feature_hash=FeatureConfig().hash(),
                           threads=1)
        stream = load_stream(args.data, max(args.throughput_seconds, args.realtime_seconds))
    except (ModelError, DataError) as exc:
        print(f"steth-pipeline-bench: {exc}", file=sys.stderr)
        return 2
    report: dict = {"model": str(args.model), "core": core, "recordings": stream.recordings,
                    "torch_loaded": "torch" in sys.modules}
    report["throughput"] = measure_throughput(model, stream, TICK_EVERY_S)
    report["throughput_1hz_ticks"] = measure_throughput(model, stream, LINK_TICK_S)
    if not args.skip_realtime:
        report["realtime"] = measure_realtime(model, stream, args.realtime_seconds)
    first = load_sprsound(args.data, "test")[0]
    report["rss"] = {"this_process_mb": peak_rss_mb(),
                     "edge_run": measure_edge_run_rss(args.model, first.audio_path, core)}
    report["window_cpu_ms"] = measure_window_cpu_ms([args.model, *args.also_model])
    if not args.skip_callgrind:
        report["callgrind"] = measure_callgrind([args.model, *args.also_model], args.data)
    report["macs"] = window_macs(args.model)
    c = report.get("callgrind")
    if c and "error" not in c:
        t = report["throughput"]
        report["pi4"] = pi_budget(c["dsp_instructions_per_audio_s"],
                                  c["per_window"][args.model.name], t["windows_per_cycle"],
                                  t["cycles_per_audio_s"], report["macs"])
    print(f"model {args.model.name}, torch imported: {report['torch_loaded']}")
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
