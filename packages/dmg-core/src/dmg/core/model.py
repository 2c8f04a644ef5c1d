""":class:`DeltaModel`: networks and a physics model trained together."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from dmg.core.couplings import DEFAULT_NETWORK, Coupling, CouplingContext
from dmg.core.data.batch import Batch
from dmg.core.errors import SpecError
from dmg.core.physics import Outputs, PhysicsModel


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
        One coupling or a sequence of them, applied in order.

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
        for c in couplings:
            name = getattr(c, "network", None)
            if name is not None and name not in self.networks:
                raise SpecError(
                    f"{type(c).__name__} uses network {name!r} but the DeltaModel has {sorted(self.networks)}"
                )

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        """The networks by name (a single network is called ``"default"``)."""
        if isinstance(self.nn, torch.nn.ModuleDict):
            return dict(self.nn.items())
        return {DEFAULT_NETWORK: self.nn}

    def forward(self, batch: Batch, state: Mapping[str, torch.Tensor] | None = None) -> Outputs:
        """Run networks and physics on ``batch``.

        Parameters
        ----------
        batch
            The inputs; ``batch.warmup`` leading steps spin up the physics states.
        state
            Initial physics state (e.g. ``outputs.state`` from the previous period).

        Returns
        -------
        Outputs
            Named ``[time - warmup, unit]`` outputs, final physics state in ``.state``.
        """
        ctx = CouplingContext(batch=batch, networks=self.networks, phy_model=self.phy_model)
        with ctx.stack:
            for c in self.couplings:
                c.before(ctx)
            outputs = self.phy_model(
                batch.forcings,
                ctx.params,
                attributes=batch.attributes,
                state=state,
                warmup=batch.warmup,
                warmup_params=ctx.warmup_params,
            )
        for c in self.couplings:
            outputs = c.after(ctx, outputs)
        return outputs
