"""Dynamic evaluation: every character predicted once, before the model learns from it, on a copy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.common import HarnessError
from harness.training import Budget, Evaluations, TrainConfig, Trainer, dynamic_evaluate

TINY = dict(embedding_dim=16, hidden_dim=48, layers=1, seq_len=32, batch_size=16, lr=5e-3)


@pytest.fixture(scope="module")
def trained(small_corpus):
    trainer = Trainer(TrainConfig(**TINY), small_corpus, Budget.parse("60k"), torch.device("cpu"), evaluations=Evaluations(1))
    assert trainer.run().status == "completed"
    return trainer.model.eval()


def one_stream_loss(model, tokens, chunk):
    """The static figure read the way dynamic evaluation reads: one stream, chunks, state carried."""
    state, total = None, 0.0
    with torch.no_grad():
        for start in range(0, len(tokens) - 1, chunk):
            end = min(start + chunk, len(tokens) - 1)
            logits, state = model(tokens[start:end].view(1, -1), state)
            total += float(F.cross_entropy(logits[0], tokens[start + 1:end + 1], reduction="sum"))
    return total / (len(tokens) - 1)


def test_a_single_chunk_is_scored_before_anything_is_learned(small_corpus):
    model = TrainConfig(**TINY).build(len(small_corpus.vocab)).eval()
    tokens = small_corpus.val[:400]
    figure = dynamic_evaluate(model, tokens, lr=10.0, chunk=1000)  # learning after the only chunk changes nothing
    assert figure["loss"] == pytest.approx(one_stream_loss(model, tokens, 1000), rel=1e-6)
    assert figure["chars"] == 399


def test_without_learning_it_is_the_static_figure_over_one_stream(small_corpus):
    model = TrainConfig(**TINY).build(len(small_corpus.vocab)).eval()
    tokens = small_corpus.val[:1000]
    figure = dynamic_evaluate(model, tokens, lr=1e-12, decay=0.0, chunk=50)
    assert figure["loss"] == pytest.approx(one_stream_loss(model, tokens, 50), rel=1e-6)


def test_learning_on_the_held_out_text_helps_where_it_repeats_and_leaves_the_model_alone(trained, small_corpus):
    passage = small_corpus.val[:600]
    tokens = torch.cat([passage] * 5)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    static = one_stream_loss(trained, tokens, 50)
    dynamic = dynamic_evaluate(trained, tokens, lr=0.5, chunk=50)
    assert dynamic["loss"] < static - 0.1, (dynamic["loss"], static)
    assert all(torch.equal(v, before[k]) for k, v in trained.state_dict().items())


def test_refusals_name_what_is_wrong(small_corpus):
    gpt = TrainConfig(model="gpt", embedding_dim=16, heads=2, seq_len=16).build(len(small_corpus.vocab))
    with pytest.raises(HarnessError, match="gpt carries none"):
        dynamic_evaluate(gpt, small_corpus.val[:100])
    lstm = TrainConfig(**TINY).build(len(small_corpus.vocab))
    with pytest.raises(HarnessError, match="lr > 0"):
        dynamic_evaluate(lstm, small_corpus.val[:100], lr=0.0)
