"""Teachers' probabilities as soft targets for a student network (``steth-distill``).

A recipe with a ``[distill]`` table names teacher recipes (config files) and the seeds of
each; the teachers must already be trained (``steth-train``) on the student's very
training and validation recordings, so one fixed validation split judges every teacher,
the ensemble, the temperature and the student. The ensemble is chosen on that validation
split by greedy forward selection (add the teacher run that most raises the validation
Score of the mean probabilities; stop when none does). Its probabilities on the training
samples, softened by the temperature, are cached in the student's run folder and replace
part of the labels in the loss (:func:`steth.models.train.distillation_loss`).

Teachers see the clean training windows in eval mode; the student sees them through its
own augmentation, so it also learns to answer as the teachers do on clean audio.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from steth.edge.infer import CyclePrediction, sigmoid, softmax
from steth.models.data import SampleSet
from steth.models.datasets import DataError, default_data_root
from steth.models.feature_cache import default_cache_root
from steth.models.train import (
    SoftTargets,
    TrainConfig,
    event_scores,
    load_data,
    predict_logits,
    run_dir,
    train,
)
from steth.models.zoo import ZooError, build_net

SOFT_TARGETS_FILE = "soft_targets.npz"
REPORT_FILE = "teachers.json"


@dataclass(frozen=True)
class TeacherRun:
    """One trained teacher: its recipe (seed set) and the checkpoint the student learns from."""

    cfg: TrainConfig
    checkpoint: Path

    @property
    def label(self) -> str:
        return f"{self.cfg.name} seed {self.cfg.seed}"


def teacher_runs(cfg: TrainConfig, root: Path = Path(".")) -> list[TeacherRun]:
    """The teacher runs a ``[distill]`` table names: every teacher config × every seed."""
    paths = cfg.distill.get("teachers", [])
    seeds = cfg.distill.get("teacher_seeds", [0])
    if not paths:
        raise DataError(f"{cfg.name}: [distill] names no teachers (teachers = [CONFIG, ...])")
    runs = []
    for path in paths:
        try:
            base = TrainConfig.from_toml(root / path)
        except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError, ZooError) as exc:
            raise DataError(f"{cfg.name}: cannot read teacher config {path}: {exc}") from exc
        for seed in seeds:
            teacher = replace(base, seed=int(seed))
            runs.append(TeacherRun(teacher, run_dir(teacher) / "best_model.pt"))
    return runs


def check_same_split(student: TrainConfig, teacher: TrainConfig) -> None:
    """Refuse a teacher that saw other recordings or other features than the student."""
    same = (teacher.validation_seed == student.validation_seed
            and teacher.val_fraction == student.val_fraction
            and teacher.feature_config() == student.feature_config()
            and teacher.window == student.window
            and teacher.max_recordings == student.max_recordings
            and teacher_icbhi(teacher) == teacher_icbhi(student))
    if not same:
        raise DataError(f"teacher {teacher.name} seed {teacher.seed} was not trained on the "
                        f"student's split and features (split_seed, val_fraction, front "
                        f"end, window and ICBHI use must match {student.name}'s)")


def teacher_icbhi(cfg: TrainConfig) -> tuple[bool, str]:
    """Which ICBHI recordings a recipe's weights learn from (none for select recipes)."""
    trains = cfg.use_icbhi and cfg.icbhi_role == "train"
    return trains, cfg.hold_out_device if trains else ""


def require_trained(run: TeacherRun) -> None:
    if not run.checkpoint.is_file():
        raise DataError(f"teacher {run.label} is not trained yet ({run.checkpoint} missing): "
                        f"steth-train <its config> --seed {run.cfg.seed}")


def load_teacher(run: TeacherRun) -> torch.nn.Module:
    require_trained(run)
    model = build_net(run.cfg.arch, run.cfg.net)
    model.load_state_dict(torch.load(run.checkpoint, weights_only=True))
    return model.eval()


def softened(logits: dict[str, np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """Probabilities of every head at ``temperature``."""
    return {"findings": sigmoid(logits["findings"] / temperature),
            "subtype": softmax(logits["subtype"] / temperature),
            "quality": sigmoid(np.asarray(logits["quality"]) / temperature)}


def ensemble(probabilities: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The mean of the members' probabilities, head by head."""
    return {k: np.mean([p[k] for p in probabilities], axis=0) for k in probabilities[0]}


def predictions(probs: dict[str, np.ndarray]) -> list[CyclePrediction]:
    return [CyclePrediction(float(f[0]), float(f[1]), float(q), tuple(map(float, s)))
            for f, s, q in zip(probs["findings"], probs["subtype"], probs["quality"],
                               strict=True)]


def validation_mean(probs: dict[str, np.ndarray], val_set: SampleSet) -> dict[str, float]:
    """Tasks 1-1 / 1-2 on validation at the default thresholds, as training reports them."""
    return event_scores(val_set.samples, predictions(probs), {})


def greedy_ensemble(members: dict[str, dict[str, np.ndarray]], val_set: SampleSet
                    ) -> tuple[list[str], list[dict]]:
    """Forward selection on validation: start empty, add the member that most raises the
    mean Score of the averaged probabilities, stop when no member raises it."""
    chosen: list[str] = []
    steps: list[dict] = []
    best = -1.0
    while len(chosen) < len(members):
        trials = {name: validation_mean(ensemble([members[n] for n in [*chosen, name]]),
                                        val_set)["mean"]
                  for name in members if name not in chosen}
        name, score = max(trials.items(), key=lambda kv: kv[1])
        if score <= best:
            break
        chosen.append(name)
        best = score
        steps.append({"added": name, "validation_mean": score})
    return chosen, steps


def checkpoint_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def choose_teachers(cfg: TrainConfig, data_root: Path, train_set: SampleSet,
                    val_set: SampleSet, root: Path = Path(".")) -> dict:
    """Score every teacher and the greedy ensemble on validation; the report, with the
    chosen members' logits on the training samples."""
    runs = teacher_runs(cfg, root)
    for run in runs:
        check_same_split(cfg, run.cfg)
    rows, val_probs, train_logits = [], {}, {}
    for run in runs:
        model = load_teacher(run)
        logits = predict_logits(model, val_set, val_set.samples, run.cfg.window)
        val_probs[run.label] = softened(logits, 1.0)
        scores = validation_mean(val_probs[run.label], val_set)
        rows.append({"teacher": run.label, "arch": run.cfg.arch, "validation": scores,
                     "checkpoint_sha256": checkpoint_digest(run.checkpoint)})
        print(f"teacher {run.label}: validation 1-1 {scores['1-1']:.3f} "
              f"1-2 {scores['1-2']:.3f} mean {scores['mean']:.3f}", flush=True)
    chosen, steps = greedy_ensemble(val_probs, val_set)
    whole = validation_mean(ensemble([val_probs[n] for n in chosen]), val_set)
    print(f"ensemble ({len(chosen)} of {len(runs)}: {', '.join(chosen)}): validation 1-1 "
          f"{whole['1-1']:.3f} 1-2 {whole['1-2']:.3f} mean {whole['mean']:.3f}", flush=True)
    for run in runs:
        if run.label in chosen:
            train_logits[run.label] = predict_logits(load_teacher(run), train_set,
                                                     train_set.samples, run.cfg.window)
    return {"teachers": rows, "ensemble": {"members": chosen, "steps": steps,
                                           "validation": whole},
            "train_logits": train_logits}


def soft_targets_from(train_logits: Sequence[dict[str, np.ndarray]], temperature: float,
                      soft_weight: float) -> SoftTargets:
    """The ensemble's softened probabilities as a student's soft targets."""
    probs = ensemble([softened(logits, temperature) for logits in train_logits])
    return SoftTargets(probs["findings"].astype(np.float32),
                       probs["subtype"].astype(np.float32),
                       probs["quality"].astype(np.float32).reshape(-1),
                       temperature, soft_weight)


def samples_digest(subset: SampleSet) -> str:
    """Which training samples, in which order (the soft targets' rows follow them)."""
    rows = [(s.rec_index, s.first, s.last) for s in subset.samples]
    names = [str(r.audio_path.name) for r in subset.recordings]
    return hashlib.sha256(json.dumps([rows, names]).encode()).hexdigest()


def soft_target_folder(key: dict) -> Path:
    """One folder per (teachers, temperature, training samples): students share it."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return default_cache_root() / "soft_targets" / digest


def cached_soft_targets(cfg: TrainConfig, data_root: Path, train_set: SampleSet,
                        val_set: SampleSet, root: Path = Path(".")) -> SoftTargets:
    """Soft targets for ``train_set``, made once per set of teachers and temperature and
    shared by every student of that split; the report is copied into the student's run."""
    temperature = float(cfg.distill.get("temperature", 2.0))
    soft_weight = float(cfg.distill.get("soft_weight", 0.7))
    runs = teacher_runs(cfg, root)
    for run in runs:
        require_trained(run)
    key = {"digests": [checkpoint_digest(r.checkpoint) for r in runs],
           "temperature": temperature, "samples": samples_digest(train_set)}
    folder = soft_target_folder(key)
    cache, report_path = folder / SOFT_TARGETS_FILE, folder / REPORT_FILE
    if not (cache.is_file() and report_path.is_file()):
        report = choose_teachers(cfg, data_root, train_set, val_set, root)
        members = report.pop("train_logits")
        soft = soft_targets_from(list(members.values()), temperature, soft_weight)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(cache, findings=soft.findings, subtype=soft.subtype, quality=soft.quality)
        report_path.write_text(json.dumps({"key": key, **report}, indent=2) + "\n")
    out = run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(report_path.read_text())
    data = np.load(cache)
    return SoftTargets(data["findings"], data["subtype"], data["quality"], temperature,
                       soft_weight)


def distill(cfg: TrainConfig, data_root: Path, *, progress: bool = True,
            stop_after: int | None = None, root: Path = Path(".")) -> Path:
    """Train the student of ``cfg`` on its teachers' soft targets and the labels."""
    if not cfg.distill:
        raise DataError(f"{cfg.name} has no [distill] table: train it with steth-train")

    def teach(train_set: SampleSet, val_set: SampleSet) -> SoftTargets:
        return cached_soft_targets(cfg, data_root, train_set, val_set, root)

    return train(cfg, data_root, progress=progress, stop_after=stop_after, teach=teach)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-distill",
        description="Score the teachers of a [distill] recipe on validation, choose their "
                    "ensemble, cache its soft targets and train the student.")
    parser.add_argument("config", type=Path, help="a recipe with a [distill] table")
    parser.add_argument("--data", type=Path, default=default_data_root())
    parser.add_argument("--seed", type=int, help="the student's seed (default: the config's)")
    parser.add_argument("--teachers-only", action="store_true",
                        help="score the teachers and the ensemble, cache the soft targets, "
                             "do not train")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--stop-after", type=int, metavar="EPOCHS")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_toml(args.config)
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError, ZooError) as exc:
        print(f"steth-distill: cannot read config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cfg.seed = args.seed
    try:
        if args.teachers_only:
            train_set, val_set = load_data(cfg, args.data)
            cached_soft_targets(cfg, args.data, train_set, val_set)
            print(f"teachers: {run_dir(cfg) / REPORT_FILE}")
            return 0
        out = distill(cfg, args.data, progress=not args.no_progress,
                      stop_after=args.stop_after)
    except DataError as exc:
        print(f"steth-distill: {exc}", file=sys.stderr)
        return 2
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

