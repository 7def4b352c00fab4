"""Disk cache of whole-recording feature frames, keyed by the front-end config hash.

Log-mel frames are computed by :func:`edge.features.recording_features` — the same streaming
path the edge runs — over the whole recording, and cut into cycles only afterwards. Other
front ends (models/frontends.py) bring their own ``compute(audio, rate)``; the same cache,
keyed by their ``hash()``, serves them. Stored as float32 ``.npy`` so that the parity test can
hold the cache to 1e-5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from steth.edge.features import FeatureConfig, recording_features
from steth.edge.normalise import normalise_recording
from steth.models.datasets import DataError, Recording, default_data_root, load_audio


class FrontEnd(Protocol):
    """What the cache needs of a front-end config (edge's FeatureConfig satisfies it)."""

    @property
    def frames_per_second(self) -> float: ...

    def hash(self) -> str: ...


def default_cache_root() -> Path:
    return Path(os.environ.get("STETH_CACHE", Path.home() / ".cache" / "steth"))


def cache_path(rec: Recording, config: FrontEnd, root: Path | None = None) -> Path:
    root = root or default_cache_root()
    return root / "features" / config.hash() / rec.dataset / rec.split / f"{rec.rec_id}.npy"


def compute_features(rec: Recording, config: FrontEnd) -> np.ndarray:
    """Frames (T, F) or (T, F, C) of a whole recording through ``config``'s front end.

    Channel-normalised log-mel is the cached log-mel of the same recording through
    :func:`edge.normalise.normalise_recording`, the second half of
    :func:`edge.features.recording_features`: the same numbers without decoding it again.
    """
    if isinstance(config, FeatureConfig) and config.norm.kind != "none":
        raw = cached_features(rec, config.unnormalised)
        return normalise_recording(raw, config.norm, config.frames_per_second,
                                   config.log_floor)
    audio, rate = load_audio(rec.audio_path)
    compute = getattr(config, "compute", None)
    if compute is not None:
        return np.asarray(compute(audio, rate), dtype=np.float32)
    assert isinstance(config, FeatureConfig)
    return recording_features(audio, rate, config)


def cached_features(rec: Recording, config: FrontEnd,
                    root: Path | None = None) -> np.ndarray:
    """Frames of ``rec``; computed and stored on first use."""
    path = cache_path(rec, config, root)
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)  # a torn write from an interrupted run
    frames = compute_features(rec, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, frames)
    os.replace(tmp, path)  # atomic, so a killed run never leaves half a file
    return frames


def _warm_one(args: tuple[Recording, FrontEnd, Path | None]) -> str:
    rec, config, root = args
    cached_features(rec, config, root)
    return rec.key


def warm_cache(recordings: list[Recording], config: FrontEnd, *, workers: int = 2,
               root: Path | None = None) -> None:
    """Fill the cache for every recording, in ``workers`` processes."""
    jobs = [(rec, config, root) for rec in recordings]
    if workers <= 1:
        for job in jobs:
            _warm_one(job)
        return
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(_warm_one, jobs, chunksize=8):
            pass


def main(argv: list[str] | None = None) -> int:
    from steth.models.datasets import load_icbhi, load_sprsound
    from steth.models.zoo import FRONTENDS, ZooError, frontend_config

    parser = argparse.ArgumentParser(
        prog="steth-features",
        description="Compute and cache the features of SPRSound and ICBHI recordings.")
    parser.add_argument("--data", type=Path, default=default_data_root(),
                        help="data root holding sprsound2022/ and icbhi2017/ "
                             "(default: $STETH_DATA or ../shared/data)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--frontend", choices=sorted(FRONTENDS), default="logmel",
                        help="front end to cache, with its default parameters "
                             "(default: logmel, the edge's)")
    args = parser.parse_args(argv)
    try:
        config = frontend_config(args.frontend)
        recordings = (load_sprsound(args.data, "train") + load_sprsound(args.data, "test")
                      + load_icbhi(args.data))
    except (DataError, ZooError) as exc:
        print(f"steth-features: {exc}", file=sys.stderr)
        return 2
    start = time.monotonic()
    warm_cache(recordings, config, workers=args.workers)
    print(f"cached {len(recordings)} recordings, {args.frontend} features {config.hash()}, "
          f"{time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
