"""The model manifest: a JSON sidecar (``<model file>.manifest.json``) that travels with every
exported model and is validated before the model is used.

It says what the model is (name, version), what it expects (feature config and its hash,
sample rate, input shape) and what its outputs mean (label map, output semantics, decision
thresholds, calibration), and pins the weights by SHA-256; the decision fields are pinned
in turn by digests inside the model file (:mod:`steth.edge.model_pin`). A missing, malformed or
mismatching manifest is a :class:`ManifestError` with a one-line message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from steth.edge.features import FeatureConfig
from steth.edge.guard import GuardError, GuardModel
from steth.edge.labels import VerdictRule
from steth.edge.model_pin import (
    MODEL_DECISION_FIELDS,
    ModelPinError,
    check_pinned,
    embed,
    field_digests,
)

MANIFEST_SCHEMA = 1
MANIFEST_SUFFIX = ".manifest.json"

REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema": int,
    "name": str,
    "version": str,
    "format": str,  # "onnx" or "tflite"
    "precision": str,  # "fp32" or "int8"
    "weights_file": str,
    "weights_sha256": str,
    "feature_config": dict,
    "feature_hash": str,
    "sample_rate": int,
    "input": dict,  # {"name": str, "shape": [1, 1, frames, mels], "dtype": "float32"}
    "outputs": dict,  # output name -> {"labels": [...], "activation": "sigmoid"|"softmax"}
    "thresholds": dict,
    "calibration": dict,  # {"calibrated": bool, "temperature": {...}, "ece": float|None}
    "verdict_rule": dict,
}
REQUIRED_OUTPUTS = ("findings",)


class ManifestError(Exception):
    """The model and its manifest cannot be used together."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path_for(model_path: Path) -> Path:
    return Path(str(model_path) + MANIFEST_SUFFIX)


@dataclass(frozen=True)
class Manifest:
    """A validated manifest."""

    data: dict[str, Any]
    path: Path

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def weights_sha256(self) -> str:
        return self.data["weights_sha256"]

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.data["feature_config"])

    @property
    def window_frames(self) -> int:
        return int(self.data["input"]["shape"][2])

    @property
    def thresholds(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.data["thresholds"].items()}

    @property
    def calibrated(self) -> bool:
        return bool(self.data["calibration"].get("calibrated", False))

    @property
    def verdict_rule(self) -> VerdictRule:
        return VerdictRule(**self.data["verdict_rule"])

    @property
    def outputs(self) -> dict[str, dict]:
        return self.data["outputs"]

    @property
    def guard(self) -> GuardModel | None:
        """The unfamiliar-signal guard fitted with the model (None for older models)."""
        section = self.data.get("guard")
        if section is None:
            return None
        return GuardModel.from_dict(section, self.feature_config.n_mels)


def _check_fields(data: Any, where: Path) -> None:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: manifest is not a JSON object")
    for key, kind in REQUIRED_FIELDS.items():
        if key not in data:
            raise ManifestError(f"{where}: manifest lacks field {key!r}")
        if not isinstance(data[key], kind):
            raise ManifestError(f"{where}: manifest field {key!r} has the wrong type")
    if data["schema"] != MANIFEST_SCHEMA:
        raise ManifestError(f"{where}: manifest schema {data['schema']} is not supported "
                            f"(this edge reads schema {MANIFEST_SCHEMA}); update edge-run")
    for output in REQUIRED_OUTPUTS:
        if output not in data["outputs"]:
            raise ManifestError(f"{where}: manifest declares no {output!r} output")
    shape = data["input"].get("shape")
    if not (isinstance(shape, list) and len(shape) == 4 and all(isinstance(s, int)
                                                                for s in shape)):
        raise ManifestError(f"{where}: input shape must be [batch, 1, frames, mels]")


def _check_feature_config(data: dict, where: Path) -> FeatureConfig:
    try:
        config = FeatureConfig.from_dict(data["feature_config"])
    except (TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: feature_config is not understood ({exc})") from exc
    if config.hash() != data["feature_hash"]:
        raise ManifestError(f"{where}: feature_hash {data['feature_hash']} does not match its "
                            f"feature_config ({config.hash()}); the manifest was edited")
    if config.sample_rate != data["sample_rate"]:
        raise ManifestError(f"{where}: sample_rate {data['sample_rate']} differs from the "
                            f"feature config's {config.sample_rate}")
    if data["input"]["shape"][3] != config.n_mels:
        raise ManifestError(f"{where}: input has {data['input']['shape'][3]} mel bands, "
                            f"features make {config.n_mels}")
    if data.get("guard") is not None:
        try:
            GuardModel.from_dict(data["guard"], config.n_mels)
        except GuardError as exc:
            raise ManifestError(f"{where}: {exc}") from None
    return config


def load_manifest(model_path: Path, *, expected_feature_hash: str | None = None) -> Manifest:
    """Read and validate the manifest of ``model_path``, including the weights' SHA-256.

    Parameters
    ----------
    model_path : Path
        The ``.onnx`` or ``.tflite`` file.
    expected_feature_hash : str, optional
        The hash of the log-mel front end the caller computes (without channel
        normalisation, which the model brings with it); a different one is an error.
    """
    model_path = Path(model_path)
    if not model_path.is_file():
        raise ManifestError(f"{model_path}: model file not found (check --model)")
    where = manifest_path_for(model_path)
    if not where.is_file():
        raise ManifestError(f"{where}: manifest missing; every model needs its sidecar "
                            "manifest (re-export it with steth-export)")
    try:
        data = json.loads(where.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{where}: manifest is not valid JSON ({exc})") from exc
    _check_fields(data, where)
    config = _check_feature_config(data, where)
    front_end = config.unnormalised.hash()
    if expected_feature_hash is not None and front_end != expected_feature_hash:
        raise ManifestError(f"{where}: model expects features {front_end}, this pipeline "
                            f"computes {expected_feature_hash}")
    if data["weights_file"] != model_path.name:
        raise ManifestError(f"{where}: manifest is for {data['weights_file']}, "
                            f"not {model_path.name}")
    actual = sha256_file(model_path)
    if actual != data["weights_sha256"]:
        raise ManifestError(f"{model_path}: SHA-256 {actual[:12]}… does not match the "
                            f"manifest's {data['weights_sha256'][:12]}…; the file was "
                            "changed or corrupted")
    try:
        check_pinned(model_path, data, MODEL_DECISION_FIELDS, where)
    except ModelPinError as exc:
        raise ManifestError(str(exc)) from None
    return Manifest(data, where)


def write_manifest(model_path: Path, fields: dict[str, Any]) -> Path:
    """Write the sidecar for ``model_path``: pins its decision fields inside the model file,
    then fills in the file name and the file's SHA-256."""
    model_path = Path(model_path)
    data = {"schema": MANIFEST_SCHEMA, **fields, "weights_file": model_path.name,
            "weights_sha256": ""}
    _check_fields(data, manifest_path_for(model_path))
    _check_feature_config(data, manifest_path_for(model_path))
    try:
        embed(model_path, field_digests(data, MODEL_DECISION_FIELDS))
    except ModelPinError as exc:
        raise ManifestError(str(exc)) from None
    data["weights_sha256"] = sha256_file(model_path)
    path = manifest_path_for(model_path)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return path
