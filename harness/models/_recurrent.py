"""lstm, gru and rnn: the embedding feeds a cuDNN-fused recurrent stack (dropout between layers), then a linear head.

- `lstm`: stacked nn.LSTM, 4 gate matrices a layer.
- `gru`: stacked nn.GRU, 3.
- `rnn`: h_t = tanh(W_embed x_t + W_rec h_{t-1}) via nn.RNN, 1.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from harness.models._base import CharModel, Family, State, recurrent_weights

CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3), "rnn": (nn.RNN, 1)}


class FusedRecurrent(CharModel):
    """The three families cuDNN fuses; `family` picks the cell."""

    def __init__(self, family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int, dropout: float):
        super().__init__()
        cell = CELLS[family][0]
        self.family = family
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = cell(embedding_dim, hidden_dim, num_layers=layers, batch_first=True,
                        dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        out, state = self.rnn(self.embedding(tokens), state)
        return self.head(out), state



def _family(name: str, description: str) -> Family:
    gates = CELLS[name][1]
    return Family(name=name, build=partial(FusedRecurrent, name), weights=partial(recurrent_weights, gates),
                  description=description)


LSTM = _family("lstm", "stacked LSTM (cuDNN), the course's text generator")
GRU = _family("gru", "stacked GRU (cuDNN)")
RNN = _family("rnn", "stacked tanh RNN (cuDNN)")
