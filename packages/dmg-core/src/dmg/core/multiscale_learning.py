"""A network per time scale of a :class:`~dmg.core.multiscale.MultiTimescale` model: :class:`ScaleParameterLearning`.

``ParameterLearning`` runs its network over the whole series at the fine step. This coupling runs it
at one scale of the composite instead:

* ``scale: coarse``: over the coarse span, on the block means of the network inputs (one step per
  coarse step); its outputs are held over each block and, after the coarse span, at the last
  coarse value, so the composite's block means give back exactly the coarse outputs;
* ``scale: fine``: over the fine span only; its outputs over the coarse span hold the first fine value.

Either way it supplies the composite's parameters of that scale (``coarse.*`` or ``fine.*``) unless
``learn`` lists others, and static parameters come from the network's last step at that scale.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

from dmg.core.couplings import CouplingContext, ParameterLearning, ParameterLearningConfig
from dmg.core.errors import SpecError
from dmg.core.multiscale import COARSE, MultiTimescale, Scale, aggregate
from dmg.core.networks import call_network
from dmg.core.parameters import ParameterSpec
from dmg.core.physics import PhysicsModel


class ScaleParameterLearningConfig(ParameterLearningConfig):
    """Options of :class:`ScaleParameterLearning`."""

    scale: Scale = Field(description="The time scale whose network this is: 'coarse' or 'fine'.")
    learn: list[str] | None = Field(
        None, description="Learned parameters (default: every parameter of the scale, '<scale>.<name>')."
    )


def _multiscale(phy_model: PhysicsModel) -> MultiTimescale:
    if not isinstance(phy_model, MultiTimescale):
        raise SpecError(
            f"scale_parameter_learning needs a multi_timescale physics model, not {type(phy_model).__name__}"
        )
    return phy_model


class ScaleParameterLearning(ParameterLearning):
    """A network at one time scale supplies that scale's parameters of a multi-timescale model.

    Options (:class:`ScaleParameterLearningConfig`): ``scale`` (``"coarse"`` or ``"fine"``) and
    those of :class:`~dmg.core.couplings.ParameterLearning`; ``learn`` defaults to every
    parameter of the scale (``"<scale>.<name>"``).
    """

    Config: ClassVar[type[ScaleParameterLearningConfig]] = ScaleParameterLearningConfig

    def learned_spec(self, phy_model: PhysicsModel) -> ParameterSpec:
        spec = _multiscale(phy_model).parameter_spec
        if self.config.learn is not None:
            return spec.subset(self.config.learn)
        prefix = f"{self.config.scale}."
        return spec.subset([n for n in spec.names if n.startswith(prefix)])

    def raw_output(self, ctx: CouplingContext) -> Any:
        model = _multiscale(ctx.phy_model)
        span, ratio, n_time = model.required_warmup, model.config.ratio, ctx.batch.n_time
        inputs, network = ctx.batch.nn_inputs, ctx.network(str(self.network))
        if self.config.scale == COARSE:
            if inputs is not None:
                inputs = aggregate(inputs[:span], ratio, "mean")
            output = call_network(network, inputs, ctx.batch.static_inputs)

            def expand(x: torch.Tensor) -> torch.Tensor:
                held = x.repeat_interleave(ratio, dim=0)
                return torch.cat([held, x[-1:].expand(n_time - span, *x.shape[1:])])

        else:
            if inputs is not None:
                inputs = inputs[span:]
            output = call_network(network, inputs, ctx.batch.static_inputs)

            def expand(x: torch.Tensor) -> torch.Tensor:
                return torch.cat([x[:1].expand(span, *x.shape[1:]), x])

        if isinstance(output, tuple):
            output = (expand(output[0]), *output[1:])
        elif output.dim() == 3:
            output = expand(output)
        return self.take(output)
