"""2002 NSE per basin of δHBV training recipes on the CAMELS-US sample, over several seeds.

Each recipe is a config trained and evaluated with ``dmg train`` (one run folder per recipe and
seed, the seed set with ``--set seed=S``); the script then reads the per-basin NSE of each run's
test evaluation (``evaluations/test_<checkpoint>/metrics.json``) and prints, per basin and recipe,
the mean and standard deviation over the seeds and every seed's value. The default recipes are

* ``old``: ``examples/configs/dhbv_camels.yaml`` as it was before the recipe was revised (read from
  git at :data:`OLD_RECIPE_COMMIT`);
* ``published``: ``examples/configs/dhbv_camels_published.yaml``, close to the published δHBV recipe;
* ``new``: ``examples/configs/dhbv_camels.yaml``, the shipped recipe.

Runs that finished are kept and not trained again, so an interrupted comparison continues where it
stopped. The table of docs/tutorials/dhbv_camels.md was made with::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/recipes.py --out /tmp/recipes --jobs 2

Variations of a recipe are further recipes with keys overridden, e.g.::

    python benchmarks/recipes.py --recipe new --recipe dropout=new --set dropout:model.nn.dropout=0.5
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "camels_us_sample"
OLD_RECIPE_COMMIT = "ddc51526dd4ae400ff23b9cae6eab9ffe12b9027"
"""The last commit with the δHBV recipe that was shipped before the comparison."""
CONFIGS = {
    "old": f"git:{OLD_RECIPE_COMMIT}:examples/configs/dhbv_camels.yaml",
    "published": "examples/configs/dhbv_camels_published.yaml",
    "new": "examples/configs/dhbv_camels.yaml",
}


@dataclass
class Recipe:
    """A named config with keys overridden.

    Parameters
    ----------
    name
        Name of the recipe (its folder under the output folder).
    config
        A config file's path, relative to the repository's root, or ``git:<commit>:<path>``.
    overrides
        ``KEY=VALUE`` overrides passed to ``dmg train --set``.
    """

    name: str
    config: str
    overrides: list[str] = field(default_factory=list)


def config_file(recipe: Recipe, out: Path) -> Path:
    """The recipe's config as a file: the file itself, or a copy read from git into ``out``.

    Parameters
    ----------
    recipe
        The recipe.
    out
        The output folder.

    Returns
    -------
    Path
        The config file to train.
    """
    if not recipe.config.startswith("git:"):
        return ROOT / recipe.config
    _, commit, path = recipe.config.split(":", 2)
    text = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    copy = out / f"{recipe.name}.yaml"
    copy.write_text(text)
    return copy


def evaluation_file(run: Path) -> Path | None:
    """The test evaluation's ``metrics.json`` of a run folder, or None when there is none."""
    found = sorted(run.glob("evaluations/test_*/metrics.json"))
    return found[0] if found else None


def train(recipe: Recipe, config: Path, seed: int, out: Path, data_root: Path, dmg: str) -> Path:
    """Train (and evaluate) one recipe with one seed unless a finished run is there.

    Parameters
    ----------
    recipe
        The recipe.
    config
        Its config file.
    seed
        The run's seed.
    out
        The output folder; the run goes to ``out/<recipe>/seed_<seed>``.
    data_root
        The CAMELS-US folder (``data.dataset.root``).
    dmg
        The ``dmg`` command.

    Returns
    -------
    Path
        The run folder.
    """
    run = out / recipe.name / f"seed_{seed}"
    if evaluation_file(run) is not None:
        return run
    if run.exists():
        shutil.rmtree(run)
    run.parent.mkdir(parents=True, exist_ok=True)
    sets = [
        f"seed={seed}",
        f"data.dataset.root={data_root}",
        "train.progress=false",
        "evaluate.plots=false",
        *recipe.overrides,
    ]
    command = [dmg, "train", str(config), "--run-dir", str(run)] + [a for s in sets for a in ("--set", s)]
    log = out / recipe.name / f"seed_{seed}.log"
    with log.open("w") as stream:
        print("$ " + shlex.join(command), file=stream, flush=True)
        done = subprocess.run(command, cwd=out, stdout=stream, stderr=subprocess.STDOUT)
    if done.returncode != 0 or evaluation_file(run) is None:
        raise RuntimeError(f"{recipe.name}, seed {seed} failed; see {log}")
    print(f"done: {recipe.name}, seed {seed}", flush=True)
    return run


def per_basin_nse(run: Path) -> dict[str, float]:
    """The test NSE of every basin of a run."""
    report = json.loads(evaluation_file(run).read_text())
    per_unit = report["targets"]["Q"]["per_unit"]
    return {unit: metrics["nse"] for unit, metrics in per_unit.items()}


def table(results: dict[str, dict[int, dict[str, float]]]) -> str:
    """A Markdown table: basin × recipe, mean ± standard deviation over seeds and each seed's value.

    Parameters
    ----------
    results
        ``results[recipe][seed][basin]``: test NSE.

    Returns
    -------
    str
        The table, with a last row of the mean over basins.
    """
    recipes = list(results)
    basins = sorted({b for by_seed in results.values() for nse in by_seed.values() for b in nse})
    seeds = sorted({s for by_seed in results.values() for s in by_seed})

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        each = " / ".join(f"{v:.2f}" for v in values)
        return f"{statistics.mean(values):.2f} ± {spread:.2f} ({each})"

    lines = [
        f"| basin | {' | '.join(recipes)} |",
        "|---|" + "---|" * len(recipes),
    ]
    for basin in basins:
        cells = [cell([results[r][s][basin] for s in seeds if s in results[r]]) for r in recipes]
        lines.append(f"| {basin} | {' | '.join(cells)} |")
    means = [
        cell([statistics.mean(results[r][s][b] for b in basins) for s in seeds if s in results[r]]) for r in recipes
    ]
    lines.append(f"| mean of basins | {' | '.join(means)} |")
    lines.append("")
    lines.append(f"mean ± standard deviation over seeds {', '.join(map(str, seeds))} (the value of each seed)")
    return "\n".join(lines)


def parse_recipes(names: list[str] | None, sets: list[str]) -> list[Recipe]:
    """Recipes from ``--recipe NAME[=BASE]`` and ``--set NAME:KEY=VALUE`` arguments."""
    recipes = []
    for entry in names or list(CONFIGS):
        name, _, base = entry.partition("=")
        base = base or name
        if base in CONFIGS:
            recipes.append(Recipe(name, CONFIGS[base]))
        elif base.endswith((".yaml", ".yml")):
            recipes.append(Recipe(name, base))
        else:
            raise SystemExit(f"--recipe {entry}: {base!r} is neither one of {sorted(CONFIGS)} nor a .yaml file")
    by_name = {r.name: r for r in recipes}
    for entry in sets:
        name, sep, override = entry.partition(":")
        if not sep or name not in by_name or "=" not in override:
            raise SystemExit(f"--set {entry}: expected RECIPE:KEY=VALUE with RECIPE one of {sorted(by_name)}")
        by_name[name].overrides.append(override)
    return recipes


def main() -> None:
    """Train the recipes over the seeds (``--jobs`` at a time) and print the per-basin table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/recipes"), help="folder of the runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
    parser.add_argument(
        "--recipe",
        action="append",
        help=f"NAME or NAME=BASE (BASE one of {sorted(CONFIGS)} or a config file); default: all three",
    )
    parser.add_argument("--set", action="append", default=[], help="RECIPE:KEY=VALUE, a key overridden in a recipe")
    parser.add_argument("--data-root", type=Path, default=SAMPLE, help="CAMELS-US folder (default: the sample)")
    parser.add_argument("--dmg", default=str(Path(sys.executable).parent / "dmg"), help="the dmg command")
    args = parser.parse_args()

    recipes = parse_recipes(args.recipe, args.set)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    configs = {r.name: config_file(r, out) for r in recipes}
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    jobs = [(r, s) for r in recipes for s in args.seeds]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(
            pool.map(
                lambda job: train(job[0], configs[job[0].name], job[1], out, args.data_root.resolve(), args.dmg), jobs
            )
        )
    results: dict[str, dict[int, dict[str, float]]] = {r.name: {} for r in recipes}
    for (recipe, seed), run in zip(jobs, runs):
        results[recipe.name][seed] = per_basin_nse(run)
    print(table(results))


if __name__ == "__main__":
    main()
