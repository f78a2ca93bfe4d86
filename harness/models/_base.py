"""The interface every model family implements, and the `Family` record that describes one.

A family is one module that defines a `CharModel` subclass and a `Family` record (how to build it
and how many weights a character touches); harness.models._registry names them.

Every model maps `forward(tokens, state) -> (logits, state)`: `tokens` is (batch, time) int64,
`logits` is (batch, time, vocab). `state` is whatever the family carries between chunks (None to
start fresh); callers never look inside it, they only pass it back and detach it between chunks
with `detach_state`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

State = Any


class CharModel(nn.Module):
    family: str
    context: int | None = None  # the most characters it can see at once; None: unbounded (state is carried)

    def initial_state(self, batch: int) -> State:
        """The state a generation starts from: None for the recurrent families, a key/value cache for gpt."""
        return None

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        raise NotImplementedError

    def parts(self) -> dict[str, nn.Module | None]:
        """The embedding, the recurrent core (None without one) and the output layer.

        The precision probe reads the dtype each part returns, and the embedding map reads the
        embedding's weights. The default finds them under the built-in families' attribute names;
        a family with other names overrides this.
        """
        embedding = getattr(self, "embedding", None) or getattr(self, "embed", None)
        core = getattr(self, "rnn", None)
        if core is None and isinstance(getattr(self, "layers", None), nn.ModuleList):
            core = self.layers[-1]
        head = getattr(self, "head", None) or getattr(self, "unembed", None)
        return {"embedding": embedding, "core": core, "head": head}


@dataclass(frozen=True)
class Family:
    """A model family: its name, how to build it, and the weights a predicted character multiplies through.

    `build(vocab_size, embedding_dim, hidden_dim, layers, dropout, **options)` returns the model,
    where `options` are the training settings named in `options` (e.g. gpt's heads and seq_len).
    `weights(vocab_size, embedding_dim, hidden_dim, layers)` counts the multiply-accumulate
    weights one character's forward pass touches (embedding lookups are free); MFU is computed
    from it, plus `attention_flops(embedding_dim, layers, seq_len)` where the work per character
    also grows with the context. `recurrent` is False for a family with no time axis (no gradient
    flows through time). `carries_state` is False for a family that sees a bounded window and no
    state between chunks: the trainer gives it random windows and AdamW with decay on matrices
    only, and the held-out figure comes from sliding windows. `ignores` names the training settings
    the family never reads (the bigram MLP: hidden_dim, layers, dropout), and `dropout_between_layers`
    says that `dropout` acts only between layers, so at one layer it acts on nothing: a study records
    such settings as inactive instead of crediting them with an effect.
    """

    name: str
    build: Callable[..., CharModel]
    weights: Callable[[int, int, int, int], int]
    recurrent: bool = True
    description: str = ""
    carries_state: bool = True
    options: tuple[str, ...] = ()
    attention_flops: Callable[[int, int, int], int] | None = None
    ignores: tuple[str, ...] = ()
    dropout_between_layers: bool = False


def recurrent_weights(gates: int, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int) -> int:
    """Weights of a stack of recurrent layers with `gates` gate matrices each, plus the output layer."""
    weights = 0
    for i in range(layers):
        width_in = embedding_dim if i == 0 else hidden_dim
        weights += gates * hidden_dim * (width_in + hidden_dim)
    return weights + hidden_dim * vocab_size


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def detach_state(state: State) -> State:
    """Cut the graph between chunks (truncated backpropagation through time), keep the values."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def set_rate(model: nn.Module, name: str, value: float) -> None:
    """Change a regularization rate of a built model in place, as a PBT member's perturbed rate must act
    on the weights it copied: `dropout` is every dropout module's rate and the between-layer dropout
    of cuDNN stacks of two layers or more; any other name is the float attribute of that name
    (`dropout_output`, `weight_drop`, ...) wherever a module has one."""
    found = False
    for module in model.modules():
        if name == "dropout" and isinstance(module, nn.Dropout):
            module.p, found = value, True
        elif name == "dropout" and isinstance(module, nn.RNNBase):
            if module.num_layers > 1:
                module.dropout = value
            found = True
        elif isinstance(getattr(module, name, None), float):
            setattr(module, name, value)
            found = True
    if not found:
        raise ValueError(f"the model has no rate called {name!r} to change")
