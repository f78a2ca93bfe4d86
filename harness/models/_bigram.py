"""mlp: the bigram model h = W_embed x, s = W_unembed h.

No recurrence, so `hidden_dim` and `layers` are unused and `embedding_dim` is the width of h; the
next character depends on the current one only.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.models._base import CharModel, Family, State


class BigramMLP(CharModel):
    """h = W_embed x, s = W_unembed h: the next character depends on the current one only."""

    family = "mlp"

    def __init__(self, vocab_size: int, embedding_dim: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embedding_dim)
        self.unembed = nn.Linear(embedding_dim, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        return self.unembed(self.embed(tokens)), None



MLP = Family(name="mlp", build=lambda vocab, embedding, _hidden, _layers, _dropout: BigramMLP(vocab, embedding),
             weights=lambda vocab, embedding, _hidden, _layers: embedding * vocab, recurrent=False,
             description="bigram model: the next character from the current one only",
             ignores=("hidden_dim", "layers", "dropout"))
