"""Benchmark: StreamDecoder throughput on a PCM16 stream (prints numbers, asserts nothing).

Run: .venv/bin/python tests/edge_io/bench_decode.py [minutes]
"""

from __future__ import annotations

import sys
import time

from steth.edge.decode import StreamDecoder
from steth.edge.simulate import PatientConfig
from steth.edge.transports.simulated import LinkFaults, SimulatedTransport


def main(minutes: float = 10.0) -> None:
    transport = SimulatedTransport(
        PatientConfig(seed=1), LinkFaults(crc_errors=20, garbage_bursts=20), speed=float("inf")
    )
    stream = bytearray()
    while len(stream) < minutes * 60 * 16_938:  # PCM16 at 8 kHz: ~16.9 kB/s incl. status
        stream += transport.read(0.0)
    decoder = StreamDecoder(start_monotonic=0.0)
    chunk = 4096
    started = time.perf_counter()
    for offset in range(0, len(stream), chunk):
        decoder.feed(bytes(stream[offset : offset + chunk]), offset / 16_938)
    elapsed = time.perf_counter() - started
    stats = decoder.stats()
    audio_s = stats.audio_samples / 8000
    print(f"decoded {len(stream) / 1e6:.1f} MB = {audio_s:.0f} s of audio in {elapsed:.2f} s")
    print(f"throughput {len(stream) / elapsed / 1e6:.2f} MB/s, {audio_s / elapsed:.0f}x real time")
    print(f"crc_errors={stats.crc_errors} gaps={stats.gaps} resyncs={stats.resyncs}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10.0)
