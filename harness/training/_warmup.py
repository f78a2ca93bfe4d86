"""The untimed warm-up: the run's own model and optimizer take a few steps, then are put back as they were.

Warm-up pays where first calls are slow (CUDA: cuDNN/cuBLAS handles, lazy kernel loading,
allocator growth), so those costs are not charged to the first trial of each worker. What is
warmed is what the timed loop will use: the training shape forward and backward under the same
autocast, the same (fused) optimizer, and the evaluation shape. Not a second model and Adam state
on the device, which would prune near-limit configurations as out of memory: the weights are kept
on the host meanwhile and restored in place (so cuDNN's flattened weights stay as they are), the
optimizer's state starts from where the run started, the random state is restored, and the
allocator keeps the blocks it grew (no empty_cache).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch

from harness.measure import synchronize
from harness.models import CharModel
from harness.training._checkpoint import to_cpu


def warm_up(model: CharModel, optimizer: torch.optim.Optimizer, device: torch.device, steps: int,
            step: Callable[[Any], Any], evaluate: Callable[[], object]) -> float:
    """`steps` calls of `step` (state in, state out) and one `evaluate`, undone; the seconds it took."""
    start = time.perf_counter()
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    saved = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    moments = to_cpu(optimizer.state_dict()) if optimizer.state else None  # a continued run's
    state = None
    model.train()
    for _ in range(steps):
        state = step(state)
    evaluate()
    with torch.no_grad():
        for key, value in model.state_dict().items():
            value.copy_(saved[key])
    optimizer.state.clear()  # Adam starts from step 0 (or the state it continued from), as if no warm-up
    if moments is not None:
        optimizer.load_state_dict(moments)
    optimizer.zero_grad(set_to_none=True)
    torch.set_rng_state(cpu_rng)
    if cuda_rng is not None:
        torch.cuda.set_rng_state(cuda_rng, device)
    synchronize(device)
    return time.perf_counter() - start
