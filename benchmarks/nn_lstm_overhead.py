"""Overhead of dmg.nn.LSTM over a bare torch.nn.LSTM: forward + backward time.

Both sides compute the same thing with the same weights: the wrapper with dropout off
against the equivalent hand-assembled modules (``torch.nn.LSTM`` plus the same linear
layers), on ``[time, unit, inputs]`` inputs.  Two pairs are timed:

* ``no input layer``: ``LSTM(input_layer=False)`` vs ``nn.LSTM -> nn.Linear``;
* ``input layer``:    ``LSTM(input_layer=True)``  vs ``nn.Linear -> ReLU -> nn.LSTM -> nn.Linear``.

A third row, ``DropConnect 0.5``, is not like with like: it prices the wrapper's recurrent
dropout (training mode, ``recurrent_dropout=0.5``) against the same bare modules without it.

Runs alternate between the two sides of a pair, several repeats each after warm-up; the
report gives each side's median time and the overhead ``median(ours) / median(bare) - 1``,
plus the median of the per-repeat ratios.  Run::

    python benchmarks/nn_lstm_overhead.py                 # 730 steps x 100 units x 256 hidden
    python benchmarks/nn_lstm_overhead.py --threads 1     # steadier on a shared machine
    python benchmarks/nn_lstm_overhead.py --device cuda --repeats 20
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from dmg.nn import LSTM


class BareLSTM(nn.Module):
    """The modules a user would assemble by hand: [Linear + ReLU] -> nn.LSTM -> Linear."""

    def __init__(self, ours: LSTM, input_layer: bool) -> None:
        super().__init__()
        self.input_layer = (
            nn.Sequential(nn.Linear(ours.n_inputs, ours.lstm.hidden_size), nn.ReLU()) if input_layer else nn.Identity()
        )
        self.lstm = nn.LSTM(ours.lstm.input_size, ours.lstm.hidden_size)
        self.head = nn.Linear(ours.lstm.hidden_size, ours.n_outputs)
        self.load_state_dict(ours.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.input_layer(x))[0])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(model: nn.Module, x: torch.Tensor, device: torch.device, clock: Callable[[], float]) -> float:
    """Seconds of ``clock`` for one forward + backward pass."""
    model.zero_grad(set_to_none=True)
    synchronize(device)
    start = clock()
    model(x).square().mean().backward()
    synchronize(device)
    return clock() - start


def compare(
    ours: nn.Module,
    bare: nn.Module,
    x: torch.Tensor,
    device: torch.device,
    repeats: int,
    warmup: int,
    clock: Callable[[], float],
) -> dict[str, float]:
    """Alternate timings of the two models; return medians and overheads."""
    for _ in range(warmup):
        time_step(ours, x, device, clock)
        time_step(bare, x, device, clock)
    times: dict[str, list[float]] = {"ours": [], "bare": []}
    for r in range(repeats):
        order: list[tuple[str, Callable[[], float]]] = [
            ("ours", lambda: time_step(ours, x, device, clock)),
            ("bare", lambda: time_step(bare, x, device, clock)),
        ]
        for name, run in order if r % 2 == 0 else order[::-1]:
            times[name].append(run())
    ours_med, bare_med = statistics.median(times["ours"]), statistics.median(times["bare"])
    paired = statistics.median(o / b for o, b in zip(times["ours"], times["bare"]))
    return {"ours": ours_med, "bare": bare_med, "overhead": ours_med / bare_med - 1, "paired": paired - 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=730, help="time steps per sequence")
    parser.add_argument("--units", type=int, default=100, help="units (batch size)")
    parser.add_argument("--hidden", type=int, default=256, help="LSTM hidden size")
    parser.add_argument("--inputs", type=int, default=38, help="input features per step")
    parser.add_argument("--outputs", type=int, default=42, help="outputs per step")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes per model first")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument(
        "--clock",
        choices=["auto", "wall", "cpu"],
        default="auto",
        help="wall: elapsed time; cpu: CPU time of this process, steadier on a shared machine "
        "(use with --threads 1); auto: cpu on CPU devices, wall otherwise",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock_name = args.clock if args.clock != "auto" else ("cpu" if device.type == "cpu" else "wall")
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    torch.manual_seed(0)
    x = torch.randn(args.steps, args.units, args.inputs, device=device)
    print(
        f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}; "
        f"{args.steps} steps x {args.units} units x {args.hidden} hidden, {args.inputs} inputs -> {args.outputs} "
        f"outputs; forward + backward, {clock_name} time, median of {args.repeats} (after {args.warmup} warm-up)"
    )
    print(f"{'pair':<16}{'dmg.nn.LSTM':>14}{'bare torch':>14}{'overhead':>11}{'paired':>10}")
    for label, input_layer, drop in (
        ("no input layer", False, 0.0),
        ("input layer", True, 0.0),
        ("DropConnect 0.5", True, 0.5),
    ):
        ours = (
            LSTM(
                n_inputs=args.inputs,
                n_outputs=args.outputs,
                hidden_size=args.hidden,
                input_layer=input_layer,
                recurrent_dropout=drop,
            )
            .to(device)
            .train()
        )
        bare = BareLSTM(ours, input_layer).to(device).train()
        if not drop:
            with torch.no_grad():
                assert torch.equal(ours(x), bare(x)), "the two sides do not compute the same function"
        r = compare(ours, bare, x, device, args.repeats, args.warmup, clock)
        print(
            f"{label:<16}{r['ours'] * 1e3:>12.1f}ms{r['bare'] * 1e3:>12.1f}ms{r['overhead']:>+10.1%}"
            f"{r['paired']:>+10.1%}"
        )


if __name__ == "__main__":
    main()
