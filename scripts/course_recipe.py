"""The course recipe, re-implemented as the baseline every speed claim is measured against.

Training: a Dataset of every overlapping window (each character is seen seq_len times an epoch),
a shuffled DataLoader of per-item tensors, no state carried between batches, the loss read on the
host every step (`loss.item()`, as the course code prints it), Adam with clipping at 1.0.
Generation: for every new character the model re-reads the last seq_len characters from an empty
state, and the host samples with numpy, one sample at a time.

Both use the harness's own model classes and its exact held-out evaluation, so only the recipe
differs. Not part of the harness: it exists to be beaten.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from harness.measure import synced_clock
from harness.models import build_model
from harness.training import TrainConfig, evaluate

WARMUP_STEPS = 3  # untimed, as the harness's own warm-up: neither side is charged for first-call costs


class OverlappingWindows(Dataset):
    def __init__(self, tokens: torch.Tensor, seq_len: int):
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:
        return len(self.tokens) - self.seq_len

    def __getitem__(self, i: int):
        return self.tokens[i : i + self.seq_len], self.tokens[i + 1 : i + self.seq_len + 1]


def train_recipe(config: TrainConfig, corpus, seconds: float, device: torch.device,
                 checkpoints: tuple[float, ...] = ()) -> dict:
    """Train for `seconds` of synchronized time; evaluate (clock stopped) at each checkpoint time and at the end.

    Returns chars/s over the timed steps and `curve`: [(train seconds, held-out bpc)].
    """
    torch.manual_seed(config.seed)
    model = build_model(config.model, len(corpus.vocab), config.embedding_dim, config.hidden_dim, config.layers,
                        config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loader = DataLoader(OverlappingWindows(corpus.train, config.seq_len), batch_size=config.batch_size,
                        shuffle=True, pin_memory=device.type == "cuda")
    val = corpus.val.to(device)

    def step(x, y) -> float:
        x, y = x.to(device), y.to(device)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        return loss.item()

    batches = iter(loader)
    for _ in range(WARMUP_STEPS):  # the same weights are trained on: the recipe just gets 3 free steps
        step(*next(batches))

    pending = sorted(c for c in checkpoints if c < seconds)
    curve: list[tuple[float, float]] = []
    chars = steps = 0
    elapsed = 0.0
    model.train()
    start = synced_clock(device)
    while elapsed < seconds:
        for x, y in loader:
            step(x, y)
            chars += y.numel()
            steps += 1
            if steps % 10:
                continue
            elapsed = synced_clock(device) - start
            if pending and elapsed >= pending[0]:
                pending.pop(0)
                curve.append((elapsed, evaluate(model, val) / math.log(2)))
                model.train()
                start = synced_clock(device) - elapsed  # evaluation is not charged to training time
            if elapsed >= seconds:
                break
    elapsed = synced_clock(device) - start
    curve.append((elapsed, evaluate(model, val) / math.log(2)))
    return {"steps": steps, "chars": chars, "seconds": elapsed, "chars_per_s": chars / elapsed,
            "val_bpc": curve[-1][1], "curve": curve, "model": model}


@torch.no_grad()
def rewindowing_sample(model, vocab, prompt: str, length: int, temperature: float, seq_len: int,
                       device: torch.device) -> str:
    """One sample, the course's way: re-run the last seq_len characters from scratch for every character."""
    model.eval()
    indices = vocab.encode(prompt).tolist()
    for _ in range(length):
        x = torch.tensor(indices[-seq_len:], dtype=torch.long, device=device).unsqueeze(0)
        logits, _ = model(x)
        probs = torch.softmax(logits[0, -1] / temperature, dim=0).cpu().numpy().astype(np.float64)
        indices.append(int(np.random.choice(len(probs), p=probs / probs.sum())))
    return vocab.decode(indices[len(prompt) :])
