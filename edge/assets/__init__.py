"""The deployable model files, shipped with the runtime as package data.

``steth-export``, ``steth-export-tflite`` and ``steth-detector-train --final`` write here;
training outputs (checkpoints, benchmark results, model cards) stay in ``models/exports``.
This module only names files: loading and checking them is :func:`steth.edge.loading.load_model`.
"""

from __future__ import annotations

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
DEFAULT_MODEL_NAME = "breathnet.int8.onnx"
DETECTOR_NAME = "breathseg.npz"


def default_model_path() -> Path:
    """The embedded default breath-cycle classifier (int8 ONNX with its manifest)."""
    return ASSETS_DIR / DEFAULT_MODEL_NAME


def default_detector_path() -> Path:
    """The embedded breath-cycle detector weights (``.npz`` with its manifest)."""
    return ASSETS_DIR / DETECTOR_NAME
