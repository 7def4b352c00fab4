"""The registry of networks and feature front ends a training config may name.

Entries are ``"module:Attribute"`` strings imported only when used, so a design whose module
is missing (or needs an optional dependency) fails when, and only when, a config selects it.
Every network follows the paper-model contract: one config dataclass in, and
``forward(x (B, C, T, F)) -> (findings (B, 2), subtype (B, 7), quality (B, 1))`` logits.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from torch import nn

# arch name -> (network class, its config dataclass)
ARCHITECTURES: dict[str, tuple[str, str]] = {
    "breathnet": ("steth.models.nets:BreathNet", "steth.models.nets:BreathNetConfig"),
    "multibreath_cnn6": ("steth.models.papers.multibreath:MultiBreath",
                         "steth.models.papers.multibreath:MultiBreathConfig"),
    "resnet_cbam": ("steth.models.papers.resnet_cbam:ResNetCBAM",
                    "steth.models.papers.resnet_cbam:ResNetCBAMConfig"),
    "glance_gaze": ("steth.models.papers.glance_gaze:GlanceGaze",
                    "steth.models.papers.glance_gaze:GlanceGazeConfig"),
    "incres_wavelet": ("steth.models.papers.incres_wavelet:IncResWavelet",
                       "steth.models.papers.incres_wavelet:IncResWaveletConfig"),
    "cycleguardian": ("steth.models.papers.cycleguardian:CycleGuardian",
                      "steth.models.papers.cycleguardian:CycleGuardianConfig"),
}

# front-end name -> its config dataclass (``hash()``, ``compute()`` or edge's log-mel path)
FRONTENDS: dict[str, str] = {
    "logmel": "steth.edge.features:FeatureConfig",
    "wavelet": "steth.models.frontends:WaveletConfig",
    "hybrid": "steth.models.frontends:HybridConfig",
}


class ZooError(ValueError):
    """An unknown or unavailable architecture / front end; the message says which."""


def resolve(target: str) -> Any:
    """Import ``"package.module:Attribute"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ZooError(f"{target}: module {module_name} cannot be imported ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise ZooError(f"{target}: {module_name} defines no {attr}") from exc


def _lookup(table: dict, kind: str, name: str) -> Any:
    if name not in table:
        raise ZooError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def _from_params(config_cls: type, params: dict) -> Any:
    """Build a config dataclass; TOML lists become tuples, unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(params) - names)
    if unknown:
        raise ZooError(f"{config_cls.__name__} has no field(s) {', '.join(unknown)}")
    return config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


def net_config(arch: str, params: dict | None = None) -> Any:
    """The config dataclass of ``arch`` built from a config file's ``[net]`` table."""
    _, config_target = _lookup(ARCHITECTURES, "arch", arch)
    return _from_params(resolve(config_target), params or {})


def build_net(arch: str, config: Any) -> nn.Module:
    """Instantiate ``arch`` from its config dataclass."""
    net_target, _ = _lookup(ARCHITECTURES, "arch", arch)
    return resolve(net_target)(config)


def frontend_config(name: str, params: dict | None = None) -> Any:
    """The front-end config (log-mel by default) from a config file's ``[frontend]`` table."""
    config_cls = resolve(_lookup(FRONTENDS, "front end", name))
    if params and hasattr(config_cls, "from_dict"):
        return config_cls.from_dict(params)  # nested tables (e.g. the log-mel filter)
    return _from_params(config_cls, params or {})


def available_archs() -> list[str]:
    """Architectures whose module imports in this checkout (for parametrised tests)."""
    out = []
    for arch, (net_target, _) in ARCHITECTURES.items():
        try:
            resolve(net_target)
        except ZooError:
            continue
        out.append(arch)
    return out
