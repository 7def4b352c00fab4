"""``steth-verdict-oof``: fit the record verdict on out-of-fold predictions of training records.

The record verdict (:class:`edge.labels.VerdictRule`, counting rule or learned) turns the
cycles of a record into its class. Fitted on the deployed model's own training records, it
would learn from probabilities the network had memorised. Here the training split's
patients are cut into K groups; run g of the recipe is trained without group g
(``steth-train CONFIG --seed S --oof-fold g``), so its predictions on group g are
out-of-fold. Each group's records are replayed through the streaming pipeline with run g's
int8 export, and both verdict forms are fitted on the cycles the edge detects in them. The
deployed model then replays its validation records (never seen by any run here), and the
form that scores better there is kept, the counting rule on a tie. No test record is read.

Steps, as background lanes (one thread each), then one fit::

    nohup steth-train models/configs/breathnet.toml --seed 1 --oof-fold 0 > oof0.log &
    nohup steth-train models/configs/breathnet.toml --seed 1 --oof-fold 1 > oof1.log &
    nohup steth-train models/configs/breathnet.toml --seed 1 --oof-fold 2 > oof2.log &
    steth-verdict-oof models/configs/breathnet.toml --seed 1 \\
        --model edge/assets/breathnet.int8.onnx --json oof_verdict.json [--write]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from steth.edge.infer import CycleModel, ModelError
from steth.edge.labels import CycleFinding, VerdictRule
from steth.edge.manifest import ManifestError
from steth.models.datasets import DataError, Recording, default_data_root
from steth.models.train import TrainConfig, out_of_fold_recordings, run_dir
from steth.models.verdict_fit import (
    apply_rule_to_manifests,
    fit_learned_verdict,
    fit_verdict_rule,
    manifest_validation_split,
    record_task_scores,
    sibling_models,
)

FIT_ON = ("cycles the streaming pipeline detects in SPRSound training records, each scored by "
          "a run trained without that record's patient (out-of-fold)")


def fold_configs(cfg: TrainConfig) -> list[TrainConfig]:
    return [replace(cfg, oof_fold=g) for g in range(cfg.oof_folds)]


def fold_export(cfg: TrainConfig, data_root: Path) -> Path:
    """The int8 export of one out-of-fold run, made (temperatures and thresholds on the
    run's validation split) the first time it is asked for."""
    from steth.models.export import export_run

    run = run_dir(cfg)
    trained = run / "best_model.pt"
    if not (run / "history.json").is_file() or not trained.is_file():
        raise DataError(f"{run}: out-of-fold run {cfg.oof_fold} is not trained yet: "
                        f"steth-train <config> --seed {cfg.seed} --oof-fold {cfg.oof_fold}")
    model = run / "export" / f"{cfg.name}.int8.onnx"
    if not model.is_file() or model.stat().st_mtime < trained.stat().st_mtime:
        export_run(cfg, data_root, model.parent, checkpoint_dir=model.parent)
    return model


def labelled_sprsound(records: list[Recording]) -> list[Recording]:
    return [r for r in records if r.dataset == "sprsound" and r.record_label is not None]


def out_of_fold_findings(cfg: TrainConfig, data_root: Path
                         ) -> tuple[list[Recording], list[list[CycleFinding]]]:
    """Every labelled SPRSound training record, with the cycles its out-of-fold run's
    pipeline counts."""
    from steth.models.stream_eval import stream_record

    records, findings = [], []
    for fold in fold_configs(cfg):
        model = CycleModel(fold_export(fold, data_root), threads=1)
        for rec in labelled_sprsound(out_of_fold_recordings(fold, data_root)):
            if rec.split != "train":
                raise DataError(f"{rec.key}: not a training record; refusing to fit on it")
            records.append(rec)
            findings.append(stream_record(model, rec).findings)
    return records, findings


@dataclass(frozen=True)
class OutOfFoldChoice:
    rule: VerdictRule
    kind: str
    fitted: dict[str, dict[str, float]]  # per form, on the out-of-fold records (in-sample)
    validation: dict[str, dict[str, float]]  # per form, on the deployed model's validation
    oof_records: int
    validation_records: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "rule": self.rule.to_dict(), "on": FIT_ON,
                "out_of_fold_records": self.oof_records, "fitted_in_sample": self.fitted,
                "validation_records": self.validation_records,
                "validation": self.validation,
                "chosen_on": "validation records replayed with the deployed model; the "
                             "counting rule on a tie"}


def choose_out_of_fold(oof: list[list[CycleFinding]], oof_labels: list[str],
                       validation: list[list[CycleFinding]], validation_labels: list[str]
                       ) -> OutOfFoldChoice:
    """Fit both forms on the out-of-fold records; keep the one better on validation."""
    forms = {"rule": fit_verdict_rule(oof, oof_labels),
             "learned": fit_learned_verdict(oof, oof_labels)}
    scores = {kind: record_task_scores(validation, validation_labels, rule)
              for kind, (rule, _) in forms.items()}
    kind = "learned" if scores["learned"]["mean"] > scores["rule"]["mean"] + 1e-12 else "rule"
    return OutOfFoldChoice(forms[kind][0], kind, {k: f[1] for k, f in forms.items()}, scores,
                           len(oof), len(validation))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-verdict-oof",
        description="Fit the record verdict (counting rule and learned) on out-of-fold "
                    "predictions of the training records, choose on the deployed model's "
                    "validation records, and optionally write it into its manifests.")
    parser.add_argument("config", type=Path, help="the deployed model's recipe")
    parser.add_argument("--seed", type=int, help="the deployed model's seed")
    parser.add_argument("--model", type=Path, required=True,
                        help="the deployed int8 model, e.g. edge/assets/breathnet.int8.onnx")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--write", action="store_true",
                        help="rewrite the model's manifests (fp32, int8, TFLite) with the "
                             "chosen verdict")
    args = parser.parse_args(argv)
    from steth.models.stream_eval import detected_validation_findings

    try:
        cfg = TrainConfig.from_toml(args.config)
        if args.seed is not None:
            cfg.seed = args.seed
        deployed = CycleModel(args.model, threads=1)
        split = manifest_validation_split(deployed.manifest.data)
        if split != (cfg.val_fraction, cfg.validation_seed):
            raise DataError(f"{args.model} was validated on split {split}, the recipe's runs "
                            f"on {(cfg.val_fraction, cfg.validation_seed)}: pass its --seed")
        oof_records, oof = out_of_fold_findings(cfg, args.data)
        val_records, val = detected_validation_findings(deployed, args.data, *split)
    except (DataError, ModelError, ManifestError, OSError, ValueError) as exc:
        print(f"steth-verdict-oof: {exc}", file=sys.stderr)
        return 2
    choice = choose_out_of_fold(oof, [str(r.record_label) for r in oof_records],
                                val, [str(r.record_label) for r in val_records])
    for kind in ("rule", "learned"):
        fit, on_val = choice.fitted[kind], choice.validation[kind]
        print(f"{kind:8s} out-of-fold ({choice.oof_records} records, in-sample) 2-1 "
              f"{fit['2-1']:.3f} 2-2 {fit['2-2']:.3f}; validation ({choice.validation_records} "
              f"records) 2-1 {on_val['2-1']:.3f} 2-2 {on_val['2-2']:.3f} mean "
              f"{on_val['mean']:.3f}")
    print(f"kept: {choice.kind} {choice.rule.to_dict()}")
    report = choice.to_dict()
    if args.write:
        written = apply_rule_to_manifests(
            sibling_models(args.model), choice.rule, choice.fitted[choice.kind],
            choice.oof_records, on=FIT_ON,
            choice={"kind": choice.kind, "validation": choice.validation,
                    "validation_records": choice.validation_records})
        report["written"] = [str(p) for p in written]
        for path in written:
            print(f"wrote {path}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
