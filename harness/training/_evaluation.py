"""Held-out loss, exactly: every character of a split (but the first) predicted once.

A family that carries state is read in a few long streams, the state carried across chunks. A
windowed family (gpt, `model.context` set) is read in sliding windows of its context with a
stride of half of it: the first window counts all its positions, every later one only its last
half, so each character is predicted once with at least context/2 characters before it (and the
figure does not depend on any batch size). `context_note` says which of the two a figure had.

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
EVAL_WINDOWS = 64  # sliding windows per forward pass


def context_note(model: CharModel) -> str:
    """What context the held-out figure gives each character, said the same way everywhere."""
    if model.context is None:
        return "carried state (every character sees all the text before it in its stream)"
    stride = max(1, model.context // 2)
    return f"sliding windows of {model.context}, stride {stride} (each character sees >= {model.context - stride + 1})"


def window_plan(n_tokens: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(starts, first): window i reads tokens[starts[i] : starts[i] + L] and counts positions >= first[i].

    Stride s = L // 2. Window 0 counts every position; window k (start k s) counts its last s, whose
    targets follow the previous window's; a last window ending at the split's end counts only what
    is left. So each target is counted once, with at least L - s + 1 >= L / 2 characters of context.
    """
    n_targets = n_tokens - 1
    length = min(context, n_targets)
    stride = max(1, length // 2)
    starts = list(range(0, n_targets - length + 1, stride))
    first = [0] + [length - stride] * (len(starts) - 1)
    counted_to = starts[-1] + length  # targets 1..counted_to are counted
    if counted_to < n_targets:
        tail = n_targets - length
        starts.append(tail)
        first.append(counted_to - tail)
    return torch.tensor(starts), torch.tensor(first)


def evaluate_windows(model: CharModel, tokens: torch.Tensor, batch: int = EVAL_WINDOWS) -> tuple[torch.Tensor, int]:
    """Summed loss (float64) and the number of targets, over sliding windows (see `window_plan`)."""
    starts, first = window_plan(len(tokens), model.context)
    length = min(model.context, len(tokens) - 1)
    offsets = torch.arange(length + 1, device=tokens.device)
    total = torch.zeros((), dtype=torch.float64, device=tokens.device)
    count = 0
    for i in range(0, len(starts), batch):
        rows = tokens[starts[i : i + batch].to(tokens.device).unsqueeze(1) + offsets]
        logits, _ = model(rows[:, :-1], None)
        losses = F.cross_entropy(logits.float().transpose(1, 2), rows[:, 1:], reduction="none")
        keep = offsets[:-1] >= first[i : i + batch].to(tokens.device).unsqueeze(1)
        total += losses[keep].sum(dtype=torch.float64)
        count += int(keep.sum())
    return total, count


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


def evaluate_streams(model: CharModel, tokens: torch.Tensor, streams: int, chunk: int) -> tuple[torch.Tensor, int]:
    """Summed loss (float64) and the number of targets, over streams read in chunks with the state carried."""
    total = torch.zeros((), dtype=torch.float64, device=tokens.device)
    count = 0
    for inputs, targets in eval_streams(tokens, streams):
        state = None
        for start in range(0, inputs.shape[1], chunk):
            x, y = inputs[:, start : start + chunk], targets[:, start : start + chunk]
            logits, state = model(x, state)
            total += F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
            count += y.numel()
    return total, count


@torch.inference_mode()
def evaluate(model: CharModel, tokens: torch.Tensor, streams: int = EVAL_STREAMS, chunk: int = EVAL_CHUNK,
             precision: Precision | None = None) -> float:
    """Exact mean negative log-likelihood (nats per character) of a held-out split (see the module's note)."""
    was_training = model.training
    model.eval()
    with precision.autocast(tokens.device) if precision is not None else nullcontext():
        if model.context is None:
            total, count = evaluate_streams(model, tokens, streams, chunk)
        else:
            total, count = evaluate_windows(model, tokens)
    model.train(was_training)
    return float(total) / count


def checkpoint_corpus(meta: dict, spec: str | None = None) -> Corpus:
    """The corpus a checkpoint was trained on (or `spec` instead), split and cased the same way."""
    info = meta.get("corpus") or {}
    defaults = CorpusOptions()
    options = CorpusOptions(lowercase=info.get("lowercase", defaults.lowercase),
                            split=tuple(info.get("split", DEFAULT_SPLIT)), encoding=info.get("encoding", defaults.encoding),
                            max_chars=info.get("max_chars"))
    return load_corpus(spec or info.get("spec", DEFAULT_SPEC), options)


def evaluate_checkpoint(checkpoint, corpus: Corpus, split: str = "test", dynamic: dict | None = None) -> dict:
    """Held-out loss of a checkpoint on a split, encoded with the checkpoint's own vocabulary; with `dynamic`
    (options of `dynamic_evaluate`, {} for its defaults), the dynamic figure beside it as `dynamic_*`."""
    text = corpus.test_text if split == "test" else corpus.text[corpus.bounds[0] : corpus.bounds[1]]
    if len(text) < 2:
        raise HarnessError(f"corpus {corpus.name!r} has no {split} text to evaluate on (its {split} share is 0)")
    device = next(checkpoint.model.parameters()).device
    tokens = checkpoint.vocab.encode(text).to(device)
    loss = evaluate(checkpoint.model, tokens)
    unknown = checkpoint.vocab.missing(text)
    result = {"split": split, "chars": len(text), "loss": loss, "bpc": bits_per_char(loss), "ppl": perplexity(loss),
              "unknown_symbols": unknown, "corpus": corpus.name}
    if dynamic is not None:
        from harness.training._dynamic import dynamic_evaluate

        figure = dynamic_evaluate(checkpoint.model, tokens, **dynamic)
        result.update({f"dynamic_{k}": v for k, v in figure.items()})
    return result
