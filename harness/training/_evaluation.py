"""Held-out loss, exactly: every character of a split predicted once, with the state carried across chunks.

Also the way back from a checkpoint to the text it was trained on (`checkpoint_corpus`), so that
`harness evaluate` and confirmation runs score a checkpoint on the same split it never saw.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from harness.common import HarnessError, bits_per_char, perplexity
from harness.data import DEFAULT_SPEC, DEFAULT_SPLIT, Corpus, CorpusOptions, load_corpus
from harness.models import CharModel
from harness.training._precision import Precision

EVAL_STREAMS = 32
EVAL_CHUNK = 512


def eval_streams(tokens: torch.Tensor, streams: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut a split into (inputs, targets) blocks that predict every character but the first exactly once.

    A rectangular block of `streams` contiguous rows, plus one row for the remainder. Each row starts
    with an empty state, so the partition (not the batch size of any run) defines the figure.
    """
    n_targets = len(tokens) - 1
    streams = max(1, min(streams, n_targets))
    length = n_targets // streams
    blocks = [(tokens[: streams * length].view(streams, length), tokens[1 : streams * length + 1].view(streams, length))]
    if streams * length < n_targets:
        start = streams * length
        blocks.append((tokens[start:-1].view(1, -1), tokens[start + 1 :].view(1, -1)))
    return blocks


@torch.inference_mode()
def evaluate(model: CharModel, tokens: torch.Tensor, streams: int = EVAL_STREAMS, chunk: int = EVAL_CHUNK,
             precision: Precision | None = None) -> float:
    """Exact mean negative log-likelihood (nats per character) of a held-out split, state carried."""
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64, device=tokens.device)
    count = 0
    with precision.autocast(tokens.device) if precision is not None else nullcontext():
        for inputs, targets in eval_streams(tokens, streams):
            state = None
            for start in range(0, inputs.shape[1], chunk):
                x, y = inputs[:, start : start + chunk], targets[:, start : start + chunk]
                logits, state = model(x, state)
                total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
                count += y.numel()
    model.train(was_training)
    return float(total) / count


def checkpoint_corpus(meta: dict, spec: str | None = None) -> Corpus:
    """The corpus a checkpoint was trained on (or `spec` instead), split and cased the same way."""
    info = meta.get("corpus") or {}
    defaults = CorpusOptions()
    options = CorpusOptions(lowercase=info.get("lowercase", defaults.lowercase),
                            split=tuple(info.get("split", DEFAULT_SPLIT)), encoding=info.get("encoding", defaults.encoding))
    return load_corpus(spec or info.get("spec", DEFAULT_SPEC), options)


def evaluate_checkpoint(checkpoint, corpus: Corpus, split: str = "test") -> dict:
    """Held-out loss of a checkpoint on a split, encoded with the checkpoint's own vocabulary."""
    text = corpus.test_text if split == "test" else corpus.text[corpus.bounds[0] : corpus.bounds[1]]
    if len(text) < 2:
        raise HarnessError(f"corpus {corpus.name!r} has no {split} text to evaluate on (its {split} share is 0)")
    device = next(checkpoint.model.parameters()).device
    tokens = checkpoint.vocab.encode(text).to(device)
    loss = evaluate(checkpoint.model, tokens)
    unknown = checkpoint.vocab.missing(text)
    return {"split": split, "chars": len(text), "loss": loss, "bpc": bits_per_char(loss), "ppl": perplexity(loss),
            "unknown_symbols": unknown, "corpus": corpus.name}
