"""Decision fields pinned inside the model file, so an edited manifest is refused at load.

The sidecar manifest pins the weights by SHA-256, but the manifest itself is plain JSON: a
threshold, a temperature, the record-verdict rule, the normaliser or the guard could be
edited without anything noticing, while every event would still name the same model. Each
exporter therefore writes one digest per decision field *into the model file* (ONNX
``metadata_props``, TFLite ``metadata``, an extra array in the detector's ``.npz``) before
the manifest takes the file's SHA-256. At load, every field is re-digested and compared, and
a difference names the field.

Reading needs neither ``onnx`` nor TensorFlow: the ONNX file is walked as protobuf wire
format, the TFLite file as a FlatBuffer. Writing a TFLite file needs ai-edge-litert's
schema (the ``tflite`` extra); ONNX and ``.npz`` need nothing beyond numpy.

Examples
--------
>>> digests = field_digests({"thresholds": {"crackle": 0.6}}, ("thresholds",))
>>> sorted(digests)
['thresholds']
>>> len(digests["thresholds"])
64
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

METADATA_KEY = "steth.decision_digests"
# What changes a classifier's findings or how they are labelled and reported.
MODEL_DECISION_FIELDS = ("name", "version", "feature_config", "feature_hash", "input",
                         "outputs", "thresholds", "calibration", "verdict_rule", "guard")
# What changes where the detector puts cycle boundaries.
DETECTOR_DECISION_FIELDS = ("name", "version", "feature_config", "feature_hash", "channels",
                            "dilations", "lookahead_frames", "norm_tau_frames")
NPZ_MEMBER = METADATA_KEY.replace(".", "_")  # an .npz array name must be an identifier

_ONNX_METADATA_FIELD = 14  # ModelProto.metadata_props (repeated StringStringEntryProto)
_TFLITE_MODEL_BUFFERS = 4
_TFLITE_MODEL_METADATA = 6


class ModelPinError(Exception):
    """The model file's pinned decision fields are missing or differ from the manifest."""


def field_digests(data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, str]:
    """SHA-256 of each field's canonical JSON (an absent field digests as ``null``)."""
    return {name: _digest(data.get(name)) for name in fields}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def embed(path: Path, digests: Mapping[str, str]) -> None:
    """Write ``digests`` into the model file at ``path``, replacing any earlier ones."""
    path = Path(path)
    payload = json.dumps(dict(digests), sort_keys=True).encode()
    writer = {".onnx": _embed_onnx, ".tflite": _embed_tflite, ".npz": _embed_npz}.get(
        path.suffix)
    if writer is None:
        raise ModelPinError(f"{path}: cannot pin decision fields in a {path.suffix} file")
    blob = writer(path.read_bytes(), payload)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


def embedded(path: Path) -> dict[str, str] | None:
    """The digests pinned inside the model file, or None when it carries none."""
    path = Path(path)
    reader = {".onnx": _read_onnx, ".tflite": _read_tflite, ".npz": _read_npz}.get(
        path.suffix)
    if reader is None:
        return None
    try:
        payload = reader(path.read_bytes())
    except (ValueError, struct.error, IndexError, OSError, zipfile.BadZipFile) as exc:
        raise ModelPinError(f"{path}: not a readable {path.suffix[1:]} model file "
                            f"({_one_line(exc)}); re-export it or pass the right model") from exc
    if payload is None:
        return None
    try:
        digests = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelPinError(f"{path}: the model file's pinned fields are unreadable") from exc
    if not (isinstance(digests, dict) and all(isinstance(v, str) for v in digests.values())):
        raise ModelPinError(f"{path}: the model file's pinned fields are malformed")
    return digests


def check_pinned(path: Path, data: Mapping[str, Any], fields: Iterable[str],
                 manifest: Path) -> None:
    """Raise :class:`ModelPinError` naming the first field of ``data`` not pinned in ``path``.

    Parameters
    ----------
    path : Path
        The model file (its SHA-256 already checked against the manifest).
    data : Mapping
        The manifest's fields.
    fields : iterable of str
        The decision fields that must match.
    manifest : Path
        Named in the message, since that is the file to restore.
    """
    pinned = embedded(path)
    if pinned is None:
        raise ModelPinError(f"{path}: the model file carries no pinned decision fields "
                            "(exported by an older tool); re-export it")
    for name, digest in field_digests(data, fields).items():
        if pinned.get(name) != digest:
            raise ModelPinError(f"{manifest}: field {name!r} differs from the one pinned in "
                                f"{path.name}; the manifest was edited — restore it or "
                                "re-export the model")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:120] or type(exc).__name__


# --------------------------------------------------------------------- ONNX (protobuf)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(blob: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(blob):
            raise ValueError("truncated varint")
        byte = blob[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(blob: bytes) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, start, end) of each top-level field of a message."""
    pos = 0
    while pos < len(blob):
        start = pos
        key, pos = _read_varint(blob, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(blob, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(blob, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if pos > len(blob):
            raise ValueError("truncated protobuf field")
        yield number, wire, start, pos


def _length_delimited(blob: bytes, start: int) -> bytes:
    _, pos = _read_varint(blob, start)
    length, pos = _read_varint(blob, pos)
    return blob[pos:pos + length]


def _string_entry(entry: bytes) -> tuple[bytes, bytes]:
    parts = {1: b"", 2: b""}
    for number, wire, start, _ in _fields(entry):
        if wire == 2 and number in parts:
            parts[number] = _length_delimited(entry, start)
    return parts[1], parts[2]


def _onnx_entries(blob: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    for number, wire, start, end in _fields(blob):
        if number == _ONNX_METADATA_FIELD and wire == 2:
            key, value = _string_entry(_length_delimited(blob, start))
            yield start, end, key, value


def _read_onnx(blob: bytes) -> bytes | None:
    for _, _, key, value in _onnx_entries(blob):
        if key == METADATA_KEY.encode():
            return value
    return None


def _embed_onnx(blob: bytes, payload: bytes) -> bytes:
    stale = [(s, e) for s, e, key, _ in _onnx_entries(blob) if key == METADATA_KEY.encode()]
    for start, end in reversed(stale):
        blob = blob[:start] + blob[end:]
    key = METADATA_KEY.encode()
    entry = (b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(payload)) + payload)
    # Protobuf merges repeated fields wherever they appear, so appending is a valid edit.
    return blob + _varint(_ONNX_METADATA_FIELD << 3 | 2) + _varint(len(entry)) + entry


# ------------------------------------------------------------------ TFLite (FlatBuffer)


def _table_field(blob: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the table at ``table`` (None if absent)."""
    vtable = table - struct.unpack_from("<i", blob, table)[0]
    vtable_size = struct.unpack_from("<H", blob, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vtable_size:
        return None
    offset = struct.unpack_from("<H", blob, vtable + slot)[0]
    return table + offset if offset else None


def _deref(blob: bytes, pos: int) -> int:
    return pos + struct.unpack_from("<I", blob, pos)[0]


def _vector(blob: bytes, pos: int) -> tuple[int, int]:
    """(first element position, length) of the vector referenced at ``pos``."""
    start = _deref(blob, pos)
    return start + 4, struct.unpack_from("<I", blob, start)[0]


def _read_tflite(blob: bytes) -> bytes | None:
    model = _deref(blob, 0)
    metadata = _table_field(blob, model, _TFLITE_MODEL_METADATA)
    buffers = _table_field(blob, model, _TFLITE_MODEL_BUFFERS)
    if metadata is None or buffers is None:
        return None
    first, count = _vector(blob, metadata)
    for i in range(count):
        entry = _deref(blob, first + 4 * i)
        name_at = _table_field(blob, entry, 0)
        if name_at is None:
            continue
        name_start, name_len = _vector(blob, name_at)
        if blob[name_start:name_start + name_len] != METADATA_KEY.encode():
            continue
        buffer_at = _table_field(blob, entry, 1)
        index = struct.unpack_from("<I", blob, buffer_at)[0] if buffer_at else 0
        buffers_first, n_buffers = _vector(blob, buffers)
        if index >= n_buffers:
            raise ValueError("metadata names a buffer the model does not have")
        data_at = _table_field(blob, _deref(blob, buffers_first + 4 * index), 0)
        if data_at is None:
            return b""
        data_start, data_len = _vector(blob, data_at)
        return blob[data_start:data_start + data_len]
    return None


def _embed_tflite(blob: bytes, payload: bytes) -> bytes:
    try:
        import flatbuffers
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:
        raise ModelPinError("pinning a TFLite model needs ai-edge-litert: "
                            "pip install 'lungsound-steth[tflite]'") from exc
    try:
        _read_tflite(blob)  # the object API's own errors on a damaged file are opaque
        model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    except (ValueError, struct.error, IndexError, AttributeError) as exc:
        raise ModelPinError("cannot pin decision fields: not a readable TFLite file "
                            f"({_one_line(exc)})") from exc
    model.metadata = [m for m in (model.metadata or [])
                      if (m.name.decode() if isinstance(m.name, bytes) else m.name)
                      != METADATA_KEY]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(blob) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ------------------------------------------------------------------------ detector .npz


def _read_npz(blob: bytes) -> bytes | None:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        if NPZ_MEMBER not in data.files:
            return None
        return np.asarray(data[NPZ_MEMBER], dtype=np.uint8).tobytes()


def _embed_npz(blob: bytes, payload: bytes) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k]) for k in data.files if k != NPZ_MEMBER}
    arrays[NPZ_MEMBER] = np.frombuffer(payload, dtype=np.uint8)
    out = io.BytesIO()
    save: Any = np.savez  # numpy's stub types **arrays as its allow_pickle flag
    save(out, **arrays)
    return out.getvalue()
