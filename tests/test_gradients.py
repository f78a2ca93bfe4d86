"""The course's hand-derived gradients, checked against autograd in float64 on our own models."""

from __future__ import annotations

import pytest
import torch

from harness.models import BigramMLP, FusedRecurrent, ResidualRNNLayer


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_bigram_gradients_match_derivation():
    torch.manual_seed(0)
    vocab, hidden = 7, 5
    model = BigramMLP(vocab, hidden).double()
    x_index, y_index = 3, 5
    x = torch.nn.functional.one_hot(torch.tensor(x_index), vocab).double()
    y = torch.nn.functional.one_hot(torch.tensor(y_index), vocab).double()

    logits, _ = model(torch.tensor([[x_index]]))
    s = logits[0, 0]
    s.retain_grad()
    J = torch.log_softmax(s, dim=0)[y_index]  # J = log p(y | s)
    J.backward()

    W_embed = model.embed.weight.detach().T  # H x V: column k embeds symbol k
    W_unembed = model.unembed.weight.detach()  # V x H
    p = torch.softmax(s.detach(), dim=0)
    h = W_embed @ x
    e = y - p
    torch.testing.assert_close(s.grad, e)
    torch.testing.assert_close(model.unembed.weight.grad, torch.outer(e, h))
    dJ_dh = W_unembed.T @ e
    torch.testing.assert_close(model.embed.weight.grad.T, torch.outer(dJ_dh, x))


def test_tanh_rnn_backprop_through_time_matches_derivation():
    """Problem 2: delta_{t-1} = W_rec^T (sigma'(z_t) * delta_t), delta_3 = W_unembed^T e."""
    torch.manual_seed(1)
    vocab, hidden = 6, 4
    model = FusedRecurrent("rnn", vocab, embedding_dim=3, hidden_dim=hidden, layers=1, dropout=0.0).double()
    tokens = torch.tensor([[0, 2, 4]])  # "I love machine"
    target = 5  # "learning"
    emb = model.embedding(tokens)[0].detach()
    W_ih, W_hh = model.rnn.weight_ih_l0.detach(), model.rnn.weight_hh_l0.detach()
    b = (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0).detach()

    hs = [torch.zeros(hidden, requires_grad=True)]
    zs = []
    for t in range(3):
        zs.append(W_ih @ emb[t] + W_hh @ hs[-1] + b)
        h = torch.tanh(zs[-1])
        h.retain_grad()
        hs.append(h)
    s = model.head.weight.detach() @ hs[-1] + model.head.bias.detach()
    J = torch.log_softmax(s, 0)[target]
    J.backward()

    e = torch.nn.functional.one_hot(torch.tensor(target), vocab).double() - torch.softmax(s.detach(), 0)
    delta = model.head.weight.detach().T @ e
    torch.testing.assert_close(hs[3].grad, delta)
    for t in (3, 2):
        delta = W_hh.T @ ((1 - torch.tanh(zs[t - 1].detach()) ** 2) * delta)
        torch.testing.assert_close(hs[t - 1].grad, delta)

    # and our fused model gives the same logits as the hand-written recurrence
    logits, _ = model(tokens)
    torch.testing.assert_close(logits[0, -1], s.detach())


def test_residual_rnn_jacobian_keeps_identity_path():
    torch.manual_seed(2)
    hidden = 5
    layer = ResidualRNNLayer(input_dim=3, hidden_dim=hidden).double()
    x = torch.randn(1, 1, 3)
    h_prev = torch.randn(hidden)

    def step(h):
        out, _ = layer(x, h.unsqueeze(0))
        return out[0, 0]

    jac = torch.autograd.functional.jacobian(step, h_prev)
    W_rec = layer.w_rec.weight.detach()
    z = layer.w_in(x)[0, 0].detach() + W_rec @ h_prev
    expected = torch.eye(hidden) + torch.diag(1 - torch.tanh(z) ** 2) @ W_rec
    torch.testing.assert_close(jac, expected)
    # the forward pass is the formula itself
    torch.testing.assert_close(step(h_prev).detach(), h_prev + torch.tanh(z))


def test_residual_scan_backward_is_the_derivation():
    """The hand-written backward of the residual recurrence against autograd's, and finite differences."""
    from harness.models import ResidualScan, residual_scan_reference

    torch.manual_seed(3)
    projected = torch.randn(3, 9, 6, requires_grad=True)
    h0 = torch.randn(3, 6, requires_grad=True)
    w_rec = (0.3 * torch.randn(6, 6) - 0.5 * torch.eye(6)).requires_grad_()
    assert torch.autograd.gradcheck(ResidualScan.apply, (projected, h0, w_rec))
    w_out, w_last = torch.randn(3, 9, 6), torch.randn(3, 6)  # a loss on every step and on the final state

    def loss(outputs, last):
        return (outputs * w_out).sum() + (last * w_last).sum()

    ours = torch.autograd.grad(loss(*ResidualScan.apply(projected, h0, w_rec)), (projected, h0, w_rec))
    reference = torch.autograd.grad(loss(*residual_scan_reference(projected, h0, w_rec)), (projected, h0, w_rec))
    for got, expected in zip(ours, reference, strict=True):
        torch.testing.assert_close(got, expected)
    for got, expected in zip(ResidualScan.apply(projected, h0, w_rec), residual_scan_reference(projected, h0, w_rec),
                             strict=True):
        torch.testing.assert_close(got, expected)
