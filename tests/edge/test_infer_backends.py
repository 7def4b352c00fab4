"""Both inference backends (ONNX Runtime, TFLite) behind the same edge: the whole pipeline on
real SPRSound recordings, ``edge-run --model <.tflite>``, and the TFLite backend's layout and
error handling. Torch-free (ai-edge-litert and onnxruntime only)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from steth.edge.assets import ASSETS_DIR
from steth.edge.event_schema import validate
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel, ModelError, _input_is_nhwc
from steth.edge.manifest import manifest_path_for
from steth.host import bedside as cli
from steth.models.datasets import load_sprsound
from steth.models.stream_eval import stream_recording

EXPORTS = ASSETS_DIR
ONNX_INT8 = EXPORTS / "breathnet.int8.onnx"
TFLITE = EXPORTS / "breathnet.int8.tflite"
N_RECORDINGS = 8  # first recordings of the SPRSound test split (sorted ids): fixed slice
MAX_PROB_MAE = 0.05  # as tests/models/test_tflite.py, on streamed (detected) cycles
MIN_DECISION_AGREEMENT = 0.85


@pytest.fixture(scope="module")
def models() -> dict[str, CycleModel]:
    config_hash = FeatureConfig().hash()
    return {"onnx": CycleModel(ONNX_INT8, expected_feature_hash=config_hash),
            "tflite": CycleModel(TFLITE, expected_feature_hash=config_hash)}


@pytest.fixture(scope="module")
def streamed(shared_data, models) -> dict[str, list[list[dict]]]:
    recordings = load_sprsound(shared_data, "test")[:N_RECORDINGS]
    return {name: [stream_recording(model, rec) for rec in recordings]
            for name, model in models.items()}


def cycles_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "cycle"]


def test_both_backends_stream_valid_events_for_the_same_cycles(streamed):
    total = 0
    for onnx_events, tflite_events in zip(streamed["onnx"], streamed["tflite"], strict=True):
        for event in onnx_events + tflite_events:
            assert validate(event) == [], (event["type"], validate(event))
        a, b = cycles_of(onnx_events), cycles_of(tflite_events)
        # The detector does not depend on the model: identical cycles, identical fields.
        assert [(c["start"], c["end"]) for c in a] == [(c["start"], c["end"]) for c in b]
        assert [sorted(c) for c in a] == [sorted(c) for c in b]
        total += len(a)
    assert total >= 10


def test_both_backends_agree_on_streamed_cycles(streamed):
    diffs, same, n = [], 0, 0
    for onnx_events, tflite_events in zip(streamed["onnx"], streamed["tflite"], strict=True):
        for a, b in zip(cycles_of(onnx_events), cycles_of(tflite_events), strict=True):
            diffs += [abs(a["p_crackle"] - b["p_crackle"]), abs(a["p_wheeze"] - b["p_wheeze"])]
            same += a["finding"] == b["finding"]
            n += 1
    mae = float(np.mean(diffs))
    print(f"streamed cycles: onnx int8 vs tflite int8 MAE {mae:.4f}, "
          f"finding agreement {same}/{n}")
    assert mae <= MAX_PROB_MAE
    assert same / n >= MIN_DECISION_AGREEMENT


def test_hello_names_the_backend(streamed):
    for name, runs in streamed.items():
        hello = next(e for e in runs[0] if e["type"] == "hello")
        assert hello["model"]["backend"] == name


def test_edge_run_streams_findings_with_the_tflite_model(shared_data, capsys):
    rec = load_sprsound(shared_data, "test")[0]
    status = cli.main(["--replay", str(rec.audio_path), "--speed", "max", "--no-dashboard",
                       "--model", str(TFLITE)])
    out = capsys.readouterr().out
    assert status == 0
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    hello = next(e for e in events if e["type"] == "hello")
    assert hello["model"]["backend"] == "tflite"
    assert hello["model"]["hash"] == json.loads(manifest_path_for(TFLITE).read_text())[
        "weights_sha256"]
    assert cycles_of(events), "no cycle event from a real recording"


def test_edge_run_refuses_a_corrupt_tflite_model_in_one_line(tmp_path, capsys):
    model = tmp_path / TFLITE.name
    shutil.copy(TFLITE, model)
    shutil.copy(manifest_path_for(TFLITE), manifest_path_for(model))
    model.write_bytes(model.read_bytes()[:-16])
    status = cli.main(["--simulate", "--no-dashboard", "--duration", "1", "--model",
                       str(model)])
    err = capsys.readouterr().err.strip()
    assert status == cli.EXIT_MODEL
    assert len(err.splitlines()) == 1 and "edge-run:" in err and model.name in err


def test_nchw_input_is_used_as_is_and_nhwc_is_detected():
    assert _input_is_nhwc(TFLITE, (1, 1, 128, 64), (1, 1, 128, 64)) is False
    assert _input_is_nhwc(TFLITE, (1, 128, 64, 1), (1, 1, 128, 64)) is True
    with pytest.raises(ModelError, match="does not match"):
        _input_is_nhwc(TFLITE, (1, 96, 64, 1), (1, 1, 128, 64))


def test_tflite_backend_finds_outputs_by_signature_name(models):
    backend = models["tflite"].backend
    assert set(backend.outputs) == {"findings", "subtype", "quality"}
    assert backend.nhwc  # the committed file is NHWC; the backend transposes
    out = backend.run(np.zeros((2, 1, 128, 64), dtype=np.float32))
    assert {k: v.shape for k, v in out.items()} == {"findings": (2, 2), "subtype": (2, 7),
                                                     "quality": (2, 1)}
