"""residual_rnn: h_t = h_{t-1} + tanh(W_rec h_{t-1} + W_embed x_t), stackable.

No fused kernel exists for this cell, so the input projection of all time steps is one matmul and
only the recurrence loops, in `ResidualScan` (graph-free forward, hand-written backward).
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from harness.models._base import CharModel, Family, State, recurrent_weights

# W_rec's initial -leak * I. Measured (scripts/bench_residual_init.py, The Prince, H256, 45 s each):
# with one layer, leak 0.5 leaves 1e-15 of the gradient 100 steps back at initialization (x0.71 a
# step, 2.650 bpc) while leak 0.1 keeps 0.31 of it (x0.991 a step, 2.662 bpc: the same); but
# stacked two deep (studies/architectures.toml), leak 0.1 lets h grow until the second layer
# saturates: 73-237 bpc after 10 s. 0.5 is the only value that is safe at every depth; keeping
# the gradient alive as well needs a normalization, not an initialization (docs/measurements.md).
RESIDUAL_LEAK = 0.5


class ResidualRNNLayer(nn.Module):
    """h_t = h_{t-1} + tanh(W_rec h_{t-1} + W_in x_t + b): the identity path keeps gradients alive."""

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.w_in = nn.Linear(input_dim, hidden_dim)
        self.w_rec = nn.Linear(hidden_dim, hidden_dim, bias=False)
        # W_rec starts near -leak * I: h + tanh(-leak h + u) is a leaky integrator, so h stays bounded
        # over long texts (a sum of unchecked tanh increments drifts without limit), and the step
        # Jacobian I + diag(1 - tanh^2) W_rec starts with eigenvalues in (1 - leak, 1]: stable.
        # The leak trades the two: see RESIDUAL_LEAK.
        with torch.no_grad():
            nn.init.normal_(self.w_rec.weight, std=0.1 / hidden_dim**0.5)
            self.w_rec.weight -= RESIDUAL_LEAK * torch.eye(hidden_dim)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ResidualScan.apply(self.w_in(x), h, self.w_rec.weight)


def residual_scan_reference(projected: torch.Tensor, h: torch.Tensor,
                            w_rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence in plain autograd, one op at a time: the oracle `ResidualScan` is tested against."""
    outputs = []
    for t in range(projected.shape[1]):
        h = h + torch.tanh(projected[:, t] + h @ w_rec.T)
        outputs.append(h)
    return torch.stack(outputs, dim=1), h


class ResidualScan(torch.autograd.Function):
    """h_t = h_{t-1} + tanh(p_t + h_{t-1} W^T) over a whole chunk, with a hand-written backward.

    No fused kernel exists for this cell, and through autograd every time step records four nodes
    and replays them one by one; here the forward loop runs without a graph (one addmm, one tanh,
    one add a step) and the backward is the two-line recurrence below, with W's gradient as one
    matmul over all steps. The final state is its own output (not a view of the outputs), so a
    gradient that reaches it through the next chunk and one that reaches the last output through
    the head stay apart, as they would through autograd (harness.diagnostics._gradflow reads them apart).

    Derivation: a_t = tanh(z_t), z_t = p_t + h_{t-1} W^T, h_t = h_{t-1} + a_t. With c_T = dJ/dh_T
    from the final state and g_t = dJ/d(output t) + c_t the whole gradient at h_t:
        dz_t = g_t * (1 - a_t^2);  dp_t = dz_t;  c_{t-1} = g_t + dz_t W;  dW = sum_t dz_t^T h_{t-1}
    and dJ/dh_0 = c_0. (Checked against autograd and finite differences: tests/test_gradients.py.)
    """

    @staticmethod
    def forward(ctx, projected: torch.Tensor, h0: torch.Tensor,
                w_rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, steps, width = projected.shape
        outputs = projected.new_empty(batch, steps, width)
        activations = projected.new_empty(batch, steps, width)
        w_t = w_rec.t().to(projected.dtype)  # under autocast, the step runs in the projection's dtype
        h = h0.to(projected.dtype)
        for t in range(steps):
            a = torch.tanh(torch.addmm(projected[:, t], h, w_t))
            activations[:, t] = a
            h = h + a
            outputs[:, t] = h
        ctx.save_for_backward(h0, w_rec, outputs, activations)
        return outputs, h

    @staticmethod
    def backward(ctx, grad_outputs: torch.Tensor, grad_last: torch.Tensor):
        h0, w_rec, outputs, activations = ctx.saved_tensors
        dtype = w_rec.dtype  # gradients accumulate in the weights' precision, whatever autocast ran
        grad_outputs, activations, outputs = grad_outputs.to(dtype), activations.to(dtype), outputs.to(dtype)
        steps = outputs.shape[1]
        grad_z = torch.empty_like(activations)
        carry = grad_last.to(dtype)
        for t in range(steps - 1, -1, -1):
            g = grad_outputs[:, t] + carry
            dz = g * (1 - activations[:, t] ** 2)
            grad_z[:, t] = dz
            carry = torch.addmm(g, dz, w_rec)
        previous = torch.cat([h0.to(dtype).unsqueeze(1), outputs[:, :-1]], dim=1)
        grad_w = grad_z.reshape(-1, grad_z.shape[-1]).t() @ previous.reshape(-1, previous.shape[-1])
        return grad_z, carry.to(h0.dtype), grad_w


class ResidualRNN(CharModel):
    family = "residual_rnn"
    layer_type: type[ResidualRNNLayer] = ResidualRNNLayer  # a subclass swaps the recurrence, not the stack

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int, dropout: float):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.layers = nn.ModuleList(
            self.layer_type(embedding_dim if i == 0 else hidden_dim, hidden_dim) for i in range(layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens: torch.Tensor, state: State = None) -> tuple[torch.Tensor, State]:
        x = self.embedding(tokens)
        if state is None:
            state = x.new_zeros(len(self.layers), tokens.shape[0], self.hidden_dim)
        finals = []
        for i, layer in enumerate(self.layers):
            if i > 0:
                x = self.dropout(x)
            x, h = layer(x, state[i])
            finals.append(h)
        return self.head(x), torch.stack(finals)



RESIDUAL_RNN = Family(name="residual_rnn", build=ResidualRNN, weights=partial(recurrent_weights, 1),
                      description="stacked residual tanh RNN (ResidualScan)", dropout_between_layers=True)
