"""Course-style re-windowing generation vs `harness` stateful batched generation, same checkpoint.

The course code re-runs the model over the last seq_len characters for every new character and
samples on the host with numpy, one sample at a time. Ours reads the prompt once, then one model
step per character for all samples of a temperature at once. Also times every text metric for
3 temperatures x 3 samples x 200 characters.

    python scripts/bench_generate.py [CHECKPOINT] [--device auto]
(without a checkpoint, trains the course's LSTM for 20k characters: speed does not depend on the weights)
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from harness.checkpoint import load_checkpoint
from harness.config import Budget, TrainConfig
from harness.corpus import load_corpus
from harness.device import resolve_device, synced_clock
from harness.generate import generate_and_score, sample_temperatures
from harness.metrics import Reference, sample_metrics

TEMPERATURES = [0.5, 1.0, 1.5]
SAMPLES, LENGTH, PROMPT = 3, 200, "the great"


@torch.no_grad()
def rewindowing(model, vocab, prompt: str, length: int, temperature: float, seq_len: int, device) -> str:
    indices = vocab.encode(prompt).tolist()
    for _ in range(length):
        x = torch.tensor(indices[-seq_len:], dtype=torch.long, device=device).unsqueeze(0)
        logits, _ = model(x)
        probs = torch.softmax(logits[0, -1] / temperature, dim=0).cpu().numpy().astype(np.float64)
        indices.append(int(np.random.choice(len(probs), p=probs / probs.sum())))
    return vocab.decode(indices[len(prompt) :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    corpus = load_corpus()
    path = args.checkpoint
    if path is None:
        from harness.train import train

        path = train(TrainConfig(), corpus, Budget.parse("20k"), out_dir=tempfile.mkdtemp(), evals=1).checkpoint
    ckpt = load_checkpoint(path, device)
    model, vocab, seq_len = ckpt.model, ckpt.vocab, ckpt.config.seq_len
    total = len(TEMPERATURES) * SAMPLES * LENGTH
    print(f"checkpoint {path}: {ckpt.config.model} E{ckpt.config.embedding_dim} H{ckpt.config.hidden_dim} "
          f"L{ckpt.config.layers} on {device}; {len(TEMPERATURES)} temperatures x {SAMPLES} samples x {LENGTH} chars")

    np.random.seed(0)
    start = synced_clock(device)
    for t in TEMPERATURES:
        for _ in range(SAMPLES):
            rewindowing(model, vocab, PROMPT, LENGTH, t, seq_len, device)
    seed_s = synced_clock(device) - start

    start = synced_clock(device)
    groups = sample_temperatures(model, vocab, PROMPT, LENGTH, TEMPERATURES, SAMPLES, seed=0)
    ours_s = synced_clock(device) - start

    reference = Reference(corpus.train_text)
    start = time.perf_counter()
    for g in groups:
        sample_metrics(g.texts, reference)
    metrics_s = time.perf_counter() - start
    start = time.perf_counter()
    Reference(corpus.train_text)
    reference_s = time.perf_counter() - start
    start = time.perf_counter()
    generate_and_score(model, vocab, PROMPT, LENGTH, TEMPERATURES, SAMPLES, 0, reference)
    both_s = time.perf_counter() - start

    print(f"\n{'generation':<56} {'seconds':>8} {'chars/s':>10}")
    print(f"{'course re-windowing (window ' + str(seq_len) + ', one sample at a time)':<56} {seed_s:>8.3f} {total / seed_s:>10,.0f}")
    print(f"{'harness (state carried, batch per temperature)':<56} {ours_s:>8.3f} {total / ours_s:>10,.0f}")
    print(f"speed-up: {seed_s / ours_s:.1f}x")
    print(f"\nall metrics for {len(TEMPERATURES)}x{SAMPLES}x{LENGTH}: {metrics_s * 1e3:.1f} ms "
          f"(+ {reference_s * 1e3:.0f} ms once to index the {len(corpus.train_text):,}-char training text)")
    print(f"generate + score end to end: {both_s:.3f} s")


if __name__ == "__main__":
    main()
