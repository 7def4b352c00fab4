"""``steth-lodo``: leave-one-device-out training and scoring of one recipe.

For each ICBHI stethoscope in the data folder, a fold trains on SPRSound train plus the ICBHI
recordings of patients who never used that device, and scores the held-out device's
recordings; the ``*`` fold trains on SPRSound alone and scores every ICBHI recording (see
:mod:`steth.models.folds`). Everything a fold fits — weights, checkpoint choice (validation
mean of tasks 1-1/1-2), temperatures and thresholds (``steth-export``'s fit) — comes from that
fold's own patient-disjoint validation split of its own training data.

A recipe with ``icbhi_role = "select"`` (:mod:`steth.models.device_select`) learns its
weights from SPRSound alone, in one run that every fold shares; each fold then uses its
ICBHI recordings (again only patients who never used the held-out device) to choose the
epoch or epoch average and to fit temperatures and thresholds, with SPRSound validation.

Each step is resumable: training resumes from ``last.pt`` and a finished export is kept;
the table is scored afresh from the exported fold models every time it is printed. Run
folds as separate background lanes, one thread each::

    nohup steth-lodo models/configs/breathnet.toml --folds AKGC417L LittC2SE > lane1.log &
    nohup steth-lodo models/configs/breathnet.toml --folds Meditron '*' > lane2.log &
    steth-lodo models/configs/breathnet.toml --report --json docs/lodo/breathnet.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from steth.edge.features import FeatureConfig
from steth.edge.guard import GuardModel
from steth.edge.infer import CycleModel, ModelError
from steth.models.benchmark import Collected, device_rows, print_device_table, score_icbhi
from steth.models.datasets import DataError, default_data_root, load_icbhi, load_sprsound
from steth.models.folds import ALL_ICBHI, Fold, build_folds, fold_name
from steth.models.guard_fit import firing, fit_guard
from steth.models.train import (
    TrainConfig,
    fold_config,
    fold_dir,
    fold_model,
    run_dir,
    training_recordings,
)

FOLD_REPORT = "lodo.json"
PROTOCOLS = {
    "train": "train on SPRSound train + ICBHI patients who never used the held-out device; "
             "checkpoint, temperatures and thresholds from the fold's own validation split; "
             "held-out device's cycles scored with the fold's int8 model",
    "select": "weights from SPRSound train alone (one run shared by every fold); the epoch, "
              "temperatures and thresholds chosen on SPRSound validation together with the "
              "ICBHI patients who never used the held-out device; held-out device's cycles "
              "scored with the fold's int8 model",
}


def train_fold(cfg: TrainConfig, data_root: Path) -> None:
    """Train (or resume) and export one fold, with its record rule fitted as steth-export
    fits it, so a fold model also scores the SPRSound record tasks as shipped models do."""
    from steth.models.distill import distill
    from steth.models.export import export_run, refit_verdict_rule
    from steth.models.train import train

    # A distillation recipe's fold student learns from the teachers its table names.
    run = (distill(cfg, data_root, progress=False) if cfg.distill
           else train(cfg, data_root, progress=False))
    model = fold_model(cfg)
    trained = run / ("history.json" if cfg.icbhi_role == "select" else "best_model.pt")
    if model.is_file() and model.stat().st_mtime >= trained.stat().st_mtime:
        return
    export_run(cfg, data_root, model.parent, checkpoint_dir=model.parent)
    refit_verdict_rule(cfg, data_root, model.parent)


def fold_guard(cfg: TrainConfig, data_root: Path) -> tuple[GuardModel, dict]:
    """The fold's guard, fitted on the fold's training split, threshold on its validation."""
    feat = cfg.feature_config()
    assert isinstance(feat, FeatureConfig)
    return fit_guard(*training_recordings(cfg, data_root), feat)


def guard_validation(cfg: TrainConfig, fold: Fold, data_root: Path,
                     per_recording: dict[str, list[tuple[str, str, str]]],
                     n_boot: int) -> dict:
    """How often the fold's guard fires on the held-out device and on SPRSound test, and the
    Score of the held-out cycles it flagged vs those it did not."""
    feat = cfg.feature_config()
    assert isinstance(feat, FeatureConfig)
    guard, fit = fold_guard(cfg, data_root)
    held = firing(guard, list(fold.test), feat)
    spr_test = firing(guard, load_sprsound(data_root, "test"), feat)
    groups: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for key, items in per_recording.items():
        group = "flagged" if held[key] else "not flagged"
        groups.setdefault(("icbhi", group), []).extend(items)
    return {"fit": fit, "threshold": guard.threshold,
            "held_out_fire_rate": float(np.mean(list(held.values()))),
            "held_out_recordings": len(held),
            "sprsound_test_fire_rate": float(np.mean(list(spr_test.values()))),
            "sprsound_test_recordings": len(spr_test),
            "score_by_flag": device_rows(groups, n_boot)}


def score_fold(cfg: TrainConfig, fold: Fold, n_boot: int, data_root: Path) -> dict:
    """The held-out device's cycles scored by the fold's int8 model, and its guard checked."""
    model = CycleModel(fold_model(cfg),
                       expected_feature_hash=cfg.feature_config().unnormalised.hash(),
                       threads=1)
    collected = Collected()
    per_recording: dict[str, list[tuple[str, str, str]]] = {}
    for rec in fold.test:
        one = Collected()
        score_icbhi(model, [rec], one, lambda: None)
        items = [i for group in one.by_device.values() for i in group]
        per_recording[rec.key] = items
        for key, group in one.by_device.items():
            collected.by_device.setdefault(key, []).extend(group)
    trained = {r.patient for r in fold.train}
    scored = {r.patient for r in fold.test}
    assert not trained & scored, "a held-out patient trained in its own fold"
    return {"fold": fold.name, "held_out": fold.held_out, "model": str(fold_model(cfg)),
            "icbhi_role": cfg.icbhi_role,
            "thresholds": model.thresholds, "version": model.manifest.version,
            "training_icbhi_patients": sorted(trained), "rows": device_rows(
                collected.by_device, n_boot),
            "items": [list(i) for i in collected.by_device.get(("icbhi", fold.held_out), [])]
            if fold.held_out != ALL_ICBHI else [],
            "guard": guard_validation(cfg, fold, data_root, per_recording, n_boot),
            "epochs": cfg.epochs, "seed": cfg.seed}


def run_folds(cfg: TrainConfig, folds: list[Fold], data_root: Path) -> None:
    """Train and export each fold (resuming); :func:`summary` scores them afterwards."""
    for fold in folds:
        start = time.process_time()
        role = "training" if cfg.icbhi_role == "train" else "selecting"
        print(f"[{fold.name}] {role} on SPRSound + {len(fold.train)} ICBHI recordings, "
              f"then scoring {len(fold.test)}", flush=True)
        train_fold(fold_config(cfg, fold), data_root)
        print(f"[{fold.name}] trained and exported ({time.process_time() - start:.0f} s CPU)",
              flush=True)


def pooled_row(reports: list[dict], n_boot: int) -> dict | None:
    """The device folds' held-out cycles pooled (the SPRSound-only fold is not in it)."""
    collected = Collected()
    for report in reports:
        for patient, true, pred in report["items"]:
            collected.by_device.setdefault(("icbhi", "pooled held-out devices"), []).append(
                (patient, true, pred))
    rows = device_rows(collected.by_device, n_boot)
    return rows[0] if rows else None


def summary(cfg: TrainConfig, folds: list[Fold], n_boot: int, data_root: Path) -> dict:
    """The table over every fold whose model is exported, scored afresh from that model."""
    reports, missing = [], []
    for fold in folds:
        fcfg = fold_config(cfg, fold)
        if fold_model(fcfg).is_file() and (run_dir(fcfg) / "history.json").is_file():
            report = score_fold(fcfg, fold, n_boot, data_root)
            (fold_dir(fcfg) / FOLD_REPORT).write_text(json.dumps(report, indent=2) + "\n")
            reports.append(report)
        else:
            missing.append(fold.name)
    table = [{"fold": r["fold"], **row} for r in reports for row in r["rows"]]
    device_reports = [r for r in reports if r["held_out"] != ALL_ICBHI]
    pooled = pooled_row(device_reports, n_boot)
    scores = [row["score"] for r in device_reports for row in r["rows"]]
    sprsound_only = [row["score"] for r in reports if r["held_out"] == ALL_ICBHI
                     for row in r["rows"]]
    guard = [{"fold": r["fold"], **{k: v for k, v in r["guard"].items() if k != "fit"},
              **r["guard"]["fit"]} for r in reports]
    return {"recipe": cfg.name, "version": cfg.version, "seed": cfg.seed,
            "epochs": cfg.epochs, "folds": table, "pooled": pooled, "guard": guard,
            "mean_device_score": sum(scores) / len(scores) if scores else None,
            # The SPRSound-only model on each device: what the other ICBHI devices add.
            "sprsound_only_mean_device_score": (sum(sprsound_only) / len(sprsound_only)
                                                if sprsound_only else None),
            "missing_folds": missing,
            "protocol": PROTOCOLS[cfg.icbhi_role]}


def print_summary(result: dict) -> None:
    from rich.console import Console

    rows = result["folds"] + ([{"fold": "pooled", **result["pooled"]}] if result["pooled"]
                              else [])
    print_device_table(rows, f"leave-one-device-out: {result['recipe']} {result['version']} "
                             f"seed {result['seed']} ({result['epochs']} passes)",
                       first=("fold", "fold"))
    console = Console(width=120)
    if result["mean_device_score"] is not None:
        console.print(f"mean over held-out devices {result['mean_device_score']:.3f}")
    if result.get("sprsound_only_mean_device_score") is not None:
        console.print(f"{fold_name(ALL_ICBHI)} fold (SPRSound only), mean over devices "
                      f"{result['sprsound_only_mean_device_score']:.3f}", markup=False)
    for g in result["guard"]:
        flagged = {row["device"]: row for row in g["score_by_flag"]}
        scores = ", ".join(f"{name} {row['score']:.3f} ({row['cycles']} cycles)"
                           for name, row in sorted(flagged.items()))
        # markup off: rich would read a fold name in brackets ("[all-icbhi]") as a style.
        console.print(f"guard [{g['fold']}]: fires on {g['held_out_fire_rate']:.0%} of "
                      f"{g['held_out_recordings']} held-out recordings, "
                      f"{g['sprsound_test_fire_rate']:.1%} of SPRSound test, "
                      f"{g['validation_fire_rate']:.1%} of SPRSound validation; Score {scores}",
                      markup=False)
    if result["missing_folds"]:
        console.print(f"not run yet: {', '.join(result['missing_folds'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-lodo",
        description="Leave-one-device-out: train a recipe once per held-out ICBHI "
                    "stethoscope (plus once on SPRSound alone) and score the device it never "
                    "heard. Resumable; run folds as separate background lanes.",
        epilog="folds: the ICBHI device names in the data folder (e.g. AKGC417L LittC2SE "
               "Meditron) and '*' (SPRSound only, scored on all ICBHI recordings)")
    parser.add_argument("config", type=Path, help="training recipe, e.g. "
                                                  "models/configs/breathnet.toml")
    parser.add_argument("--folds", nargs="+", metavar="DEVICE",
                        help="train and score only these folds (default: all)")
    parser.add_argument("--report", action="store_true",
                        help="train nothing: print the table of the folds already scored")
    parser.add_argument("--seed", type=int, help="override the recipe's seed")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root (default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="patient resamples")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_toml(args.config)
    except (OSError, ValueError, TypeError) as exc:
        print(f"steth-lodo: cannot read config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cfg.seed = args.seed
    try:
        folds = build_folds(load_icbhi(args.data, "train"))
        names = {f.held_out for f in folds}
        unknown = sorted(set(args.folds or []) - names)
        if unknown:
            print(f"steth-lodo: no fold {', '.join(unknown)}; choose from "
                  f"{', '.join(sorted(names))}", file=sys.stderr)
            return 2
        if not args.report:
            chosen = [f for f in folds if args.folds is None or f.held_out in args.folds]
            run_folds(cfg, chosen, args.data)
    except (DataError, ModelError) as exc:
        print(f"steth-lodo: {exc}", file=sys.stderr)
        return 2
    result = summary(cfg, folds, args.bootstrap, args.data)
    print_summary(result)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
