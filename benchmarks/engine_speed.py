"""Speed and memory of dmg's engine backends on the δHBV family, against the published implementation.

Each case is one model of :data:`MODELS` over ``units`` basins and a window after a warm-up, float32,
nmul 16, run in dmg's real training pipeline: a ``DeltaModel`` whose networks return fixed raw
parameter tensors (as a network's last layer would), the model's couplings with the published
spin-up settings, its physics, and the backend under test. Forward runs without gradient;
forward+backward back-propagates the sum of the output streamflow to the raw tensors. The models:

* daily δHBV 1.0, 1.1p and 2.0, each followed by gamma routing (``hbv``, ``hbv11p``, ``hbv2``): a
  window of ``--days`` days after a 365-day warm-up;
* hourly δHBV 2.0 and 2.1, each followed by the 72-hour gamma routing (``hbv2h``, ``hbv21h``): a
  window of ``--hours`` hours after a 168-hour warm-up;
* the multi-timescale δHBV (``mts``: daily δHBV 2.0 handing its stores to hourly δHBV 2.0, as
  published for training, without routing; ``mts21h``: to hourly δHBV 2.1 with the hourly routing),
  one network per time scale: the daily model over the 351 days before the hourly part, then
  ``--hours`` hours after a 168-hour hourly warm-up.

hydrodl2 1.4.0 (non-commercial licence: install it only to compare, e.g. with ``nox -s bench``) runs
the same raw tensor through its own warm-up and routing for the daily models when it is importable;
its streamflow is checked against dmg's.

Every variant of a case runs interleaved with the others, median of ``--repeats``; ratios are to
hydrodl2 in the same run (or to dmg's first backend without it). A backend that cannot run a model
falls back to eager with a warning; the table and the JSON file record it. Peak memory is the extra
resident memory of one forward+backward in a fresh process; compile time is measured cold (empty
kernel cache) and warm (a second process). Results go to a table, a JSON file (with the provenance
record of ``dmg.core.provenance``: package versions, platform, git commit; and the load average) and,
with matplotlib, a plot of time against days::

    python benchmarks/engine_speed.py                     # the target size: 100 units x 365 days, 1 thread
    python benchmarks/engine_speed.py --grid              # units {100, 500, 2000} x days {365, 730, 1460},
                                                          # 1 and 2 threads
    python benchmarks/engine_speed.py --models hbv --backends eager,kernel --units 500 --days 730 --threads 2
    python benchmarks/engine_speed.py --models hbv2,hbv2h,hbv21h,mts --hours 168   # hourly against daily
    python benchmarks/engine_speed.py --minibatch --published-python PATH   # one training minibatch, both sides
    python benchmarks/engine_speed.py --minibatch --models hbv2,mts          # daily and multi-timescale minibatch

``--minibatch`` times one training minibatch (networks -> physics -> loss -> backward) of each model
of :data:`MINIBATCHES` (default δHBV 1.0: LSTM 256 -> HBV nmul 16 -> routing, see
``minibatch_inputs.py``) for each backend and, for δHBV 1.0 with ``--published-python``, the same
minibatch in the published dMG 1.5.0 run by that interpreter (``published_minibatch.py``; ``nox -s
bench`` sets it up).
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
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from dmg.core import Batch, Chain, DeltaModel, ParameterLearning, provenance
from dmg.core import engine as engine_module
from dmg.core.couplings import Coupling
from dmg.core.engine import Engine
from dmg.core.multiscale_learning import ScaleParameterLearning
from dmg.core.physics import PhysicsModel
from dmg.hydro import HBV, HBV2, GammaRouting, HBV11p
from dmg.hydro.hbv import HBV2Hourly, HBV21Hourly
from dmg.hydro.hbv.testing import EXAMPLE_ATTRIBUTES, hourly_weather, seasonal_weather
from dmg.hydro.multiscale import PUBLISHED_DAYS, hbv_multi_timescale
from dmg.hydro.routing import HourlyGammaRouting

WARMUP = 365
"""Warm-up days of the daily models."""
HOURLY_WARMUP = 168
"""Warm-up hours of the hourly models (the published ``train_warmup``)."""
NMUL = 16
HBV2_DYNAMIC = ("BETA", "K0", "BETAET")
"""The published dynamic parameters of δHBV 2.0, daily and hourly."""


@dataclass(frozen=True)
class Model:
    """A model the benchmark times: its physics, its couplings and the length of its time step.

    Parameters
    ----------
    label
        Name in tables.
    physics
        Builds the physics model.
    couplings
        Builds the couplings, ``{network name: coupling}``; each network returns a raw tensor
        (``split``: a dynamic/static pair) of the coupling's ``n_outputs``.
    step
        ``"day"`` or ``"hour"``: the unit of the window (``--days`` or ``--hours``).
    warmup
        Warm-up steps before the window (the coarse span included for a multi-timescale model).
    split
        The networks return a dynamic/static pair rather than one tensor.
    hydrodl2
        hydrodl2's class of the same model with routing, compared when hydrodl2 is installed.
    dynamic
        Dynamic parameters (for hydrodl2's config).
    coarse_span
        Fine steps of the warm-up that a multi-timescale model runs as daily steps (24 to a day).
    """

    label: str
    physics: Callable[[], PhysicsModel]
    couplings: Callable[[], dict[str, Coupling]]
    step: Literal["day", "hour"] = "day"
    warmup: int = WARMUP
    split: bool = False
    hydrodl2: str | None = None
    dynamic: tuple[str, ...] = field(default=())
    coarse_span: int = 0

    @property
    def steps_per_day(self) -> int:
        return 24 if self.step == "hour" else 1

    def model_steps(self, window: int) -> int:
        """Steps the model runs for a window: warm-up and window, the coarse span counted in coarse steps."""
        return self.warmup + window - self.coarse_span + self.coarse_span // 24


def _daily(cls: type, dynamic: tuple[str, ...], **coupling: object) -> tuple[Callable, Callable]:
    return (
        lambda: Chain(runoff=cls(nmul=NMUL, dynamic=list(dynamic)), routing=GammaRouting()),
        lambda: {"network": ParameterLearning(**coupling)},
    )


def _hourly(cls: type) -> tuple[Callable, Callable]:
    return (
        lambda: Chain(runoff=cls(nmul=NMUL, dynamic=list(HBV2_DYNAMIC)), routing=HourlyGammaRouting()),
        lambda: {"network": ParameterLearning(transform="identity")},
    )


def _multi_timescale(hourly: Callable[[], PhysicsModel]) -> tuple[Callable, Callable]:
    return (
        lambda: hbv_multi_timescale(HBV2(nmul=NMUL, dynamic=list(HBV2_DYNAMIC)), hourly()),
        lambda: {
            "daily": ScaleParameterLearning(scale="coarse", network="daily", transform="identity"),
            "hourly": ScaleParameterLearning(scale="fine", network="hourly", transform="identity"),
        },
    )


MODELS: dict[str, Model] = {
    "hbv": Model(
        "δHBV 1.0 + routing",
        *_daily(HBV, ("BETA", "BETAET"), spinup_static="warmup_end", spinup_hold_dynamic=True),
        hydrodl2="Hbv",
        dynamic=("BETA", "BETAET"),
    ),
    "hbv11p": Model(
        "δHBV 1.1p + routing",
        *_daily(HBV11p, ("BETA", "K0", "BETAET"), spinup_static="warmup_end"),
        hydrodl2="Hbv_1_1p",
        dynamic=("BETA", "K0", "BETAET"),
    ),
    "hbv2": Model(
        "δHBV 2.0 + routing",
        *_daily(HBV2, HBV2_DYNAMIC, transform="identity"),
        split=True,
        hydrodl2="Hbv_2",
        dynamic=HBV2_DYNAMIC,
    ),
    "hbv2h": Model("δHBV 2.0 hourly + routing", *_hourly(HBV2Hourly), step="hour", warmup=HOURLY_WARMUP, split=True),
    "hbv21h": Model("δHBV 2.1 hourly + routing", *_hourly(HBV21Hourly), step="hour", warmup=HOURLY_WARMUP, split=True),
    "mts": Model(
        f"multi-timescale δHBV 2.0 ({PUBLISHED_DAYS} d daily -> 2.0 hourly)",
        *_multi_timescale(lambda: HBV2Hourly(nmul=NMUL, dynamic=list(HBV2_DYNAMIC))),
        step="hour",
        warmup=PUBLISHED_DAYS * 24 + HOURLY_WARMUP,
        split=True,
        coarse_span=PUBLISHED_DAYS * 24,
    ),
    "mts21h": Model(
        f"multi-timescale δHBV ({PUBLISHED_DAYS} d daily -> 2.1 hourly + routing)",
        *_multi_timescale(
            lambda: Chain(runoff=HBV21Hourly(nmul=NMUL, dynamic=list(HBV2_DYNAMIC)), routing=HourlyGammaRouting())
        ),
        step="hour",
        warmup=PUBLISHED_DAYS * 24 + HOURLY_WARMUP,
        split=True,
        coarse_span=PUBLISHED_DAYS * 24,
    ),
}
"""The models the benchmark can time, by the name ``--models`` takes."""
LABELS = {name: model.label for name, model in MODELS.items()}


class RawParameters(nn.Module):
    """Stands in for a network: returns a fixed raw parameter tensor (or a dynamic/static pair).

    The time-varying part is cut to the length of the network's input series (a multi-timescale
    coupling gives its network the coarse or the fine part of the window only).
    """

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
        n = x.shape[0]
        return (self.dynamic[:n], self.static) if self.split else self.raw[:n]


@dataclass
class Case:
    """Inputs of one size of one model."""

    model: str
    units: int
    window: int
    forcings: dict[str, torch.Tensor]
    attributes: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]

    @property
    def warmup(self) -> int:
        return MODELS[self.model].warmup

    @property
    def n_time(self) -> int:
        return self.warmup + self.window


def make_case(model: str, units: int, window: int, seed: int = 0) -> Case:
    """Weather and raw parameters over the warm-up and ``window`` steps of ``model``.

    Daily models get seasonal daily weather, hourly ones hourly storms. Static channels are constant
    in time (so every published spin-up rule gives the same states) and dynamic channels vary
    smoothly, with a period of a year.
    """
    spec_model = MODELS[model]
    physics = spec_model.physics()
    n_time = spec_model.warmup + window
    weather = hourly_weather if spec_model.step == "hour" else seasonal_weather
    forcings = weather(n_time, units, seed=seed)
    reps = -(-units // 5)
    attributes = {k: v.repeat(reps)[:units] for k, v in EXAMPLE_ATTRIBUTES.items()}
    g = torch.Generator().manual_seed(seed + 1)
    step = torch.arange(n_time, dtype=torch.float32)[:, None, None]
    year = 365.0 * spec_model.steps_per_day
    raw: dict[str, torch.Tensor | tuple[torch.Tensor, torch.Tensor]] = {}
    for name, coupling in spec_model.couplings().items():
        if spec_model.split:
            n_dynamic, n_static = coupling.n_outputs(physics, split=True)
            static = torch.rand(units, n_static, generator=g) * 0.8 + 0.1
            phase = torch.rand(1, units, n_dynamic, generator=g) * 6.28
            raw[name] = (0.5 + 0.3 * torch.sin(2 * torch.pi * step / year + phase), static)
            continue
        spec = coupling.learned_spec(physics)
        values = (torch.randn(1, units, spec.n_channels(), generator=g) * 1.5).expand(n_time, -1, -1).clone()
        index = torch.tensor(spec.channel_index(spec.dynamic_parameters))
        phase = torch.rand(1, units, index.numel(), generator=g) * 6.28
        values[:, :, index] = values[:, :, index] + torch.sin(2 * torch.pi * step / year + phase)
        raw[name] = values
    return Case(model, units, window, forcings, attributes, raw)


def dmg_runner(case: Case, engine: Engine, grad: bool) -> tuple[Callable[[], torch.Tensor], nn.Module]:
    spec_model = MODELS[case.model]
    physics = spec_model.physics()
    couplings = spec_model.couplings()
    networks = {name: RawParameters(case.raw[name]) for name in couplings}
    network = networks["network"] if list(networks) == ["network"] else networks
    model = DeltaModel(network, physics, list(couplings.values()), engine=engine)
    batch = Batch(
        forcings=case.forcings,
        nn_inputs=torch.zeros(case.n_time, case.units, 1),
        attributes={k: v for k, v in case.attributes.items() if k in physics.attribute_names},
        warmup=case.warmup,
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

    spec_model = MODELS[case.model]
    split, raw = spec_model.split, case.raw["network"]
    model_class = hydrodl2.load_model(spec_model.hydrodl2)
    config = {
        "nmul": NMUL,
        "warm_up": WARMUP,
        "warmup": WARMUP,
        "warm_up_states": not split,
        "warmup_states": not split,
        "routing": True,
        "dy_drop": 0.0,
        "dynamic_params": {model_class.__name__: [f"par{n}" for n in spec_model.dynamic]},
        "variables": ["prcp", "tmean", "pet"],
    }
    model = model_class(config, device=torch.device("cpu"))
    x = {"x_phy": torch.stack([case.forcings["P"], case.forcings["T"], case.forcings["PET"]], dim=-1)}
    if split:
        x.update(ac_all=case.attributes["upstream_area"], elev_all=case.attributes["elevation"])
    leaves = tuple(r.clone().requires_grad_(grad) for r in raw) if split else raw.clone().requires_grad_(grad)

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


def fallbacks(run: Callable[[], object]) -> list[str]:
    """Run ``run`` once and return the engine's warnings of a backend falling back to eager."""
    engine_module._WARNED.clear()  # the engine warns once per process: here, once per call
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run()
    return sorted({str(w.message) for w in caught if "running it eagerly" in str(w.message)})


def measure_case(
    case: Case, backends: list[str], repeats: int, hydrodl2_max_units: int | None = None
) -> dict[str, dict[str, object]]:
    """Median forward and forward+backward seconds of every variant, interleaved; checks agreement.

    Each variant also records the warnings of its backend falling back to eager (``fallbacks``).
    """
    variants: dict[str, dict[str, Callable[[], torch.Tensor]]] = {}
    for backend in backends:
        engine = make_engine(backend)
        variants[f"dmg {backend}"] = {
            "forward": dmg_runner(case, engine, grad=False)[0],
            "forward+backward": dmg_runner(case, engine, grad=True)[0],
        }
    if (
        MODELS[case.model].hydrodl2
        and hydrodl2_available()
        and (hydrodl2_max_units is None or case.units <= hydrodl2_max_units)
    ):
        variants["hydrodl2 1.4.0"] = {
            "forward": hydrodl2_runner(case, grad=False),
            "forward+backward": hydrodl2_runner(case, grad=True),
        }
    outputs = {name: runs["forward"]() for name, runs in variants.items()}
    fallen = {
        name: fallbacks(runs["forward+backward"])  # also warms every path (kernels are compiled here, not timed)
        for name, runs in variants.items()
    }
    reference = outputs.get("hydrodl2 1.4.0", outputs[f"dmg {backends[0]}"])
    valid = ~torch.isnan(reference)
    scale = reference[valid].abs().max().clamp_min(1e-12)
    agreement = {name: float((q - reference)[valid].abs().max() / scale) for name, q in outputs.items()}
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
            "fallbacks": fallen[name],
        }
        for name, t in times.items()
    }


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def probe_memory(model: str, units: int, window: int, variant: str, threads: int) -> float:
    """Extra peak resident memory (MiB) of one forward+backward, after a small run loaded every code path.

    The high-water mark of this process's memory is reset just before the run (Linux ``clear_refs``),
    so the figure is the run's own peak above what was resident before it.
    """
    torch.set_num_threads(threads)
    small = make_case(model, 5, 30)
    big = make_case(model, units, window)
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


@dataclass(frozen=True)
class Minibatch:
    """One training minibatch of a model: what it is and how to build it.

    ``build(engine)`` returns the model (networks and physics), its batch and the observations
    the loss compares with the model's streamflow after the warm-up.
    """

    description: str
    build: Callable[[Engine], tuple[DeltaModel, Batch, torch.Tensor]]


def _daily_minibatch(model: str) -> Callable[[Engine], tuple[DeltaModel, Batch, torch.Tensor]]:
    """A daily model of :data:`MODELS` fed by one LSTM, on the inputs of ``minibatch_inputs.py``."""

    def build(engine: Engine) -> tuple[DeltaModel, Batch, torch.Tensor]:
        import minibatch_inputs as mb

        from dmg.nn import LSTM

        physics = MODELS[model].physics()
        coupling = next(iter(MODELS[model].couplings().values()))
        if model != "hbv":  # a single-tensor network: the coupling's split-free options
            coupling = ParameterLearning()
        network = LSTM(n_inputs=mb.FEATURES, n_outputs=coupling.n_outputs(physics), hidden_size=mb.HIDDEN)
        inputs = mb.make_inputs()
        reps = -(-mb.UNITS // 5)
        attributes = {k: v.repeat(reps)[: mb.UNITS] for k, v in EXAMPLE_ATTRIBUTES.items()}
        batch = Batch(
            forcings={k: inputs[k] for k in ("P", "T", "PET")},
            nn_inputs=inputs["nn_inputs"],
            attributes={k: v for k, v in attributes.items() if k in physics.attribute_names},
            warmup=mb.WARMUP,
        )
        return DeltaModel(network, physics, coupling, engine=engine), batch, inputs["observed"]

    return build


MTS_HOURS = 168
"""Hours of the multi-timescale minibatch's loss, after the 168-hour hourly warm-up (the published 336-hour window)."""


def _multi_timescale_minibatch(model: str) -> Callable[[Engine], tuple[DeltaModel, Batch, torch.Tensor]]:
    """A multi-timescale model of :data:`MODELS` with one LSTM per time scale (the daily one reads the daily
    means of the hourly inputs), 100 units, the published window."""

    def build(engine: Engine) -> tuple[DeltaModel, Batch, torch.Tensor]:
        import minibatch_inputs as mb

        from dmg.nn import LSTM

        physics = MODELS[model].physics()
        couplings = [
            ScaleParameterLearning(scale="coarse", network="daily"),
            ScaleParameterLearning(scale="fine", network="hourly"),
        ]
        networks = {
            c.network: LSTM(n_inputs=mb.FEATURES, n_outputs=c.n_outputs(physics), hidden_size=mb.HIDDEN)
            for c in couplings
        }
        warmup = MODELS[model].warmup
        n_time = warmup + MTS_HOURS
        g = torch.Generator().manual_seed(0)
        reps = -(-mb.UNITS // 5)
        batch = Batch(
            forcings=hourly_weather(n_time, mb.UNITS, seed=0),
            nn_inputs=torch.randn(n_time, mb.UNITS, mb.FEATURES, generator=g),
            attributes={k: v.repeat(reps)[: mb.UNITS] for k, v in EXAMPLE_ATTRIBUTES.items()},
            warmup=warmup,
        )
        observed = torch.rand(MTS_HOURS, mb.UNITS, generator=g) * 0.2
        return DeltaModel(networks, physics, couplings, engine=engine), batch, observed

    return build


MINIBATCHES: dict[str, Minibatch] = {
    "hbv": Minibatch(
        "δHBV 1.0 training minibatch (LSTM 256 -> HBV nmul 16 -> routing, 100 units x 365 days + 365 warm-up)",
        _daily_minibatch("hbv"),
    ),
    "hbv2": Minibatch(
        "δHBV 2.0 training minibatch (LSTM 256 -> HBV 2.0 nmul 16 -> routing, 100 units x 365 days + 365 warm-up)",
        _daily_minibatch("hbv2"),
    ),
    "mts": Minibatch(
        f"multi-timescale δHBV 2.0 training minibatch (LSTM 256 per time scale -> daily HBV 2.0 over "
        f"{PUBLISHED_DAYS} days -> hourly HBV 2.0, nmul 16, 100 units x {MTS_HOURS} hours + {HOURLY_WARMUP} "
        "hours warm-up)",
        _multi_timescale_minibatch("mts"),
    ),
    "mts21h": Minibatch(
        f"multi-timescale δHBV training minibatch (LSTM 256 per time scale -> daily HBV 2.0 over "
        f"{PUBLISHED_DAYS} days -> hourly HBV 2.1 + routing, nmul 16, 100 units x {MTS_HOURS} hours + "
        f"{HOURLY_WARMUP} hours warm-up)",
        _multi_timescale_minibatch("mts21h"),
    ),
}
"""The models ``--minibatch`` can time, by the name ``--models`` takes."""


def minibatch_seconds(backend: str, threads: int, model: str = "hbv") -> float:
    """Median seconds of one training minibatch (forward, loss, backward) of ``model`` with dmg and ``backend``."""
    import minibatch_inputs as mb

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    delta, batch, observed = MINIBATCHES[model].build(make_engine(backend))
    delta.train()

    def minibatch() -> None:
        delta.zero_grad(set_to_none=True)
        q = delta(batch, save=["Q"])["Q"]
        ((q - observed) ** 2).mean().backward()

    minibatch()
    return statistics.median(timed(minibatch) for _ in range(mb.REPEATS))


def published_minibatch_seconds(python: str, threads: int) -> float:
    script = Path(__file__).with_name("published_minibatch.py")
    result = subprocess.run([python, str(script), str(threads)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the published minibatch failed: {result.stderr[-2000:]}")
    return float(json.loads(result.stdout.strip().splitlines()[-1])["seconds"])


def run_minibatch(
    backends: list[str], threads: list[int], published: str | None, path: str, models: tuple[str, ...] = ("hbv",)
) -> None:
    """Time one training minibatch of each of ``models`` with each backend (and the published δHBV 1.0)."""
    report: dict[str, object] = {"versions": versions(), "load_average_start": os.getloadavg(), "minibatch": []}
    for n in threads:
        for model in models:
            row: dict[str, float] = {
                name: minibatch_seconds(name, n) if model == "hbv" else minibatch_seconds(name, n, model)
                for name in backends
            }
            if published and model == "hbv":
                row["published dMG 1.5.0"] = published_minibatch_seconds(published, n)
            report["minibatch"].append({"model": model, "threads": n, "seconds": row})
            reference = row.get("published dMG 1.5.0")
            print(f"\none {MINIBATCHES[model].description}, {n} thread(s)")
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
    parser.add_argument(
        "--models",
        help=f"comma-separated, of {', '.join(MODELS)} (default hbv,hbv11p,hbv2); with --minibatch, of "
        f"{', '.join(MINIBATCHES)} (default hbv)",
    )
    parser.add_argument("--backends", default="eager,kernel")
    parser.add_argument("--units", type=int, nargs="+", default=[100])
    parser.add_argument("--days", type=int, nargs="+", default=[365], help="window of the daily models (days)")
    parser.add_argument(
        "--hours", type=int, nargs="+", default=[168], help="window of the hourly and multi-timescale models (hours)"
    )
    parser.add_argument(
        "--reference",
        default="hbv2",
        help="model every other one is compared with, per window and per step, when it is among --models",
    )
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
        models = tuple((args.models or "hbv").split(","))
        run_minibatch(args.backends.split(","), args.threads, args.published_python, args.json, models)
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
    models = (args.models or "hbv,hbv11p,hbv2").split(",")
    backends = args.backends.split(",")
    report: dict[str, object] = {
        "versions": versions(),
        "load_average_start": os.getloadavg(),
        "warmup_days": WARMUP,
        "warmup_hours": HOURLY_WARMUP,
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
                spec = MODELS[model]
                for window in args.hours if spec.step == "hour" else args.days:
                    case = make_case(model, units, window)
                    results = measure_case(case, backends, args.repeats, args.hydrodl2_max_units)
                    if not args.no_memory:
                        for name in results:
                            variant = "hydrodl2" if name.startswith("hydrodl2") else name.split(" ", 1)[1]
                            probe = ["--probe", "memory", model, str(units), str(window), variant, str(threads)]
                            results[name]["peak_extra_mib"] = _child(probe)
                    entry = {
                        "model": model,
                        "units": units,
                        "step": spec.step,
                        "window": window,
                        "warmup": spec.warmup,
                        "model_steps": spec.model_steps(window),
                        "days": window / spec.steps_per_day,
                        "threads": threads,
                        "results": results,
                    }
                    report["cases"].append(entry)
                    print_case(entry)
    if args.reference in models:
        report["relative"] = relative_to(report["cases"], args.reference)
        print_relative(report["relative"], args.reference)
    report["load_average_end"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    for name, values in report["compile"].items():
        print(f"compile {name}: cold {values['cold_s']:.2f} s, warm {values['warm_s']:.2f} s")
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}; results in {args.json}")
    plot(report, args.plot)


def relative_to(cases: list[dict], reference: str) -> list[dict]:
    """Each case's times over the reference model's (same units, threads and variant), per window and per step.

    A window is the whole run of a case (warm-up included); a step is one of the model's steps (a
    multi-timescale model counts its daily spin-up in days).
    """
    rows = []
    for entry in cases:
        matches = [
            c
            for c in cases
            if c["model"] == reference and c["units"] == entry["units"] and c["threads"] == entry["threads"]
        ]
        if entry["model"] == reference or not matches:
            continue
        ref = matches[0]
        for name, r in entry["results"].items():
            if name not in ref["results"]:
                continue
            row = {"model": entry["model"], "units": entry["units"], "threads": entry["threads"], "variant": name}
            row["window"], row["reference_window"] = entry["window"], ref["window"]
            row["model_steps"], row["reference_steps"] = entry["model_steps"], ref["model_steps"]
            for kind in ("forward_s", "forward_backward_s"):
                ratio = r[kind] / ref["results"][name][kind]
                row[f"{kind}_per_window"] = ratio
                row[f"{kind}_per_step"] = ratio * ref["model_steps"] / entry["model_steps"]
            rows.append(row)
    return rows


def print_relative(rows: list[dict], reference: str) -> None:
    print(f"\nagainst {LABELS[reference]} in the same run (time / reference time, same backend, units and threads)")
    print(
        f"{'model':<10}{'variant':<18}{'steps':>8}{'fwd/window':>12}{'fwd/step':>10}{'f+b/window':>12}{'f+b/step':>10}"
    )
    for r in rows:
        print(
            f"{r['model']:<10}{r['variant']:<18}{r['model_steps']:>8}{r['forward_s_per_window']:>12.2f}"
            f"{r['forward_s_per_step']:>10.2f}{r['forward_backward_s_per_window']:>12.2f}"
            f"{r['forward_backward_s_per_step']:>10.2f}"
        )


def print_case(entry: dict) -> None:
    results = entry["results"]
    reference = results.get("hydrodl2 1.4.0") or results[next(iter(results))]
    ref_name = "hydrodl2" if "hydrodl2 1.4.0" in results else next(iter(results))
    unit = "hours" if entry.get("step") == "hour" else "days"
    print(
        f"\n{LABELS[entry['model']]}, {entry['units']} units x {entry.get('window', entry['days'])} {unit} "
        f"(+{entry.get('warmup', WARMUP)} warm-up, {entry.get('model_steps', '?')} model steps), nmul {NMUL}, "
        f"{entry['threads']} thread(s); ratios: {ref_name} time / variant time"
    )
    print(f"{'variant':<18}{'forward s':>11}{'x':>8}{'fwd+bwd s':>11}{'x':>8}{'peak MiB':>10}{'max rel diff':>14}")
    for name, r in results.items():
        memory = f"{r['peak_extra_mib']:.0f}" if "peak_extra_mib" in r else "-"
        print(
            f"{name:<18}{r['forward_s']:>11.4f}{reference['forward_s'] / r['forward_s']:>8.1f}"
            f"{r['forward_backward_s']:>11.4f}{reference['forward_backward_s'] / r['forward_backward_s']:>8.1f}"
            f"{memory:>10}{r['max_relative_difference']:>14.1e}"
        )
        for message in r.get("fallbacks", []):
            print(f"    fallback: {message}")


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
        ax.set_title(f"{LABELS[key[0]]}, {key[1]} units, {key[2]} thread(s)")
        ax.set_xlabel("days of the window, after the warm-up")
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
