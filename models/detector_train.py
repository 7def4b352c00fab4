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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from dataclasses import dataclass, field
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
    features: FeatureConfig = field(default_factory=FeatureConfig)

    @classmethod
    def from_toml(cls, path: Path) -> DetectorTrainConfig:
        data = tomllib.loads(Path(path).read_text())
        flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for section in ("net", "target", "train"):
            flat.update(data.get(section, {}))
        if "dilations" in flat:
            flat["dilations"] = tuple(int(d) for d in flat["dilations"])
        return cls(**flat)

    @property
    def norm_tau_frames(self) -> float:
        return self.norm_tau_s * self.features.frames_per_second


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
    """The torch twin of :class:`edge.segment.BoundaryNet` (same parameter layout)."""

    def __init__(self, n_mels: int, channels: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.dilations = dilations
        self.inp = nn.Linear(n_mels, channels)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d)
                                   for d in dilations)
        self.out = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, M)`` normalised frames -> ``(B, T)`` logits."""
        h = F.relu(self.inp(x)).transpose(1, 2)  # (B, C, T)
        for conv, d in zip(self.convs, self.dilations, strict=True):
            h = h + F.relu(conv(F.pad(h, (2 * d, 0))))  # causal: pad the past only
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
        pad = cfg.crop_frames - x.shape[0]
        xs.append(np.pad(x, ((0, pad), (0, 0))))
        ys.append(np.pad(y, (0, pad)))
        ms.append(np.pad(m, (0, pad)))
    return tuple(torch.from_numpy(np.stack(a)) for a in (xs, ys, ms))


def train_net(icbhi: list[Example], sprsound: list[Example], cfg: DetectorTrainConfig,
              log=print) -> TorchBoundaryNet:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    pool = icbhi + sprsound
    share = cfg.icbhi_share if sprsound else 1.0
    weights = np.array([share / len(icbhi)] * len(icbhi)
                       + [(1 - share) / max(1, len(sprsound))] * len(sprsound))
    net = TorchBoundaryNet(cfg.features.n_mels, cfg.channels, cfg.dilations)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    pos_weight = torch.tensor(cfg.pos_weight)
    running = 0.0
    for step in range(cfg.steps):
        x, y, m = sample_batch(pool, weights / weights.sum(), cfg, rng)
        logits = net(x)
        loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none",
                                                   pos_weight=pos_weight) * m).sum() \
            / m.sum().clamp(min=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        value = loss.item()
        running = 0.98 * running + 0.02 * value if step else value
        if step % 250 == 0 or step == cfg.steps - 1:
            log(f"step {step}: loss {running:.4f}")
    return net.eval()


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
        net = train_net(list(icbhi.values()), sprsound, cfg)
        export(net, cfg, out, {"icbhi_train_recordings": len(icbhi),
                               "sprsound_train_recordings": len(sprsound), "seed": cfg.seed})
        print(f"wrote {out} ({time.process_time() - start:.0f} s CPU)")
        return 0
    run = args.out or default_cache_root() / "runs" / f"{cfg.name}-cv"
    folds = []
    for k, held_out in enumerate(patient_folds(icbhi_recs, cfg.folds)):
        train = [icbhi[r.key] for r in icbhi_recs if r.patient not in held_out]
        print(f"fold {k}: held-out patients {held_out}, {len(train)} ICBHI train recordings",
              flush=True)
        net = train_net(train, sprsound, cfg, log=lambda s, k=k: print(f"  fold {k} {s}",
                                                                         flush=True))
        path = run / f"fold{k}.npz"
        export(net, cfg, path, {"held_out_patients": held_out, "seed": cfg.seed})
        folds.append({"weights": str(path), "held_out_patients": held_out})
        print(f"  fold {k} done ({time.process_time() - start:.0f} s CPU)", flush=True)
    (run / "folds.json").write_text(json.dumps({"folds": folds}, indent=2) + "\n")
    print(f"wrote {run / 'folds.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
