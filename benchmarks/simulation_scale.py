"""Simulation of large domains: throughput (unit-steps per second) and peak memory against the number of units.

The model is the quickstart's δHBV 1.0 (LSTM of 64 hidden units -> HBV with 4 components -> gamma
routing, kernel backend), with untrained weights: a trained model costs the same. Its forcings
are synthetic and made one chunk at a time by a lazy unit source, so the inputs of the domain are
never all in memory. Each domain size runs :func:`dmg.core.simulation.simulate_domain` (what
``dmg simulate`` runs) in a fresh process: every unit over ``--days`` days after a ``--warmup``-day
warm-up, ``--chunk-units`` units at a time, writing the routed streamflow ``Q`` (``simulate.outputs``)
to a NetCDF (or zarr) file in a temporary run folder.

Reported per size: wall-clock seconds of the whole simulation (chunks, their files and the final
file; the final file's share apart), unit-steps per second (units x days with predictions; the
warm-up steps are simulated too, the second figure counts them), the peak resident memory of the
process and its peak above the memory held before the simulation started (the model, torch and the
libraries), and the file's size.
Results go to a JSON file with the provenance record of :mod:`dmg.core.provenance` and the load
average. Run::

    python benchmarks/simulation_scale.py                          # 1 000, 10 000 and 100 000 units
    python benchmarks/simulation_scale.py --units 1000,4000 --days 730 --threads 2
    python benchmarks/simulation_scale.py --units 100000 --chunk-units 4096 --format zarr
    python benchmarks/simulation_scale.py --inputs npz --units 2000,10000,30000
    python benchmarks/simulation_scale.py --units 10000 --parameters causal,window

``--parameters`` runs each size with each ``simulate.parameters``: ``causal`` (the model stepped
forward, what ``dmg simulate`` does by default) and ``window`` (the period as one window).

With ``--inputs npz`` the same synthetic inputs are first written to an ``.npz`` file of
:meth:`~dmg.core.data.ArrayDataset.save` (in ``--workdir``), and each size is simulated twice from
it: from the dataset loaded whole (``ArrayDataset.load``, what ``dmg simulate`` did before it read
the units of each chunk only) and from the lazy source of :func:`dmg.core.data.lazy.open_npz`
(what ``dmg simulate`` reads an ``.npz`` dataset through). The table then also gives, per size, the
ratio of the two peaks (loaded whole / lazy), and the size of the inputs in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).with_name("results")
ATTRIBUTES = ("lat", "elevation", "aridity", "forest", "soil_depth", "slope")


def run_config(warmup: int, chunk_units: int, fmt: str, backend: str, parameters: str = "causal") -> dict[str, Any]:
    """The quickstart's model (examples/configs/quickstart.yaml) on the synthetic domain."""
    return {
        "seed": 0,
        "device": "cpu",
        "data": {
            "dataset": {"name": "hbv_twin", "n_units": 2},  # not loaded: the synthetic source stands for it
            "roles": {
                "forcings": {"P": "prcp", "T": "tmean", "PET": "pet"},
                "nn_inputs": ["prcp", "tmean", "pet"],
                "nn_static": list(ATTRIBUTES),
                "targets": {"Q": "streamflow"},
                "transforms": {"prcp": "log1p"},
            },
            "warmup": warmup,
        },
        "model": {
            "physics": {
                "name": "chain",
                "members": {
                    "runoff": {"name": "hbv", "nmul": 4, "warmup_mode": "spinup"},
                    "routing": {"name": "gamma_routing"},
                },
            },
            "nn": {"name": "lstm", "hidden_size": 64, "dropout": 0.0},
            "couplings": [{"name": "parameter_learning", "spinup_static": "warmup_end", "spinup_hold_dynamic": True}],
        },
        "engine": {"backend": {"name": backend}},
        "evaluate": {"plots": False},
        "simulate": {"chunk_units": chunk_units, "format": fmt, "outputs": ["Q"], "parameters": parameters},
    }


class SyntheticSource:
    """Daily forcings and attributes of ``n_units`` made-up basins, made for the units asked for only.

    Each unit's series depends on its position alone (a generator seeded with it), so any chunking
    gives the same inputs.
    """

    def __init__(self, n_units: int, n_time: int, seed: int = 0) -> None:
        self.unit_ids = tuple(f"u{i:07d}" for i in range(n_units))
        self.n_time = n_time
        self.seed = seed
        self.dates = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + n_time)

    def select_units(self, ids: Sequence[Any] | np.ndarray):
        from dmg.core.data import ArrayDataset

        index = [int(str(u)[1:]) for u in ids]
        day = np.arange(self.n_time)
        season = np.sin(2 * np.pi * day / 365.25)
        rows = []
        attributes = []
        for i in index:
            rng = np.random.default_rng([self.seed, i])
            wet = rng.random(self.n_time) < 0.35
            prcp = wet * rng.exponential(5.0, self.n_time)
            tmean = 8.0 + 12.0 * season + rng.normal(0.0, 3.0, self.n_time)
            pet = np.maximum(0.0, 2.5 + 2.0 * season + rng.normal(0.0, 0.3, self.n_time))
            rows.append(np.stack([prcp, tmean, pet, np.full(self.n_time, np.nan)], axis=1))
            attributes.append(rng.uniform(0.0, 1.0, len(ATTRIBUTES)))
        return ArrayDataset(
            np.asarray(rows, dtype=np.float32),
            ("prcp", "tmean", "pet", "streamflow"),
            tuple(str(u) for u in ids),
            self.dates,
            np.asarray(attributes, dtype=np.float32),
            ATTRIBUTES,
        )


def rss_mib(field: str = "VmRSS") -> float:
    """Resident memory of this process now (MiB); ``VmHWM``: its peak."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident memory of this process (MiB), since it started its program.

    ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` keeps, across the ``exec`` that
    started the program, the memory the process held when it was forked (its parent's).
    """
    peak = rss_mib("VmHWM")
    return peak if peak == peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_inputs(n_units: int, n_time: int, workdir: str) -> Path:
    """The inputs of :class:`SyntheticSource` as an ``ArrayDataset.save`` file in ``workdir``."""
    synthetic = SyntheticSource(n_units, n_time)
    path = Path(workdir) / f"simulation_scale_inputs_{n_units}_{n_time}.npz"
    if not path.is_file():
        synthetic.select_units(synthetic.unit_ids).save(path)
    return path


def open_inputs(inputs: str, n_units: int, n_time: int, npz: str | None) -> Any:
    """The unit source of a measurement: synthetic, or the ``.npz`` file loaded whole or read lazily."""
    from dmg.core.data import ArrayDataset
    from dmg.core.data.lazy import open_npz

    if inputs == "synthetic":
        return SyntheticSource(n_units, n_time)
    assert npz is not None
    return ArrayDataset.load(npz) if inputs == "eager" else open_npz(npz)


def measure(
    n_units: int,
    days: int,
    warmup: int,
    chunk_units: int,
    fmt: str,
    backend: str,
    workdir: str,
    inputs: str = "synthetic",
    npz: str | None = None,
    parameters: str = "causal",
) -> dict:
    """One simulation in this process; what it cost."""
    import torch

    from dmg.core.build import build_model
    from dmg.core.config import load_config, make_period
    from dmg.core.runfolder import RunFolder
    from dmg.core.simulation import simulate_domain

    config = load_config(run_config(warmup, chunk_units, fmt, backend, parameters))
    rss_libraries = rss_mib()
    source = open_inputs(inputs, n_units, warmup + days, npz)
    torch.manual_seed(0)
    model = build_model(config).eval()
    normalizer = config.data.roles.fit_normalizer(source.select_units(source.unit_ids[:256]))
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        folder = RunFolder(Path(tmp))
        checkpoint = Path(tmp) / "model.pt"
        torch.save(model.state_dict(), checkpoint)
        period = make_period(str(source.dates[warmup]), None, "period")
        # a first small simulation compiles the kernel and warms the caches
        simulate_domain(folder, config, model, normalizer, source, source.unit_ids[:8], period, checkpoint, name="w")
        before = rss_mib()
        lines: list[tuple[float, str]] = []
        start = time.perf_counter()
        with folder.lock("benchmark"):
            path = simulate_domain(
                folder,
                config,
                model,
                normalizer,
                source,
                source.unit_ids,
                period,
                checkpoint,
                name="domain",
                report=lambda line: lines.append((time.perf_counter(), line)),
            )
        end = time.perf_counter()
        seconds = end - start
        # the last chunk's line (printed when there are several chunks) ends the chunks' share
        chunks_done = max((t for t, line in lines if line.startswith("chunk ")), default=None)
        size = sum(p.stat().st_size for p in ([path] if path.is_file() else path.rglob("*"))) / 2**20
    peak = peak_rss_mib()
    return {
        "inputs": inputs,
        "parameters": parameters,
        "units": n_units,
        "days": days,
        "warmup": warmup,
        "chunk_units": chunk_units,
        "format": fmt,
        "backend": backend,
        "seconds": seconds,
        "final_file_seconds": None if chunks_done is None else end - chunks_done,
        "unit_steps_per_s": n_units * days / seconds,
        "unit_steps_per_s_with_warmup": n_units * (days + warmup) / seconds,
        "rss_before_mib": before,
        "rss_before_inputs_mib": rss_libraries,
        "peak_rss_mib": peak,
        "peak_above_start_mib": peak - before,
        "file_mib": size,
    }


def child(
    args: argparse.Namespace, n_units: int, chunk_units: int, inputs: str = "synthetic", parameters: str = "causal"
) -> dict:
    """:func:`measure` in a fresh process, so that each peak is its own."""
    npz = [] if inputs == "synthetic" else ["--npz", str(write_inputs(n_units, args.warmup + args.days, args.workdir))]
    command = [
        sys.executable,
        __file__,
        "--child",
        str(n_units),
        "--chunk-units",
        str(chunk_units),
        "--days",
        str(args.days),
        "--warmup",
        str(args.warmup),
        "--format",
        args.format,
        "--backend",
        args.backend,
        "--threads",
        str(args.threads),
        "--workdir",
        args.workdir,
        "--source",
        inputs,
        "--parameters",
        parameters,
        *npz,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the measurement of {n_units} units failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(rows: list[dict]) -> str:
    sources = any(r.get("inputs", "synthetic") != "synthetic" for r in rows)
    lines = [
        ("| inputs " if sources else "")
        + "| parameters "
        + "| units | chunk | seconds | of which final file | unit-steps/s | with warm-up | peak RSS MiB "
        "| above start MiB | file MiB |",
        ("|---" if sources else "") + "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            (f"| {r['inputs']} " if sources else "")
            + f"| {r.get('parameters', 'window')} "
            + f"| {r['units']:,} | {r['chunk_units']} | {r['seconds']:.1f} | {_seconds(r['final_file_seconds'])} | "
            f"{r['unit_steps_per_s']:,.0f} | "
            f"{r['unit_steps_per_s_with_warmup']:,.0f} | {r['peak_rss_mib']:.0f} | {r['peak_above_start_mib']:.0f} | "
            f"{r['file_mib']:.1f} |"
        )
    return "\n".join(lines)


def ratio_table(rows: list[dict]) -> str:
    """Peak memory of each size with the inputs loaded whole and read lazily, and their ratio."""
    lines = [
        "| units | inputs MiB | peak RSS MiB, loaded whole | peak RSS MiB, lazy | ratio | above libraries MiB, "
        "whole / lazy | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for n_units in dict.fromkeys(r["units"] for r in rows):
        eager = next((r for r in rows if r["units"] == n_units and r["inputs"] == "eager"), None)
        lazy = next((r for r in rows if r["units"] == n_units and r["inputs"] == "lazy"), None)
        if eager is None or lazy is None:
            continue
        above_eager = eager["peak_rss_mib"] - eager["rss_before_inputs_mib"]
        above_lazy = lazy["peak_rss_mib"] - lazy["rss_before_inputs_mib"]
        inputs = n_units * (eager["days"] + eager["warmup"]) * 4 * 4 / 2**20  # 4 float32 variables
        lines.append(
            f"| {n_units:,} | {inputs:.0f} | {eager['peak_rss_mib']:.0f} | {lazy['peak_rss_mib']:.0f} | "
            f"{eager['peak_rss_mib'] / lazy['peak_rss_mib']:.2f} | {above_eager:.0f} / {above_lazy:.0f} | "
            f"{above_eager / above_lazy:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", default="1000,10000,100000", help="domain sizes, comma-separated")
    parser.add_argument("--chunk-units", default="1024", help="chunk sizes, comma-separated (each with every size)")
    parser.add_argument("--days", type=int, default=365, help="days with predictions")
    parser.add_argument("--warmup", type=int, default=365, help="days of warm-up before them")
    parser.add_argument("--format", default="netcdf", choices=["netcdf", "zarr", "npz"])
    parser.add_argument("--backend", default="kernel", help="engine backend")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workdir", default=tempfile.gettempdir(), help="folder of the temporary run folders")
    parser.add_argument(
        "--inputs",
        default="synthetic",
        choices=["synthetic", "npz"],
        help="synthetic: made chunk by chunk; npz: read from an .npz file, loaded whole and lazily (compared)",
    )
    parser.add_argument(
        "--parameters",
        default="causal",
        help="simulate.parameters, comma-separated: causal (stepped forward, the default of dmg simulate), window",
    )
    parser.add_argument("--json", default=None, help="where to write the results (default: in benchmarks/results)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", default="synthetic", help=argparse.SUPPRESS)
    parser.add_argument("--npz", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child is not None:
        result = measure(
            args.child,
            args.days,
            args.warmup,
            int(args.chunk_units),
            args.format,
            args.backend,
            args.workdir,
            args.source,
            args.npz,
            args.parameters,
        )
        print(json.dumps(result))
        return

    from dmg.core import provenance

    report: dict[str, Any] = {
        "versions": provenance.collect(),
        "threads": args.threads,
        "inputs": args.inputs,
        "command": " ".join(["python", "benchmarks/simulation_scale.py", *(argv or sys.argv[1:])]),
        "load_average_start": os.getloadavg(),
        "results": [],
    }
    sources = ["synthetic"] if args.inputs == "synthetic" else ["eager", "lazy"]
    for chunk in (int(c) for c in args.chunk_units.split(",")):
        for n_units in (int(u) for u in args.units.split(",")):
            for inputs in sources:
                for parameters in args.parameters.split(","):
                    result = child(args, n_units, chunk, inputs, parameters)
                    report["results"].append(result)
                    print(table([result]).splitlines()[-1], flush=True)
            if args.inputs == "npz":
                inputs_file = write_inputs(n_units, args.warmup + args.days, args.workdir)
                inputs_file.unlink()
    report["load_average_end"] = os.getloadavg()
    default = "simulation_scale.json" if args.inputs == "synthetic" else "simulation_scale_inputs.json"
    path = Path(args.json) if args.json else RESULTS / default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report["results"]))
    if args.inputs == "npz":
        print(ratio_table(report["results"]))
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}; results in {path}")


if __name__ == "__main__":
    main()
