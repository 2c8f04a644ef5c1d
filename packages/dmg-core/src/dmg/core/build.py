"""Objects from a validated :class:`~dmg.core.config.RunConfig`: physics, couplings, networks, model, loss.

Everything is built through the registry: a component named in the config is loaded by name and
built with its own ``from_config``, so a downstream physics model, network, coupling or backend
needs no change here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from difflib import get_close_matches
from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from dmg.core.config import ComponentRef, RunConfig, path_hint, resolve_component
from dmg.core.couplings import Coupling
from dmg.core.data.dataset import ArrayDataset
from dmg.core.data.roles import DataRoles
from dmg.core.engine import Engine
from dmg.core.errors import ConfigError, InputError
from dmg.core.model import DeltaModel, required_warmup
from dmg.core.networks import NetworkInputs, NetworkOutputs, add_outputs, output_kind
from dmg.core.physics import PhysicsModel

if TYPE_CHECKING:
    from dmg.core.simulation import UnitSource


def build_physics(config: RunConfig) -> PhysicsModel:
    """The physics model named in ``model.physics``."""
    cls, cfg = resolve_component("dmg.physics", config.model.physics, "model.physics")
    return cls.from_config(cfg)


def build_couplings(config: RunConfig) -> list[Coupling]:
    """The couplings of ``model.couplings``, in order."""
    couplings = []
    for i, ref in enumerate(config.model.couplings):
        cls, cfg = resolve_component("dmg.couplings", ref, f"model.couplings.{i}")
        couplings.append(cls.from_config(cfg))
    return couplings


def network_sizes(
    name: str, users: list[tuple[int, Coupling]], phy_model: PhysicsModel, roles: DataRoles, kind: str
) -> dict[str, int | NetworkOutputs]:
    """``n_inputs``, ``n_outputs`` and ``n_static`` of network ``name``, from every coupling that uses it.

    The couplings must agree on the inputs; their output channels add up, in coupling order.
    """
    available = NetworkInputs(roles.n_sequence_features, roles.n_static_features)
    inputs: dict[NetworkInputs, list[str]] = {}
    n_outputs: NetworkOutputs | None = None
    for i, c in users:
        inputs.setdefault(c.network_inputs(phy_model, available), []).append(f"model.couplings.{i}")
        needed = c.network_outputs(phy_model, kind)
        n_outputs = needed if n_outputs is None else add_outputs(n_outputs, needed)
    if len(inputs) > 1:
        described = "; ".join(f"{', '.join(who)} need {vars(need)}" for need, who in inputs.items())
        raise ConfigError(f"model.nn: the couplings sharing network {name!r} need different inputs: {described}")
    (need,) = inputs
    return {"n_inputs": need.n_inputs, "n_outputs": n_outputs, "n_static": need.n_static}


def check_forcings(phy_model: PhysicsModel, roles: DataRoles) -> None:
    """Every forcing of the physics model mapped in ``data.roles.forcings``, and no other.

    A composite model reads the union of its members' forcings (less those a chain computes).

    Raises
    ------
    ConfigError
        Naming the forcings missing, or the ``data.roles.forcings`` key the model does not use
        (with the closest forcing it does use).
    """
    used = list(phy_model.forcing_names)
    missing = [f for f in used if f not in roles.forcings]
    if missing:
        raise ConfigError(
            f"data.roles.forcings: the physics model needs forcings {missing} "
            f"(it reads {used}); map each to a dataset variable"
        )
    for name in roles.forcings:
        if name not in used:
            close = get_close_matches(name, used, n=1, cutoff=0.5)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"data.roles.forcings.{name}: the physics model has no forcing named {name!r}{hint}; "
                f"it reads {used}. Remove the key, or list the variable in data.roles.nn_inputs to feed a network"
            )


def build_model(config: RunConfig) -> DeltaModel:
    """The DeltaModel: physics, couplings, each network sized from the couplings using it, and the engine."""
    phy_model = build_physics(config)
    roles = config.data.roles
    check_forcings(phy_model, roles)
    missing = [a for a in phy_model.attribute_names if a not in roles.attributes]
    if missing:
        raise ConfigError(f"data.roles.attributes: the physics model needs attributes {missing}")
    outputs = set(phy_model.output_names)
    unknown = [t for t in roles.targets if t not in outputs]
    if unknown:
        raise ConfigError(
            f"data.roles.targets: {unknown} are not outputs of the physics model; outputs: {sorted(outputs)}"
        )
    needed = required_warmup(phy_model)
    if config.data.warmup < needed:
        raise ConfigError(
            f"data.warmup: the physics model needs a warm-up of at least {needed} steps (e.g. the coarse span of a "
            f"multi-timescale model); got {config.data.warmup}"
        )
    couplings = build_couplings(config)
    networks: dict[str, nn.Module] = {}
    single = isinstance(config.model.nn, ComponentRef)
    for name, ref in config.model.networks.items():
        path = "model.nn" if single else f"model.nn.{name}"
        cls, cfg = resolve_component("dmg.nn", ref, path)
        users = [(i, c) for i, c in enumerate(couplings) if c.network == name]
        if not users:
            raise ConfigError(f"{path}: no coupling uses network {name!r}")
        sizes = network_sizes(name, users, phy_model, roles, output_kind(cls))
        networks[name] = cls.from_config(cfg, **sizes)
    engine = Engine.from_config(config.engine)
    model = DeltaModel(networks["default"] if single else networks, phy_model, couplings, engine=engine)
    return model.to(getattr(torch, config.model.dtype))


def build_loss(config: RunConfig) -> nn.Module:
    """The training loss named in ``train.loss``."""
    cls, cfg = resolve_component("dmg.losses", config.train.loss, "train.loss")
    return cls.from_config(cfg)


def load_dataset(config: RunConfig) -> ArrayDataset:
    """The dataset named in ``data.dataset``, checked against ``data.roles``."""
    cls, cfg = resolve_component("dmg.datasets", config.data.dataset, "data.dataset")
    with _dataset_path_hint(config):
        dataset = cls.from_config(cfg).load()
    config.data.roles.check(dataset)
    return dataset


@contextlib.contextmanager
def _dataset_path_hint(config: RunConfig) -> Iterator[None]:
    """Add to an :class:`InputError` the hint about relative paths of ``data.dataset`` (where there is one)."""
    try:
        yield
    except InputError as exc:
        hint = path_hint(config, "data.dataset.")
        if not hint:
            raise
        raise type(exc)(f"{exc}{hint}") from None


def open_unit_source(config: RunConfig) -> UnitSource:
    """The units of the dataset named in ``data.dataset``, read as they are selected; checked against ``data.roles``.

    The component's ``open()`` when it has one (a source that reads only the units of each
    ``select_units`` call), else its ``load()`` as in :func:`load_dataset`: the same units, dates
    and values either way, and the same errors for the component's options (with the same hint for
    a relative path). The roles are checked on the names of the first unit's data.

    A component whose class overrides ``load()`` (or ``build()``) below the class that defines its
    ``open()`` is loaded whole: the inherited ``open()`` would not know what the override changes.
    """
    cls, cfg = resolve_component("dmg.datasets", config.data.dataset, "data.dataset")
    with _dataset_path_hint(config):
        component = cls.from_config(cfg)
        opener = _opener(component)
        if opener is not None:
            source = cast("UnitSource", opener())
            first = source.select_units(list(source.unit_ids[:1]))
        else:
            first = component.load()
            source = first
    config.data.roles.check(first)
    return source


LOADING_METHODS = ("load", "build")
"""Methods of a dataset component whose override makes an inherited ``open()`` unusable."""


def _opener(component: object) -> Callable[[], object] | None:
    """The component's ``open``, unless it has none or it is inherited from above an override of ``load``/``build``."""
    opener = getattr(component, "open", None)
    if not callable(opener):
        return None
    mro = type(component).__mro__
    owner = next((k for k in mro if "open" in vars(k)), None)
    if owner is None:  # set on the instance
        return opener
    below = mro[: mro.index(owner)]
    if any(name in vars(k) for k in below for name in LOADING_METHODS):
        return None
    return opener
