"""The course's questions: gradient flow through time and what the embeddings learned."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from harness.cli import main
from harness.diagnostics import char_label, hidden_gradients, neighbours, profile, project
from harness.models import build_model
from harness.training import Budget, Evaluations, TrainConfig, train

RECURRENT = ["rnn", "gru", "lstm", "residual_rnn"]


def _loss_after_nudging(model, tokens, t, direction, eps):
    """J with the hidden state after step t moved by eps along `direction`: the numerical derivative's samples."""
    state = None
    with torch.no_grad():
        for s in range(tokens.shape[1] - 1):
            logits, state = model(tokens[:, s:s + 1], state)
            if s == t:
                h = state[0] if isinstance(state, tuple) else state
                h = h + eps * direction.view(h.shape[0], 1, -1)
                state = (h, state[1]) if isinstance(state, tuple) else h
        return F.cross_entropy(logits[:, -1], tokens[:, -1], reduction="sum").item()


@pytest.mark.parametrize("family", RECURRENT)
def test_hidden_gradients_equal_a_numerical_derivative(family):
    torch.manual_seed(0)
    model = build_model(family, 11, 5, 7, 2, 0.0).double()
    tokens = torch.randint(0, 11, (1, 8))
    grads = hidden_gradients(model, tokens)
    assert len(grads) == 7
    for t in (0, 3, 5):
        g = grads[t][0]
        u = g / g.norm()
        slope = (_loss_after_nudging(model, tokens, t, u, 1e-6) - _loss_after_nudging(model, tokens, t, u, -1e-6)) / 2e-6
        assert slope == pytest.approx(g.norm().item(), rel=1e-5)


def test_mlp_has_no_time_axis():
    with pytest.raises(ValueError, match="no time axis"):
        hidden_gradients(build_model("mlp", 11, 5, 7, 1, 0.0), torch.randint(0, 11, (1, 5)))


def _orthogonal(n: int, scale: float) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    return scale * q


def test_tanh_rnn_decays_geometrically_while_the_residual_path_keeps_the_gradient():
    """Known spectral norm sigma and saturated tanh: the bounds the step Jacobians imply, checked step by step."""
    torch.manual_seed(1)
    sigma, hidden, steps = 0.9, 16, 40
    tokens = torch.randint(0, 11, (1, steps + 1))

    rnn = build_model("rnn", 11, 8, hidden, 1, 0.0).double()
    with torch.no_grad():
        rnn.rnn.weight_hh_l0.copy_(_orthogonal(hidden, sigma))
        rnn.rnn.bias_ih_l0.fill_(2.0)  # pushes tanh into saturation: 1 - tanh^2 small
    norms = profile(rnn, tokens, "controlled").norms
    hs, state = [], None
    with torch.no_grad():
        for s in range(steps):
            _, state = rnn(tokens[:, s:s + 1], state)
            hs.append(state[0, 0])
    for t in range(1, steps):  # |dJ/dh_{t-1}| <= sigma * max(1 - h_t^2) * |dJ/dh_t|
        d = (1 - hs[t] ** 2).max().item()
        assert norms[t - 1] <= sigma * d * norms[t] * (1 + 1e-9)
    assert norms[0] / norms[-1] < (sigma * 0.5) ** (steps - 1)  # geometric, and fast

    res = build_model("residual_rnn", 11, 8, hidden, 1, 0.0).double()
    with torch.no_grad():
        res.layers[0].w_rec.weight.copy_(_orthogonal(hidden, sigma))
        res.layers[0].w_in.bias.fill_(3.0)
    norms = profile(res, tokens, "controlled").norms
    hs, state = [torch.zeros(hidden, dtype=torch.float64)], None
    with torch.no_grad():
        for s in range(steps):
            _, state = res(tokens[:, s:s + 1], state)
            hs.append(state[0, 0])
    for t in range(1, steps):  # I + W^T D_t: each step scales the gradient by a factor in [1 - sigma d, 1 + sigma d]
        increment = hs[t + 1] - hs[t]  # tanh(a) of step t + 1
        d = (1 - increment ** 2).max().item()
        factor = norms[t - 1] / norms[t]
        assert 1 - sigma * d - 1e-9 <= factor <= 1 + sigma * d + 1e-9
    assert norms[0] / norms[-1] > 0.5  # alive 40 steps back


def test_projection_is_deterministic_and_labels_every_symbol():
    torch.manual_seed(0)
    chars = [" ", "\n", "a", "b", "e", "1", "\0"]
    vectors = torch.randn(len(chars), 6)
    a, b = project(vectors, chars), project(vectors.clone(), chars)
    assert torch.equal(a.xy, b.xy) and a.xy.shape == (7, 2) and a.chars == chars
    assert 0 < a.explained[1] <= a.explained[0] <= 1
    assert [char_label(c) for c in chars[:2]] == ["␣", "⏎"] and char_label("\0") == "<unk>"


def test_neighbours_of_a_hand_made_embedding():
    chars = ["a", "e", "x", "y", "1"]
    vectors = torch.tensor([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0], [0, 0.9, 0.1], [0, 0, 1.0]])
    found = neighbours(vectors, chars, ["a", "x", "1", "z"], k=2)
    assert found["a"][0][0] == "e" and found["x"][0][0] == "y" and found["1"][0][0] == "y"
    assert "z" not in found and found["a"][0][1] == pytest.approx(0.9 / (0.81 + 0.01) ** 0.5)


def test_the_commands_on_a_trained_checkpoint(small_corpus, tmp_path, capsys):
    result = train(TrainConfig(model="gru", embedding_dim=16, hidden_dim=32, layers=1, seq_len=32, batch_size=16),
                   small_corpus, Budget.parse("20k"), out_dir=tmp_path / "run", evaluations=Evaluations(1))
    ckpt = result.checkpoint
    assert main(["gradflow", ckpt, "--model", "rnn", "mlp", "--corpus", small_corpus.name, "--steps", "20",
                 "--sequences", "4", "--out", str(tmp_path / "gf.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    labels = [(p["family"], p["label"]) for p in out["profiles"]]
    assert labels == [("gru", "init"), ("gru", "trained"), ("rnn", "init")]
    assert all(len(p["norms"]) == 20 and p["decay_per_step"] > 0 for p in out["profiles"])
    assert "mlp has no time axis" in out["notes"][0] and (tmp_path / "gf.png").stat().st_size > 1000

    assert main(["embeddings", ckpt, "--out", str(tmp_path / "emb.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["points"]) == len(small_corpus.vocab)
    assert {p["label"] for p in out["points"]} >= {"␣", "⏎", "a", "e"}
    assert set(out["neighbours"]) >= {"a", "e", "i", "o"} and len(out["neighbours"]["a"]) == 5
    assert 0 < out["explained_variance"][0] < 1 and (tmp_path / "emb.png").stat().st_size > 1000

    assert main(["gradflow"]) == 2
    assert "give a checkpoint" in capsys.readouterr().err


def test_the_figures_go_beside_what_they_measured_not_into_the_working_directory(small_corpus, tmp_path, capsys,
                                                                                monkeypatch):
    result = train(TrainConfig(model="gru", embedding_dim=16, hidden_dim=32, layers=1, seq_len=32, batch_size=16),
                   small_corpus, Budget.parse("10k"), out_dir=tmp_path / "run", evaluations=Evaluations(1))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["gradflow", "--model", "rnn", "--corpus", small_corpus.name, "--steps", "10", "--sequences", "2",
                 "--json"]) == 0
    figure = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["figure"]
    assert figure == "results/gradflow/gradflow-rnn.png" and (work / figure).is_file()
    assert main(["gradflow", result.checkpoint, "--steps", "10", "--sequences", "2"]) == 0
    assert f"figure: {tmp_path / 'run' / 'gradflow.png'}" in capsys.readouterr().out
    assert main(["embeddings", result.checkpoint]) == 0
    assert f"figure: {tmp_path / 'run' / 'embeddings.png'}" in capsys.readouterr().out
    assert sorted(p.name for p in work.iterdir()) == ["results"]  # nothing else written where it was run


def test_a_window_longer_than_the_held_out_text_is_a_clear_error():
    from harness.common import HarnessError
    from harness.diagnostics import held_out_sequences

    with pytest.raises(HarnessError, match="fewer than a window of 101"):
        held_out_sequences(torch.zeros(50, dtype=torch.long), 100, 4)
