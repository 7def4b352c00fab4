"""Export the committed model to TFLite int8 (``steth-export-tflite``).

Writes ``<exports>/<name>.int8.tflite`` with its manifest. The model inside is full-integer
int8 (weights and activations, every op an int8 kernel); its input and output stay float32
(a QUANTIZE op after the input, DEQUANTIZE before each output), so the edge feeds it the
same centred log-mel windows as the ONNX models. Its input is NHWC ``(1, frames, mels, 1)``
(TFLite's layout); :class:`edge.infer.TfliteBackend` transposes the NCHW batch for it.

The export runs in two halves of this one file:

1. the driver (the project venv, with torch): rebuilds the ONNX int8 exporter's calibration
   windows (400 training windows, same seed and recipe as :mod:`models.export`), runs the
   converter in the heavy toolchain venv, and writes the manifest *derived from the ONNX
   int8 manifest* (same feature config and hash, thresholds, temperatures, verdict rule),
   so re-exporting ONNX and re-running this tool keeps the two in sync;
2. the converter (``python -m steth.models.export_tflite convert ...`` in the toolchain venv:
   onnx, onnx2tf, tensorflow-cpu, tf-keras): folds the per-mel BatchNorm (transpose, BN,
   transpose: a pattern onnx2tf mis-lays out) into an exact per-mel multiply-add, converts
   ONNX fp32 -> TF SavedModel (onnx2tf) -> TFLite with ``TFLiteConverter`` and the
   calibration windows as representative data.

CI never runs this; it only runs inference with ai-edge-litert.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "breathnet.toml"
# runpy.run_path leaves sys.path alone, so the sibling modules here shadow nothing.
CONVERTER_BOOT = ("import runpy, sys; sys.argv = sys.argv[1:]; "
                  "runpy.run_path(sys.argv[0], run_name='__main__')")
TOOLCHAIN_ENV = "STETH_TFLITE_PYTHON"
CALIBRATION_WINDOWS = 400  # as models.export
TOOLCHAIN_PACKAGES = ("onnx", "onnx2tf", "tensorflow", "tensorflow-cpu", "tf_keras",
                      "onnxruntime")
# Fields of the ONNX int8 manifest that say what the model is and means; copied verbatim.
SHARED_FIELDS = ("name", "version", "feature_config", "feature_hash", "sample_rate",
                 "outputs", "thresholds", "calibration", "verdict_rule", "training",
                 "guard", "guard_fit")


class ExportError(Exception):
    """The export cannot run; the message says what to do."""


# ---------------------------------------------------------------- driver (project venv)

def recipe_name(config_path: Path) -> str:
    """The model name a training recipe exports under (read without importing torch)."""
    try:
        return str(tomllib.loads(Path(config_path).read_text()).get("name", "breathnet"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExportError(f"cannot read the recipe {config_path} ({exc})") from exc


def onnx_paths(exports: Path, name: str) -> tuple[Path, Path, Path]:
    """ONNX fp32, ONNX int8 and TFLite int8 paths of model ``name``."""
    return (exports / f"{name}.fp32.onnx", exports / f"{name}.int8.onnx",
            exports / f"{name}.int8.tflite")


def calibration_windows(config_path: Path, data_root: Path, seed: int | None = None
                        ) -> np.ndarray:
    """The ONNX int8 exporter's calibration windows, centred as the edge feeds them.

    Same recipe and seed as :func:`models.export.export_run`: 400 random training windows
    of the patient-disjoint training split (never validation or test). Returned
    ``(n, 1, frames, mels)`` float32, each window minus its mean (what
    :meth:`edge.infer.CycleModel.predict_windows` sends to the backend). ``seed`` is the
    exported seed when it differs from the config's (``steth-export --seed``).
    """
    from steth.models.train import TrainConfig, load_data, training_window

    cfg = TrainConfig.from_toml(config_path)
    if seed is not None:
        cfg.seed = seed
    train_set, _ = load_data(cfg, data_root)
    rng = np.random.default_rng(cfg.seed)
    picks = rng.choice(len(train_set.samples), size=min(CALIBRATION_WINDOWS,
                                                        len(train_set.samples)), replace=False)
    windows = np.stack([training_window(train_set.frames(train_set.samples[i]), cfg.window, rng)
                        for i in picks])[:, None].astype(np.float32)
    return windows - windows.mean(axis=(2, 3), keepdims=True)


def check_config_matches(config_path: Path, onnx_manifest: dict[str, Any]) -> None:
    """The recipe given must be the one the ONNX int8 model was exported from."""
    from steth.models.train import TrainConfig

    cfg = TrainConfig.from_toml(config_path)
    as_dict = json.loads(json.dumps(cfg, default=lambda o: o.__dict__))
    exported = onnx_manifest.get("training", {}).get("config") or {}
    # Fields added to TrainConfig after the export are not in the manifest: compare the
    # ones it recorded. The seed is chosen at export time (steth-export --seed).
    if any(as_dict.get(key) != value for key, value in exported.items() if key != "seed"):
        raise ExportError(f"{config_path} differs from the recipe in the ONNX int8 manifest; "
                          "pass the config it was exported with or re-run steth-export")


def tflite_manifest_fields(onnx_manifest: dict[str, Any], export_info: dict[str, Any]
                           ) -> dict[str, Any]:
    """Manifest fields of the TFLite model, derived from the ONNX int8 manifest."""
    fields = {key: onnx_manifest[key] for key in SHARED_FIELDS if key in onnx_manifest}
    fields["format"] = "tflite"
    fields["precision"] = "int8"
    fields["input"] = {**onnx_manifest["input"],
                       "tflite_layout": "NHWC (batch, frames, mels, channel); the backend "
                                        "transposes"}
    fields["export"] = {"derived_from": onnx_manifest["weights_file"],
                        "derived_from_sha256": onnx_manifest["weights_sha256"],
                        **export_info}
    return fields


def write_tflite_manifest(tflite: Path, onnx_int8: Path,
                          export_info: dict[str, Any] | None = None) -> Path:
    """(Re)write the TFLite manifest from the current ONNX int8 manifest.

    ``export_info`` (toolchain versions, calibration) defaults to the one already in the
    TFLite manifest, so a manifest-only run after re-exporting ONNX keeps it.
    """
    from steth.edge.manifest import load_manifest, manifest_path_for, write_manifest

    onnx_manifest = load_manifest(onnx_int8).data
    if export_info is None:
        old = manifest_path_for(tflite)
        previous = json.loads(old.read_text()).get("export", {}) if old.is_file() else {}
        export_info = {k: v for k, v in previous.items()
                       if k not in ("derived_from", "derived_from_sha256")}
    return write_manifest(tflite, tflite_manifest_fields(onnx_manifest, export_info))


def run_converter(toolchain: str, fp32: Path, calibration: np.ndarray, out: Path) -> dict:
    """Run the converter half in the toolchain interpreter; returns its export info."""
    with tempfile.TemporaryDirectory(prefix="steth-tflite-") as tmp:
        calib_path = Path(tmp) / "calibration.npy"
        info_path = Path(tmp) / "info.json"
        np.save(calib_path, calibration)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        # The toolchain venv does not have steth installed: run this file by path (its
        # converter half imports only the standard library, numpy and the toolchain).
        command = [toolchain, "-c", CONVERTER_BOOT, str(Path(__file__).resolve()), "convert",
                   "--onnx", str(fp32),
                   "--calibration", str(calib_path), "--out", str(out), "--info",
                   str(info_path), "--work", tmp]
        result = subprocess.run(command, env=env, cwd=tmp, check=False)
        if result.returncode != 0:
            raise ExportError(f"the converter failed (exit {result.returncode}); see its "
                              f"output above ({' '.join(command[:3])})")
        return json.loads(info_path.read_text())


def export(config_path: Path, data_root: Path, exports: Path, toolchain: str) -> Path:
    """Convert the committed ONNX fp32 model to TFLite int8 and write its manifest."""
    from steth.edge.manifest import ManifestError, load_manifest
    fp32, int8, tflite = onnx_paths(exports, recipe_name(config_path))
    try:
        onnx_manifest = load_manifest(int8).data
        load_manifest(fp32)
    except ManifestError as exc:
        raise ExportError(f"{exc} (run steth-export first)") from exc
    check_config_matches(config_path, onnx_manifest)
    exported_seed = onnx_manifest.get("training", {}).get("config", {}).get("seed")
    calibration = calibration_windows(config_path, data_root, exported_seed)
    print(f"calibration: {calibration.shape[0]} training windows {calibration.shape[1:]}")
    info = run_converter(toolchain, fp32, calibration, tflite)
    write_tflite_manifest(tflite, int8, info)
    return tflite


def main(argv: list[str] | None = None) -> int:
    from steth.edge.manifest import ManifestError
    from steth.models.datasets import DataError, default_data_root

    parser = argparse.ArgumentParser(
        prog="steth-export-tflite",
        description="Export the committed ONNX model to TFLite full-integer int8 (float I/O) "
                    "with a manifest derived from the ONNX int8 manifest. Needs a toolchain "
                    "venv with onnx2tf, tensorflow-cpu, tf-keras and onnx.")
    parser.add_argument("config", type=Path, nargs="?", default=DEFAULT_CONFIG,
                        help="training recipe the ONNX model was exported from")
    parser.add_argument("--data", type=Path, default=default_data_root())
    from steth.edge.assets import ASSETS_DIR

    parser.add_argument("--exports", type=Path, default=ASSETS_DIR,
                        help="folder of the exported models (default: the runtime's assets)")
    parser.add_argument("--toolchain", default=os.environ.get(TOOLCHAIN_ENV),
                        help=f"python of the toolchain venv (default ${TOOLCHAIN_ENV})")
    parser.add_argument("--manifest-only", action="store_true",
                        help="only rewrite the TFLite manifest from the ONNX int8 manifest")
    args = parser.parse_args(argv)
    try:
        if args.manifest_only:
            _, int8, tflite = onnx_paths(args.exports, recipe_name(args.config))
            path = write_tflite_manifest(tflite, int8)
        else:
            if not args.toolchain:
                raise ExportError(f"no toolchain: pass --toolchain /path/to/venv/bin/python "
                                  f"or set {TOOLCHAIN_ENV} (see the module docstring)")
            path = export(args.config, args.data, args.exports, args.toolchain)
    except (ExportError, ManifestError, DataError, FileNotFoundError) as exc:
        print(f"steth-export-tflite: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


# ---------------------------------------------------------------- converter (toolchain venv)

def fold_mel_batchnorm(model: Any) -> Any:
    """Replace BreathNet's ``Transpose -> BatchNormalization -> Transpose`` on the mel axis
    by the equivalent per-mel ``Mul``/``Add`` (exact in float), and fix the batch to 1.

    onnx2tf tracks NCHW->NHWC layouts through transposes heuristically and gets this
    pattern wrong (the first conv then sees mels as channels).
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes = list(graph.node)
    bn_index = next(i for i, n in enumerate(nodes) if n.op_type == "BatchNormalization")
    before, bn, after = nodes[bn_index - 1], nodes[bn_index], nodes[bn_index + 1]
    if not (before.op_type == after.op_type == "Transpose"):
        raise ExportError("the ONNX graph does not have the expected mel BatchNorm pattern")
    init = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    weight, bias, mean, var = (init[name] for name in bn.input[1:])
    eps = next(a.f for a in bn.attribute if a.name == "epsilon")
    scale = (weight / np.sqrt(var + eps)).astype(np.float32)
    shift = (bias - mean * scale).astype(np.float32)
    graph.initializer.extend([numpy_helper.from_array(scale.reshape(1, 1, 1, -1), "mel_scale"),
                              numpy_helper.from_array(shift.reshape(1, 1, 1, -1), "mel_shift")])
    mul = helper.make_node("Mul", [before.input[0], "mel_scale"], ["mel_scaled"],
                           name="/bn0/MelScale")
    add = helper.make_node("Add", ["mel_scaled", "mel_shift"], ["mel_normed"],
                           name="/bn0/MelShift")
    for node in nodes:
        for k, name in enumerate(node.input):
            if name == after.output[0]:
                node.input[k] = "mel_normed"
    kept = [*nodes[:bn_index - 1], mul, add, *nodes[bn_index + 2:]]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.value_info[:]  # stale shapes would mislead onnx2tf; re-inferred below
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    from onnx import checker, shape_inference

    model = shape_inference.infer_shapes(model)
    checker.check_model(model)
    return model


def toolchain_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for package in TOOLCHAIN_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    found["python"] = sys.version.split()[0]
    return found


def save_named_signature(keras_model: Any, outputs: dict[str, tuple[int, ...]],
                         path: Path) -> None:
    """SavedModel whose signature names the input ``logmel`` and the outputs as in ONNX.

    TFLite keeps signature names (its tensor names are opaque), which is how the edge finds
    ``findings``, ``subtype`` and ``quality``.
    """
    import tensorflow as tf

    shape = tuple(int(d) for d in keras_model.inputs[0].shape)
    got = [tuple(int(d) for d in o.shape) for o in keras_model.outputs]
    if got != list(outputs.values()):  # the shapes differ per head, so this checks the order
        raise ExportError(f"onnx2tf outputs {got} do not match the ONNX outputs {outputs}")
    output_names = list(outputs)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="logmel")])
    def serve(logmel: Any) -> dict[str, Any]:
        outputs = keras_model(logmel)
        return dict(zip(output_names, outputs, strict=True))

    module = tf.Module()
    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})


def convert(onnx_path: Path, calibration: np.ndarray, out: Path, work: Path) -> dict[str, Any]:
    """ONNX fp32 -> TFLite full-integer int8 with float32 input and outputs."""
    import onnx
    import onnx2tf
    import tensorflow as tf

    folded = work / "folded.onnx"
    graph = fold_mel_batchnorm(onnx.load(str(onnx_path)))
    onnx.save(graph, str(folded))
    keras_model = onnx2tf.convert(input_onnx_file_path=str(folded),
                                  output_folder_path=str(work / "onnx2tf"), batch_size=1,
                                  non_verbose=True)
    saved_model = work / "saved_model"
    outputs = {o.name: tuple(d.dim_value for d in o.type.tensor_type.shape.dim)
               for o in graph.graph.output}
    save_named_signature(keras_model, outputs, saved_model)
    nhwc = calibration.transpose(0, 2, 3, 1)  # the SavedModel's input layout

    def representative() -> Any:
        for i in range(nhwc.shape[0]):
            yield {"logmel": nhwc[i:i + 1]}

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.float32
    converter.inference_output_type = tf.float32
    out.write_bytes(converter.convert())
    return {"toolchain": toolchain_versions(),
            "calibration": f"{nhwc.shape[0]} SPRSound+ICBHI training windows (the ONNX int8 "
                           "exporter's set), centred as the edge feeds them",
            "quantization": "full integer: int8 weights (per channel) and activations; "
                            "float32 input and outputs (QUANTIZE/DEQUANTIZE at the edges)",
            "graph_changes": "per-mel BatchNorm folded into Mul/Add before conversion"}


def converter_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="steth.models.export_tflite convert")
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--calibration", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--info", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    info = convert(args.onnx, np.load(args.calibration), args.out, args.work)
    args.info.write_text(json.dumps(info))
    print(f"converter: wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["convert"]:
        raise SystemExit(converter_main(sys.argv[2:]))
    raise SystemExit(main())
