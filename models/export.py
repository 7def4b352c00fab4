"""Calibrate a trained run on validation and export it (``steth-export``).

Writes ``<out>/<name>.fp32.onnx`` and ``<out>/<name>.int8.onnx`` (static QDQ int8,
calibrated on training windows), each with its manifest. Temperatures (one per head) and
the crackle/wheeze thresholds are fit on the patient-disjoint validation split only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from steth.edge.assets import ASSETS_DIR
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel, CyclePrediction, ModelError, sigmoid
from steth.edge.labels import EVENT_CLASSES, FOUR_CLASSES, VerdictRule
from steth.edge.manifest import write_manifest
from steth.models import TRAINING_OUTPUTS
from steth.models.data import SampleSet
from steth.models.datasets import DataError, default_data_root, load_icbhi
from steth.models.device_select import SELECTION_FILE, Selection, best_calibration, select
from steth.models.folds import ALL_ICBHI, fold_training_recordings
from steth.models.guard_fit import fit_guard
from steth.models.metrics import expected_calibration_error
from steth.models.nets import BreathNet
from steth.models.train import (
    TrainConfig,
    load_data,
    predict_logits,
    run_dir,
    training_window,
)
from steth.models.verdict_fit import apply_rule_to_manifests, sibling_models

OUTPUT_NAMES = ("findings", "subtype", "quality")
# How closely an int8 file must reproduce the torch weights it came from, on validation.
TWIN_MIN_FINDING_AGREEMENT = 0.99
TWIN_MAX_MEAN_PROBABILITY_DIFFERENCE = 0.02
DEFAULT_EXPORT_DIR = ASSETS_DIR  # the deployable files ship with the runtime


def _nll_sigmoid(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = np.clip(1.0 / (1.0 + np.exp(-logits / t)), 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def _nll_softmax(logits: np.ndarray, labels: np.ndarray, t: float) -> float:
    z = logits / t
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


TEMPERATURE_GRID = np.round(np.arange(0.5, 5.01, 0.05), 2)


def fit_temperatures(logits: dict[str, np.ndarray], samples: list) -> dict[str, float]:
    """Temperature per head minimising validation NLL (grid search: robust, no optimiser)."""
    known = np.array([s.crackle >= 0 for s in samples])
    has_sub = np.array([s.subtype >= 0 for s in samples])
    find_y = np.array([[s.crackle, s.wheeze] for s in samples])[known]
    sub_y = np.array([s.subtype for s in samples])[has_sub]
    poor_y = np.array([s.poor for s in samples])
    temps = {
        "findings": min(TEMPERATURE_GRID, key=lambda t: _nll_sigmoid(
            logits["findings"][known], find_y, t)),
        "subtype": min(TEMPERATURE_GRID, key=lambda t: _nll_softmax(
            logits["subtype"][has_sub], sub_y, t)),
        "quality": min(TEMPERATURE_GRID, key=lambda t: _nll_sigmoid(
            logits["quality"], poor_y, t)),
    }
    return {k: float(v) for k, v in temps.items()}


def tune_thresholds(logits: dict[str, np.ndarray], samples: list,
                    temps: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """Crackle/wheeze thresholds maximising the validation mean of tasks 1-1 and 1-2."""
    _, thresholds, scores, _ = best_calibration(samples, logits, [], None, temps)
    return thresholds, scores


def calibration_report(logits: dict[str, np.ndarray], samples: list,
                       temps: dict[str, float]) -> dict[str, float]:
    known = np.array([s.crackle >= 0 for s in samples])
    y = np.array([[s.crackle, s.wheeze] for s in samples])[known]
    report = {}
    for name, t in (("raw", 1.0), ("calibrated", temps["findings"])):
        p = 1.0 / (1.0 + np.exp(-logits["findings"][known] / t))
        report[f"ece_{name}"] = float(np.mean([expected_calibration_error(p[:, i], y[:, i])
                                               for i in range(2)]))
    return report


def export_onnx(model: torch.nn.Module, path: Path, window: int, n_mels: int) -> None:
    model.eval()
    example = torch.zeros(1, 1, window, n_mels)
    torch.onnx.export(model, (example,), str(path), input_names=["logmel"],
                      output_names=list(OUTPUT_NAMES), dynamic_axes={"logmel": {0: "batch"}},
                      opset_version=17, dynamo=False)


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray) -> None:
    """Static QDQ int8 quantisation (per-channel weights) calibrated on training windows."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"logmel": calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self) -> dict | None:
            return next(self.items, None)

    prepared = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared))
    quantize_static(str(prepared), str(int8), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    prepared.unlink()


def log_mel_config(cfg: TrainConfig) -> FeatureConfig:
    """The recipe's front end, which must be the edge's log-mel (with any normalisation)."""
    feat = cfg.feature_config()
    if not isinstance(feat, FeatureConfig):
        raise ModelError(f"{cfg.name}: only log-mel recipes export to the edge, not "
                         f"{cfg.frontend!r}")
    return feat


def manifest_fields(cfg: TrainConfig, precision: str, temps: dict[str, float],
                    thresholds: dict[str, float], ece: dict[str, float],
                    val_scores: dict[str, float], n_params: int) -> dict:
    feat = log_mel_config(cfg)
    return {
        "name": cfg.name,
        "version": f"{cfg.version}+seed{cfg.seed}",
        "format": "onnx",
        "precision": precision,
        "feature_config": feat.to_dict(),
        "feature_hash": feat.hash(),
        "sample_rate": feat.sample_rate,
        "input": {"name": "logmel", "shape": [1, 1, cfg.window, feat.n_mels],
                  "dtype": "float32", "layout": "batch, channel, frames, mels"},
        "outputs": {
            "findings": {"labels": ["crackle", "wheeze"], "activation": "sigmoid",
                         "four_class": list(FOUR_CLASSES)},
            "subtype": {"labels": list(EVENT_CLASSES), "activation": "softmax"},
            "quality": {"labels": ["poor"], "activation": "sigmoid"},
        },
        "thresholds": thresholds,
        "calibration": {"calibrated": True, "method": "temperature scaling on validation",
                        "temperature": temps, **ece},
        "verdict_rule": VerdictRule().to_dict(),
        "training": {"data": training_data_text(cfg),
                     "validation": "patient-disjoint split of the training data",
                     "validation_scores": val_scores, "parameters": n_params,
                     "config": json.loads(json.dumps(cfg, default=lambda o: o.__dict__))},
    }


def training_data_text(cfg: TrainConfig) -> str:
    """What the weights learnt from and what chose the epoch and calibration, in words."""
    sprsound = "SPRSound 2022 train (children 1 month-18 years)"
    if not cfg.use_icbhi or cfg.hold_out_device == ALL_ICBHI:
        icbhi = ""
    elif cfg.hold_out_device:
        icbhi = (f"the ICBHI 2017 training recordings of patients who never used the "
                 f"{cfg.hold_out_device}")
    else:
        icbhi = "the ICBHI 2017 training recordings present (adults and children)"
    if cfg.icbhi_role == "select":
        chosen = "SPRSound validation" + (f" and {icbhi}" if icbhi else " alone")
        return f"weights: {sprsound} alone; checkpoint, temperatures and thresholds: {chosen}"
    return sprsound + (f" + {icbhi}" if icbhi else " alone")


def select_on_unheard_devices(cfg: TrainConfig, data_root: Path
                              ) -> tuple[Selection, dict[str, torch.Tensor]]:
    """The epoch and calibration chosen on the ICBHI recordings the run may use (those of
    patients who never used its held-out device), none of which its weights heard."""
    recordings = fold_training_recordings(load_icbhi(data_root, "train"), cfg.hold_out_device)
    return select(cfg, data_root, recordings, fit_temperatures)


def twin_agreement(logits: dict[str, np.ndarray], temps: dict[str, float],
                   thresholds: dict[str, float], model_file: Path, val_set: SampleSet) -> dict:
    """How closely an exported file reproduces the torch weights it was exported from.

    ``logits`` are the torch model's on ``val_set``'s samples (:func:`predict_logits`); the
    file scores the same samples as the edge scores a cycle. Both go through the same
    temperatures and thresholds, so only the export (quantisation, graph) differs.

    Returns
    -------
    dict
        ``cycles``, ``finding_agreement`` (share of equal four-class findings),
        ``mean_abs_probability_difference`` (crackle and wheeze) and ``meets_target``
        (≥ :data:`TWIN_MIN_FINDING_AGREEMENT` and ≤ :data:`TWIN_MAX_MEAN_PROBABILITY_DIFFERENCE`).
    """
    exported = CycleModel(model_file, threads=1)
    torch_findings = sigmoid(logits["findings"] / temps["findings"])
    same, diffs = 0, []
    for sample, (p_crackle, p_wheeze) in zip(val_set.samples, torch_findings, strict=True):
        twin = CyclePrediction(float(p_crackle), float(p_wheeze), 0.0, ())
        scored = exported.predict_cycle(val_set.frames(sample))
        same += twin.finding(thresholds) == scored.finding(thresholds)
        diffs += [abs(scored.p_crackle - twin.p_crackle), abs(scored.p_wheeze - twin.p_wheeze)]
    agreement = same / len(val_set.samples)
    mean_diff = float(np.mean(diffs))
    return {"cycles": len(val_set.samples), "finding_agreement": agreement,
            "mean_abs_probability_difference": mean_diff,
            "meets_target": bool(agreement >= TWIN_MIN_FINDING_AGREEMENT
                                 and mean_diff <= TWIN_MAX_MEAN_PROBABILITY_DIFFERENCE)}


def export_run(cfg: TrainConfig, data_root: Path, out_dir: Path,
               checkpoint_dir: Path = TRAINING_OUTPUTS) -> list[Path]:
    """Fit temperatures and thresholds on the run's validation split; write fp32 and int8.

    The model files and manifests go to ``out_dir`` (the runtime's assets by default), the
    torch weights they came from to ``checkpoint_dir`` (training outputs).
    """
    run = run_dir(cfg)
    selection = None
    model = BreathNet(cfg.net)
    if cfg.icbhi_role == "select":
        selection, state = select_on_unheard_devices(cfg, data_root)
        model.load_state_dict(state)
    else:
        model.load_state_dict(torch.load(run / "best_model.pt", weights_only=True))
    model.eval()
    train_set, val_set = load_data(cfg, data_root)
    logits = predict_logits(model, val_set, val_set.samples, cfg.window)
    if selection is None:
        temps = fit_temperatures(logits, val_set.samples)
        thresholds, val_scores = tune_thresholds(logits, val_set.samples, temps)
    else:
        temps, thresholds = selection.temperatures, selection.thresholds
        val_scores = dict(selection.sprsound_validation)
    ece = calibration_report(logits, val_set.samples, temps)
    print(f"temperatures {temps} thresholds {thresholds} validation {val_scores} {ece}")
    guard, guard_fit = fit_guard(train_set.recordings, val_set.recordings, log_mel_config(cfg))
    print(f"guard: threshold {guard.threshold:.2f}, fires on "
          f"{guard_fit['validation_fire_rate']:.1%} of SPRSound validation recordings")
    out_dir.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    fp32 = out_dir / f"{cfg.name}.fp32.onnx"
    export_onnx(model, fp32, cfg.window, log_mel_config(cfg).n_mels)
    extra = {"guard": guard.to_dict(), "guard_fit": guard_fit}
    if selection is not None:
        extra["selection"] = selection.to_dict()
        # Beside the checkpoint (training outputs), not among the runtime's package data.
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        (checkpoint_dir / SELECTION_FILE).write_text(
            json.dumps(selection.to_dict(), indent=2) + "\n")
    write_manifest(fp32, {**manifest_fields(cfg, "fp32", temps, thresholds, ece, val_scores,
                                            n_params), **extra})
    rng = np.random.default_rng(cfg.seed)
    picks = rng.choice(len(train_set.samples), size=min(400, len(train_set.samples)),
                       replace=False)
    calib = np.stack([training_window(train_set.frames(train_set.samples[i]), cfg.window, rng)
                      for i in picks])[:, None].astype(np.float32)
    int8 = out_dir / f"{cfg.name}.int8.onnx"
    quantize_int8(fp32, int8, calib)
    int8_fields = {**manifest_fields(cfg, "int8", temps, thresholds, ece, val_scores, n_params),
                   **extra}
    # The twin check loads the file as the edge does, which needs its manifest first.
    write_manifest(int8, int8_fields)
    twin = twin_agreement(logits, temps, thresholds, int8, val_set)
    print(f"int8 vs its torch weights on {twin['cycles']} validation cycles: findings agree on "
          f"{twin['finding_agreement']:.2%}, mean |probability difference| "
          f"{twin['mean_abs_probability_difference']:.4f}"
          + ("" if twin["meets_target"] else
             f" (below the {TWIN_MIN_FINDING_AGREEMENT:.0%} / "
             f"{TWIN_MAX_MEAN_PROBABILITY_DIFFERENCE} the export is held to)"))
    write_manifest(int8, {**int8_fields, "int8_twin": twin})
    # The exported weights as a torch state dict, so tests can hold every export to them.
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), checkpoint_dir / f"{cfg.name}.pt")
    return [fp32, int8]


def refit_verdict_rule(cfg: TrainConfig, data_root: Path, out_dir: Path) -> list[Path]:
    """Fit the record verdict for the exported int8 model on what the bedside counts: the
    cycles the streaming pipeline detects in the run's SPRSound validation records. The
    counting rule and the learned verdict are cross-validated over the validation patients;
    the better is refitted on them all and written to every manifest."""
    from steth.models.stream_eval import fit_rule_on_detected_validation

    int8 = out_dir / f"{cfg.name}.int8.onnx"
    feat = log_mel_config(cfg)
    model = CycleModel(int8, expected_feature_hash=feat.unnormalised.hash(), threads=1)
    fit = fit_rule_on_detected_validation(model, data_root, cfg.val_fraction,
                                          cfg.validation_seed, choose=True)
    assert fit.choice is not None
    cv = fit.choice["cross_validated"]
    print(f"record verdict on the detected cycles of {len(fit.records)} validation records: "
          f"{fit.choice['kind']} {fit.rule.to_dict()} 2-1 {fit.scores['2-1']:.3f} "
          f"2-2 {fit.scores['2-2']:.3f}; cross-validated mean: counting rule "
          f"{cv['rule']['mean']:.3f}, learned {cv['learned']['mean']:.3f}")
    detected = fit.to_dict()["fit"]
    return apply_rule_to_manifests(sibling_models(int8), fit.rule, fit.scores,
                                   len(fit.records), on=detected["on"], choice=fit.choice)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steth-export",
                                     description="Calibrate on validation and export ONNX "
                                                 "fp32 + int8 with manifests.")
    parser.add_argument("config", type=Path)
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--seed", type=int)
    parser.add_argument("--out", type=Path, default=DEFAULT_EXPORT_DIR)
    parser.add_argument("--verdict-only", action="store_true",
                        help="keep the exported files; only refit the record verdict on the "
                             "cycles detected in the validation records with the int8 model "
                             "(counting rule or learned, whichever cross-validates better) "
                             "and rewrite every manifest")
    args = parser.parse_args(argv)
    cfg = TrainConfig.from_toml(args.config)
    if args.seed is not None:
        cfg.seed = args.seed
    try:
        if args.verdict_only:
            paths = refit_verdict_rule(cfg, args.data, args.out)
        else:
            # Exporting elsewhere than the runtime's assets leaves the shipped checkpoint be.
            checkpoints = TRAINING_OUTPUTS if args.out == DEFAULT_EXPORT_DIR else args.out
            paths = export_run(cfg, args.data, args.out, checkpoint_dir=checkpoints)
            paths += refit_verdict_rule(cfg, args.data, args.out)
    except (DataError, FileNotFoundError, ModelError) as exc:
        print(f"steth-export: {exc}", file=sys.stderr)
        return 2
    for p in paths:
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
