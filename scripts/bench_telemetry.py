"""Telemetry overhead: training throughput with the sampler off and on, alternating, in one process.

Each round trains the same configuration for the same number of characters twice, once without
and once with a `Telemetry` sampler (NVML on a GPU, /proc on the CPU) at the default rate and
with its phase windows; rounds alternate the order so drift in machine speed cancels out.

    python scripts/bench_telemetry.py [--rounds 6] [--chars 150k] [--rate 4] [--device auto]
"""

from __future__ import annotations

import argparse
import statistics

from harness.config import Budget, TrainConfig
from harness.corpus import load_corpus
from harness.device import fingerprint, resolve_device
from harness.telemetry import Telemetry
from harness.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--chars", default="150k")
    parser.add_argument("--rate", type=float, default=4.0, help="sampler rate in Hz (default 4, the harness default)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    corpus = load_corpus()
    config = TrainConfig(hidden_dim=128, embedding_dim=64, layers=1, dropout=0.0)
    budget = Budget.parse(args.chars)
    fp = fingerprint(device)
    print(f"{fp['device_name']} ({fp['machine']}), torch {fp['torch']}; {config.model} H{config.hidden_dim}, "
          f"{budget} per run, sampler at {args.rate:g} Hz, {args.rounds} rounds alternating\n")

    def run(with_telemetry: bool) -> float:
        if not with_telemetry:
            return train(config, corpus, budget, device, evals=1).train_chars_per_s
        with Telemetry(device, rate_hz=args.rate) as tel:
            rate = train(config, corpus, budget, device, evals=1, telemetry=tel).train_chars_per_s
        assert tel.samples, "the sampler took no samples"
        return rate

    run(False)  # warm-up: allocator, thread pools
    off, on = [], []
    for i in range(args.rounds):
        order = (False, True) if i % 2 == 0 else (True, False)
        for flag in order:
            (on if flag else off).append(run(flag))
        print(f"round {i + 1}: off {off[-1]:,.0f} chars/s   on {on[-1]:,.0f} chars/s")
    m_off, m_on = statistics.median(off), statistics.median(on)
    paired = statistics.median(b / a for a, b in zip(off, on, strict=True))
    print(f"\n{'sampler':<10} {'median chars/s':>16}")
    print(f"{'off':<10} {m_off:>16,.0f}")
    print(f"{'on':<10} {m_on:>16,.0f}")
    print(f"overhead: {(1 - paired) * 100:+.2f}% (median of per-round on/off ratios {paired:.4f}; ratio of "
          f"medians {m_on / m_off:.4f}); round-to-round spread with the sampler off "
          f"{statistics.pstdev(off) / m_off * 100:.2f}%")


if __name__ == "__main__":
    main()
