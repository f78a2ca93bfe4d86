"""The residual RNN's initialization: how much gradient survives through time, and held-out bpc at equal time.

    python scripts/bench_residual_init.py --corpus ../shared/corpora/theprince.txt --seconds 60

W_rec starts at -leak * I (+ small noise). The step Jacobian I + diag(1 - tanh^2) W_rec is then
about (1 - leak) I where tanh is unsaturated: leak 0.5 halves the gradient each step, leak 0 keeps
it but lets h drift without bound. For each leak, one process trains the same residual RNN for the
same synchronized seconds and prints the gradient-flow ratio |dJ/dh_1|/|dJ/dh_T| (T = 100) at
initialization and after training, the decay per step, and held-out bpc. Alternating order, one run
each: differences under ~0.02 bpc are within this machine's noise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import harness.models as models  # noqa: E402
import harness.models._residual as residual  # noqa: E402
from harness.data import CorpusOptions, load_corpus  # noqa: E402
from harness.diagnostics import held_out_sequences, profile  # noqa: E402
from harness.training import Budget, Evaluations, TrainConfig, Trainer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="builtin:pydoc")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--leaks", type=float, nargs="+", default=[0.5, 0.1, 0.02])
    parser.add_argument("--hidden-dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    args = parser.parse_args()
    corpus = load_corpus(args.corpus, CorpusOptions())
    tokens = held_out_sequences(corpus.val, 100, 32, seed=0)
    config = TrainConfig(model="residual_rnn", embedding_dim=64, hidden_dim=args.hidden_dim, layers=args.layers,
                         dropout=0.0,
                         seq_len=64, batch_size=32, lr=2e-3)
    print(f"bench_residual_init: corpus {corpus.name}, residual RNN E64/H{args.hidden_dim}/L{args.layers}, {args.seconds:g} s "
          f"each, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'leak':>6} {'ratio init':>11} {'decay init':>11} {'ratio trained':>14} {'decay trained':>14} "
          f"{'held-out bpc':>13} {'chars/s':>9}")
    for leak in args.leaks:
        residual.RESIDUAL_LEAK = leak
        torch.manual_seed(config.seed)
        fresh = models.build_model("residual_rnn", len(corpus.vocab), 64, args.hidden_dim, args.layers, 0.0)
        init = profile(fresh.double(), tokens, "init")
        trainer = Trainer(config, corpus, Budget("seconds", args.seconds), torch.device("cpu"), evaluations=Evaluations(4))
        result = trainer.run()
        trained = profile(trainer.model.double(), tokens, "trained")
        bpc = result.best.bpc if result.best else float("nan")
        print(f"{leak:>6g} {init.ratio:>11.2e} {init.decay_per_step:>11.4f} {trained.ratio:>14.2e} "
              f"{trained.decay_per_step:>14.4f} {bpc:>13.4f} {result.train_chars_per_s:>9,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
