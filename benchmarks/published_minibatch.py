"""One δHBV 1.0 training minibatch in the published framework (dMG 1.5.0 with hydrodl2 1.4.0).

Run in an environment holding only those two (both import as ``dmg``/``hydrodl2``; dMG's ``dmg``
package cannot share an environment with this project's, and both are licensed for non-commercial
use only). Prints the median seconds of forward, loss and backward over the minibatch of
:mod:`minibatch_inputs` as JSON. ``engine_speed.py --minibatch --published-python PATH`` runs it.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from minibatch_inputs import FEATURES, HIDDEN, NMUL, REPEATS, WARMUP, make_inputs


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    import hydrodl2

    from dmg.models.delta_models.dpl_model import DplModel
    from dmg.models.neural_networks import LstmModel

    physics_class = hydrodl2.load_model("Hbv")
    config = {
        "nmul": NMUL,
        "warm_up": WARMUP,
        "warmup": WARMUP,
        "warm_up_states": True,
        "warmup_states": True,
        "routing": True,
        "dy_drop": 0.0,
        "dynamic_params": {physics_class.__name__: ["parBETA", "parBETAET"]},
        "variables": ["prcp", "tmean", "pet"],
    }
    physics = physics_class(config, device=torch.device("cpu"))
    network = LstmModel(nx=FEATURES, ny=physics.learnable_param_count, hidden_size=HIDDEN, dr=0.5)
    model = DplModel(phy_model=physics, nn_model=network)
    model.train()
    inputs = make_inputs()
    data = {"xc_nn_norm": inputs["nn_inputs"], "x_phy": torch.stack([inputs["P"], inputs["T"], inputs["PET"]], -1)}

    def minibatch() -> None:
        model.zero_grad(set_to_none=True)
        q = model(data)["streamflow"][..., 0]
        loss = ((q - inputs["observed"]) ** 2).mean()
        loss.backward()

    minibatch()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        minibatch()
        times.append(time.perf_counter() - start)
    print(json.dumps({"seconds": statistics.median(times), "times": times, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
