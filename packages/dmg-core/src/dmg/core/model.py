""":class:`DeltaModel`: networks and a physics model trained together."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn

from dmg.core.couplings import DEFAULT_NETWORK, Coupling, CouplingContext
from dmg.core.data.batch import Batch
from dmg.core.engine import Engine, integrate
from dmg.core.errors import InputError, SpecError
from dmg.core.networks import add_outputs, output_kind
from dmg.core.physics import Outputs, PhysicsModel


def required_warmup(phy_model: PhysicsModel) -> int:
    """Steps of warm-up ``phy_model`` needs at least (a model declares ``required_warmup``; default 0)."""
    return int(getattr(phy_model, "required_warmup", 0))


class DeltaModel(nn.Module):
    """A differentiable model: one or more networks coupled to a physics model.

    Parameters
    ----------
    nn
        One network (named ``"default"``) or a mapping name -> network.
    phy_model
        The physics model (possibly a :class:`~dmg.core.composites.Chain` or
        :class:`~dmg.core.composites.Ensemble`).
    coupling
        One coupling or a sequence of them, applied in order. Couplings naming the same network
        share it: its output channels are theirs in turn, in this order.
    engine
        How the physics model is run (default: the eager engine); a forward call may override it.

    Examples
    --------
    >>> model = DeltaModel(lstm, bucket, ParameterLearning())          # doctest: +SKIP
    >>> outputs = model(batch)                                          # doctest: +SKIP
    >>> outputs["Q"].shape  # [time - warmup, unit]                     # doctest: +SKIP
    """

    def __init__(
        self,
        nn: nn.Module | Mapping[str, nn.Module],
        phy_model: PhysicsModel,
        coupling: Coupling | Sequence[Coupling],
        *,
        engine: Engine | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(phy_model, PhysicsModel):
            raise SpecError(f"phy_model must be a PhysicsModel, got {type(phy_model).__name__}")
        if isinstance(nn, Mapping):
            self.nn = torch.nn.ModuleDict(dict(nn))
        elif isinstance(nn, torch.nn.Module):
            self.nn = nn
        else:
            raise SpecError(f"nn must be a torch.nn.Module or a mapping of them, got {type(nn).__name__}")
        self.phy_model = phy_model
        couplings = [coupling] if isinstance(coupling, Coupling) else list(coupling)
        for c in couplings:
            if not isinstance(c, Coupling):
                raise SpecError(f"couplings must be Coupling instances, got {type(c).__name__}")
        self.couplings = torch.nn.ModuleList(couplings)
        networks = self.networks
        for c in couplings:
            if c.network is not None and c.network not in networks:
                raise SpecError(
                    f"{type(c).__name__} uses network {c.network!r} but the DeltaModel has {sorted(networks)}"
                )
        self._share_networks()
        self.engine = Engine.resolve(engine)

    def _share_networks(self) -> None:
        """Give each coupling of a network used by several its own channels of the network's output."""
        for name, net in self.networks.items():
            users = [c for c in self.couplings if c.network == name]
            if len(users) < 2:
                continue
            kind = output_kind(net)
            offset: int | tuple[int, int] = (0, 0) if kind == "split" else 0
            for c in users:
                n = c.network_outputs(self.phy_model, kind)
                if isinstance(n, tuple):
                    c.channels = tuple(slice(o, o + k) for o, k in zip(offset, n))
                else:
                    c.channels = (slice(offset, offset + n),)
                offset = add_outputs(offset, n)

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        """The networks by name (a single network is called ``"default"``)."""
        if isinstance(self.nn, torch.nn.ModuleDict):
            return dict(self.nn.items())
        return {DEFAULT_NETWORK: self.nn}

    def forward(
        self,
        batch: Batch,
        state: Mapping[str, torch.Tensor] | None = None,
        *,
        save: Iterable[str] | None = None,
        engine: Engine | str | None = None,
    ) -> Outputs:
        """Run networks and physics on ``batch``.

        Parameters
        ----------
        batch
            The inputs; ``batch.warmup`` leading steps warm up the physics states.
        state
            Initial physics state (e.g. ``outputs.state`` from the previous period).
        save
            Physics outputs the caller needs (default: all); the others are never stacked.
        engine
            How to run the physics for this call (default: the model's engine).

        Returns
        -------
        Outputs
            Named ``[time - warmup, unit]`` outputs, final physics state in ``.state``.
        """
        required = required_warmup(self.phy_model)
        if batch.warmup < required:
            raise InputError(
                f"{type(self.phy_model).__name__} needs a warm-up of at least {required} steps (its outputs before "
                f"are not defined); the batch has {batch.warmup} (data.warmup, or fewer where the data start later): "
                "lengthen data.warmup or start the period later"
            )
        ctx = CouplingContext(batch=batch, networks=self.networks, phy_model=self.phy_model)
        for c in self.couplings:
            c.before(ctx)
        if save is not None:
            produced = set(self.phy_model.output_names)
            save = {n for n in save if n in produced}.union(*(c.required_outputs() for c in self.couplings))
        outputs = integrate(
            self.phy_model,
            batch.forcings,
            ctx.params,
            attributes=batch.attributes,
            state=state,
            warmup=batch.warmup,
            warmup_params=ctx.warmup_params,
            processes=ctx.processes,
            save=save,
            engine=self.engine if engine is None else engine,
        )
        for c in self.couplings:
            outputs = c.after(ctx, outputs)
        return outputs
