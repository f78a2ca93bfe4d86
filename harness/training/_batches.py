"""What the trainer feeds the model and steps it with: the corpus cut into batches, and the optimizer recipe.

A stateful family walks `batch_size` contiguous streams in `seq_len` chunks (pytorch's
word_language_model), from a random offset each epoch; a windowed one (gpt) gets random windows,
as many characters an epoch as the streams would have walked (nanoGPT).
"""

from __future__ import annotations

import torch

from harness.models import CharModel
from harness.training._config import TrainConfig


def epoch_chunks(train: torch.Tensor, batch_size: int, seq_len: int, offset: int):
    """Yield (inputs, targets) of shape (batch, <=seq_len): contiguous streams walked left to right."""
    columns = (len(train) - offset) // batch_size
    streams = train[offset : offset + columns * batch_size].view(batch_size, columns)
    for start in range(0, columns - 1, seq_len):
        end = min(start + seq_len, columns - 1)
        yield streams[:, start:end], streams[:, start + 1 : end + 1]


def random_windows(train: torch.Tensor, batch_size: int, seq_len: int, steps: int, generator: torch.Generator):
    """Yield `steps` (inputs, targets) pairs of `batch_size` windows at uniformly random offsets."""
    offsets = torch.arange(seq_len + 1, device=train.device)
    for _ in range(steps):
        starts = torch.randint(0, len(train) - seq_len, (batch_size, 1), device=train.device, generator=generator)
        rows = train[starts + offsets]
        yield rows[:, :-1], rows[:, 1:]


def chars_per_epoch(n_train: int, batch_size: int) -> int:
    return batch_size * (n_train // batch_size - 1)


def make_optimizer(model: CharModel, c: TrainConfig, carries_state: bool,
                   device: torch.device) -> torch.optim.Optimizer:
    """Adam (weight decay as L2, the course recipe) for the stateful families; AdamW with decay on
    matrices only for a windowed one, where decaying norms, biases and embeddings only hurts, and
    for a stateful one that asks for `decoupled_decay` (its `no_decay`: the biases).

    AdamW is fused on the CPU too: its step takes 0.46 ms instead of 1.60 ms for nanoGPT's CPU model
    (~4% of a training step on our 2-core CPU, docs/measurements.md); Adam keeps its CPU loop so
    the recurrent families' figures stay exactly what they were."""
    fused = device.type == "cuda"
    if carries_state and not c.decoupled_decay:
        return torch.optim.Adam(model.parameters(), lr=c.lr, betas=(c.beta1, c.beta2),
                                weight_decay=c.weight_decay, fused=fused)
    exempt = model.no_decay() if hasattr(model, "no_decay") else set()
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n not in exempt], "weight_decay": c.weight_decay},
              {"params": [p for n, p in named if n in exempt], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=c.lr, betas=(c.beta1, c.beta2), fused=device.type in ("cuda", "cpu"))
