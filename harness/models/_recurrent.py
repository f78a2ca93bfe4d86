"""lstm, gru and rnn: the embedding feeds a cuDNN-fused recurrent stack (dropout between layers), then a linear head.

- `lstm`: stacked nn.LSTM, 4 gate matrices a layer.
- `gru`: stacked nn.GRU, 3.
- `rnn`: h_t = tanh(W_embed x_t + W_rec h_{t-1}) via nn.RNN, 1.

`dropout` acts only between layers (cuDNN's own), so at `layers = 1` it has nothing to act on. The
regularizers that act at every depth are AWD-LSTM's (Merity, Keskar and Socher, ICLR 2018), each
off at 0 so that a model without them runs exactly the code it always ran:

- `embedding_drop`: whole characters' rows of the embedding dropped for a chunk (a dropped
  character is unseen everywhere in that chunk, not a little noisier at one position);
- `dropout_input`, `dropout_output`: locked (variational) dropout on the embedding's output and on
  the last layer's output, one mask per sequence in the chunk, the same at every time step;
- `weight_drop`: DropConnect on the hidden-to-hidden matrices, one mask per chunk. The dropped
  matrices are handed to the same nn.LSTM through `torch.func.functional_call`, so the recurrence
  stays one fused call (on cuDNN, with the weights gathered into its flat buffer each chunk).
"""

from __future__ import annotations

import warnings
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from harness.models._base import CharModel, Family, State, recurrent_weights

CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3), "rnn": (nn.RNN, 1)}
REGULARIZERS = ("embedding_drop", "dropout_input", "dropout_output", "weight_drop")


def locked_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout with one mask per sequence, shared by all its time steps: x is (batch, time, features)."""
    if not training or p == 0.0:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1.0 - p).div_(1.0 - p)
    return x * mask


def embedding_rows(weight: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """The embedding with whole rows (characters) dropped and the rest scaled by 1/(1-p)."""
    if not training or p == 0.0:
        return weight
    mask = weight.new_empty(weight.shape[0], 1).bernoulli_(1.0 - p).div_(1.0 - p)
    return weight * mask


class FusedRecurrent(CharModel):
    """The three families cuDNN fuses; `family` picks the cell."""

    def __init__(self, family: str, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int, dropout: float,
                 *, embedding_drop: float = 0.0, dropout_input: float = 0.0, dropout_output: float = 0.0,
                 weight_drop: float = 0.0):
        super().__init__()
        cell = CELLS[family][0]
        self.family = family
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = cell(embedding_dim, hidden_dim, num_layers=layers, batch_first=True,
                        dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden_dim, vocab_size)
        self.embedding_drop, self.dropout_input, self.dropout_output = embedding_drop, dropout_input, dropout_output
        self.weight_drop = weight_drop
        self.recurrent_names = [f"weight_hh_l{i}" for i in range(layers)]

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        if self.training and self.embedding_drop > 0:
            x = F.embedding(tokens, embedding_rows(self.embedding.weight, self.embedding_drop, True))
        else:
            x = self.embedding(tokens)
        x = locked_dropout(x, self.dropout_input, self.training)
        if self.training and self.weight_drop > 0:
            dropped = {name: F.dropout(getattr(self.rnn, name), self.weight_drop, training=True)
                       for name in self.recurrent_names}
            with warnings.catch_warnings():  # cuDNN: the dropped weights are gathered, on purpose, each chunk
                warnings.filterwarnings("ignore", message="RNN module weights are not part")
                out, state = functional_call(self.rnn, dropped, (x, state))
        else:
            out, state = self.rnn(x, state)
        out = locked_dropout(out, self.dropout_output, self.training)
        return self.head(out), state

    def no_decay(self) -> set[str]:
        """Biases are exempt from decoupled weight decay: shrinking an offset regularizes nothing."""
        return {name for name, _ in self.named_parameters() if name.endswith("bias") or "bias_" in name}


def _family(name: str, description: str) -> Family:
    gates = CELLS[name][1]
    return Family(name=name, build=partial(FusedRecurrent, name), weights=partial(recurrent_weights, gates),
                  description=description, options=REGULARIZERS, dropout_between_layers=True)


LSTM = _family("lstm", "stacked LSTM (cuDNN), the course's text generator")
GRU = _family("gru", "stacked GRU (cuDNN)")
RNN = _family("rnn", "stacked tanh RNN (cuDNN)")
