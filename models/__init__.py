"""Training, evaluation, export and benchmarks (torch lives only here)."""

from pathlib import Path

# Checkpoints, benchmark results and model cards; the deployable files live in edge/assets.
TRAINING_OUTPUTS = Path(__file__).resolve().parent / "exports"
