"""Score a model on a test split (``steth-bench``): the numbers every result quotes.

The model is an exported ONNX/TFLite file (:class:`edge.infer.CycleModel`) or a trained run
(``--run CONFIG``: the run's ``best_model.pt`` in PyTorch, through :class:`TorchCycleModel`,
which has CycleModel's interface), so the same scoring code serves both. For a run the
report adds its cost: parameters, MACs per window, fp32 size and CPU-minutes to train.

Event tasks (1-1, 1-2, and the ICBHI Score on SPRSound mapped to 4 classes) use the
annotated event boundaries. Record tasks (2-1, 2-2) do NOT use annotations: the whole
recording is tiled into half-overlapping model windows, each window is scored, and the
shared record rule (:func:`edge.labels.record_verdict`) turns them into a verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from steth.edge.features import FeatureConfig, frame_range
from steth.edge.infer import (
    MIN_CYCLE_FRAMES,
    CycleModel,
    CyclePrediction,
    ModelError,
    sigmoid,
    softmax,
)
from steth.edge.labels import VerdictRule, event_to_four_class, record_verdict
from steth.models.datasets import DataError, Recording, default_data_root, load_icbhi, load_sprsound
from steth.models.feature_cache import FrontEnd, cached_features
from steth.models.folds import icbhi_use
from steth.models.metrics import (
    TASK_LABELS,
    all_normal_baseline,
    confusion_matrix,
    detection_recall_precision,
    patient_bootstrap_ci,
    per_class_recall,
    task_scores,
    to_task_label,
)
from steth.models.robustness import CONDITIONS
from steth.models.verdict_fit import fit_rule_on_validation, window_findings

SUBSETS = ("inter", "intra", "combined")
AudioTransform = Callable[[np.ndarray, int], np.ndarray]


@dataclass
class Collected:
    """Per-item truths and predictions, with the patient of each item."""

    items: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)
    cycle_ms: list[float] = field(default_factory=list)
    # 4-class cycle items per (data set, device): (patient, true, predicted)
    by_device: dict[tuple[str, str], list[tuple[str, str, str]]] = field(default_factory=dict)

    def add(self, task: str, subset: str, patient: str, true: str, pred: str) -> None:
        self.items.setdefault(task, []).append((subset, patient, true, pred))

    def add_cycle(self, rec: Recording, true: str, pred: str) -> None:
        """A 4-class cycle finding, kept per data set and stethoscope."""
        key = (rec.dataset, recording_device(rec))
        self.by_device.setdefault(key, []).append((f"{rec.dataset}:{rec.patient}", true, pred))


SPRSOUND_DEVICE = "Yunting-II"  # the one stethoscope of SPRSound 2022


def recording_device(rec: Recording) -> str:
    """The stethoscope of a recording: ICBHI's is the last field of the file name."""
    return rec.device or (SPRSOUND_DEVICE if rec.dataset == "sprsound" else "unknown")


def interval(metric: Callable[[list[str], list[str]], float], true: list[str],
             pred: list[str], patients: list[str], n_boot: int) -> tuple[float, float] | None:
    """The patient-bootstrap 95 % interval, or None when asked for no resamples (the
    tables and the model card then show the score alone)."""
    if n_boot == 0:
        return None
    return patient_bootstrap_ci(metric, true, pred, patients, n_boot=n_boot)


def device_rows(by_device: dict[tuple[str, str], list[tuple[str, str, str]]], n_boot: int
                ) -> list[dict]:
    """One row per (data set, device): patients, cycles, SE, SP, Score, interval, all-Normal.

    The interval resamples whole patients; the all-Normal row is the score of answering
    Normal for every cycle of that device (0.5 by construction of the ICBHI Score).
    """
    rows = []
    for (dataset, device), items in sorted(by_device.items()):
        patients = [p for p, _, _ in items]
        true = [t for _, t, _ in items]
        pred = [p for _, _, p in items]
        scores = task_scores("icbhi", true, pred)
        rows.append({"dataset": dataset, "device": device, "patients": len(set(patients)),
                     "cycles": len(items), **scores.to_dict(),
                     "ci95": interval(lambda t, p: task_scores("icbhi", t, p).score,
                                      true, pred, patients, n_boot),
                     "all_normal_score": all_normal_baseline("icbhi", true).score,
                     "abnormal_cycles": sum(t != "Normal" for t in true)})
    return rows


def record_prediction(model: CycleModel | TorchCycleModel, frames: np.ndarray) -> tuple[str, int]:
    """Record verdict from windows tiled over the whole recording (no annotations used)."""
    verdict = record_verdict(window_findings(model, frames), model.manifest.verdict_rule)
    return verdict.label, verdict.n_cycles


def features_for(rec: Recording, config: FrontEnd,
                 transform: AudioTransform | None) -> np.ndarray:
    if transform is None:
        return cached_features(rec, config)
    from steth.edge.features import recording_features
    from steth.models.datasets import load_audio

    audio, rate = load_audio(rec.audio_path)
    audio = transform(audio, rate)
    compute = getattr(config, "compute", None)
    if compute is not None:  # a models/frontends.py front end
        return np.asarray(compute(audio, rate), dtype=np.float32)
    assert isinstance(config, FeatureConfig)
    return recording_features(audio, rate, config)


@dataclass(frozen=True)
class RunManifest:
    """The parts of :class:`edge.manifest.Manifest` the scoring code reads, for a torch run."""

    name: str
    version: str
    feature_config: FrontEnd
    verdict_rule: VerdictRule
    data: dict


class TorchCycleModel:
    """A trained run's network behind :class:`edge.infer.CycleModel`'s interface.

    Windows come from the same cycle windowing as training and the edge; window
    probabilities are pooled as CycleModel pools them (findings max, subtype and quality
    mean). Thresholds are 0.5 (uncalibrated, as the Multi-breath paper's tau) and the record
    rule is :class:`edge.labels.VerdictRule`'s default. The edge's per-window mean removal is
    not applied: these networks were trained without it (BreathNet removes the mean itself).
    """

    def __init__(self, config_path: Path, seed: int | None = None, *, threads: int = 1) -> None:
        import torch

        from steth.models.train import TrainConfig, run_dir
        from steth.models.zoo import ZooError, build_net

        try:
            self.cfg = TrainConfig.from_toml(config_path)
        except (OSError, ValueError, TypeError, ZooError) as exc:
            raise ModelError(f"{config_path}: cannot read the run config ({exc})") from exc
        if seed is not None:
            self.cfg.seed = seed
        self.run_dir = run_dir(self.cfg)
        weights = self.run_dir / "best_model.pt"
        if not weights.is_file():
            raise ModelError(f"{weights} not found: train it first with "
                             f"steth-train {config_path}")
        torch.set_num_threads(threads)
        try:
            self.net = build_net(self.cfg.arch, self.cfg.net)
            self.net.load_state_dict(torch.load(weights, map_location="cpu",
                                                weights_only=True))
        except (ZooError, RuntimeError) as exc:
            raise ModelError(f"{weights} does not fit {config_path} ({exc}); retrain or "
                             "pass the config it was trained with") from exc
        self.net.eval()
        self.window = self.cfg.window
        self.thresholds = {"crackle": 0.5, "wheeze": 0.5, "quality": 0.5}
        self.manifest = RunManifest(name=self.cfg.name, version=f"seed{self.cfg.seed}",
                                    feature_config=self.cfg.feature_config(),
                                    verdict_rule=VerdictRule(),
                                    data={"precision": "fp32 (torch)"})

    def predict_cycle(self, frames: np.ndarray) -> CyclePrediction:
        """Score one cycle's frames (T, F) or (T, F, C); long cycles max-pool their windows."""
        import torch

        from steth.models.train import model_windows, to_input

        if frames.shape[0] < MIN_CYCLE_FRAMES:
            raise ValueError(f"cycle has {frames.shape[0]} frames, at least "
                             f"{MIN_CYCLE_FRAMES} are needed")
        with torch.no_grad():
            f, s, q = (t.numpy() for t in self.net(to_input(model_windows(frames,
                                                                           self.window))))
        findings = sigmoid(f).max(axis=0)
        subtype = softmax(s).mean(axis=0)
        return CyclePrediction(float(findings[0]), float(findings[1]),
                               float(sigmoid(q[:, 0]).mean()), tuple(float(p) for p in subtype))

    def cost(self) -> dict:
        """Parameters, MACs per window, fp32 bytes and CPU-minutes to train (from history)."""
        return network_cost(self.net, self.cfg, self.run_dir)


def network_cost(net, cfg, run_folder: Path) -> dict:
    """What a run costs: see docs/papers.md for what each number counts."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from steth.models.nets import conv_macs, count_parameters

    probe = cycle_input_shape(cfg)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(probe))
    history_path = run_folder / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    cpu = [h.get("cpu_seconds") for h in history]
    return {
        "parameters": count_parameters(net),
        "macs_per_window": counter.get_total_flops() // 2,  # conv + matmul, FLOPs / 2
        "conv_linear_macs_per_window": conv_macs(net, probe),
        "input_shape": list(probe),
        "fp32_bytes": sum(t.numel() * 4 for t in net.state_dict().values()
                          if t.is_floating_point()),
        "epochs_trained": len(history),
        "train_cpu_minutes": (sum(cpu) / 60.0) if cpu and None not in cpu else None,
        "train_wall_minutes": sum(h["seconds"] for h in history) / 60.0 if history else None,
        "best_val": max((h["val"]["mean"] for h in history), default=None),
    }


def cycle_input_shape(cfg) -> tuple[int, int, int, int]:
    """(1, C, window, F) of one model window under the run's front end."""
    front = cfg.feature_config()
    bins = int(getattr(front, "n_bins", getattr(front, "n_mels", 0)))
    channels = int(getattr(front, "channels", 1))
    return (1, channels, cfg.window, bins)


def score_sprsound(model: CycleModel | TorchCycleModel, recordings: list[Recording],
                   collected: Collected, transform: AudioTransform | None,
                   progress: Callable[[], None]) -> None:
    config = model.manifest.feature_config
    th = model.thresholds
    for rec in recordings:
        frames = features_for(rec, config, transform)
        subset = rec.subset or "?"
        for event in rec.events:
            first, last = frame_range(event.start, event.end, config)
            last = min(last, frames.shape[0])
            if last - first < 4:
                continue
            t0 = time.perf_counter()
            pred: CyclePrediction = model.predict_cycle(frames[first:last])
            collected.cycle_ms.append((time.perf_counter() - t0) * 1000.0)
            predicted = pred.event_class(th)
            collected.add("1-2", subset, rec.patient, event.label, predicted)
            collected.add("1-1", subset, rec.patient, to_task_label("1-1", event.label),
                          to_task_label("1-1", predicted))
            collected.add("icbhi", subset, rec.patient, event_to_four_class(event.label),
                          pred.finding(th))
            collected.add_cycle(rec, event_to_four_class(event.label), pred.finding(th))
        verdict, _ = record_prediction(model, frames)
        assert rec.record_label is not None
        collected.add("2-2", subset, rec.patient, rec.record_label, verdict)
        collected.add("2-1", subset, rec.patient, to_task_label("2-1", rec.record_label),
                      to_task_label("2-1", verdict))
        progress()


def score_icbhi(model: CycleModel | TorchCycleModel, recordings: list[Recording],
                collected: Collected, progress: Callable[[], None]) -> None:
    config = model.manifest.feature_config
    for rec in recordings:
        frames = cached_features(rec, config)
        for cycle in rec.events:
            first, last = frame_range(cycle.start, cycle.end, config)
            last = min(last, frames.shape[0])
            if last - first < 4:
                continue
            t0 = time.perf_counter()
            pred = model.predict_cycle(frames[first:last])
            collected.cycle_ms.append((time.perf_counter() - t0) * 1000.0)
            finding = pred.finding(model.thresholds)
            collected.add("icbhi-test", "icbhi", rec.patient, cycle.label, finding)
            collected.add_cycle(rec, cycle.label, finding)
        progress()


def summarise(collected: Collected, n_boot: int) -> dict:
    result: dict = {}
    for task, items in collected.items.items():
        space = "icbhi" if task.startswith("icbhi") else task
        subsets = sorted({s for s, *_ in items}) + (["combined"] if task != "icbhi-test" else [])
        per_subset = {}
        for subset in subsets:
            rows = [r for r in items if subset == "combined" or r[0] == subset]
            true = [r[2] for r in rows]
            pred = [r[3] for r in rows]
            scores = task_scores(space, true, pred)
            entry = {**scores.to_dict(), "n": len(rows),
                     "all_normal_score": all_normal_baseline(space, true).score}
            if subset == "combined" or task == "icbhi-test":
                labels = TASK_LABELS[space]
                entry["ci95"] = interval(
                    lambda t, p, s=space: task_scores(s, t, p).score, true, pred,
                    [r[1] for r in rows], n_boot)
                entry["confusion"] = confusion_matrix(true, pred, labels).tolist()
                entry["labels"] = list(labels)
                entry["per_class_recall"] = per_class_recall(true, pred, labels)
                if space in ("2-1", "2-2"):
                    entry["poor_quality_recall_precision"] = detection_recall_precision(
                        true, pred, "Poor Quality")
            per_subset[subset] = entry
        result[task] = per_subset
    return result


def model_size(path: Path) -> dict:
    info: dict = {"file_bytes": path.stat().st_size, "parameters": None}
    if path.suffix != ".onnx":
        return info  # TFLite: the manifest's training record holds the parameter count
    try:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(path)).graph
        info["parameters"] = int(sum(numpy_helper.to_array(t).size for t in graph.initializer
                                     if numpy_helper.to_array(t).size > 1))
    except ImportError:
        info["parameters"] = None
    return info


DEVICE_COLUMNS = ("device", "patients", "cycles", "SE", "SP", "Score", "95% CI", "all-Normal")


def device_cells(row: dict, key: str) -> list[str]:
    """One per-device row as text: ``row[key]`` (the data set or fold), then
    :data:`DEVICE_COLUMNS`; shared by the printed table and the model card."""
    ci = row.get("ci95")
    return [str(row[key]), str(row["device"]), str(row["patients"]), str(row["cycles"]),
            f"{row['se']:.3f}", f"{row['sp']:.3f}", f"{row['score']:.3f}",
            f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "", f"{row['all_normal_score']:.3f}"]


def print_device_table(rows: list[dict], title: str,
                       first: tuple[str, str] = ("data set", "dataset")) -> None:
    """The per-device 4-class cycle table with its all-Normal column.

    ``first`` is the first column's heading and the row key it shows (the data set here,
    the fold in ``steth-lodo``).
    """
    from rich.console import Console
    from rich.table import Table

    heading, key = first
    table = Table(title=title)
    for col in (heading, *DEVICE_COLUMNS):
        table.add_column(col, justify="left" if col in (heading, "device") else "right")
    for r in rows:
        table.add_row(*device_cells(r, key))
    Console(width=120).print(table)


def print_table(result: dict, meta: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{meta['model']} on {meta['split']} ({meta['condition']})")
    for col in ("task", "subset", "n", "SE", "SP", "Score", "95% CI", "all-Normal"):
        table.add_column(col, justify="right" if col not in ("task", "subset") else "left")
    for task, subsets in result.items():
        for subset, e in subsets.items():
            ci = e.get("ci95")
            table.add_row(task, subset, str(e["n"]), f"{e['se']:.3f}", f"{e['sp']:.3f}",
                          f"{e['score']:.3f}", f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "",
                          f"{e['all_normal_score']:.3f}")
    console = Console()
    console.print(table)
    console.print(f"parameters {meta['parameters']}, file {meta['file_bytes'] / 1024:.0f} KiB, "
                  f"per cycle median {meta['cycle_ms_median']:.2f} ms, "
                  f"p95 {meta['cycle_ms_p95']:.2f} ms (one thread)")


def run(model_path: Path, data_root: Path, split: str, *, limit: int = 0, n_boot: int = 1000,
        transform: AudioTransform | None = None, condition: str = "clean",
        show_progress: bool = True, icbhi_split: str = "test") -> dict:
    """Score an exported model file (ONNX/TFLite with its manifest)."""
    # The features are the manifest's own (its hash is checked against it on load).
    model = CycleModel(model_path, threads=1)
    report = score(model, data_root, split, limit=limit, n_boot=n_boot, transform=transform,
                   condition=condition, show_progress=show_progress, icbhi_split=icbhi_split)
    size = model_size(model_path)
    if size["parameters"] is None:
        size["parameters"] = model.manifest.data.get("training", {}).get("parameters")
    report["meta"].update(size)
    return report


def run_torch(config_path: Path, data_root: Path, split: str, *, seed: int | None = None,
              limit: int = 0, n_boot: int = 1000, transform: AudioTransform | None = None,
              condition: str = "clean", show_progress: bool = True,
              fit_rule: bool = False, icbhi_split: str = "test") -> dict:
    """Score a trained run (``best_model.pt``) and add its cost to the report.

    With ``fit_rule`` the record rule is first fit on the run's own validation records
    (as ``steth-export`` does for the deployed model) instead of the default rule.
    """
    model = TorchCycleModel(config_path, seed, threads=1)
    fitted = None
    if fit_rule:
        rule, scores, default, n = fit_rule_on_validation(
            model, model.cfg.feature_config(), data_root, model.cfg.val_fraction,
            model.cfg.validation_seed)
        model.manifest = dataclasses.replace(model.manifest, verdict_rule=rule)
        fitted = {"validation_records": n, "validation_scores": scores,
                  "default_rule_validation_scores": default}
    report = score(model, data_root, split, limit=limit, n_boot=n_boot, transform=transform,
                   condition=condition, show_progress=show_progress, icbhi_split=icbhi_split)
    report["meta"]["verdict_rule"] = model.manifest.verdict_rule.to_dict()
    report["meta"]["verdict_rule_fit"] = fitted
    cost = model.cost()
    report["meta"].update(cost, file_bytes=cost["fp32_bytes"], config=str(config_path),
                          arch=model.cfg.arch, frontend=model.cfg.frontend,
                          run_dir=str(model.run_dir))
    return report


def trained_on_icbhi_train(model: CycleModel | TorchCycleModel, icbhi_split: str) -> bool:
    """Whether scoring this ICBHI half is in-sample: the model's recipe used the training
    half for weights or choices (every recipe does unless ``use_icbhi = false`` or it holds
    out every ICBHI device, ``hold_out_device = "*"``; a device-fold model used part of it)."""
    config = model.manifest.data.get("training", {}).get("config", {})
    return icbhi_split == "train" and icbhi_use(config) != "none"


def score(model: CycleModel | TorchCycleModel, data_root: Path, split: str, *,
          limit: int = 0, n_boot: int = 1000, transform: AudioTransform | None = None,
          condition: str = "clean", show_progress: bool = True,
          icbhi_split: str = "test") -> dict:
    """The scores of any model with CycleModel's interface on ``split``.

    ``icbhi_split`` picks the ICBHI half scored with it: ``test`` (held back from training),
    or ``train``, which is in-sample for a model trained on those recordings and is marked
    so in the report.
    """
    collected = Collected()
    recordings = load_sprsound(data_root, "test") if split in SUBSETS else []
    if split in ("inter", "intra"):
        recordings = [r for r in recordings if r.subset == split]
    if limit:
        recordings = recordings[:limit]
    icbhi = load_icbhi(data_root, icbhi_split) if split in ("combined", "icbhi") else []
    if not recordings and not icbhi:
        # An empty table (and NaN timings) would read as a result.
        raise DataError(f"{data_root}: nothing to score for --split {split} (no SPRSound test "
                        f"or ICBHI {icbhi_split} recordings with audio); pass the --data root "
                        "that holds them")
    from rich.progress import Progress

    with Progress(disable=not show_progress, transient=True) as bar:
        job = bar.add_task("scoring", total=len(recordings) + len(icbhi))
        step = lambda: bar.advance(job)  # noqa: E731
        if split != "icbhi":
            score_sprsound(model, recordings, collected, transform, step)
        score_icbhi(model, icbhi, collected, step)
    ms = collected.cycle_ms or [float("nan")]
    meta = {"model": model.manifest.name, "version": model.manifest.version,
            "precision": model.manifest.data["precision"], "split": split,
            "condition": condition, "sprsound_recordings": len(recordings),
            "icbhi_test_recordings": len(icbhi), "icbhi_split": icbhi_split,
            "icbhi_in_sample": bool(icbhi) and trained_on_icbhi_train(model, icbhi_split),
            "cycle_ms_median": statistics.median(ms),
            "cycle_ms_p95": float(np.percentile(ms, 95)), "thresholds": model.thresholds}
    return {"meta": meta, "results": summarise(collected, n_boot),
            "per_device": device_rows(collected.by_device, n_boot)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-bench",
        description="Score an exported model (with its manifest) on SPRSound 2022 test "
                    "(inter/intra/combined) and the ICBHI test recordings present.")
    parser.add_argument("model", type=Path, nargs="?",
                        help="an .onnx/.tflite file with its manifest")
    parser.add_argument("--run", type=Path, metavar="CONFIG",
                        help="instead of a model file: a training config whose run "
                             "(best_model.pt) is scored in PyTorch, with its cost")
    parser.add_argument("--seed", type=int, help="with --run: the seed's run (default: "
                                                 "the config's)")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root (default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--split", choices=[*SUBSETS, "icbhi"], default="combined")
    parser.add_argument("--icbhi-split", choices=("test", "train"), default="test",
                        help="ICBHI half to score (default test; train is IN-SAMPLE for a "
                             "model trained on those recordings, and the report says so)")
    parser.add_argument("--limit", type=int, default=0,
                        help="first N recordings only (default 0: all)")
    parser.add_argument("--bootstrap", type=int, default=1000,
                        help="patient resamples of the 95%% intervals (default %(default)s; "
                             "0: scores without intervals)")
    parser.add_argument("--condition", choices=sorted(CONDITIONS), default="clean",
                        help="pass test audio through part of the product's signal chain "
                             "first (see models/robustness.py)")
    parser.add_argument("--fit-rule", action="store_true",
                        help="with --run: fit the record-verdict rule on the run's validation "
                             "records first (default: the rule's defaults)")
    parser.add_argument("--json", type=Path, help="also write the results here (with --run "
                                                  "the default is the run folder)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if (args.model is None) == (args.run is None):
        parser.error("give a model file or --run CONFIG (one of them)")
    if args.fit_rule and args.run is None:
        parser.error("--fit-rule needs --run; an exported model carries its fitted rule "
                     "(steth-export --verdict-only)")
    problem = option_problem(args)
    if problem is not None:
        print(f"steth-bench: {problem}", file=sys.stderr)
        return 2
    common = dict(limit=args.limit, n_boot=args.bootstrap, transform=CONDITIONS[args.condition],
                  condition=args.condition, show_progress=not args.no_progress,
                  icbhi_split=args.icbhi_split)
    try:
        if args.run is not None:
            report = run_torch(args.run, args.data, args.split, seed=args.seed,
                               fit_rule=args.fit_rule, **common)
        else:
            report = run(args.model, args.data, args.split, **common)
    except (ModelError, DataError) as exc:
        print(f"steth-bench: {exc}", file=sys.stderr)
        return 2
    print_table(report["results"], report["meta"])
    if report["per_device"]:
        in_sample = " — ICBHI rows IN-SAMPLE" if report["meta"]["icbhi_in_sample"] else ""
        print_device_table(report["per_device"], "4-class cycle findings per data set and "
                                                 f"stethoscope (ICBHI Score){in_sample}")
    text = json.dumps(report, indent=2)
    out = args.json
    if out is None and args.run is not None:  # next to the run, where models.compare looks
        out = run_results_path(Path(report["meta"]["run_dir"]), args.split, args.condition)
    if out is not None:
        out.write_text(text + "\n")
        print(f"results: {out}")
    else:
        print(text)
    return 0


def option_problem(args: argparse.Namespace) -> str | None:
    """A count or output path that cannot work, found before minutes of scoring."""
    for option, value in (("--limit", args.limit), ("--bootstrap", args.bootstrap)):
        if value < 0:
            return f"{option} cannot be negative ({value}); 0 means " + (
                "all recordings" if option == "--limit" else "no intervals")
    if args.json is not None and not args.json.parent.is_dir():
        return f"--json {args.json}: folder {args.json.parent} does not exist; create it first"
    return None


def run_results_path(run_folder: Path, split: str = "combined",
                     condition: str = "clean") -> Path:
    """Where ``steth-bench --run`` saves a run's results (read by models/compare.py)."""
    return run_folder / f"bench_{split}_{condition}.json"


if __name__ == "__main__":
    raise SystemExit(main())


