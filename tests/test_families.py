"""A model family is one module plus one registration: a toy family defined here sweeps end to end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import harness
from harness.common import HarnessError
from harness.models import (
    CharModel,
    Family,
    _registry,
    build_model,
    family_names,
    flops_per_char,
    get_family,
    register_family,
)


class PairModel(CharModel):
    """The next character from the current and the previous one: h = tanh(W [e(x_t); e(x_t-1)])."""

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_dim: int, layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.mix = nn.Linear(2 * embedding_dim, hidden_dim)
        self.head = nn.Linear(hidden_dim, vocab_size)

    def forward(self, tokens: torch.Tensor, state=None):
        x = self.embedding(tokens)
        previous = state if state is not None else torch.zeros_like(x[:, :1])
        shifted = torch.cat([previous, x[:, :-1]], dim=1)
        return self.head(torch.tanh(self.mix(torch.cat([x, shifted], dim=-1)))), x[:, -1:]


PAIR = Family(name="pair", build=PairModel, recurrent=False,
              weights=lambda vocab, embedding, hidden, _layers: 2 * embedding * hidden + hidden * vocab,
              description="the current and the previous character (a test family)")


@pytest.fixture
def pair_family():
    register_family(PAIR)
    yield PAIR
    _registry._REGISTRY.pop(PAIR.name, None)


def test_a_registered_family_sweeps_end_to_end(pair_family, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "pair" in family_names() and get_family("pair") is PAIR
    spec = harness.parse_study({
        "study": {"name": "pairs", "trials": 2, "sampler": "random", "pruner": "none", "device": "cpu"},
        "budget": {"per_trial": "8k", "evals": 2},
        "fixed": {"model": "pair", "embedding_dim": 8, "hidden_dim": 16, "seq_len": 16, "batch_size": 8},
        "space": {"lr": {"type": "float", "low": 3e-3, "high": 3e-2, "log": True}},
        "generate": {"length": 20, "samples": 1, "temperatures": [1.0]},
    })
    outcome = harness.run_sweep(spec)
    assert outcome.stop == "planned"
    frame = harness.trials_frame("results/pairs")
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE"]
    assert (frame["best_bpc"] < 7.0).all()  # it learned something: uniform over ~78 symbols is 6.3 bpc at best
    vocab = int(frame["vocab_size"].iloc[0])
    assert (frame["n_params"] == sum(p.numel() for p in build_model("pair", vocab, 8, 16, 1, 0.0).parameters())).all()
    study = harness.load_results("results/pairs")
    best = min(study.trials, key=lambda t: t.values[0])
    assert best.user_attrs["flops_per_char"] == flops_per_char("pair", vocab, 8, 16, 1) == 6 * (2 * 8 * 16 + 16 * vocab)
    assert best.user_attrs["generation"]["temperatures"][0]["samples"]
    checkpoint = harness.load_checkpoint(best.user_attrs["checkpoint"])
    assert isinstance(checkpoint.model, PairModel)
    report = harness.build_report("results/pairs")
    assert (report.out_dir / "report.html").exists()


def test_family_names_are_checked(pair_family):
    with pytest.raises(HarnessError, match="already registered"):
        register_family(Family(name="pair", build=PairModel, weights=PAIR.weights))
    with pytest.raises(HarnessError, match="plain identifier"):
        register_family(Family(name="my family", build=PairModel, weights=PAIR.weights))
    with pytest.raises(HarnessError, match="choose one of lstm, gru, rnn, residual_rnn, mlp, gpt, pair"):
        get_family("transformer")
    with pytest.raises(HarnessError, match="model 'transformer' is not a model family"):
        harness.TrainConfig(model="transformer").validate()
