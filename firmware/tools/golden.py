"""Read the golden vectors out of docs/protocol.md (the single source of truth).

Stdlib only: the firmware build runs it to generate a C header, and the Python protocol
tests import it, so both codecs are checked against the very same blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_BLOCK = re.compile(r"^```golden\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEX_KEYS = ("header", "payload", "crc", "hex", "data", "msg.data")


def load_vectors(spec: Path = SPEC) -> list[dict[str, str]]:
    """Return every golden block as an ordered ``key -> raw value`` dict.

    Raises
    ------
    ValueError
        On a malformed line, a duplicate key or a duplicate vector name.
    """
    vectors: list[dict[str, str]] = []
    for block in _BLOCK.findall(spec.read_text(encoding="utf-8")):
        vector: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if not sep or not key.strip() or key.strip() in vector:
                raise ValueError(f"bad golden line {line!r}")
            vector[key.strip()] = value.strip()
        if "name" not in vector or "kind" not in vector:
            raise ValueError(f"golden block without name/kind: {block!r}")
        vectors.append(vector)
    names = [v["name"] for v in vectors]
    if len(set(names)) != len(names):
        raise ValueError("duplicate golden vector names")
    return vectors


def as_int(value: str) -> int:
    """Parse a decimal or 0x-prefixed integer."""
    return int(value, 0)


def as_ints(value: str) -> list[int]:
    """Parse a whitespace-separated list of integers."""
    return [int(v, 0) for v in value.split()]


def as_bytes(value: str) -> bytes:
    """Parse whitespace-separated hex bytes."""
    return bytes.fromhex(value)


def frame_bytes(vector: dict[str, str]) -> bytes:
    """The wire bytes of a ``frame`` vector (header + payload + crc)."""
    return as_bytes(vector["header"]) + as_bytes(vector["payload"]) + as_bytes(vector["crc"])


def message_fields(vector: dict[str, str]) -> dict[str, str]:
    """The ``msg.*`` entries of a frame vector, prefix removed."""
    return {k[4:]: v for k, v in vector.items() if k.startswith("msg.")}
