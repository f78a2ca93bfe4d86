"""Gradient flow through time: how much of the loss's gradient reaches the hidden state t steps back.

For held-out sequences of length T, J is the loss of the prediction at the last step, and the
tool measures |dJ/dh_t| for every t, averaged over sequences (each sequence's own gradient: J is
summed, not averaged, over the batch). h_t is the whole hidden state after step t, every layer
(an LSTM's cell state is not part of it). The model is run one step at a time so each h_t is a
tensor of its own; at the last step the hidden state reaches J through the output layer, and at
earlier steps through the next step, so dJ/dh_t is the sum of both paths.

From the profile come two figures per family: the ratio |dJ/dh_1| / |dJ/dh_T| (how much arrives
from T - 1 steps away) and the decay rate per step (exp of the slope of log|dJ/dh_t| against the
distance from the loss, fitted by least squares; 1 means no decay). The course's derivation says
what to expect: a tanh RNN's step Jacobian diag(1 - tanh^2) W_rec shrinks the gradient
geometrically; a residual step I + diag(1 - tanh^2) W_rec and an LSTM's cell path need not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.common import HarnessError
from harness.models import CharModel, get_family
from harness.training import checkpoint_corpus, load_checkpoint


@dataclass
class FlowProfile:
    family: str
    label: str  # e.g. "init" or "trained"
    norms: list[float]  # mean |dJ/dh_t|, t = 1..T
    sequences: int

    @property
    def ratio(self) -> float:
        return self.norms[0] / self.norms[-1] if self.norms[-1] > 0 else math.nan

    @property
    def decay_per_step(self) -> float:
        """exp(slope) of log|dJ/dh_t| against distance from the loss: the mean factor lost per step."""
        logs = np.log(np.maximum(np.asarray(self.norms, dtype=float), 1e-300))
        distance = np.arange(len(logs))[::-1]  # T-1 ... 0
        if len(logs) < 2:
            return math.nan
        slope = np.polyfit(distance, logs, 1)[0]
        return float(math.exp(slope))

    def to_dict(self) -> dict:
        return {"family": self.family, "label": self.label, "sequences": self.sequences, "steps": len(self.norms),
                "ratio_first_to_last": self.ratio, "decay_per_step": self.decay_per_step, "norms": self.norms}


def _hidden(state) -> torch.Tensor:
    return state[0] if isinstance(state, tuple) else state


def not_measured(family: str) -> str | None:
    """Why a family has no gradient flow through time to measure, said plainly; None when it has one."""
    spec = get_family(family)
    if spec.recurrent:
        return None
    if not spec.carries_state:
        return (f"{family} has no recurrent state: gradient flow through time measures dJ/dh_t along a carried "
                f"state, and attention reaches every position of its window in one step instead; not measured")
    return f"{family} has no time axis: its prediction depends on the current character only; not measured"


def hidden_gradients(model: CharModel, tokens: torch.Tensor) -> list[torch.Tensor]:
    """dJ/dh_t for t = 1..T, each (sequences, layers * hidden); tokens (sequences, T + 1), J at the last step."""
    reason = not_measured(model.family)
    if reason:
        raise ValueError(reason)
    model.eval()
    inputs, target = tokens[:, :-1], tokens[:, -1]
    head_inputs: list[torch.Tensor] = []
    hook = model.head.register_forward_hook(lambda _m, args, _out: head_inputs.append(args[0]))
    states: list[torch.Tensor] = []
    try:
        state = None
        with torch.enable_grad():
            for t in range(inputs.shape[1]):
                logits, state = model(inputs[:, t:t + 1], state)
                h = _hidden(state)
                h.retain_grad()
                head_inputs[-1].retain_grad()
                states.append(h)
            loss = F.cross_entropy(logits[:, -1].float(), target, reduction="sum")
            loss.backward()
    finally:
        hook.remove()
    grads = []
    for h, out in zip(states, head_inputs, strict=True):
        g = (h.grad if h.grad is not None else torch.zeros_like(h)).clone()  # (layers, batch, hidden)
        if out.grad is not None:
            g[-1] += out.grad[:, -1]  # the top layer's value also reaches J through the output layer
        grads.append(g.transpose(0, 1).reshape(g.shape[1], -1))
    model.zero_grad(set_to_none=True)
    return grads


def held_out_sequences(data: torch.Tensor, length: int, count: int, seed: int = 0) -> torch.Tensor:
    """`count` windows of length + 1 from a held-out split, at fixed random offsets."""
    if len(data) < length + 2:
        raise HarnessError(f"the held-out text has {len(data):,} characters, fewer than a window of {length + 1:,}; "
                           f"use a smaller --steps or a larger validation split")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(data) - length - 1, (count,), generator=g)
    return torch.stack([data[s:s + length + 1] for s in starts.tolist()])


def profile(model: CharModel, tokens: torch.Tensor, label: str, batch: int = 32) -> FlowProfile:
    total = None
    for i in range(0, len(tokens), batch):
        grads = hidden_gradients(model, tokens[i:i + batch])
        norms = torch.stack([g.norm(dim=1) for g in grads]).sum(dim=1)  # (T,) summed over these sequences
        total = norms if total is None else total + norms
    return FlowProfile(getattr(model, "family", "?"), label, (total / len(tokens)).tolist(), len(tokens))


def checkpoint_profiles(path: Path, steps: int, count: int, seed: int) -> list[FlowProfile]:
    """[init, trained] profiles of a checkpoint on its own corpus's validation text (init: same seed)."""
    ckpt = load_checkpoint(path, "cpu")
    reason = not_measured(ckpt.config.model)
    if reason:
        raise HarnessError(f"{path}: {reason}")
    corpus = checkpoint_corpus(ckpt.meta)
    tokens = held_out_sequences(ckpt.vocab.encode(corpus.text[corpus.bounds[0]:corpus.bounds[1]]), steps, count, seed)
    c = ckpt.config
    torch.manual_seed(c.seed)
    fresh = c.build(len(ckpt.vocab), dropout=0.0).double()
    return [profile(fresh, tokens, "init"), profile(ckpt.model.double(), tokens, "trained")]
