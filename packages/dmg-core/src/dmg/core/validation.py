"""``dmg validate``: everything that can be checked about a run short of training it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dmg.core.build import build_loss, build_model, load_dataset
from dmg.core.config import load_config
from dmg.core.data.batching import make_batch
from dmg.core.distributed import resolve_device
from dmg.core.run_data import check_targets, period_data, unit_split
from dmg.core.training import seed_everything, target_loss


def validate_config(path: str | Path, overrides: Sequence[str] = ()) -> str:
    """Check keys, components, data roles, splits and one forward pass; return a summary."""
    config = load_config(path, overrides)
    dataset = load_dataset(config)
    train_ids, test_ids = unit_split(config, dataset)
    train_data, warmup = period_data(
        config, dataset, config.data.train, train_ids, strict_warmup=False, key="data.train"
    )
    check_targets(config, train_data, warmup, "train")
    for name in ("valid", "test"):
        period = getattr(config.data, name)
        if period is not None:
            ids = test_ids if name == "test" else train_ids
            data = period_data(config, dataset, period, ids, strict_warmup=False, key=f"data.{name}")
            check_targets(config, *data, name)
    normalizer = config.data.roles.fit_normalizer(train_data)
    seed_everything(config.seed)  # the weights training starts from
    model = build_model(config).to(resolve_device(config.device)).eval()  # no dropout: the same loss every call
    loss_fn = build_loss(config)
    window = min(config.train.window, train_data.n_time - warmup)
    units = np.arange(min(2, train_data.n_units))
    param = next(iter(model.parameters()))
    batch = make_batch(train_data, config.data.roles, normalizer, units, 0, window, warmup, dtype=param.dtype).to(
        param.device
    )
    with torch.no_grad():
        loss = float(target_loss(loss_fn, model(batch, save=batch.targets), batch))
    n_weights = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return "\n".join(
        [
            f"config {path}: valid",
            f"dataset: {dataset.n_units} units, {dataset.n_time} steps ({dataset.dates[0]} to {dataset.dates[-1]})",
            f"units: {len(train_ids)} train, {len(test_ids)} test; training period {train_data.n_time} steps "
            f"with {warmup} warm-up",
            f"physics: {type(model.phy_model).__name__} ({model.phy_model.parameter_spec.n_channels()} raw parameter "
            f"channels); networks: {', '.join(f'{k}={type(v).__name__}' for k, v in model.networks.items())}; "
            f"{n_weights} trainable weights",
            f"engine: backend {model.engine.backend!r}, memory {model.engine.memory}, "
            f"input checks {model.engine.check_inputs!r}",
            f"one forward pass on {len(units)} units x {window} steps with the initial weights (seed {config.seed}, "
            f"eval mode): loss {loss:.4g}",
        ]
    )
