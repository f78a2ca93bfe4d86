"""A minimal, straightforward trainer of the harness's transformer: the baseline its `gpt` must beat.

What a newcomer would write after reading nanoGPT's train.py, minus everything optional: batches of
random windows gathered on the host (`torch.stack` of slices, then moved to the device), one
AdamW over all parameters, the learning rate set every step (linear warm-up, cosine decay to a
floor), gradient clipping, and the loss read on the host every step (`loss.item()`). No carried
state, no fused optimizer, no sync-point scheduling. It trains the harness's own `gpt` model
class and is scored with the harness's exact held-out evaluation, so only the training loop
differs.

    python scripts/gpt_recipe.py --corpus ../shared/corpora/theprince.txt --chars 400k

Not part of the harness: it exists to be beaten (scripts/bench.py, section "gpt").
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.data import load_corpus  # noqa: E402
from harness.measure import resolve_device, synced_clock  # noqa: E402
from harness.training import Budget, TrainConfig, evaluate  # noqa: E402

WARMUP_STEPS = 3  # untimed, as the harness's own warm-up: neither side is charged for first-call costs

# nanoGPT's README, "I only have a macbook": 4 blocks, 4 heads, width 128, context 64, batch 12, lr 1e-3
# with 100 warm-up steps of 2000 and cosine decay to 1e-4, beta2 0.99, weight decay 0.1, dropout 0.
NANOGPT_CPU = TrainConfig(model="gpt", embedding_dim=128, hidden_dim=512, layers=4, heads=4, dropout=0.0, seq_len=64,
                          batch_size=12, lr=1e-3, beta2=0.99, weight_decay=0.1, lr_schedule="cosine",
                          lr_warmup=0.05, lr_min_ratio=0.1, grad_clip=1.0)


def get_batch(data: torch.Tensor, batch_size: int, seq_len: int, device: torch.device):
    starts = torch.randint(len(data) - seq_len, (batch_size,))
    x = torch.stack([data[i : i + seq_len] for i in starts.tolist()])
    y = torch.stack([data[i + 1 : i + seq_len + 1] for i in starts.tolist()])
    return x.to(device), y.to(device)


def lr_at(config: TrainConfig, step: int, steps: int) -> float:
    warmup = int(config.lr_warmup * steps)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    floor = config.lr * config.lr_min_ratio
    return floor + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - floor)


def train_gpt_recipe(config: TrainConfig, corpus, chars: int, device: torch.device) -> dict:
    """Train on `chars` predicted characters; returns chars/s of the timed steps and the held-out loss."""
    torch.manual_seed(config.seed)
    model = config.build(len(corpus.vocab)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2),
                                  weight_decay=config.weight_decay)
    steps = max(1, chars // (config.batch_size * config.seq_len))
    train = corpus.train

    def step(i: int) -> float:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(config, i, steps)
        x, y = get_batch(train, config.batch_size, config.seq_len, device)
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        return loss.item()

    model.train()
    for _ in range(WARMUP_STEPS):  # the same weights are trained on: the recipe just gets 3 free steps
        step(0)
    start = synced_clock(device)
    for i in range(steps):
        step(i)
    seconds = synced_clock(device) - start
    loss = evaluate(model, corpus.val.to(device))
    return {"steps": steps, "chars": steps * config.batch_size * config.seq_len, "seconds": seconds,
            "chars_per_s": steps * config.batch_size * config.seq_len / seconds, "val_loss": loss,
            "val_bpc": loss / math.log(2), "model": model}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="builtin:pydoc")
    parser.add_argument("--chars", default="400k", help="predicted characters to train on (e.g. 400k, 1.5M)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    budget = Budget.parse(args.chars)
    if budget.kind != "tokens":
        parser.error("--chars takes a number of characters such as 400k or 1.5M")
    device = resolve_device(args.device)
    result = train_gpt_recipe(NANOGPT_CPU, load_corpus(args.corpus), int(budget.amount), device)
    print(f"{result['steps']} steps, {result['chars']:,} chars in {result['seconds']:.1f} s "
          f"({result['chars_per_s']:,.0f} chars/s); held-out {result['val_loss']:.4f} nats, {result['val_bpc']:.4f} bpc")


if __name__ == "__main__":
    main()
