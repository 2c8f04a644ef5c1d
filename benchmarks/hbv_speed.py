"""Forward + backward time of δHBV 1.0 with routing: dmg's engine settings, and hydrodl2 when installed.

Every variant simulates the same inputs with the same parameters (730 days, 100 basins, 16 components,
365-day spin-up by default) and back-propagates the sum of routed streamflow to the parameters. The
report gives each variant's median time over several alternating repeats and its ratio to dmg's
eager engine measured in the same run (keeping every output, as the other variants do). hydrodl2
(the published implementation, non-commercial licence) is timed through
:mod:`dmg.hydro.adapters.hydrodl2` when it is importable::

    python benchmarks/hbv_speed.py
    python benchmarks/hbv_speed.py --threads 1 --repeats 7
    python -m nox -s hydrodl2 && .nox/hydrodl2/bin/python benchmarks/hbv_speed.py   # with hydrodl2
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable

import torch

from dmg.core import Chain, PhysicsModel
from dmg.core.engine import Engine, Recompute
from dmg.hydro import HBV, GammaRouting
from dmg.hydro.hbv.testing import realistic_case


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def make_runner(model: PhysicsModel, case, warmup: int, device: torch.device, **options: object) -> Callable[[], None]:
    forcings = {k: v.to(device) for k, v in case.forcings.items()}
    base = {k: v.to(device) for k, v in case.params.items()}

    def run() -> None:
        params = {k: v.detach().requires_grad_(True) for k, v in base.items()}
        out = model(forcings, params, warmup=warmup, **options)
        out["Q"].sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=int, default=730, help="days simulated, spin-up included")
    parser.add_argument("--warmup", type=int, default=365, help="spin-up days (gradient-free)")
    parser.add_argument("--units", type=int, default=100)
    parser.add_argument("--nmul", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    ours = Chain(runoff=HBV(nmul=args.nmul, dynamic=["BETA", "BETAET"]), routing=GammaRouting())
    variants: dict[str, tuple[PhysicsModel, dict[str, object]]] = {
        "dmg eager": (ours, {}),
        "dmg eager, keeping Q only": (ours, {"save": ["Q"]}),
        "dmg eager, recompute (chunks of 64)": (ours, {"engine": Engine(memory=Recompute(chunk_size=64))}),
    }
    if importlib.util.find_spec("hydrodl2") is not None:
        from dmg.hydro.adapters.hydrodl2 import Hydrodl2Model

        adapter = Hydrodl2Model(model="Hbv", nmul=args.nmul, dynamic=["BETA", "BETAET"])
        variants["hydrodl2 1.4 (via adapter)"] = (adapter, {})
    case = realistic_case(ours.members["runoff"], n_time=args.time, n_units=args.units, seed=0)
    case.params["route_a"] = torch.full((args.units,), 1.0)
    case.params["route_b"] = torch.full((args.units,), 2.0)
    runners = {
        name: make_runner(model, case, args.warmup, device, **options) for name, (model, options) in variants.items()
    }
    for run in runners.values():  # warm-up
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            times[name].append(timed(run))
    base = statistics.median(times["dmg eager"])
    print(
        f"δHBV 1.0 + routing, {args.time} days ({args.warmup} spin-up) x {args.units} units x nmul {args.nmul}, "
        f"forward + backward, {torch.get_num_threads()} threads, {args.device}, median of {args.repeats}"
    )
    print(f"{'variant':<40}{'median s':>10}{'ratio to dmg eager':>20}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<40}{median:>10.3f}{median / base:>20.2f}")


if __name__ == "__main__":
    main()
