"""Train the breath-cycle boundary network of ``edge/segment.py`` (torch; exported to NumPy).

Targets: a soft bump (``sigma_s``) at every cycle boundary - ICBHI cycle starts plus the last
cycle's end, SPRSound *train* event onsets - shifted ``lookahead_frames`` later, because the
network scores frame ``t - lookahead`` at frame ``t``. The loss only counts frames whose
status is known: inside ICBHI's annotated span, inside SPRSound events and the short pauses
between consecutive annotated events (about 60 % of SPRSound audio is not annotated).
Inputs are the edge's own :class:`edge.segment.FrameNormaliser` output, so training and the
edge share one feature path.

``--cv`` trains one model per patient-grouped fold of the ICBHI training recordings (each
fold's model never sees its held-out patients) and writes ``folds.json`` for
``steth-detect-eval --cv``; ``--final`` trains on all of them and writes the shipped weights.

Optional teacher-student (``[teacher] teacher = true``): per fold, an offline bidirectional
teacher (:class:`TorchBoundaryNet` with ``causal=False``) is trained on that fold's ICBHI
recordings and the SPRSound weak targets, labels every frame of the SPRSound *train*
recordings (``pseudo``: its probabilities, or bumps at its peaks), and the causal student
learns from ICBHI and those labels - so no fold's pseudo-labels come from a teacher that saw
its patients. Teachers are saved beside the fold models and reused by runs with the same
teacher recipe (``--teachers RUN``). Measured in models/configs/detector.toml: it did not
beat the plain recipe, which ships.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from steth.edge.features import FeatureConfig
from steth.edge.model_pin import DETECTOR_DECISION_FIELDS, embed, field_digests
from steth.edge.segment import MANIFEST_SUFFIX, WEIGHTS_FORMAT, FrameNormaliser
from steth.models.datasets import DataError, Recording, default_data_root, load_icbhi, load_sprsound
from steth.models.feature_cache import cached_features, default_cache_root


@dataclass(frozen=True)
class DetectorTrainConfig:
    name: str = "breathseg"
    version: str = "0.1.0"  # of the recipe; written into the exported manifest
    seed: int = 0
    folds: int = 5
    threads: int = 1
    channels: int = 24
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    lookahead_frames: int = 20
    norm_tau_s: float = 4.0
    sigma_s: float = 0.05
    sprsound_train: bool = True
    icbhi_share: float = 0.5
    steps: int = 500
    batch_size: int = 16
    crop_frames: int = 800
    lr: float = 0.003
    weight_decay: float = 1e-4
    pos_weight: float = 4.0
    stretch: float = 0.0  # log time-stretch range (0.2: about 0.82x to 1.22x)
    mel_shift: int = 0  # roll the mel bands by up to this many
    noise: float = 0.0  # Gaussian noise on the normalised frames
    causal: bool = True  # False: the offline teacher (sees the future, never shipped)
    # Teacher-student: an offline (bidirectional) teacher trained on the same ICBHI
    # recordings and SPRSound weak targets labels every frame of the SPRSound train
    # recordings; the causal student learns from ICBHI and those labels.
    teacher: bool = False
    teacher_channels: int = 32
    teacher_steps: int = 1000
    pseudo: str = "soft"  # "soft": the teacher's probabilities; "peaks": bumps at its peaks
    pseudo_threshold: float = 0.5  # "peaks": lowest teacher peak taken as a boundary
    features: FeatureConfig = field(default_factory=FeatureConfig)

    @classmethod
    def from_toml(cls, path: Path) -> DetectorTrainConfig:
        data = tomllib.loads(Path(path).read_text())
        flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for section in ("net", "target", "train", "teacher"):
            flat.update(data.get(section, {}))
        if "dilations" in flat:
            flat["dilations"] = tuple(int(d) for d in flat["dilations"])
        return cls(**flat)

    @property
    def norm_tau_frames(self) -> float:
        return self.norm_tau_s * self.features.frames_per_second

    def teacher_config(self) -> DetectorTrainConfig:
        """The offline teacher's recipe: bidirectional, no lookahead, its own size."""
        return replace(self, causal=False, lookahead_frames=0, channels=self.teacher_channels,
                       steps=self.teacher_steps, teacher=False)


# ---------------------------------------------------------------------------- targets


def boundary_times(rec: Recording) -> list[float]:
    """ICBHI: every cycle start and the last end; SPRSound: every event onset."""
    if rec.dataset == "icbhi":
        starts = [e.start for e in rec.events]
        ends = [e.end for e in rec.events]
        # A pause between two annotated cycles makes the earlier end a boundary too.
        extra = [a for a, b in zip(ends, starts[1:], strict=False) if b - a > 0.2]
        return sorted(starts + extra + ends[-1:])
    return [e.start for e in rec.events]


def known_spans(rec: Recording) -> list[tuple[float, float]]:
    """Time spans (s) in which every boundary is annotated."""
    if not rec.events:
        return []
    if rec.dataset == "icbhi":
        return [(max(0.0, rec.events[0].start - 0.3), rec.events[-1].end + 0.3)]
    spans = []
    for e, nxt in zip(rec.events, [*rec.events[1:], None], strict=True):
        end = nxt.start if nxt is not None and nxt.start - e.end < 2.0 else e.end
        spans.append((max(0.0, e.start - 0.3), end))
    return spans


def frame_of(t: float, fps: float) -> int:
    """Frame whose right edge is nearest to ``t`` (frame ``i`` ends at ``(i + 1) / fps``)."""
    return round(t * fps) - 1


def targets(rec: Recording, n: int, cfg: DetectorTrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """(soft target, loss mask), both ``(n,)``, aligned with the frames (not yet shifted)."""
    fps = cfg.features.frames_per_second
    t = np.arange(n)
    bump = np.zeros(n)
    sigma = cfg.sigma_s * fps
    for b in boundary_times(rec):
        bump = np.maximum(bump, np.exp(-0.5 * ((t - frame_of(b, fps)) / sigma) ** 2))
    known = np.zeros(n)
    for lo, hi in known_spans(rec):
        known[max(0, frame_of(lo, fps)):max(0, frame_of(hi, fps) + 1)] = 1.0
    return bump.astype(np.float32), known.astype(np.float32)


def shift_later(a: np.ndarray, frames: int) -> np.ndarray:
    """``out[t] = a[t - frames]`` (zeros before): the network scores frame t - lookahead."""
    out = np.zeros_like(a)
    out[frames:] = a[:a.shape[0] - frames]
    return out


@dataclass
class Example:
    x: np.ndarray  # (n, n_mels) normalised frames
    y: np.ndarray
    mask: np.ndarray


def make_example(rec: Recording, cfg: DetectorTrainConfig) -> Example:
    frames = cached_features(rec, cfg.features)
    x = FrameNormaliser(cfg.features.n_mels, cfg.norm_tau_frames).push(frames)
    y, mask = targets(rec, frames.shape[0], cfg)
    return Example(x.astype(np.float32), y, mask)


# ---------------------------------------------------------------------------- network


class TorchBoundaryNet(nn.Module):
    """The torch twin of :class:`edge.segment.BoundaryNet` (same parameter layout).

    ``causal=False`` centres every convolution (taps at ``t - d, t, t + d``): the offline
    teacher, which has no edge twin.
    """

    def __init__(self, n_mels: int, channels: int, dilations: tuple[int, ...],
                 causal: bool = True) -> None:
        super().__init__()
        self.dilations = dilations
        self.causal = causal
        self.inp = nn.Linear(n_mels, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d)
                                   for d in dilations)
        self.out = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, M)`` normalised frames -> ``(B, T)`` logits."""
        h = F.relu(self.inp(x)).transpose(1, 2)  # (B, C, T)
        for conv, d in zip(self.convs, self.dilations, strict=True):
            # Causal: pad the past only; the teacher pads both sides.
            h = h + F.relu(conv(F.pad(h, (2 * d, 0) if self.causal else (d, d))))
        return self.out(h.transpose(1, 2)).squeeze(-1)  # (B, T)

    def numpy_arrays(self) -> dict[str, np.ndarray]:
        arrays = {"in_w": self.inp.weight, "in_b": self.inp.bias,
                  "out_w": self.out.weight.reshape(-1), "out_b": self.out.bias}
        for k, conv in enumerate(self.convs):
            arrays[f"conv{k}_w"], arrays[f"conv{k}_b"] = conv.weight, conv.bias
        return {k: v.detach().numpy().astype(np.float32) for k, v in arrays.items()}


def augment(x: np.ndarray, y: np.ndarray, m: np.ndarray, cfg: DetectorTrainConfig,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tempo (time stretch), device colouring (mel shift) and noise, so that the 14 ICBHI
    patients' own rhythm and stethoscope are harder to memorise."""
    if cfg.stretch > 0:
        rate = float(np.exp(rng.uniform(-cfg.stretch, cfg.stretch)))
        src = np.arange(0, x.shape[0] - 1, rate)
        lo = src.astype(int)
        frac = (src - lo)[:, None]
        x = x[lo] * (1 - frac) + x[lo + 1] * frac
        y = np.interp(src, np.arange(y.size), y)
        m = m[lo] * m[lo + 1]
    if cfg.mel_shift:
        k = int(rng.integers(-cfg.mel_shift, cfg.mel_shift + 1))
        x = np.roll(x, k, axis=1)
        if k > 0:
            x[:, :k] = 0.0
        elif k < 0:
            x[:, k:] = 0.0
    if cfg.noise > 0:
        x = x + cfg.noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), y.astype(np.float32), m.astype(np.float32)


def sample_batch(pool: list[Example], weights: np.ndarray, cfg: DetectorTrainConfig,
                 rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    xs, ys, ms = [], [], []
    rf = 1 + 2 * sum(cfg.dilations)
    span = int(cfg.crop_frames * (np.exp(cfg.stretch) if cfg.stretch > 0 else 1.0)) + 1
    for i in rng.choice(len(pool), cfg.batch_size, p=weights):
        ex = pool[i]
        n = ex.x.shape[0]
        start = int(rng.integers(0, max(1, n - span)))
        sl = slice(start, start + span)
        x, y, m = augment(ex.x[sl], ex.y[sl], ex.mask[sl], cfg, rng)
        x, y, m = x[:cfg.crop_frames], y[:cfg.crop_frames], m[:cfg.crop_frames].copy()
        y, m = shift_later(y, cfg.lookahead_frames), shift_later(m, cfg.lookahead_frames)
        if start > 0:
            m[:rf] = 0.0  # a crop's first frames lack the past the stream would have had
        if not cfg.causal and start + span < n:
            m[-rf // 2:] = 0.0  # the teacher's last frames lack the future it would see
        pad = cfg.crop_frames - x.shape[0]
        xs.append(np.pad(x, ((0, pad), (0, 0))))
        ys.append(np.pad(y, (0, pad)))
        ms.append(np.pad(m, (0, pad)))
    return tuple(torch.from_numpy(np.stack(a)) for a in (xs, ys, ms))


def new_net(cfg: DetectorTrainConfig) -> TorchBoundaryNet:
    """The untrained network of ``cfg`` (seeded: the same start for every run of a recipe)."""
    torch.manual_seed(cfg.seed)
    return TorchBoundaryNet(cfg.features.n_mels, cfg.channels, cfg.dilations, cfg.causal)


def masked_bce(logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
               cfg: DetectorTrainConfig) -> torch.Tensor:
    """Mean weighted BCE over the frames whose status is known (``m``)."""
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none",
                                             pos_weight=torch.tensor(cfg.pos_weight))
    return (bce * m).sum() / m.sum().clamp(min=1.0)


def example_loss(net: TorchBoundaryNet, examples: list[Example],
                 cfg: DetectorTrainConfig) -> float:
    """The training loss over whole recordings (targets shifted by the lookahead)."""
    total = weight = 0.0
    with torch.no_grad():
        for ex in examples:
            y = torch.from_numpy(shift_later(ex.y, cfg.lookahead_frames))[None]
            m = torch.from_numpy(shift_later(ex.mask, cfg.lookahead_frames))[None]
            logits = net(torch.from_numpy(ex.x)[None])
            total += masked_bce(logits, y, m, cfg).item() * float(m.sum())
            weight += float(m.sum())
    return total / max(weight, 1.0)


def train_net(icbhi: list[Example], sprsound: list[Example], cfg: DetectorTrainConfig,
              log=print) -> TorchBoundaryNet:
    net = new_net(cfg)
    rng = np.random.default_rng(cfg.seed)
    pool = icbhi + sprsound
    share = cfg.icbhi_share if sprsound else 1.0
    weights = np.array([share / len(icbhi)] * len(icbhi)
                       + [(1 - share) / max(1, len(sprsound))] * len(sprsound))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    running = 0.0
    for step in range(cfg.steps):
        x, y, m = sample_batch(pool, weights / weights.sum(), cfg, rng)
        loss = masked_bce(net(x), y, m, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 250 == 0 or step == cfg.steps - 1:
            log(f"step {step}: loss {running:.4f}")
    return net.eval()


def teacher_peaks(p: np.ndarray, cfg: DetectorTrainConfig) -> np.ndarray:
    """Offline peak picking of teacher scores: local maxima above ``pseudo_threshold``, at
    least ``min_gap`` frames apart (the larger wins), rendered as the training bumps."""
    fps = cfg.features.frames_per_second
    gap = round(0.6 * fps)  # the edge picker's fastest breathing (min_period_s)
    order = np.argsort(-p)
    taken: list[int] = []
    for i in order:
        if p[i] < cfg.pseudo_threshold:
            break
        if all(abs(int(i) - j) >= gap for j in taken):
            taken.append(int(i))
    t = np.arange(p.size)
    bump = np.zeros(p.size)
    for i in taken:
        bump = np.maximum(bump, np.exp(-0.5 * ((t - i) / (cfg.sigma_s * fps)) ** 2))
    return bump.astype(np.float32)


def pseudo_label(teacher: TorchBoundaryNet, examples: list[Example],
                 cfg: DetectorTrainConfig) -> list[Example]:
    """The examples with the teacher's labels on every frame (the whole recording counts)."""
    out = []
    with torch.no_grad():
        for ex in examples:
            p = torch.sigmoid(teacher(torch.from_numpy(ex.x)[None]))[0].numpy()
            y = teacher_peaks(p, cfg) if cfg.pseudo == "peaks" else p.astype(np.float32)
            out.append(Example(ex.x, y, np.ones_like(y)))
    return out


# Fields that do not change how the teacher is trained (the student's own, bookkeeping).
_NOT_TEACHER_FIELDS = ("name", "version", "folds", "threads", "teacher", "teacher_channels",
                       "teacher_steps", "pseudo", "pseudo_threshold", "features")


def teacher_key(cfg: DetectorTrainConfig, held_out: list[str]) -> dict:
    """What a saved teacher must have been trained with to be reused for ``cfg``."""
    tcfg = cfg.teacher_config()
    recipe = {k: v for k, v in asdict(tcfg).items() if k not in _NOT_TEACHER_FIELDS}
    return json.loads(json.dumps({"recipe": recipe, "features": tcfg.features.hash(),
                                  "held_out_patients": sorted(held_out)}))


def teacher_for(icbhi: list[Example], sprsound: list[Example], cfg: DetectorTrainConfig,
                held_out: list[str], saved: Path | None, log=print) -> TorchBoundaryNet:
    """The teacher trained on exactly these examples: loaded from ``saved`` when that file
    holds one of the same recipe and held-out patients (student variants share teachers),
    else trained (and written there)."""
    tcfg, key = cfg.teacher_config(), teacher_key(cfg, held_out)
    if saved is not None and saved.is_file():
        state = torch.load(saved, weights_only=False)
        if state.get("key") == key:
            net = new_net(tcfg)
            net.load_state_dict(state["net"])
            log(f"teacher loaded from {saved}")
            return net.eval()
    net = train_net(icbhi, sprsound, tcfg, lambda s: log(f"teacher {s}"))
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"key": key, "net": net.state_dict()}, saved)
    return net


def train_detector(icbhi: list[Example], sprsound: list[Example], cfg: DetectorTrainConfig,
                   log=print, held_out: list[str] | None = None,
                   saved_teacher: Path | None = None) -> TorchBoundaryNet:
    """The causal network; with ``cfg.teacher`` through an offline teacher trained on the
    same examples only (so in cross-validation it never sees the held-out patients)."""
    if not cfg.teacher or not sprsound:
        return train_net(icbhi, sprsound, cfg, log)
    teacher = teacher_for(icbhi, sprsound, cfg, held_out or [], saved_teacher, log)
    labelled = pseudo_label(teacher, sprsound, cfg)
    return train_net(icbhi, labelled, cfg, lambda s: log(f"student {s}"))


def export(net: TorchBoundaryNet, cfg: DetectorTrainConfig, path: Path, info: dict) -> None:
    """Write ``path`` (.npz) and its manifest (SHA-256, feature hash, architecture)."""
    from steth.edge.manifest import sha256_file

    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **net.numpy_arrays())
    manifest = {
        "format": WEIGHTS_FORMAT, "name": cfg.name, "version": cfg.version,
        "weights_file": path.name, "feature_hash": cfg.features.hash(),
        "feature_config": cfg.features.to_dict(), "channels": cfg.channels,
        "dilations": list(cfg.dilations), "lookahead_frames": cfg.lookahead_frames,
        "norm_tau_frames": cfg.norm_tau_frames, "trained_on": info,
    }
    # JSON's view of the fields (tuples become lists) is what the loader digests.
    embed(path, field_digests(json.loads(json.dumps(manifest)), DETECTOR_DECISION_FIELDS))
    manifest["weights_sha256"] = sha256_file(path)
    Path(str(path) + MANIFEST_SUFFIX).write_text(json.dumps(manifest, indent=2) + "\n")


# ---------------------------------------------------------------------------- folds


def patient_folds(recordings: list[Recording], k: int) -> list[list[str]]:
    """Patients split into ``k`` groups of about equal recording counts (largest first)."""
    counts: dict[str, int] = {}
    for rec in recordings:
        counts[rec.patient] = counts.get(rec.patient, 0) + 1
    folds: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for patient in sorted(counts, key=lambda p: (-counts[p], p)):
        i = int(np.argmin(load))
        folds[i].append(patient)
        load[i] += counts[patient]
    return folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="steth-detector-train",
        description="Train the breath-cycle boundary network (edge/segment.py).")
    parser.add_argument("config", type=Path, help="e.g. models/configs/detector.toml")
    parser.add_argument("--data", type=Path, default=default_data_root())
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--cv", action="store_true", help="patient-grouped folds of ICBHI train")
    mode.add_argument("--final", action="store_true", help="all ICBHI training recordings")
    parser.add_argument("--out", type=Path, default=None,
                        help="--final: weights path (default edge/assets/breathseg.npz); "
                             "--cv: run folder (default ~/.cache/steth/runs/breathseg-cv)")
    parser.add_argument("--teachers", type=Path, default=None,
                        help="folder of saved teachers to reuse when their recipe and "
                             "held-out patients match (default: the --cv run folder; none "
                             "with --final)")
    args = parser.parse_args(argv)
    try:
        cfg = DetectorTrainConfig.from_toml(args.config)
        icbhi_recs = load_icbhi(args.data, "train")
        spr_recs = ([r for r in load_sprsound(args.data, "train") if r.events]
                    if cfg.sprsound_train else [])
    except (OSError, tomllib.TOMLDecodeError, TypeError) as exc:
        print(f"steth-detector-train: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        print(f"steth-detector-train: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(cfg.threads)
    start = time.process_time()
    icbhi = {r.key: make_example(r, cfg) for r in icbhi_recs}
    sprsound = [make_example(r, cfg) for r in spr_recs]
    print(f"examples: ICBHI {len(icbhi)}, SPRSound train {len(sprsound)} "
          f"({time.process_time() - start:.0f} s CPU)", flush=True)
    if args.final:
        from steth.edge.assets import default_detector_path

        out = args.out or default_detector_path()
        net = train_detector(list(icbhi.values()), sprsound, cfg, held_out=[],
                             saved_teacher=args.teachers / "final.teacher.pt"
                             if args.teachers else None)
        export(net, cfg, out, {"icbhi_train_recordings": len(icbhi),
                               "sprsound_train_recordings": len(sprsound), "seed": cfg.seed,
                               "teacher": cfg.teacher})
        print(f"wrote {out} ({time.process_time() - start:.0f} s CPU)")
        return 0
    run = args.out or default_cache_root() / "runs" / f"{cfg.name}-cv"
    folds = []
    for k, held_out in enumerate(patient_folds(icbhi_recs, cfg.folds)):
        train = [icbhi[r.key] for r in icbhi_recs if r.patient not in held_out]
        print(f"fold {k}: held-out patients {held_out}, {len(train)} ICBHI train recordings",
              flush=True)
        net = train_detector(train, sprsound, cfg,
                             log=lambda s, k=k: print(f"  fold {k} {s}", flush=True),
                             held_out=held_out,
                             saved_teacher=(args.teachers or run) / f"fold{k}.teacher.pt")
        path = run / f"fold{k}.npz"
        export(net, cfg, path, {"held_out_patients": held_out, "seed": cfg.seed})
        folds.append({"weights": str(path), "held_out_patients": held_out})
        print(f"  fold {k} done ({time.process_time() - start:.0f} s CPU)", flush=True)
    (run / "folds.json").write_text(json.dumps({"folds": folds}, indent=2) + "\n")
    print(f"wrote {run / 'folds.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
