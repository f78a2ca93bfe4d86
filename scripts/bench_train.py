"""Seed recipe vs `harness train`: throughput and held-out bpc at equal training time, one process.

The baseline re-implements the course recipe: a Dataset of every overlapping window (each
character is seen seq_len times an epoch), a shuffled DataLoader, no state carried, the same
LSTM, Adam and clipping. Both train on the same training split for the same synchronized time;
both are then scored by the same exact held-out evaluation.

    python scripts/bench_train.py --seconds 60 [--corpus builtin:pydoc] [--device auto]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from harness.config import Budget, TrainConfig
from harness.corpus import load_corpus
from harness.device import fingerprint, resolve_device, synced_clock
from harness.models import build_model
from harness.train import evaluate, train


class OverlappingWindows(Dataset):
    def __init__(self, tokens: torch.Tensor, seq_len: int):
        self.tokens, self.seq_len = tokens, seq_len

    def __len__(self) -> int:
        return len(self.tokens) - self.seq_len

    def __getitem__(self, i: int):
        return self.tokens[i : i + self.seq_len], self.tokens[i + 1 : i + self.seq_len + 1]


def seed_recipe(config: TrainConfig, corpus, seconds: float, device: torch.device) -> dict:
    torch.manual_seed(config.seed)
    model = build_model("lstm", len(corpus.vocab), config.embedding_dim, config.hidden_dim, config.layers,
                        config.dropout).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loader = DataLoader(OverlappingWindows(corpus.train, config.seq_len), batch_size=config.batch_size,
                        shuffle=True, pin_memory=device.type == "cuda")
    chars, steps = 0, 0
    start = synced_clock(device)
    elapsed = 0.0
    model.train()
    while elapsed < seconds:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
            optimizer.step()
            loss.item()  # the recipe reads the loss every step, as the course code does
            chars += y.numel()
            steps += 1
            if steps % 10 == 0:
                elapsed = synced_clock(device) - start
                if elapsed >= seconds:
                    break
    elapsed = synced_clock(device) - start
    bpc = evaluate(model, corpus.val.to(device)) / 0.6931471805599453
    return {"steps": steps, "chars": chars, "seconds": elapsed, "chars_per_s": chars / elapsed, "val_bpc": bpc}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--corpus", default="builtin:pydoc")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    corpus = load_corpus(args.corpus)
    config = TrainConfig()  # the course configuration: E=128, H=256, 2 layers, seq 50, batch 32
    machine = fingerprint(device)
    print(f"machine: {machine['device_name']} ({machine['machine']}, {machine['cpu_threads']} threads), "
          f"torch {machine['torch']}, corpus {corpus.name} ({len(corpus.train):,} training chars)")
    print(f"config: {config.to_dict()}")
    print(f"budget: {args.seconds:g} s of synchronized training time each\n")

    t = time.perf_counter()
    base = seed_recipe(config, corpus, args.seconds, device)
    base_wall = time.perf_counter() - t
    ours = train(config, corpus, Budget("seconds", args.seconds), device, evals=5).summary()

    rows = [
        ("seed recipe (overlapping windows, DataLoader)", base["chars_per_s"], base["val_bpc"], base["seconds"], base_wall),
        ("harness train (contiguous streams, state carried)", ours["train_chars_per_s"], ours["val_bpc"],
         ours["train_seconds"], ours["wall_seconds"]),
    ]
    print(f"{'run':<52} {'chars/s':>10} {'val bpc':>8} {'train s':>8} {'wall s':>8}")
    for name, rate, bpc, secs, wall in rows:
        print(f"{name:<52} {rate:>10,.0f} {bpc:>8.4f} {secs:>8.1f} {wall:>8.1f}")
    print(f"\nthroughput ratio harness/seed: {ours['train_chars_per_s'] / base['chars_per_s']:.2f}x; "
          f"held-out bpc difference seed - harness: {base['val_bpc'] - ours['val_bpc']:+.4f}")


if __name__ == "__main__":
    main()
