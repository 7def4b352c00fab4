"""Model windows and the inference backends (ONNX Runtime by default, TFLite second).

A cycle's log-mel frames become fixed-size model windows by :func:`cycle_windows`: a short
cycle is repeated to fill the window (as is common for respiratory cycles), a long one is
covered by half-overlapping windows whose probabilities are max-pooled. Training and the
benchmark use the same function, so the edge's handling of long cycles is the one scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steth.edge.labels import (
    CONTINUOUS_EVENTS,
    DISCONTINUOUS_EVENTS,
    EVENT_CLASSES,
    four_class_from_flags,
)
from steth.edge.manifest import Manifest, ManifestError, load_manifest

MIN_CYCLE_FRAMES = 4


class ModelError(Exception):
    """The model cannot be loaded or run; the message says what to do."""


def fit_window(frames: np.ndarray, window: int) -> np.ndarray:
    """Repeat ``frames`` (T, M) along time until it fills ``window`` frames, then crop."""
    if frames.shape[0] == 0:
        raise ValueError("a cycle needs at least one frame")
    reps = -(-window // frames.shape[0])
    return np.tile(frames, (reps, 1))[:window]


def cycle_windows(frames: np.ndarray, window: int) -> np.ndarray:
    """Model windows ``(n, window, M)`` that cover a cycle's frames ``(T, M)``."""
    n_frames = frames.shape[0]
    if n_frames <= window:
        return fit_window(frames, window)[None]
    hop = window // 2
    starts = list(range(0, n_frames - window + 1, hop))
    if starts[-1] + window < n_frames:
        starts.append(n_frames - window)
    return np.stack([frames[s:s + window] for s in starts])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class CyclePrediction:
    """Model outputs for one cycle, after calibration and window pooling."""

    p_crackle: float
    p_wheeze: float
    p_poor: float
    subtype_probs: tuple[float, ...]  # over EVENT_CLASSES

    def flags(self, thresholds: dict[str, float]) -> tuple[bool, bool]:
        return (self.p_crackle >= thresholds.get("crackle", 0.5),
                self.p_wheeze >= thresholds.get("wheeze", 0.5))

    def finding(self, thresholds: dict[str, float]) -> str:
        return four_class_from_flags(*self.flags(thresholds))

    def poor_quality(self, thresholds: dict[str, float]) -> bool:
        return self.p_poor >= thresholds.get("quality", 0.5)

    def event_class(self, thresholds: dict[str, float]) -> str:
        """SPRSound 7-class label consistent with the findings.

        The findings decide the family (crackle, wheeze, both, none); the subtype head only
        picks a member inside it, so the product never shows a subtype that contradicts
        its finding.
        """
        crackle, wheeze = self.flags(thresholds)
        if crackle and wheeze:
            return "Wheeze+Crackle"
        if not (crackle or wheeze):
            return "Normal"
        family = DISCONTINUOUS_EVENTS if crackle else CONTINUOUS_EVENTS
        probs = {c: p for c, p in zip(EVENT_CLASSES, self.subtype_probs, strict=True)
                 if c in family}
        return max(probs, key=lambda c: probs[c])


class OnnxBackend:
    def __init__(self, path: Path, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - runtime dependency
            raise ModelError("onnxruntime is not installed: pip install onnxruntime") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: ONNX Runtime cannot load the model ({exc})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(None, {self.input_name: batch})
        return dict(zip(self.output_names, outputs, strict=True))


class TfliteBackend:
    """A TFLite model run one window per invoke (ai-edge-litert or tflite-runtime).

    Outputs are named by the model's signature when it has one: a converted SavedModel's
    tensor names are opaque (``PartitionedCall:0``). TFLite models are NHWC, so an input of
    shape ``(1, frames, mels, 1)`` gets the NCHW batch transposed. int8 inputs and outputs
    are (de)quantised with the model's own parameters; float ones are passed as they are.
    """

    def __init__(self, path: Path, threads: int,
                 input_shape: tuple[int, ...] | None = None) -> None:
        interpreter_cls = _tflite_interpreter()
        try:
            self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: TFLite cannot load the model ({_one_line(exc)}); "
                             "re-export it or pass the right --model") from exc
        self.input = self.interpreter.get_input_details()[0]
        self.outputs = _named_outputs(path, self.interpreter)
        self.batch = int(self.input["shape"][0])
        self.nhwc = _input_is_nhwc(path, tuple(int(d) for d in self.input["shape"]),
                                   input_shape)

    def _run_one(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.nhwc:
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        scale, zero = self.input.get("quantization", (0.0, 0))
        if self.input["dtype"] != np.float32 and scale:
            x = np.clip(np.round(x / scale + zero), -128, 127).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        result = {}
        for name, detail in self.outputs.items():
            y = self.interpreter.get_tensor(detail["index"]).astype(np.float32)
            scale, zero = detail.get("quantization", (0.0, 0))
            if detail["dtype"] != np.float32 and scale:
                y = (y - zero) * scale
            result[name] = y
        return result

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        parts = [self._run_one(batch[i:i + 1]) for i in range(batch.shape[0])]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


TFLITE_OUTPUTS = ("findings", "subtype", "quality")


def _named_outputs(path: Path, interpreter: Any) -> dict[str, dict]:
    """Output details keyed by output name (signature names first, then tensor names)."""
    signatures: dict[str, dict[str, list[str]]] = getattr(
        interpreter, "get_signature_list", dict)()
    if len(signatures) == 1:
        runner = interpreter.get_signature_runner(next(iter(signatures)))
        outputs = dict(runner.get_output_details())
    else:
        outputs = {_tflite_output_name(d["name"]): d for d in interpreter.get_output_details()}
    missing = [name for name in TFLITE_OUTPUTS if name not in outputs]
    if missing:
        raise ModelError(f"{path}: model has no output named {', '.join(missing)} (it has "
                         f"{', '.join(sorted(outputs))}); it is not a model for this edge")
    return outputs


def _input_is_nhwc(path: Path, actual: tuple[int, ...],
                   expected_nchw: tuple[int, ...] | None) -> bool:
    """Whether the model takes NHWC; a shape that fits neither layout is a ModelError."""
    if expected_nchw is None or actual == tuple(expected_nchw):
        return False
    n, c, t, m = expected_nchw
    if actual == (n, t, m, c):
        return True
    raise ModelError(f"{path}: model input shape {list(actual)} does not match its manifest's "
                     f"{list(expected_nchw)}; re-export the model with its manifest")


def _tflite_output_name(name: str) -> str:
    for known in TFLITE_OUTPUTS:
        if known in name:
            return known
    return name


def _tflite_interpreter() -> type:
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError as exc:
        raise ModelError("no TFLite runtime: pip install 'lungsound-steth[tflite]' "
                         "(ai-edge-litert)") from exc


class CycleModel:
    """A manifest-checked model that scores cycles from their log-mel frames.

    Parameters
    ----------
    path : Path
        ``.onnx`` or ``.tflite`` file with its ``.manifest.json`` sidecar.
    expected_feature_hash : str, optional
        Hash of the feature config the caller computes; a mismatch stops start-up.
    threads : int
        Intra-op threads (one by default: the edge keeps a core for I/O and DSP).
    """

    def __init__(self, path: Path, *, expected_feature_hash: str | None = None,
                 threads: int = 1) -> None:
        try:
            self.manifest: Manifest = load_manifest(path, expected_feature_hash=
                                                    expected_feature_hash)
        except ManifestError as exc:
            raise ModelError(str(exc)) from exc
        fmt = self.manifest.data["format"]
        if fmt == "onnx":
            self.backend: OnnxBackend | TfliteBackend = OnnxBackend(Path(path), threads)
        elif fmt == "tflite":
            self.backend = TfliteBackend(Path(path), threads,
                                         tuple(self.manifest.data["input"]["shape"]))
        else:
            raise ModelError(f"{path}: unknown model format {fmt!r} in its manifest")
        self.window = self.manifest.window_frames
        self.thresholds = self.manifest.thresholds
        temps = self.manifest.data["calibration"].get("temperature", {})
        self.temperature = {k: float(temps.get(k, 1.0)) for k in ("findings", "subtype",
                                                                   "quality")}

    def predict_windows(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """Calibrated probabilities per window: findings (n, 2), subtype (n, 7), quality (n,)."""
        # Subtracting each window's mean makes the input independent of gain, before the
        # int8 input quantiser sees it (the network does the same first thing itself).
        centred = windows - windows.mean(axis=(1, 2), keepdims=True)
        batch = centred[:, None, :, :].astype(np.float32)  # (n, 1, T, M)
        raw = self.backend.run(batch)
        return {
            "findings": sigmoid(raw["findings"] / self.temperature["findings"]),
            "subtype": softmax(raw["subtype"] / self.temperature["subtype"]),
            "quality": sigmoid(raw["quality"][:, 0] / self.temperature["quality"]),
        }

    def predict_cycle(self, frames: np.ndarray) -> CyclePrediction:
        """Score one cycle; long cycles are max-pooled over their windows."""
        if frames.shape[0] < MIN_CYCLE_FRAMES:
            raise ValueError(f"cycle has {frames.shape[0]} frames, at least "
                             f"{MIN_CYCLE_FRAMES} are needed")
        probs = self.predict_windows(cycle_windows(frames, self.window))
        findings = probs["findings"].max(axis=0)
        subtype = probs["subtype"].mean(axis=0)
        return CyclePrediction(float(findings[0]), float(findings[1]),
                               float(probs["quality"].mean()), tuple(float(p) for p in subtype))
