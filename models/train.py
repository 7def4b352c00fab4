"""Train a network from one TOML experiment config (``steth-train CONFIG``).

The config names the network (``arch`` + ``[net]``, resolved through models/zoo.py), the
feature front end (``[frontend]``, log-mel by default), the loss (``loss = "bce"|"focal"``,
``mixup_alpha``) and the budget. Deterministic per (seed, epoch): each epoch reseeds the
sampler, the augmentation and torch, so a run resumed from its last checkpoint continues
exactly as it would have. Checkpoints live outside the work tree
(``$STETH_CACHE/runs/<name>/seed<k>/``). Selection uses a patient-disjoint validation split
of the training data only; ``history.json`` records loss, validation scores, wall and CPU
seconds per epoch.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from steth.edge.infer import CyclePrediction, cycle_windows, fit_window, sigmoid, softmax
from steth.edge.labels import EVENT_CLASSES, four_class_index
from steth.edge.normalise import normalise_recording
from steth.models.chain_augment import add_gain_and_noise
from steth.models.data import (
    IGNORE,
    Sample,
    SampleSet,
    build_sample_set,
    out_of_fold_groups,
    split_train_validation,
)
from steth.models.datasets import (
    DataError,
    Recording,
    default_data_root,
    load_icbhi,
    load_sprsound,
)
from steth.models.device_augment import simulate_device
from steth.models.feature_cache import FrontEnd, default_cache_root
from steth.models.folds import Fold, fold_name, fold_training_recordings
from steth.models.metrics import task_scores, to_task_label
from steth.models.nets import BreathNetConfig
from steth.models.zoo import ZooError, build_net, frontend_config, net_config


@dataclass
class TrainConfig:
    name: str = "breathnet"
    version: str = "0.1.0"  # of the recipe; the exported manifest says "<version>+seed<k>"
    seed: int = 0
    window: int = 128
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15
    # The validation split's own seed: with it set, runs of different seeds share one split
    # (seeds then vary initialisation and sampling only); None splits by ``seed``.
    split_seed: int | None = None
    threads: int = 2
    use_icbhi: bool = True
    # Leave-one-device-out: "" trains on everything; an ICBHI device name drops every patient
    # with any recording under it; "*" drops all of ICBHI (see models/lodo.py).
    hold_out_device: str = ""
    # What a fold's ICBHI recordings are for: "train" (weights, as SPRSound) or "select"
    # (weights from SPRSound alone; the held-in stethoscopes choose the checkpoint and fit the
    # thresholds, as stand-ins for a stethoscope the weights never heard).
    icbhi_role: str = "train"
    # Out-of-fold runs: with ``oof_fold`` = g, the training split's patients of group g
    # (of ``oof_folds``, models.data.out_of_fold_groups) are left out, so the run's
    # predictions on them are out-of-fold; validation stays the run's full split.
    oof_fold: int | None = None
    oof_folds: int = 3
    max_samples_per_epoch: int = 0  # 0 = one pass over the training samples
    max_recordings: int = 0  # 0 = all; a small number for smoke tests
    subtype_weight: float = 0.5
    quality_weight: float = 0.5
    arch: str = "breathnet"  # a key of models.zoo.ARCHITECTURES
    net: Any = field(default_factory=BreathNetConfig)  # that arch's config dataclass
    frontend: str = "logmel"  # a key of models.zoo.FRONTENDS
    frontend_params: dict = field(default_factory=dict)
    loss: str = "bce"  # "bce" (BCE findings + CE subtype) or "focal" (focal on both)
    focal_gamma: float = 2.0
    focal_alpha: float = 1.0  # a scalar weight, as in Oshima et al. (paper 001) eq. 1
    mixup_alpha: float = 0.0  # > 0: mixup, soft targets, KL on the subtype softmax
    augment: dict = field(default_factory=lambda: {"time_mask": 16, "freq_mask": 8,
                                                   "eq_db": 6.0})
    # Another stethoscope and room per training recording, before the channel normalisation
    # (models/device_augment.py); empty = off.
    device_augment: dict = field(default_factory=dict)
    device_augment_prob: float = 0.8  # share of training windows heard through a device
    # Keep every epoch's weights (epoch<k>.pt) so a later step can choose the checkpoint on
    # data this run never validated on (models/device_select.py).
    keep_epochs: bool = False
    # With icbhi_role "select": also try uniform averages of the last 2..N kept epochs.
    select_average_max: int = 0
    # Distillation (``steth-distill``, models/distill.py): ``teachers`` (config paths),
    # ``teacher_seeds``, ``temperature`` and ``soft_weight`` (share of the teacher term).
    distill: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loss not in ("bce", "focal"):
            raise ValueError(f"loss must be 'bce' or 'focal', not {self.loss!r}")
        if self.icbhi_role not in ("train", "select"):
            raise ValueError(f"icbhi_role must be 'train' or 'select', not {self.icbhi_role!r}")

    @property
    def validation_seed(self) -> int:
        """The seed that picks the validation patients (:attr:`split_seed` or ``seed``)."""
        return self.seed if self.split_seed is None else self.split_seed

    @classmethod
    def from_toml(cls, path: Path) -> TrainConfig:
        """Read a config; ``[frontend]`` is a table with ``name`` (default log-mel) and the
        front end's parameters, or just ``frontend = "name"``."""
        data = tomllib.loads(Path(path).read_text())
        arch = data.get("arch", "breathnet")
        net = net_config(arch, data.pop("net", {}))
        front = data.pop("frontend", {})
        if isinstance(front, str):
            front = {"name": front}
        front = dict(front)
        return cls(**data, net=net, frontend=front.pop("name", "logmel"),
                   frontend_params=front)

    def feature_config(self) -> FrontEnd:
        """The front end whose cached frames this run trains on."""
        return frontend_config(self.frontend, self.frontend_params)


def sample_key(s: Sample) -> str:
    if s.poor:
        return "poor"
    if s.subtype != IGNORE:
        return EVENT_CLASSES[s.subtype]
    return f"icbhi:{s.crackle}{s.wheeze}"


def sampling_weights(samples: list[Sample]) -> np.ndarray:
    """Inverse square-root class frequency: rare classes seen more, without overfitting."""
    keys = [sample_key(s) for s in samples]
    counts = Counter(keys)
    w = np.array([counts[k] ** -0.5 for k in keys])
    return w / w.sum()


def without_chain(spec: dict) -> dict:
    """The augmentation spec without its gain and noise-floor parts."""
    return {k: v for k, v in spec.items() if k not in ("gain_db", "noise_dbfs", "noise_prob")}


def augment(x: np.ndarray, rng: np.random.Generator, spec: dict) -> np.ndarray:
    """Equalisation tilt/curve, then time and frequency masking, on (T, F) or (T, F, C).

    Every channel gets the same EQ curve and the same masked region (they describe the same
    sound); a masked region is filled with each channel's own mean.
    """
    if spec.get("gain_db") or spec.get("noise_dbfs"):
        x = add_gain_and_noise(x, rng, spec)  # log-mel only: our device's gain and noise floor
    x = x.copy()
    n_t, n_m = x.shape[:2]
    # A random smooth EQ curve models a different chest-piece or front-end response.
    db = spec.get("eq_db", 0.0)
    if db:
        axis = np.linspace(-1.0, 1.0, n_m)
        curve = rng.uniform(-1, 1) * axis + rng.uniform(-1, 1) * np.cos(np.pi * axis)
        curve = (curve * db / 2.0 * math.log(10) / 10.0).astype(np.float32)
        x += curve if x.ndim == 2 else curve[:, None]
    fill = x.mean() if x.ndim == 2 else x.mean(axis=(0, 1))
    t = int(rng.integers(0, spec.get("time_mask", 0) + 1))
    if t:
        s = int(rng.integers(0, max(1, n_t - t)))
        x[s:s + t] = fill
    f = int(rng.integers(0, spec.get("freq_mask", 0) + 1))
    if f:
        s = int(rng.integers(0, max(1, n_m - f)))
        x[:, s:s + f] = fill
    return x


def _flat(frames: np.ndarray) -> np.ndarray:
    return frames.reshape(frames.shape[0], -1)  # (T, F, C) -> (T, F*C): time stays axis 0


def fit_frames(frames: np.ndarray, window: int) -> np.ndarray:
    """:func:`edge.infer.fit_window` for (T, F) or (T, F, C) frames."""
    return fit_window(_flat(frames), window).reshape(window, *frames.shape[1:])


def model_windows(frames: np.ndarray, window: int) -> np.ndarray:
    """:func:`edge.infer.cycle_windows` for (T, F) or (T, F, C) frames: (n, window, ...)."""
    windows = cycle_windows(_flat(frames), window)
    return windows.reshape(windows.shape[0], window, *frames.shape[1:])


def to_input(windows: np.ndarray) -> torch.Tensor:
    """Stacked windows (B, T, F) or (B, T, F, C) as the network input (B, C, T, F)."""
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2).contiguous()


def training_window(frames: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    if frames.shape[0] > window:
        start = int(rng.integers(0, frames.shape[0] - window + 1))
        return frames[start:start + window]
    return fit_frames(frames, window)


def device_frames(s: Sample, subset: SampleSet, cfg: TrainConfig,
                  rng: np.random.Generator) -> np.ndarray:
    """A sample's frames as another device would have given them.

    The whole recording goes through a simulated device, then the front end's channel
    normalisation from its first frame, as the edge runs it; the sample is cut afterwards.
    """
    assert subset.raw is not None
    feat = cfg.feature_config()
    heard = add_gain_and_noise(subset.raw[s.rec_index], rng, cfg.augment, feat.unnormalised)
    heard = simulate_device(heard, rng, cfg.device_augment, feat)
    frames = normalise_recording(heard, feat.norm, feat.frames_per_second, feat.log_floor)
    return frames[s.first:s.last]


def make_batch(batch: list[Sample], subset: SampleSet, cfg: TrainConfig,
               rng: np.random.Generator, train: bool) -> dict[str, torch.Tensor]:
    xs = []
    for s in batch:
        simulated = (train and subset.raw is not None
                     and rng.random() < cfg.device_augment_prob)
        frames = device_frames(s, subset, cfg, rng) if simulated else subset.frames(s)
        w = training_window(frames, cfg.window, rng)
        # Gain and noise floor belong before the normalisation; device_frames applied them.
        spec = without_chain(cfg.augment) if simulated else cfg.augment
        xs.append(augment(w, rng, spec) if train else w)
    return {
        "x": to_input(np.stack(xs)),  # (B, C, T, F)
        "findings": torch.tensor([[s.crackle, s.wheeze] for s in batch], dtype=torch.float32),
        "subtype": torch.tensor([s.subtype for s in batch], dtype=torch.long),
        "poor": torch.tensor([s.poor for s in batch], dtype=torch.float32),
    }


def subtype_class_weights(samples: list[Sample]) -> torch.Tensor:
    counts = Counter(s.subtype for s in samples if s.subtype != IGNORE)
    w = torch.tensor([(counts.get(i, 0) + 1) ** -0.5 for i in range(len(EVENT_CLASSES))])
    return w / w.mean()


def focal_bce(logits: torch.Tensor, target: torch.Tensor, gamma: float,
              alpha: float) -> torch.Tensor:
    """Multi-label focal loss, mean of ``-alpha (1 - p_t)^gamma log p_t`` over elements.

    ``alpha`` is one scalar weight as in paper 001's eq. 1 (not Lin et al.'s per-class
    alpha_t), so ``gamma = 0, alpha = 1`` is exactly binary cross-entropy.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = torch.exp(-bce)
    return (alpha * (1.0 - p_t) ** gamma * bce).mean()


def focal_ce(logits: torch.Tensor, target: torch.Tensor, gamma: float, alpha: float,
             weight: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax focal loss with optional class weights, normalised like ``F.cross_entropy``
    (weighted mean), so ``gamma = 0, alpha = 1`` is exactly weighted cross-entropy."""
    ce = F.cross_entropy(logits, target, reduction="none")
    p_t = torch.exp(-ce)
    w = weight[target] if weight is not None else torch.ones_like(ce)
    return (w * alpha * (1.0 - p_t) ** gamma * ce).sum() / w.sum()


def findings_loss(logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    if cfg.loss == "focal":
        return focal_bce(logits, target, cfg.focal_gamma, cfg.focal_alpha)
    return F.binary_cross_entropy_with_logits(logits, target)


def subtype_loss(logits: torch.Tensor, target: torch.Tensor, cfg: TrainConfig,
                 sub_w: torch.Tensor) -> torch.Tensor:
    if target.ndim == 2:  # mixup soft targets: KL(target || softmax), class-weighted
        log_p = F.log_softmax(logits, dim=1)
        kl = F.kl_div(log_p, target, reduction="none").sum(dim=1)
        w = target @ sub_w
        return (w * kl).sum() / w.sum()
    if cfg.loss == "focal":
        return focal_ce(logits, target, cfg.focal_gamma, cfg.focal_alpha, sub_w)
    return F.cross_entropy(logits, target, weight=sub_w)


def joint_findings_loss(joint: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of 4-way logits (edge.labels.FOUR_CLASSES order) on 0/1 finding pairs."""
    if not torch.all((target == 0) | (target == 1)):
        raise ValueError("a single-label head needs hard crackle/wheeze targets (no mixup)")
    return F.cross_entropy(joint, four_class_index(target[:, 0], target[:, 1]).long())


@dataclass(frozen=True)
class SoftTargets:
    """A teacher ensemble's probabilities for every training sample (row = sample index),
    softened by ``temperature``; ``soft_weight`` is the teacher term's share of the loss."""

    findings: np.ndarray  # (N, 2) crackle, wheeze
    subtype: np.ndarray  # (N, 7) EVENT_CLASSES
    quality: np.ndarray  # (N,) poor
    temperature: float
    soft_weight: float

    def rows(self, index: np.ndarray) -> dict[str, torch.Tensor]:
        return {"soft_findings": torch.from_numpy(self.findings[index]).float(),
                "soft_subtype": torch.from_numpy(self.subtype[index]).float(),
                "soft_quality": torch.from_numpy(self.quality[index]).float()}


def soft_target_terms(out: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor],
                      temperature: float) -> dict[str, torch.Tensor]:
    """Per head, the cross-entropy of the student's softened outputs against the teachers'
    softened probabilities, times T² so the gradient scale does not shrink with T."""
    findings, subtype, quality = out
    t = temperature
    scale = t * t
    return {
        "findings": scale * F.binary_cross_entropy_with_logits(findings / t,
                                                               batch["soft_findings"]),
        "subtype": scale * -(batch["soft_subtype"]
                             * F.log_softmax(subtype / t, dim=1)).sum(dim=1).mean(),
        "quality": scale * F.binary_cross_entropy_with_logits(quality[:, 0] / t,
                                                              batch["soft_quality"]),
    }


def distillation_loss(out: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor],
                      cfg: TrainConfig, sub_w: torch.Tensor, soft: SoftTargets,
                      joint: torch.Tensor | None = None) -> torch.Tensor:
    """``(1 - w)`` times the shared loss on the labels plus ``w`` times the teacher terms,
    weighted as the shared loss weighs its heads."""
    terms = soft_target_terms(out, batch, soft.temperature)
    taught = terms["findings"] + cfg.subtype_weight * terms["subtype"] + terms["quality"]
    if soft.soft_weight >= 1.0:
        return taught
    hard = loss_fn(out, batch, cfg, sub_w, joint)
    return (1.0 - soft.soft_weight) * hard + soft.soft_weight * taught


def loss_fn(out: tuple[torch.Tensor, ...], batch: dict[str, torch.Tensor],
            cfg: TrainConfig, sub_w: torch.Tensor,
            joint: torch.Tensor | None = None) -> torch.Tensor:
    """The shared loss; ``joint`` (B, 4) logits replace the findings term for single-label
    heads (``out``'s findings are then their marginals, used only at inference)."""
    findings, subtype, quality = out
    known = batch["findings"][:, 0] != IGNORE
    loss = F.binary_cross_entropy_with_logits(quality[:, 0], batch["poor"])
    if known.any() and joint is not None:
        loss = loss + joint_findings_loss(joint[known], batch["findings"][known])
    elif known.any():
        loss = loss + findings_loss(findings[known], batch["findings"][known], cfg)
    sub = batch["subtype"]
    has_sub = (sub.sum(dim=1) > 0) if sub.ndim == 2 else sub != IGNORE
    if has_sub.any():
        loss = loss + cfg.subtype_weight * subtype_loss(subtype[has_sub], sub[has_sub],
                                                        cfg, sub_w)
    return loss


def mixup(batch: dict[str, torch.Tensor], alpha: float,
          rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Mix each sample with a shuffled partner: inputs and targets by the same Beta weight.

    Targets become soft: findings and quality are mixed probabilities, the subtype a mixed
    one-hot distribution (zero rows where either partner has no subtype, so they are
    ignored); a findings row stays IGNORE unless both partners are labelled.
    """
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(batch["x"].shape[0]))
    mixed = dict(batch)
    mixed["x"] = lam * batch["x"] + (1.0 - lam) * batch["x"][perm]
    f = batch["findings"]
    both = (f[:, 0] != IGNORE) & (f[perm, 0] != IGNORE)
    mixed["findings"] = torch.where(both[:, None], lam * f + (1.0 - lam) * f[perm],
                                    torch.full_like(f, IGNORE))
    mixed["poor"] = lam * batch["poor"] + (1.0 - lam) * batch["poor"][perm]
    sub = batch["subtype"]
    one_hot = F.one_hot(sub.clamp(min=0), len(EVENT_CLASSES)).float()
    one_hot[sub == IGNORE] = 0.0
    soft = lam * one_hot + (1.0 - lam) * one_hot[perm]
    soft[(sub == IGNORE) | (sub[perm] == IGNORE)] = 0.0
    mixed["subtype"] = soft  # (B, 7)
    return mixed


def training_loss(model: nn.Module, batch: dict[str, torch.Tensor], cfg: TrainConfig,
                  sub_w: torch.Tensor, soft: SoftTargets | None = None) -> torch.Tensor:
    """The shared loss (with teachers: the distillation loss) plus the design's own term
    (``model.extra_loss``), if it has one.

    Designs with a single-label head expose ``forward_with_joint`` (outputs, 4-way logits).
    """
    with_joint = getattr(model, "forward_with_joint", None)
    out, joint = with_joint(batch["x"]) if with_joint is not None else (model(batch["x"]), None)
    loss = (loss_fn(out, batch, cfg, sub_w, joint) if soft is None
            else distillation_loss(out, batch, cfg, sub_w, soft, joint))
    extra = getattr(model, "extra_loss", None)
    if extra is not None:
        loss = loss + extra(batch["x"], out, batch)
    return loss


@torch.no_grad()
def predict_logits(model: nn.Module, subset: SampleSet, samples: list[Sample],
                   window: int, batch_windows: int = 256) -> dict[str, np.ndarray]:
    """Raw logits per sample, windows pooled as the edge pools probabilities.

    Windows of consecutive samples go through the network together (up to
    ``batch_windows`` at once): in eval mode each window's output does not depend on its
    batch-mates, and one call per sample made validation cost more than training.
    """
    model.eval()
    find, sub, qual = [], [], []
    chunk: list[np.ndarray] = []

    def flush() -> None:
        f, st, q = model(to_input(np.concatenate(chunk)))
        start = 0
        for w in chunk:
            end = start + w.shape[0]
            find.append(f[start:end].amax(dim=0).numpy())  # max over windows, like CycleModel
            sub.append(st[start:end].mean(dim=0).numpy())
            qual.append(float(q[start:end].mean()))
            start = end
        chunk.clear()

    for s in samples:
        windows = model_windows(subset.frames(s), window)
        if chunk and sum(w.shape[0] for w in chunk) + windows.shape[0] > batch_windows:
            flush()
        chunk.append(windows)
    if chunk:
        flush()
    return {"findings": np.array(find), "subtype": np.array(sub), "quality": np.array(qual)}


def event_predictions(logits: dict[str, np.ndarray], thresholds: dict[str, float],
                      temps: dict[str, float] | None = None) -> list[CyclePrediction]:
    temps = temps or {}
    pf = sigmoid(logits["findings"] / temps.get("findings", 1.0))
    ps = softmax(logits["subtype"] / temps.get("subtype", 1.0))
    pq = sigmoid(logits["quality"] / temps.get("quality", 1.0))
    return [CyclePrediction(float(f[0]), float(f[1]), float(q), tuple(map(float, s)))
            for f, s, q in zip(pf, ps, pq, strict=True)]


def event_scores(samples: list[Sample], preds: list[CyclePrediction],
                 thresholds: dict[str, float]) -> dict[str, float]:
    """Task 1-1 and 1-2 BioCAS Scores over the SPRSound events among ``samples``."""
    pairs = [(EVENT_CLASSES[s.subtype], p.event_class(thresholds))
             for s, p in zip(samples, preds, strict=True) if s.subtype != IGNORE]
    if not pairs:
        return {"1-1": 0.0, "1-2": 0.0, "mean": 0.0}
    true, pred = zip(*pairs, strict=True)
    s11 = task_scores("1-1", [to_task_label("1-1", t) for t in true],
                      [to_task_label("1-1", p) for p in pred]).score
    s12 = task_scores("1-2", list(true), list(pred)).score
    return {"1-1": s11, "1-2": s12, "mean": (s11 + s12) / 2}


def epoch_checkpoint_name(epoch: int) -> str:
    """The file of one epoch's weights in a run folder (1-based epoch)."""
    return f"epoch{epoch:02d}.pt"


def run_dir(cfg: TrainConfig) -> Path:
    """Where a run's checkpoints live; every fold of an ``icbhi_role = "select"`` recipe
    shares one SPRSound-only training run (its folds differ only in what they select on)."""
    base = default_cache_root() / "runs" / cfg.name
    if cfg.icbhi_role == "select":
        base = base / "sprsound-only"
    elif cfg.hold_out_device:
        base = base / f"without-{fold_name(cfg.hold_out_device)}"
    split = "" if cfg.split_seed is None else f"-split{cfg.split_seed}"
    oof = "" if cfg.oof_fold is None else f"-oof{cfg.oof_fold}of{cfg.oof_folds}"
    return base / f"seed{cfg.seed}{split}{oof}"


def fold_config(cfg: TrainConfig, fold: Fold) -> TrainConfig:
    """The recipe of one leave-one-device-out fold: its held-out stethoscope set."""
    return replace(cfg, hold_out_device=fold.held_out)


def fold_dir(cfg: TrainConfig) -> Path:
    """A fold's own folder: where a training fold's run lives (``run_dir``). Folds of a
    recipe that selects on the held-in stethoscopes share one SPRSound-only run, so each
    keeps its choice and export in the folder a training fold would have."""
    return run_dir(replace(cfg, icbhi_role="train"))


def fold_model(cfg: TrainConfig) -> Path:
    """The fold's exported int8 classifier."""
    return fold_dir(cfg) / "export" / f"{cfg.name}.int8.onnx"


def training_recordings(cfg: TrainConfig, data_root: Path
                        ) -> tuple[list[Recording], list[Recording]]:
    """The run's (or fold's) training recordings, split patient-disjoint into train and
    validation: what every fitted part of a run (weights, thresholds, guard) may see."""
    recordings = load_sprsound(data_root, "train")
    if cfg.use_icbhi and cfg.icbhi_role == "train":
        recordings += fold_training_recordings(load_icbhi(data_root, "train"),
                                               cfg.hold_out_device)
    if cfg.max_recordings:
        rng = np.random.default_rng(cfg.seed)
        recordings = [recordings[i] for i in sorted(rng.choice(len(recordings),
                                                                cfg.max_recordings, False))]
    train, val = split_train_validation(recordings, cfg.val_fraction, cfg.validation_seed)
    if cfg.oof_fold is not None:
        train = [r for r, g in zip(train, out_of_fold_groups(train, cfg.oof_folds,
                                                             cfg.validation_seed), strict=True)
                 if g != cfg.oof_fold]
    return train, val


def out_of_fold_recordings(cfg: TrainConfig, data_root: Path) -> list[Recording]:
    """The training-split recordings an ``oof_fold`` run left out (its out-of-fold set)."""
    if cfg.oof_fold is None:
        raise ValueError("not an out-of-fold run: oof_fold is unset")
    full = replace(cfg, oof_fold=None)
    train, _ = training_recordings(full, data_root)
    groups = out_of_fold_groups(train, cfg.oof_folds, cfg.validation_seed)
    return [r for r, g in zip(train, groups, strict=True) if g == cfg.oof_fold]


def load_data(cfg: TrainConfig, data_root: Path) -> tuple[SampleSet, SampleSet]:
    train, val = training_recordings(cfg, data_root)
    feat = cfg.feature_config()
    return (build_sample_set(train, feat, cfg.window, keep_raw=bool(cfg.device_augment)),
            build_sample_set(val, feat, cfg.window))


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer,
                sched: torch.optim.lr_scheduler.LRScheduler, train_set: SampleSet,
                cfg: TrainConfig, epoch: int, sub_w: torch.Tensor, progress: bool,
                soft: SoftTargets | None = None) -> float:
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(cfg.seed * 100_003 + epoch)
    samples = train_set.samples
    n = cfg.max_samples_per_epoch or len(samples)
    order = rng.choice(len(samples), size=n, replace=True,
                       p=sampling_weights(samples))
    model.train()
    losses = []
    steps = range(0, n, cfg.batch_size)
    bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", progress)
    for start in bar:
        index = order[start:start + cfg.batch_size]
        batch = make_batch([samples[i] for i in index], train_set, cfg, rng, train=True)
        if soft is not None:
            batch.update(soft.rows(index))
        elif cfg.mixup_alpha > 0:
            batch = mixup(batch, cfg.mixup_alpha, rng)
        loss = training_loss(model, batch, cfg, sub_w, soft)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()  # one-cycle schedule advances per batch
        losses.append(float(loss.detach()))
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    return float(np.mean(losses))


def _progress(iterable: range, desc: str, enabled: bool):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, desc=desc, leave=False, dynamic_ncols=True)


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer,
                    sched: torch.optim.lr_scheduler.LRScheduler, epoch: int,
                    history: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "epoch": epoch, "history": history}, tmp)
    tmp.replace(path)


Scheduler = torch.optim.lr_scheduler.LRScheduler


def build_training(cfg: TrainConfig,
                   steps_per_epoch: int) -> tuple[nn.Module, torch.optim.Optimizer, Scheduler]:
    torch.manual_seed(cfg.seed)
    model = build_net(cfg.arch, cfg.net)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs,
                                                steps_per_epoch=steps_per_epoch)
    return model, opt, sched


def train(cfg: TrainConfig, data_root: Path, *, progress: bool = True,
          out_dir: Path | None = None, stop_after: int | None = None,
          teach: Callable[[SampleSet, SampleSet], SoftTargets] | None = None) -> Path:
    """Train (resuming if a checkpoint exists); returns the run folder.

    ``stop_after`` ends this session after that many epochs in total (the schedule still
    spans ``cfg.epochs``), so a long run can be trained in slices and resumed. ``teach``
    gives the teachers' soft targets for the training set, given the training and
    validation sets (distillation).
    """
    if cfg.distill and teach is None:
        raise DataError(f"{cfg.name} is a distillation recipe ([distill]): train it with "
                        "steth-distill, which brings its teachers")
    if teach is not None and cfg.mixup_alpha > 0:
        raise ValueError("distillation and mixup do not combine (both replace the targets)")
    torch.set_num_threads(cfg.threads)
    out = out_dir or run_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    train_set, val_set = load_data(cfg, data_root)
    soft = teach(train_set, val_set) if teach is not None else None
    print(f"[{cfg.name} seed {cfg.seed}] train {len(train_set.samples)} samples from "
          f"{len(train_set.recordings)} recordings, validation {len(val_set.samples)} from "
          f"{len(val_set.recordings)}", flush=True)
    n = cfg.max_samples_per_epoch or len(train_set.samples)
    model, opt, sched = build_training(cfg, math.ceil(n / cfg.batch_size))
    sub_w = subtype_class_weights(train_set.samples)
    history: list[dict] = []
    start_epoch = 0
    last = out / "last.pt"
    if last.is_file():
        state = torch.load(last, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start_epoch, history = state["epoch"] + 1, state["history"]
        print(f"resumed from {last} after epoch {start_epoch}", flush=True)
    end_epoch = min(cfg.epochs, stop_after) if stop_after is not None else cfg.epochs
    for epoch in range(start_epoch, end_epoch):
        t0, cpu0 = time.monotonic(), time.process_time()
        loss = train_epoch(model, opt, sched, train_set, cfg, epoch, sub_w, progress, soft)
        logits = predict_logits(model, val_set, val_set.samples, cfg.window)
        scores = event_scores(val_set.samples, event_predictions(logits, {}), {})
        # CPU seconds (all threads of this process), not wall time: the machine is shared.
        history.append({"epoch": epoch + 1, "loss": loss, "val": scores,
                        "seconds": time.monotonic() - t0,
                        "cpu_seconds": time.process_time() - cpu0})
        print(f"epoch {epoch + 1}/{cfg.epochs} loss {loss:.4f} val 1-1 {scores['1-1']:.3f} "
              f"1-2 {scores['1-2']:.3f} ({time.monotonic() - t0:.0f} s)", flush=True)
        best = max(history, key=lambda h: h["val"]["mean"])
        if cfg.keep_epochs:
            torch.save(model.state_dict(), out / epoch_checkpoint_name(epoch + 1))
        save_checkpoint(last, model, opt, sched, epoch, history)
        if best["epoch"] == epoch + 1:
            torch.save(model.state_dict(), out / "best_model.pt")
    (out / "history.json").write_text(json.dumps(history, indent=2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="steth-train",
                                     description="Train a network from a TOML experiment config.")
    parser.add_argument("config", type=Path, help="e.g. models/configs/breathnet.toml")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root (default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--seed", type=int, help="override the config's seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs)")
    parser.add_argument("--stop-after", type=int, metavar="EPOCHS",
                        help="stop after this many epochs in total (resume later)")
    parser.add_argument("--oof-fold", type=int, metavar="G",
                        help="leave out the training patients of group G, so that this run "
                             "predicts them out-of-fold (for fitting the record verdict)")
    parser.add_argument("--oof-folds", type=int, default=3, metavar="K",
                        help="number of out-of-fold groups (default 3)")
    args = parser.parse_args(argv)
    if args.oof_fold is not None and not 0 <= args.oof_fold < args.oof_folds:
        parser.error(f"--oof-fold must be in 0..{args.oof_folds - 1}, not {args.oof_fold}")
    try:
        cfg = TrainConfig.from_toml(args.config)
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError, ZooError) as exc:
        print(f"steth-train: cannot read config {args.config}: {exc}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cfg.seed = args.seed
    if args.oof_fold is not None:
        cfg.oof_fold, cfg.oof_folds = args.oof_fold, args.oof_folds
    try:
        out = train(cfg, args.data, progress=not args.no_progress, stop_after=args.stop_after)
    except DataError as exc:
        print(f"steth-train: {exc}", file=sys.stderr)
        return 2
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
