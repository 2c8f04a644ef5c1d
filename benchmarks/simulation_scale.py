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


def run_config(warmup: int, chunk_units: int, fmt: str, backend: str) -> dict[str, Any]:
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
        "simulate": {"chunk_units": chunk_units, "format": fmt, "outputs": ["Q"]},
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


def rss_mib() -> float:
    """Resident memory of this process now (MiB)."""
    with open("/proc/self/status", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(n_units: int, days: int, warmup: int, chunk_units: int, fmt: str, backend: str, workdir: str) -> dict:
    """One simulation in this process; what it cost."""
    import torch

    from dmg.core.build import build_model
    from dmg.core.config import load_config, make_period
    from dmg.core.runfolder import RunFolder
    from dmg.core.simulation import simulate_domain

    config = load_config(run_config(warmup, chunk_units, fmt, backend))
    source = SyntheticSource(n_units, warmup + days)
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
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
        "peak_rss_mib": peak,
        "peak_above_start_mib": peak - before,
        "file_mib": size,
    }


def child(args: argparse.Namespace, n_units: int, chunk_units: int) -> dict:
    """:func:`measure` in a fresh process, so that each peak is its own."""
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
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the measurement of {n_units} units failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| units | chunk | seconds | of which final file | unit-steps/s | with warm-up | peak RSS MiB "
        "| above start MiB | file MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['units']:,} | {r['chunk_units']} | {r['seconds']:.1f} | {_seconds(r['final_file_seconds'])} | "
            f"{r['unit_steps_per_s']:,.0f} | "
            f"{r['unit_steps_per_s_with_warmup']:,.0f} | {r['peak_rss_mib']:.0f} | {r['peak_above_start_mib']:.0f} | "
            f"{r['file_mib']:.1f} |"
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
    parser.add_argument("--json", default=str(RESULTS / "simulation_scale.json"), help="where to write the results")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.child is not None:
        result = measure(
            args.child, args.days, args.warmup, int(args.chunk_units), args.format, args.backend, args.workdir
        )
        print(json.dumps(result))
        return

    from dmg.core import provenance

    report: dict[str, Any] = {
        "versions": provenance.collect(),
        "threads": args.threads,
        "command": " ".join(["python", "benchmarks/simulation_scale.py", *(argv or sys.argv[1:])]),
        "load_average_start": os.getloadavg(),
        "results": [],
    }
    for chunk in (int(c) for c in args.chunk_units.split(",")):
        for n_units in (int(u) for u in args.units.split(",")):
            result = child(args, n_units, chunk)
            report["results"].append(result)
            print(table([result]).splitlines()[-1], flush=True)
    report["load_average_end"] = os.getloadavg()
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report["results"]))
    print(f"load average {report['load_average_start']} -> {report['load_average_end']}; results in {path}")


if __name__ == "__main__":
    main()
