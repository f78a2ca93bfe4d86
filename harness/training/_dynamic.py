"""Dynamic evaluation (Krause, Kahembwe, Murray and Renals, ICML 2018): the model keeps learning on the
held-out text as it reads it, and the figure says so.

The split is read once, in order, as one stream with the state carried across chunks. Each chunk
of `chunk` characters is predicted first (its loss is what counts), then the model takes one
gradient step on that same chunk: SGD with rate `lr`, its gradient clipped to norm 1, and a decay
of `decay` x (trained weights - current weights) that pulls it back towards what training left
(Krause et al.'s "decay to the global prior"). Nothing is predicted after it was learned from, so
the figure is an honest online compression rate, but it is an *adaptive* figure: it is reported
beside the static one (harness.training._evaluation) and never mixed into it, and its fair
comparison is the adaptive count model (harness.data._ngram), not the static one.

The run works on a copy of the model; the checkpoint's weights are not touched. Families that see
windows and carry no state (gpt) are refused: their chunks would not share one stream.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from harness.common import HarnessError, bits_per_char, perplexity
from harness.models import CharModel, carries_state, detach_state

DYNAMIC_LR = 0.05
DYNAMIC_DECAY = 0.01
DYNAMIC_CHUNK = 50


def dynamic_evaluate(model: CharModel, tokens: torch.Tensor, lr: float = DYNAMIC_LR, decay: float = DYNAMIC_DECAY,
                     chunk: int = DYNAMIC_CHUNK) -> dict:
    """Nats per character over tokens[1:], each chunk predicted before the model learns from it."""
    if not carries_state(model.family):
        raise HarnessError(f"dynamic evaluation reads the text as one stream with carried state; {model.family} "
                           f"carries none (it sees windows), so it has no dynamic figure")
    if not (lr > 0 and math.isfinite(lr)) or not 0.0 <= decay < 1.0 or chunk < 1:
        raise HarnessError(f"dynamic evaluation needs lr > 0, decay in [0, 1) and chunk >= 1; got lr {lr}, decay "
                           f"{decay}, chunk {chunk}")
    if len(tokens) < 2:
        raise HarnessError("dynamic evaluation needs at least two characters of text")
    learner = copy.deepcopy(model)
    learner.eval()  # no dropout: the same network the static figure scores, only its weights move
    prior = [p.detach().clone() for p in learner.parameters()]
    params = list(learner.parameters())
    stream = tokens.view(1, -1)
    state, total, count = None, 0.0, 0
    for start in range(0, stream.shape[1] - 1, chunk):
        end = min(start + chunk, stream.shape[1] - 1)
        inputs, targets = stream[:, start:end], stream[:, start + 1:end + 1]
        logits, state = learner(inputs, state)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")
        total += float(loss.detach())
        count += targets.numel()
        learner.zero_grad(set_to_none=True)
        (loss / targets.numel()).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        with torch.no_grad():
            for p, p0 in zip(params, prior, strict=True):
                if p.grad is not None:
                    p.add_(p.grad, alpha=-lr)
                p.add_(p0 - p, alpha=decay)
        state = detach_state(state)
    mean = total / count
    return {"loss": mean, "bpc": bits_per_char(mean), "ppl": perplexity(mean), "chars": count,
            "lr": lr, "decay": decay, "chunk": chunk}
