#!/usr/bin/env python3
"""Write the golden vectors of docs/protocol.md as libFuzzer seed files.

Usage: make_seeds.py OUTPUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from golden import as_bytes, frame_bytes, load_vectors


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make_seeds.py OUTPUT_DIR", file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    stream = b""
    for vector in load_vectors():
        if vector["kind"] == "frame":
            data = frame_bytes(vector)
            stream += data
        elif vector["kind"] == "reject":
            data = as_bytes(vector["hex"])
        else:
            continue
        (out / f"{vector['name']}.bin").write_bytes(data)
        if vector["kind"] == "frame":
            # Sealed mode (first byte >= 0x80): the harness adds sync, length and CRC.
            (out / f"{vector['name']}.sealed.bin").write_bytes(b"\x80" + data[:-4])
    # A whole golden stream with noise in front: exercises resynchronisation.
    (out / "golden-stream.bin").write_bytes(b"\x00\xa5\x11\xa5" + stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
