"""Objects from a validated :class:`~dmg.core.config.RunConfig`: physics, networks, couplings, model, loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dmg.core.config import (
    ComponentRef,
    OutputCorrectionConfig,
    ParameterLearningConfig,
    ProcessReplacementConfig,
    RunConfig,
    resolve_component,
)
from dmg.core.couplings import Coupling, OutputCorrection, ParameterLearning, ProcessReplacement
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.roles import DataRoles
from dmg.core.errors import ConfigError
from dmg.core.model import DeltaModel
from dmg.core.physics import PhysicsModel


def build_physics(config: RunConfig) -> PhysicsModel:
    """The physics model named in ``model.physics``."""
    cls, cfg = resolve_component("dmg.physics", config.model.physics, "model.physics")
    return cls.from_config(cfg)


def build_coupling(cfg: Any) -> Coupling:
    """One coupling from its config."""
    options = cfg.model_dump(exclude={"kind"})
    if isinstance(cfg, ParameterLearningConfig):
        return ParameterLearning(**options)
    if isinstance(cfg, ProcessReplacementConfig):
        return ProcessReplacement(**options)
    if isinstance(cfg, OutputCorrectionConfig):
        return OutputCorrection(**options)
    raise ConfigError(f"unknown coupling config {type(cfg).__name__}")


def network_sizes(cfg: Any, phy_model: PhysicsModel, roles: DataRoles, network_cls: type) -> dict[str, Any]:
    """``n_inputs``, ``n_outputs`` and ``n_static`` of the network a coupling uses.

    ``n_inputs`` is the width of the sequence input and ``n_static`` that of the static input; a
    network reading only one of them takes its size from that one.
    """
    n_features, n_static = roles.n_sequence_features, roles.n_static_features
    if isinstance(cfg, ParameterLearningConfig):
        split = getattr(network_cls, "output_kind", "single") == "split"
        n_outputs = ParameterLearning(learn=cfg.learn).n_outputs(phy_model, split=split)
        return {"n_inputs": n_features, "n_outputs": n_outputs, "n_static": n_static}
    if isinstance(cfg, ProcessReplacementConfig):
        n_slot = len(phy_model.slot(cfg.slot).inputs)
        return {"n_inputs": n_slot + (n_static if cfg.static_context else 0), "n_outputs": 1, "n_static": 0}
    if isinstance(cfg, OutputCorrectionConfig):
        n_in = n_features + (len(cfg.variables) if cfg.physics_as_input else 0)
        return {"n_inputs": n_in, "n_outputs": len(cfg.variables), "n_static": n_static}
    raise ConfigError(f"unknown coupling config {type(cfg).__name__}")


def build_model(config: RunConfig) -> DeltaModel:
    """The DeltaModel: physics, each network sized from its coupling, and the couplings."""
    phy_model = build_physics(config)
    roles = config.data.roles
    missing = [f for f in phy_model.forcing_names if f not in roles.forcings]
    if missing:
        raise ConfigError(
            f"data.roles.forcings: the physics model needs forcings {missing} "
            f"(it reads {list(phy_model.forcing_names)}); map each to a dataset variable"
        )
    missing = [a for a in phy_model.attribute_names if a not in roles.attributes]
    if missing:
        raise ConfigError(f"data.roles.attributes: the physics model needs attributes {missing}")
    outputs = set(phy_model.output_names)
    unknown = [t for t in roles.targets if t not in outputs]
    if unknown:
        raise ConfigError(
            f"data.roles.targets: {unknown} are not outputs of the physics model; outputs: {sorted(outputs)}"
        )
    networks: dict[str, nn.Module] = {}
    single = isinstance(config.model.nn, ComponentRef)
    for name, ref in config.model.networks.items():
        path = "model.nn" if single else f"model.nn.{name}"
        cls, cfg = resolve_component("dmg.nn", ref, path)
        users = [c for c in config.model.couplings if c.network == name]
        if not users:
            raise ConfigError(f"{path}: no coupling uses network {name!r}")
        sizes = network_sizes(users[0], phy_model, roles, cls)
        networks[name] = cls.from_config(cfg, **sizes)
    couplings = [build_coupling(c) for c in config.model.couplings]
    model = DeltaModel(networks["default"] if single else networks, phy_model, couplings)
    return model.to(getattr(torch, config.model.dtype))


def build_loss(config: RunConfig) -> nn.Module:
    """The training loss named in ``train.loss``."""
    cls, cfg = resolve_component("dmg.losses", config.train.loss, "train.loss")
    return cls.from_config(cfg)


def load_dataset(config: RunConfig) -> ArrayDataset:
    """The dataset named in ``data.dataset``, checked against ``data.roles``."""
    cls, cfg = resolve_component("dmg.datasets", config.data.dataset, "data.dataset")
    dataset = cls.from_config(cfg).load()
    config.data.roles.check(dataset)
    return dataset
