"""Each coupling kind trained on a problem that needs it: the model must learn, not just run."""

import math

import pytest
import torch
from torch import nn

from dmg.core import Batch, DeltaModel, OutputCorrection, ParameterLearning, ProcessReplacement, SpecError


class StaticNet(nn.Module):
    """Static attributes [unit, A] -> raw parameters [unit, C]."""

    input_kind = "static"

    def __init__(self, n_in, n_out):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, n_out))

    def forward(self, c):
        return self.net(c)


class SequenceLinear(nn.Module):
    """Time-varying inputs [time, unit, F] -> [time, unit, C], pointwise."""

    input_kind = "sequence"

    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x)


class Pointwise(nn.Module):
    """[..., F] -> [..., 1] with fixed input scaling, for process slots."""

    def __init__(self, n_in, scale):
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale))
        self.net = nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x / self.scale)


def train(model, batch, target, steps, lr, key="Q", per_unit_scale=None):
    """Adam on the mean squared error, optionally scaled per unit (e.g. by each unit's target std)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    scale = 1.0 if per_unit_scale is None else per_unit_scale
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(batch)[key] - target) / scale).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_parameter_learning_recovers_a_static_parameter_field(reservoir_cls, forcings_factory):
    torch.manual_seed(0)
    n_units, n_time, warmup = 24, 150, 30
    attr = torch.linspace(0.0, 1.0, n_units)[:, None]
    k_true = 0.1 + 0.3 * attr  # [unit, 1], smooth in the attribute
    attr_z = (attr - attr.mean()) / attr.std()  # networks see normalised attributes
    f = forcings_factory(n_time, n_units)
    physics = reservoir_cls()
    target = physics(f, {"k": k_true}, warmup=warmup)["Q"].detach()
    coupling = ParameterLearning(learn=["k"])
    net = StaticNet(1, coupling.n_outputs(physics))
    model = DeltaModel(net, physics, coupling)
    batch = Batch(forcings=f, static_inputs=attr_z, warmup=warmup)
    losses = train(model, batch, target, steps=400, lr=0.03, per_unit_scale=target.std(0))
    assert losses[-1] < 1e-3 * losses[0]
    from dmg.core.couplings import CouplingContext

    ctx = CouplingContext(batch=batch, networks=model.networks, phy_model=physics)
    coupling.before(ctx)
    rel_error = (ctx.params["k"].detach() - k_true).abs() / k_true
    assert float(rel_error.max()) < 0.05, f"worst relative error of k: {float(rel_error.max()):.3f}"
    assert float(rel_error.median()) < 0.02


def test_parameter_learning_recovers_a_time_varying_parameter(reservoir_cls, forcings_factory):
    torch.manual_seed(0)
    n_units, n_time = 6, 200
    day = torch.arange(n_time, dtype=torch.float32)
    season = torch.stack([torch.sin(2 * math.pi * day / 365), torch.cos(2 * math.pi * day / 365)], -1)
    x = season[:, None, :].expand(n_time, n_units, 2)
    physics = reservoir_cls(dynamic=["k"])
    spec = physics.parameter_spec.subset(["k"])
    k_true = spec["k"].scale(torch.sigmoid(0.3 + 1.5 * x[..., :1]))  # [time, unit, 1]
    f = forcings_factory(n_time, n_units)
    target = physics(f, {"k": k_true})["Q"].detach()
    coupling = ParameterLearning(learn=["k"])
    model = DeltaModel(SequenceLinear(2, coupling.n_outputs(physics)), physics, coupling)
    batch = Batch(forcings=f, nn_inputs=x)
    train(model, batch, target, steps=250, lr=0.05)
    learned = spec["k"].scale(torch.sigmoid(model.nn(x))).detach()
    rel_error = ((learned - k_true).abs() / k_true)[20:]  # the first days barely affect the flow
    assert float(rel_error.max()) < 0.05, f"worst relative error of k(t): {float(rel_error.max()):.3f}"


def test_process_replacement_learns_a_process_the_physics_gets_wrong(reservoir_cls, forcings_factory):
    """Truth: ET limited by storage, ET = PET * min(1, S / 20). Default physics: ET = c * PET."""
    torch.manual_seed(0)
    n_units, n_time, warmup = 8, 200, 20
    f = forcings_factory(n_time, n_units)
    k = torch.full((n_units, 1), 0.1)
    truth_model = reservoir_cls()
    storage_limited = {"evaporation": lambda i: i["PET"] * torch.clamp(i["S"] / 20.0, max=1.0)}
    truth = truth_model(f, {"k": k}, warmup=warmup, processes=storage_limited)
    target = truth["Q"].detach()
    physics = reservoir_cls(dynamic=())
    default_loss = float((physics(f, {"k": k}, warmup=warmup)["Q"] - target).pow(2).mean())

    class FixedK(ParameterLearning):
        def before(self, ctx):
            ctx.params["k"] = k

    model = DeltaModel(
        {"et": Pointwise(2, [20.0, 5.0])},
        physics,
        [FixedK(network=None), ProcessReplacement(slot="evaporation", network="et")],
    )
    batch = Batch(forcings=f, warmup=warmup)
    losses = train(model, batch, target, steps=300, lr=0.02)
    assert losses[-1] < 0.02 * default_loss, (losses[-1], default_loss)
    out = model(batch)
    et_error = (out["ET"] - truth["ET"]).abs().mean() / truth["ET"].mean()
    assert float(et_error.detach()) < 0.1


def test_output_correction_adds_a_process_the_physics_lacks(reservoir_cls, forcings_factory):
    """Truth adds a seasonal baseflow the reservoir cannot produce; an additive correction learns it."""
    torch.manual_seed(0)
    n_units, n_time = 6, 200
    f = forcings_factory(n_time, n_units)
    day = torch.arange(n_time, dtype=torch.float32)
    season = torch.stack([torch.sin(2 * math.pi * day / 365), torch.cos(2 * math.pi * day / 365)], -1)
    x = season[:, None, :].expand(n_time, n_units, 2)
    k = torch.full((n_units, 1), 0.2)
    physics = reservoir_cls()
    q_phys = physics(f, {"k": k})["Q"].detach()
    target = q_phys + 0.5 + 0.4 * x[..., 0]

    class FixedK(ParameterLearning):
        def before(self, ctx):
            ctx.params["k"] = k

    correction = OutputCorrection(variables=["Q"], network="correct", physics_as_input=False)
    model = DeltaModel({"correct": SequenceLinear(2, 1)}, physics, [FixedK(network=None), correction])
    batch = Batch(forcings=f, nn_inputs=x)
    physics_only = float((q_phys - target).pow(2).mean())
    losses = train(model, batch, target, steps=300, lr=0.05)
    assert losses[-1] < 0.01 * physics_only
    out = model(batch)
    assert torch.equal(out["Q_physics"], q_phys)


def test_delta_model_rejects_unknown_network_and_bad_couplings(reservoir_cls):
    with pytest.raises(SpecError, match="network 'missing'"):
        DeltaModel(nn.Linear(1, 1), reservoir_cls(), ParameterLearning(network="missing"))
    with pytest.raises(SpecError, match="PhysicsModel"):
        DeltaModel(nn.Linear(1, 1), nn.Linear(1, 1), ParameterLearning())
    with pytest.raises(SpecError, match="Coupling"):
        DeltaModel(nn.Linear(1, 1), reservoir_cls(), [object()])


def test_published_warmup_convention_uses_step_before_main_pass(reservoir_cls, forcings_factory):
    """spinup_static='warmup_end': the spin-up pass uses the network output at step warmup-1."""
    f = forcings_factory(40, 3)
    physics = reservoir_cls()
    raw = torch.randn(40, 3, physics.parameter_spec.n_channels())

    class Fixed(nn.Module):
        def forward(self, x):
            return raw

    batch = Batch(forcings=f, nn_inputs=torch.zeros(40, 3, 1), warmup=10)
    model = DeltaModel(Fixed(), physics, ParameterLearning(spinup_static="warmup_end"))
    out = model(batch)
    spec = physics.parameter_spec
    spin = physics({k: v[:10] for k, v in f.items()}, spec.from_raw(raw, static_step=9))
    main = physics({k: v[10:] for k, v in f.items()}, spec.from_raw(raw), state=spin.state)
    assert torch.allclose(out["Q"], main["Q"])
