"""Speed and memory of dmg's engine backends on the δHBV family, against the published implementation.

Each case is one model (δHBV 1.0, 1.1p or 2.0, each followed by gamma routing, nmul 16, float32)
over ``units`` basins and ``days`` days after a 365-day warm-up, run in dmg's real training pipeline:
a ``DeltaModel`` whose "network" returns a fixed raw parameter tensor (as a network's last layer
would), ``ParameterLearning`` from that raw tensor with the published spin-up settings, the ``Chain``
of runoff and routing, and the backend under test. Forward runs without gradient; forward+backward
back-propagates the sum of routed streamflow to the raw tensor. hydrodl2 1.4.0 (non-commercial
licence: install it only to compare, e.g. with ``nox -s bench``) runs the same raw tensor through its
own warm-up and routing when it is importable; its streamflow is checked against dmg's.

Every variant of a case runs interleaved with the others, median of ``--repeats``; ratios are to
hydrodl2 in the same run (or to dmg's eager backend without it). Peak memory is the extra resident
memory of one forward+backward in a fresh process; compile time is measured cold (empty kernel cache)
and warm (a second process). Results go to a table, a JSON file (with the provenance record of
``dmg.core.provenance``: package versions, platform, git commit; and the load average) and, with
matplotlib, a plot of time against days::

    python benchmarks/engine_speed.py                     # the target size: 100 units x 365 days, 1 thread
    python benchmarks/engine_speed.py --grid              # units {100, 500, 2000} x days {365, 730, 1460},
                                                          # 1 and 2 threads
    python benchmarks/engine_speed.py --models hbv --backends eager,kernel --units 500 --days 730 --threads 2
    python benchmarks/engine_speed.py --minibatch --published-python PATH   # one training minibatch, both sides

``--minibatch`` times one δHBV 1.0 training minibatch (LSTM 256 -> HBV nmul 16 -> routing, see
``minibatch_inputs.py``) for each backend and, with ``--published-python``, the same minibatch in the
published dMG 1.5.0 run by that interpreter (``published_minibatch.py``; ``nox -s bench`` sets it up).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dmg.core import Batch, Chain, DeltaModel, ParameterLearning, provenance
from dmg.core.engine import Engine
from dmg.hydro import HBV, HBV2, GammaRouting, HBV11p
from dmg.hydro.hbv.testing import EXAMPLE_ATTRIBUTES, seasonal_weather

WARMUP = 365
NMUL = 16
MODELS = {
    # name: (dmg class, dynamic parameters, hydrodl2 class, coupling options, split network output)
    "hbv": (HBV, ("BETA", "BETAET"), "Hbv", {"spinup_static": "warmup_end", "spinup_hold_dynamic": True}, False),
    "hbv11p": (HBV11p, ("BETA", "K0", "BETAET"), "Hbv_1_1p", {"spinup_static": "warmup_end"}, False),
    "hbv2": (HBV2, ("BETA", "K0", "BETAET"), "Hbv_2", {"transform": "identity"}, True),
}
LABELS = {"hbv": "δHBV 1.0", "hbv11p": "δHBV 1.1p", "hbv2": "δHBV 2.0"}


class RawParameters(nn.Module):
    """Stands in for a network: returns a fixed raw parameter tensor (or a dynamic/static pair)."""

    input_kind = "sequence"

    def __init__(self, raw: torch.Tensor | tuple[torch.Tensor, torch.Tensor]) -> None:
        super().__init__()
        self.split = isinstance(raw, tuple)
        self.output_kind = "split" if self.split else "single"
        if self.split:
            self.dynamic = nn.Parameter(raw[0].clone())
            self.static = nn.Parameter(raw[1].clone())
        else:
            self.raw = nn.Parameter(raw.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return (self.dynamic, self.static) if self.split else self.raw


@dataclass
class Case:
    """Inputs of one size of one model."""

    model: str
    units: int
    days: int
    forcings: dict[str, torch.Tensor]
    attributes: dict[str, torch.Tensor]
    raw: torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def make_case(model: str, units: int, days: int, seed: int = 0) -> Case:
    """Seasonal weather and raw parameters whose static channels are constant in time (so every published
    spin-up rule gives the same states) and whose dynamic channels vary smoothly."""
    cls, dynamic, _, _, split = MODELS[model]
    physics = Chain(runoff=cls(nmul=NMUL, dynamic=list(dynamic)), routing=GammaRouting())
    spec = physics.parameter_spec
    n_time = WARMUP + days
    forcings = seasonal_weather(n_time, units, seed=seed)
    reps = -(-units // 5)
    attributes = {k: v.repeat(reps)[:units] for k, v in EXAMPLE_ATTRIBUTES.items()}
    g = torch.Generator().manual_seed(seed + 1)
    day = torch.arange(n_time, dtype=torch.float32)[:, None, None]
    if split:
        static = torch.rand(units, spec.n_static_channels, generator=g) * 0.8 + 0.1
        phase = torch.rand(1, units, spec.n_dynamic_channels, generator=g) * 6.28
        dynamic_raw = 0.5 + 0.3 * torch.sin(2 * torch.pi * day / 365.0 + phase)
        return Case(model, units, days, forcings, attributes, (dynamic_raw, static))
    raw = (torch.randn(1, units, spec.n_channels(), generator=g) * 1.5).expand(n_time, -1, -1).clone()
    index = torch.tensor(spec.channel_index(spec.dynamic_parameters))
    phase = torch.rand(1, units, index.numel(), generator=g) * 6.28
    raw[:, :, index] = raw[:, :, index] + torch.sin(2 * torch.pi * day / 365.0 + phase)
    return Case(model, units, days, forcings, attributes, raw)


def dmg_runner(case: Case, engine: Engine, grad: bool) -> tuple[Callable[[], torch.Tensor], nn.Module]:
    cls, dynamic, _, coupling, _ = MODELS[case.model]
    physics = Chain(runoff=cls(nmul=NMUL, dynamic=list(dynamic)), routing=GammaRouting())
    network = RawParameters(case.raw)
    model = DeltaModel(network, physics, ParameterLearning(**coupling), engine=engine)
    n_time = WARMUP + case.days
    batch = Batch(
        forcings=case.forcings,
        nn_inputs=torch.zeros(n_time, case.units, 1),
        attributes={k: v for k, v in case.attributes.items() if k in physics.attribute_names},
        warmup=WARMUP,
    )

    def run() -> torch.Tensor:
        if not grad:
            with torch.no_grad():
                return model(batch, save=["Q"])["Q"]
        model.zero_grad(set_to_none=True)
        q = model(batch, save=["Q"])["Q"]
        q.sum().backward()
        return q.detach()

    return run, model


def hydrodl2_runner(case: Case, grad: bool) -> Callable[[], torch.Tensor]:
    import hydrodl2

    _, dynamic, name, _, split = MODELS[case.model]
    model_class = hydrodl2.load_model(name)
    config = {
        "nmul": NMUL,
        "warm_up": WARMUP,
        "warmup": WARMUP,
        "warm_up_states": not split,
        "warmup_states": not split,
        "routing": True,
        "dy_drop": 0.0,
        "dynamic_params": {model_class.__name__: [f"par{n}" for n in dynamic]},
        "variables": ["prcp", "tmean", "pet"],
    }
    model = model_class(config, device=torch.device("cpu"))
    x = {"x_phy": torch.stack([case.forcings["P"], case.forcings["T"], case.forcings["PET"]], dim=-1)}
    if split:
        x.update(ac_all=case.attributes["upstream_area"], elev_all=case.attributes["elevation"])
    leaves = tuple(r.clone().requires_grad_(grad) for r in case.raw) if split else case.raw.clone().requires_grad_(grad)

    def run() -> torch.Tensor:
        if not grad:
            with torch.no_grad():
                return model(x, leaves)["streamflow"][..., 0]
        for leaf in leaves if split else (leaves,):
            leaf.grad = None
        q = model(x, leaves)["streamflow"][..., 0]
        q.sum().backward()
        return q.detach()

    return run


def make_engine(backend: str) -> Engine:
    """An engine from ``name`` or ``name:option=value,...`` (values read as YAML), e.g. ``adjoint:compile=true``."""
    import yaml

    name, _, rest = backend.partition(":")
    options = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in rest.split(",") if item)}
    return Engine.create(name, **options)


def hydrodl2_available() -> bool:
    return importlib.util.find_spec("hydrodl2") is not None


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure_case(
    case: Case, backends: list[str], repeats: int, hydrodl2_max_units: int | None = None
) -> dict[str, dict[str, float]]:
    """Median forward and forward+backward seconds of every variant, interleaved; checks agreement."""
    variants: dict[str, dict[str, Callable[[], torch.Tensor]]] = {}
    for backend in backends:
        engine = make_engine(backend)
        variants[f"dmg {backend}"] = {
            "forward": dmg_runner(case, engine, grad=False)[0],
            "forward+backward": dmg_runner(case, engine, grad=True)[0],
        }
    if hydrodl2_available() and (hydrodl2_max_units is None or case.units <= hydrodl2_max_units):
        variants["hydrodl2 1.4.0"] = {
            "forward": hydrodl2_runner(case, grad=False),
            "forward+backward": hydrodl2_runner(case, grad=True),
        }
    outputs = {name: runs["forward"]() for name, runs in variants.items()}
    for runs in variants.values():
        runs["forward+backward"]()  # warm every path (kernels are compiled here, not timed)
    reference = outputs.get("hydrodl2 1.4.0", outputs[f"dmg {backends[0]}"])
    agreement = {
        name: float((q - reference).abs().max() / reference.abs().max().clamp_min(1e-12)) for name, q in outputs.items()
    }
    times: dict[str, dict[str, list[float]]] = {name: {"forward": [], "forward+backward": []} for name in variants}
    for _ in range(repeats):
        for name, runs in variants.items():
            for kind, run in runs.items():
                times[name][kind].append(timed(run))
    return {
        name: {
            "forward_s": statistics.median(t["forward"]),
            "forward_backward_s": statistics.median(t["forward+backward"]),
            "max_relative_difference": agreement[name],
        }
        for name, t in times.items()
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe_memory(model: str, units: int, days: int, variant: str, threads: int) -> float:
    """Extra peak resident memory (MiB) of one forward+backward, after a small run loaded every code path.

    The high-water mark of this process's memory is reset just before the run (Linux ``clear_refs``),
    so the figure is the run's own peak above what was resident before it.
    """
    torch.set_num_threads(threads)
    small = make_case(model, 5, 30)
    big = make_case(model, units, days)
    if variant == "hydrodl2":
        hydrodl2_runner(small, grad=True)()
        run = hydrodl2_runner(big, grad=True)
    else:
        engine = make_engine(variant)
        dmg_runner(small, engine, grad=True)[0]()
        run = dmg_runner(big, engine, grad=True)[0]
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak resident size to the current one
    before = _status_kib("VmRSS")
    run()
    return max(_status_kib("VmHWM") - before, 0) / 1024


def probe_compile(model: str, backend: str) -> float:
    """Seconds spent compiling (or loading) the backend's code for one model's training step."""
    case = make_case(model, 5, 30)
    engine = make_engine(backend)
    dmg_runner(case, engine, grad=True)[0]()
    return engine.backend.compile_seconds


def _child(args: list[str], env: dict[str, str] | None = None) -> float:
    result = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise RuntimeError(f"probe {args} failed: {result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def minibatch_seconds(backend: str, threads: int) -> float:
    """Median seconds of one training minibatch (forward, loss, backward) with dmg and ``backend``."""
    import minibatch_inputs as mb

    from dmg.nn import LSTM

    torch.set_num_threads(threads)
    physics = Chain(runoff=HBV(nmul=mb.NMUL, dynamic=["BETA", "BETAET"]), routing=GammaRouting())
    coupling = ParameterLearning(spinup_static="warmup_end", spinup_hold_dynamic=True)
    network = LSTM(n_inputs=mb.FEATURES, n_outputs=coupling.n_outputs(physics), hidden_size=mb.HIDDEN)
    model = DeltaModel(network, physics, coupling, engine=make_engine(backend))
    model.train()
    inputs = mb.make_inputs()
    batch = Batch(forcings={k: inputs[k] for k in ("P", "T", "PET")}, nn_inputs=inputs["nn_inputs"], warmup=mb.WARMUP)

    def minibatch() -> None:
        model.zero_grad(set_to_none=True)
        q = model(batch, save=["Q"])["Q"]
        ((q - inputs["observed"]) ** 2).mean().backward()

    minibatch()
    return statistics.median(timed(minibatch) for _ in range(mb.REPEATS))


def published_minibatch_seconds(python: str, threads: int) -> float:
    script = Path(__file__).with_name("published_minibatch.py")
    result = subprocess.run([python, str(script), str(threads)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the published minibatch failed: {result.stderr[-2000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def run_minibatch(backends: list[str], threads: list[int], published: str | None, path: str) -> None:
    report: dict[str, object] = {"versions": versions(), "load_average_start": os.getloadavg(), "minibatch": []}
    for n in threads:
        row: dict[str, float] = {name: minibatch_seconds(name, n) for name in backends}
        if published:
            row["published dMG 1.5.0"] = published_minibatch_seconds(published, n)
        report["minibatch"].append({"threads": n, "seconds": row})
        reference = row.get("published dMG 1.5.0")
        print(
            f"\none δHBV 1.0 training minibatch (LSTM 256 -> HBV nmul 16 -> routing, 100 units x 365 days "
            f"+ 365 warm-up), {n} thread(s)"
        )
        for name, seconds in row.items():
            ratio = f"{reference / seconds:8.2f}x" if reference else ""
            print(f"  {name:<24}{seconds:8.3f} s {ratio}")
    report["load_average_end"] = os.getloadavg()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2))
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}; results in {path}")


def versions() -> dict[str, object]:
    """The provenance record of :mod:`dmg.core.provenance` (the one run folders keep), with hydrodl2's version."""
    return provenance.collect(extra=("hydrodl2",))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="hbv,hbv11p,hbv2")
    parser.add_argument("--backends", default="eager,kernel")
    parser.add_argument("--units", type=int, nargs="+", default=[100])
    parser.add_argument("--days", type=int, nargs="+", default=[365])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--grid", action="store_true", help="units 100 500 2000, days 365 730 1460, threads 1 2")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    parser.add_argument(
        "--hydrodl2-max-units", type=int, help="run hydrodl2 only up to this many units (its backward is quadratic)"
    )
    results = Path(__file__).with_name("results")
    parser.add_argument("--json", default=str(results / "engine_speed.json"), help="where to write the results")
    parser.add_argument("--plot", default=str(results / "engine_speed.png"), help="where to draw time against days")
    parser.add_argument("--minibatch", action="store_true", help="time one training minibatch instead")
    parser.add_argument("--published-python", help="interpreter with dMG 1.5.0 and hydrodl2 1.4.0 installed")
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.minibatch:
        run_minibatch(args.backends.split(","), args.threads, args.published_python, args.json)
        return
    if args.probe:
        kind, *rest = args.probe
        if kind == "memory":
            print(probe_memory(rest[0], int(rest[1]), int(rest[2]), rest[3], int(rest[4])))
        else:
            print(probe_compile(rest[0], rest[1]))
        return
    if args.grid:
        args.units, args.days, args.threads = [100, 500, 2000], [365, 730, 1460], [1, 2]
    models = args.models.split(",")
    backends = args.backends.split(",")
    report: dict[str, object] = {
        "versions": versions(),
        "load_average_start": os.getloadavg(),
        "warmup_days": WARMUP,
        "nmul": NMUL,
        "cases": [],
        "compile": {},
    }
    with tempfile.TemporaryDirectory() as cold:
        for backend in backends:
            if not hasattr(make_engine(backend).backend, "compile_seconds"):
                continue  # nothing compiled
            env = {"DMG_KERNEL_CACHE": cold, "TORCHINDUCTOR_CACHE_DIR": str(Path(cold) / "inductor")}
            for model in models:
                report["compile"][f"{backend} {model}"] = {
                    "cold_s": _child(["--probe", "compile", model, backend], env),
                    "warm_s": _child(["--probe", "compile", model, backend], env),
                }
    for threads in args.threads:
        torch.set_num_threads(threads)
        for model in models:
            for units in args.units:
                for days in args.days:
                    case = make_case(model, units, days)
                    results = measure_case(case, backends, args.repeats, args.hydrodl2_max_units)
                    if not args.no_memory:
                        for name in results:
                            variant = "hydrodl2" if name.startswith("hydrodl2") else name.split(" ", 1)[1]
                            probe = ["--probe", "memory", model, str(units), str(days), variant, str(threads)]
                            results[name]["peak_extra_mib"] = _child(probe)
                    entry = {"model": model, "units": units, "days": days, "threads": threads, "results": results}
                    report["cases"].append(entry)
                    print_case(entry)
    report["load_average_end"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    for name, values in report["compile"].items():
        print(f"compile {name}: cold {values['cold_s']:.2f} s, warm {values['warm_s']:.2f} s")
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}; results in {args.json}")
    plot(report, args.plot)


def print_case(entry: dict) -> None:
    results = entry["results"]
    reference = results.get("hydrodl2 1.4.0") or results[next(iter(results))]
    ref_name = "hydrodl2" if "hydrodl2 1.4.0" in results else next(iter(results))
    print(
        f"\n{LABELS[entry['model']]} + routing, {entry['units']} units x {entry['days']} days "
        f"(+{WARMUP} warm-up), nmul {NMUL}, {entry['threads']} thread(s); ratios: {ref_name} time / variant time"
    )
    print(f"{'variant':<18}{'forward s':>11}{'x':>8}{'fwd+bwd s':>11}{'x':>8}{'peak MiB':>10}{'max rel diff':>14}")
    for name, r in results.items():
        memory = f"{r['peak_extra_mib']:.0f}" if "peak_extra_mib" in r else "-"
        print(
            f"{name:<18}{r['forward_s']:>11.4f}{reference['forward_s'] / r['forward_s']:>8.1f}"
            f"{r['forward_backward_s']:>11.4f}{reference['forward_backward_s'] / r['forward_backward_s']:>8.1f}"
            f"{memory:>10}{r['max_relative_difference']:>14.1e}"
        )


def plot(report: dict, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    groups: dict[tuple, dict[str, list[tuple[int, float]]]] = {}
    for entry in report["cases"]:
        key = (entry["model"], entry["units"], entry["threads"])
        for name, r in entry["results"].items():
            groups.setdefault(key, {}).setdefault(name, []).append((entry["days"], r["forward_backward_s"]))
    groups = {k: v for k, v in groups.items() if max(len(points) for points in v.values()) > 1}
    if not groups:
        print("no plot: time against days needs more than one --days")
        return
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for ax, (key, series) in zip(axes.flat, groups.items()):
        for name, points in series.items():
            points.sort()
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
        ax.set_title(f"{LABELS[key[0]]} + routing, {key[1]} units, {key[2]} thread(s)")
        ax.set_xlabel("days after a 365-day warm-up")
        ax.set_ylabel("forward + backward (s)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend()
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
