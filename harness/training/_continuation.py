"""How a run continues a longer one: population-based training's segments and replayed schedules.

A PBT member trains in segments (harness.search._pbt); each segment is a run of its own that starts
where its parent ended (weights and optimizer state, exactly), covers a share of the member's
schedule, and writes its optimizer state so the next segment can continue. A replay runs the whole
schedule at once, changing the rates at the shares where the lineage changed them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from harness.common import HarnessError, first_line
from harness.models import CharModel, set_rate
from harness.training._checkpoint import load_checkpoint


@dataclass
class Start:
    """Where a run starts in a longer one (population-based training, harness.search._pbt).

    `checkpoint`: continue that run's weights and optimizer state; `window`: the share of the whole
    schedule this run covers (a segment over [0.25, 0.5) of a member's budget decays its rate as
    the member would there); `phases`: (share, rates) changes to apply as the run passes each share
    (a replayed schedule); `keep_optimizer`: write the optimizer's state into the checkpoint, so a
    later segment can continue exactly."""

    checkpoint: str | None = None
    window: tuple[float, float] = (0.0, 1.0)
    phases: list[tuple[float, dict]] = field(default_factory=list)
    keep_optimizer: bool = False


def continue_run(model: CharModel, optimizer: torch.optim.Optimizer, path: str, device: torch.device) -> None:
    """Start from another run's end, exactly: its weights and its optimizer's state (Adam's moments and
    step count). The rates are this run's own: a PBT member that copied a better one keeps its
    perturbed lr and weight decay, not the donor's."""
    ckpt = load_checkpoint(path, device)
    if ckpt.optimizer_state is None:
        raise HarnessError(f"{path} holds no optimizer state, so a run cannot continue from it exactly; it "
                           f"was not written by a PBT segment")
    rates = [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups]
    try:
        model.load_state_dict(ckpt.model.state_dict())
        optimizer.load_state_dict(ckpt.optimizer_state)
    except (RuntimeError, ValueError, KeyError) as e:
        raise HarnessError(f"{path}: cannot continue from it ({first_line(e)}); the configuration's shape "
                           f"differs from the checkpoint's") from None
    for group, (lr, decay) in zip(optimizer.param_groups, rates, strict=True):
        group["lr"], group["weight_decay"] = lr, decay


def apply_rates(model: CharModel, optimizer: torch.optim.Optimizer, values: dict, peak_lr: float) -> float:
    """Change a running model's rates (a phase of a replayed schedule); returns the new peak learning rate."""
    for name, value in values.items():
        if name == "lr":
            peak_lr = float(value)
        elif name == "weight_decay":  # the first group is the decayed one (all of Adam's; AdamW's matrices)
            optimizer.param_groups[0]["weight_decay"] = float(value)
        else:
            set_rate(model, name, float(value))
    return peak_lr
