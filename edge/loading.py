"""Load the classifier and check the detector: the one way every tool gets its models.

The edge runner, the offline pipeline, session re-classification, the benchmarks and the tests
all call :func:`load_model`, so a model is always checked against the feature configuration
the stream computes, and a detector that does not match it stops start-up rather than the
first breath.
"""

from __future__ import annotations

from pathlib import Path

from steth.edge.assets import default_detector_path, default_model_path
from steth.edge.features import FeatureConfig
from steth.edge.infer import CycleModel
from steth.edge.segment import load_weights


def load_model(path: Path | str | None = None, *, threads: int = 1,
               check_detector: bool = True) -> CycleModel:
    """The classifier at ``path`` (default: the embedded one), pinned to the stream's features.

    Parameters
    ----------
    path : Path or str, optional
        A ``.onnx`` or ``.tflite`` file with its ``.manifest.json``; the embedded
        :func:`steth.edge.assets.default_model_path` when omitted.
    threads : int
        Inference threads.
    check_detector : bool
        Also load the embedded breath-cycle detector weights against the model's feature
        configuration (what the streaming pipeline will do), so a mismatch is found now.

    Raises
    ------
    steth.edge.infer.ModelError
        The model is missing, corrupt, or made for other features.
    steth.edge.segment.DetectorWeightsError
        The detector weights are missing, corrupt, or made for other features.

    Examples
    --------
    >>> model = load_model()
    >>> model.manifest.name
    'breathnet'
    """
    model = CycleModel(Path(path) if path is not None else default_model_path(),
                       expected_feature_hash=FeatureConfig().hash(), threads=threads)
    if check_detector:
        load_weights(default_detector_path(), model.manifest.feature_config)
    return model
