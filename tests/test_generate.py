from __future__ import annotations

import json

import pytest
import torch
from sweep_helpers import harness_cli

from harness.common import HarnessError
from harness.data import Vocab
from harness.models import build_model, family_names
from harness.training import (
    Budget,
    Evaluations,
    TrainConfig,
    filter_logits,
    sample,
    sample_temperatures,
    train,
)
from harness.training._generation import draw

VOCAB = Vocab.from_text("abcdefgh ijklmnopqrstuvwxyz.,")


@pytest.mark.parametrize("family", family_names())
def test_stateful_steps_equal_a_full_rerun(family):
    """What generation relies on: carrying the state (gpt: its key/value cache) one character at a time gives
    the same logits."""
    torch.manual_seed(0)
    model = build_model(family, len(VOCAB), 12, 20, 2, 0.0).eval()
    tokens = torch.randint(0, len(VOCAB), (2, 30))
    with torch.no_grad():
        full, _ = model(tokens, None)
        state, stepped = model.initial_state(2), []
        for t in range(tokens.shape[1]):
            logits, state = model(tokens[:, t : t + 1], state)
            stepped.append(logits)
    torch.testing.assert_close(torch.cat(stepped, dim=1), full, rtol=1e-5, atol=1e-5)


def test_greedy_sampling_equals_greedy_rerun_over_the_whole_prefix():
    torch.manual_seed(1)
    model = build_model("lstm", len(VOCAB), 12, 20, 2, 0.0).eval()
    got = sample(model, VOCAB, "the ", 25, temperature=0.0, samples=2).texts
    ids = VOCAB.encode("the ").tolist()
    with torch.no_grad():
        for _ in range(25):
            logits, _ = model(torch.tensor([ids]), None)
            ids.append(int(logits[0, -1].argmax()))
    expected = VOCAB.decode(ids[4:])
    assert got == [expected, expected]


def test_seed_reproduces_and_temperature_matters():
    torch.manual_seed(2)
    model = build_model("gru", len(VOCAB), 12, 20, 1, 0.0).eval()
    a = sample(model, VOCAB, "ab", 40, 1.0, samples=3, seed=5).texts
    b = sample(model, VOCAB, "ab", 40, 1.0, samples=3, seed=5).texts
    c = sample(model, VOCAB, "ab", 40, 1.0, samples=3, seed=6).texts
    assert a == b
    assert a != c
    assert len(set(a)) > 1  # one batch, independent rows
    assert all(len(t) == 40 for t in a)
    assert sample(model, VOCAB, "ab", 40, 1.0, samples=2, seed=5, top_k=1).texts == \
        sample(model, VOCAB, "ab", 40, 0.0, samples=2).texts


def test_all_temperatures_in_one_batch_keep_their_own_samples():
    """One batch for every temperature, yet each temperature's samples are those it would get alone."""
    torch.manual_seed(3)
    model = build_model("lstm", len(VOCAB), 12, 20, 2, 0.0).eval()
    together = sample_temperatures(model, VOCAB, "ab", 30, [0.5, 1.0, 0.0, 1.5], samples=3, seed=11)
    assert [g.temperature for g in together] == [0.5, 1.0, 0.0, 1.5]
    for i, group in enumerate(together):
        alone = sample(model, VOCAB, "ab", 30, group.temperature, samples=3, seed=11 + i)
        assert group.texts == alone.texts
    assert len(set(together[2].texts)) == 1  # greedy rows agree
    assert len(set(together[3].texts)) > 1


def test_inverse_cdf_draws_follow_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.2]], dtype=torch.float64).expand(40000, -1)
    picked = draw(probs, torch.rand(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    freq = torch.bincount(picked, minlength=4).double() / 40000
    assert freq[1] == 0  # a zero-probability symbol is never drawn
    torch.testing.assert_close(freq, probs[0], atol=0.01, rtol=0)


def test_filter_logits():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isinf(filter_logits(logits, top_k=2, top_p=None)[0, 2:]).all()
    kept = ~torch.isinf(filter_logits(logits, top_k=None, top_p=0.7))
    assert kept.tolist() == [[True, True, False, False]]  # 0.5 < 0.7 <= 0.8
    assert not torch.isinf(filter_logits(logits, None, 1.0)).any()


def test_unknown_prompt_symbols():
    model = build_model("mlp", len(VOCAB), 8, 8, 1, 0.0)
    with pytest.raises(HarnessError, match=r"lacks: 'Q', '!'"):
        sample(model, VOCAB, "abQc!", 5, 1.0)
    assert len(sample(model, VOCAB, "abQc", 5, 1.0, unknown="drop", seed=1).texts[0]) == 5
    assert len(sample(model, VOCAB, "abQc", 5, 1.0, unknown="unk", seed=1).texts[0]) == 5
    with pytest.raises(HarnessError, match="empty"):
        sample(model, VOCAB, "", 5, 1.0)


@pytest.fixture(scope="module")
def checkpoint(small_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen")
    config = TrainConfig(model="lstm", embedding_dim=16, hidden_dim=48, layers=1, dropout=0.0, seq_len=32,
                         batch_size=16, lr=3e-3)
    return train(config, small_corpus, Budget.parse("40k"), out_dir=out, evaluations=Evaluations(1)).checkpoint


def test_generate_cli_json(checkpoint, small_text_file):
    proc = harness_cli("generate", checkpoint, "--prompt", "The ", "--temperature", "0", "1.0", "--length", "60",
                "--samples", "2", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    temps = report["temperatures"]
    assert [t["temperature"] for t in temps] == [0.0, 1.0]
    assert temps[0]["samples"][0] == temps[0]["samples"][1]  # greedy: identical rows
    assert all(len(s) == 60 for t in temps for s in t["samples"])
    assert temps[1]["metrics"]["real_word_share"] is not None  # the training text was found
    again = json.loads(harness_cli("generate", checkpoint, "--prompt", "The ", "--temperature", "0", "1.0", "--length",
                            "60", "--samples", "2", "--seed", "3", "--json").stdout.strip().splitlines()[-1])
    assert again["temperatures"][1]["samples"] == temps[1]["samples"]


def test_generate_cli_text_and_errors(checkpoint):
    proc = harness_cli("generate", checkpoint, "--prompt", "the", "--length", "30", "--samples", "2", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "=== temperature 0.5 ===" in proc.stdout and "self_bleu" in proc.stdout
    bad = harness_cli("generate", checkpoint, "--prompt", "☃ snow")
    assert bad.returncode == 2 and "'☃'" in bad.stderr and "Traceback" not in bad.stderr


def test_evaluate_cli(checkpoint):
    proc = harness_cli("evaluate", checkpoint, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["split"] == "test"
    assert result["bpc"] == pytest.approx(result["loss"] / 0.6931471805599453)
    assert 0 < result["bpc"] < 6
