"""A checkpoint's validation loss the way nanoGPT estimates it, beside the harness's exact figure.

nanoGPT's `estimate_loss` averages the loss of `eval_iters` batches of random windows of
`block_size` characters from the validation text, over every position of each window (so the
first character of a window is predicted from one character, the last from block_size). The
harness's figure predicts every validation character once, with at least seq_len/2 characters
before it (a windowed family) or the whole text before it (a recurrent one). The two differ;
this prints both so a number from nanoGPT's README can be compared with ours.

    python scripts/nanogpt_loss.py results/train/x/best.pt --corpus ../shared/corpora/tinyshakespeare.txt \\
        --no-lowercase --split 0.9 0.1 0 --block-size 64 --batch-size 12
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.data import CorpusOptions, load_corpus  # noqa: E402
from harness.training import evaluate, load_checkpoint  # noqa: E402


@torch.no_grad()
def nanogpt_estimate(model, val: torch.Tensor, block_size: int, batch_size: int, iters: int, seed: int) -> float:
    """Mean loss over `iters` batches of random windows, every position counted (nanoGPT's estimate_loss)."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(iters):
        starts = torch.randint(len(val) - block_size, (batch_size,), generator=g)
        x = torch.stack([val[i : i + block_size] for i in starts.tolist()])
        y = torch.stack([val[i + 1 : i + block_size + 1] for i in starts.tolist()])
        logits, _ = model(x, None)
        losses.append(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)).item())
    return sum(losses) / len(losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--no-lowercase", dest="lowercase", action="store_false")
    parser.add_argument("--split", type=float, nargs=3, default=[0.9, 0.1, 0.0])
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--iters", type=int, default=20, help="batches averaged (nanoGPT's eval_iters, default 20)")
    parser.add_argument("--seeds", type=int, default=5, help="repeat the estimate with this many seeds")
    args = parser.parse_args()
    ckpt = load_checkpoint(args.checkpoint, "cpu")
    corpus = load_corpus(args.corpus, CorpusOptions(lowercase=args.lowercase, split=tuple(args.split)))
    val = ckpt.vocab.encode(corpus.text[corpus.bounds[0] : corpus.bounds[1]])
    exact = evaluate(ckpt.model, val)
    estimates = [nanogpt_estimate(ckpt.model, val, args.block_size, args.batch_size, args.iters, s)
                 for s in range(args.seeds)]
    mean = sum(estimates) / len(estimates)
    spread = (max(estimates) - min(estimates)) / 2
    print(f"{args.checkpoint}: {ckpt.config.model}, {len(val):,} validation characters")
    print(f"  harness exact held-out loss:        {exact:.4f} nats ({exact / math.log(2):.4f} bpc)")
    print(f"  nanoGPT-style estimate ({args.iters} x {args.batch_size} windows of {args.block_size}, "
          f"{args.seeds} seeds): {mean:.4f} +- {spread:.4f} nats")


if __name__ == "__main__":
    main()
