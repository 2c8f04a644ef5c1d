import pytest
import torch

from dmg.core import Chain, Ensemble, SpecError


def test_chain_feeds_outputs_forward_and_merges_declarations(reservoir_cls, doubler_cls, forcings_factory):
    chain = Chain(runoff=reservoir_cls(nmul=2), routing=doubler_cls(nmul=2))
    assert chain.forcing_names == ("P", "PET")
    assert chain.parameter_spec.names == ("k", "c", "a")
    assert chain.parameter_spec.channel_names()[-1] == "a"  # shared channel last: the published layout
    assert chain.state_names == ("runoff.S",)
    f = forcings_factory(30, 3)
    k = torch.full((3, 2), 0.2)
    out = chain(f, {"k": k, "a": torch.full((3,), 1.5)}, warmup=10)
    alone = reservoir_cls(nmul=2)(f, {"k": k}, warmup=10)
    assert torch.allclose(out["Qout"], 1.5 * alone["Q"])
    assert set(out) == {"Q", "ET", "Qout"}


def test_chain_inline_warmup_runs_later_members_over_warmup(reservoir_cls, doubler_cls, forcings_factory):
    chain = Chain(reservoir_cls(warmup_mode="inline"), doubler_cls())
    f = forcings_factory(30, 2)
    params = {"k": torch.full((2, 1), 0.2), "a": torch.full((2,), 2.0)}
    out = chain(f, params, warmup=10)
    full = chain(f, params)
    assert torch.allclose(out["Qout"], full["Qout"][10:])


def test_chain_state_carryover(reservoir_cls, doubler_cls, forcings_factory):
    chain = Chain(reservoir_cls(), doubler_cls())
    f = forcings_factory(40, 2)
    params = {"k": torch.full((2, 1), 0.2), "a": torch.full((2,), 2.0)}
    whole = chain(f, params)
    a = chain({k: v[:15] for k, v in f.items()}, params)
    b = chain({k: v[15:] for k, v in f.items()}, params, state=a.state)
    assert torch.allclose(torch.cat([a["Qout"], b["Qout"]]), whole["Qout"])


def test_chain_rejects_clashing_parameters(reservoir_cls):
    with pytest.raises(SpecError, match="same parameters"):
        Chain(reservoir_cls(), reservoir_cls())


def test_ensemble_fixed_weights_average_members(reservoir_cls, forcings_factory):
    ens = Ensemble(fast=reservoir_cls(), slow=reservoir_cls(), weights=[3.0, 1.0])
    assert ens.parameter_spec.names == ("fast.k", "fast.c", "slow.k", "slow.c")
    f = forcings_factory(30, 2)
    params = {"fast.k": torch.full((2, 1), 0.4), "slow.k": torch.full((2, 1), 0.05)}
    out = ens(f, params)
    assert torch.allclose(out["Q"], 0.75 * out["fast.Q"] + 0.25 * out["slow.Q"])
    with pytest.raises(SpecError, match="weights"):
        Ensemble(reservoir_cls(), reservoir_cls(), weights=[1.0])


def test_ensemble_learns_mixing_weights(reservoir_cls, forcings_factory):
    """Data made by mixing two models 70/30: learned weights recover the mix."""
    f = forcings_factory(120, 4)
    params = {"0.k": torch.full((4, 1), 0.4), "1.k": torch.full((4, 1), 0.03)}
    truth = Ensemble(reservoir_cls(), reservoir_cls(), weights=[0.7, 0.3])(f, params)["Q"]
    ens = Ensemble(reservoir_cls(), reservoir_cls(), learn_weights=True)
    opt = torch.optim.Adam(ens.parameters(), lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        loss = (ens(f, params)["Q"] - truth).pow(2).mean()
        loss.backward()
        opt.step()
    assert torch.allclose(ens.weights.detach(), torch.tensor([0.7, 0.3]), atol=0.01)


def test_composites_build_from_config(reservoir_cls, doubler_cls):
    from dmg.core import registry
    from dmg.core.config import resolve_component

    registry.register("dmg.physics", "toy_a", reservoir_cls)
    registry.register("dmg.physics", "toy_b", doubler_cls)
    try:
        spec = {"name": "chain", "members": {"runoff": {"name": "toy_a", "nmul": 2}, "routing": {"name": "toy_b"}}}
        cls, cfg = resolve_component("dmg.physics", spec, "model.physics")
        chain = cls.from_config(cfg)
        assert isinstance(chain, Chain) and chain.nmul == 2 and chain.parameter_spec.names == ("k", "c", "a")
        spec = {"name": "ensemble", "members": {"x": {"name": "toy_a"}, "y": {"name": "toy_a"}}, "learn_weights": True}
        cls, cfg = resolve_component("dmg.physics", spec, "model.physics")
        assert cls.from_config(cfg).weights.requires_grad
        bad = {"name": "chain", "members": {"runoff": {"name": "toy_a", "nmull": 2}}}
        cls, cfg = resolve_component("dmg.physics", bad, "model.physics")
        with pytest.raises(Exception, match=r"model\.physics\.members\.runoff\.nmull"):
            cls.from_config(cfg)
    finally:
        registry.unregister("dmg.physics", "toy_a")
        registry.unregister("dmg.physics", "toy_b")
