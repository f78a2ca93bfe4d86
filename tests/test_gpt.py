"""The gpt family: exact sliding-window evaluation, cached generation, FLOPs, the stateless trainer, studies."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from harness.common import HarnessError
from harness.data import Vocab
from harness.diagnostics import embedding_matrix, not_measured
from harness.models import build_model, flops_per_char, gpt_attention_flops
from harness.search import parse_study
from harness.training import (
    Budget,
    Evaluations,
    TrainConfig,
    Trainer,
    evaluate,
    load_checkpoint,
    sample_batch,
)
from harness.training._evaluation import evaluate_windows


def tiny_gpt(context: int = 12, vocab: int = 20, seed: int = 0) -> nn.Module:
    """Weights far from their small initialization, so that every character of the context moves the logits."""
    torch.manual_seed(seed)
    model = build_model("gpt", vocab, 16, 32, 2, 0.0, heads=4, seq_len=context).double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.7)
    return model


def reference_nll(model, tokens: torch.Tensor) -> float:
    """One character at a time: target i is predicted from tokens[start:i], start from the rule written out
    here independently of the evaluation's code: the first L targets from the text's start; target i > L
    from the window of stride s = L // 2 whose last half holds it, or the last window ending at the end."""
    n_targets, length = len(tokens) - 1, min(model.context, len(tokens) - 1)
    stride = max(1, length // 2)
    last_full = (n_targets - length) // stride * stride  # start of the last window on the stride grid
    total = 0.0
    for i in range(1, n_targets + 1):
        if i <= length:
            start = 0
        elif i <= last_full + length:
            start = math.ceil((i - length) / stride) * stride
        else:
            start = n_targets - length
        assert i - start >= min(i, length - stride + 1) and i - start <= length  # the context promised
        logits, _ = model(tokens[start:i].unsqueeze(0), None)
        total += F.cross_entropy(logits[0, -1:], tokens[i : i + 1]).item()
    return total / n_targets


@pytest.mark.parametrize(("n", "context"), [(60, 12), (61, 12), (40, 7), (9, 12), (13, 12), (50, 1)])
def test_windowed_evaluation_matches_one_character_at_a_time(n, context):
    model = tiny_gpt(context)
    tokens = torch.randint(0, 20, (n,), generator=torch.Generator().manual_seed(n))
    assert evaluate(model, tokens) == pytest.approx(reference_nll(model, tokens), rel=1e-6)


def test_windowed_evaluation_does_not_depend_on_the_batch():
    model = tiny_gpt(16)
    tokens = torch.randint(0, 20, (500,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        one, n1 = evaluate_windows(model, tokens, batch=1)
        many, n2 = evaluate_windows(model, tokens, batch=64)
    assert n1 == n2 == 499 and float(one) == pytest.approx(float(many), rel=1e-12)


def test_the_cache_gives_the_logits_of_a_full_pass():
    model = tiny_gpt(20)
    tokens = torch.randint(0, 20, (3, 20), generator=torch.Generator().manual_seed(2))
    full, _ = model(tokens, None)
    cache = model.initial_state(3)
    pieces = [model(tokens[:, a:b], cache)[0] for a, b in ((0, 7), (7, 8), (8, 20))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    with pytest.raises(ValueError, match="at most 20 positions"):
        model(tokens[:, :1], cache)


def test_cached_generation_is_greedy_decoding_with_the_stated_context():
    """Greedy output equals a reference that re-reads the context from scratch for every character: the
    prompt cropped to the last L characters, the context restarting from the last L // 2 when it is full."""
    vocab = Vocab.from_text("abcdefghijklmnopqrs")
    model = tiny_gpt(10, vocab=len(vocab))
    prompt = "abcdefghijklmnopq"  # 17 characters, longer than the context of 10
    [greedy] = sample_batch(model, vocab, prompt, 40, [0.0], samples=2)
    assert greedy.cropped == 7 and greedy.texts[0] == greedy.texts[1]
    history = vocab.encode(prompt)[7:].tolist()
    start, expected = 0, []
    for _ in range(40):
        if len(history) - start > 10:
            start = len(history) - 5
        logits, _ = model(torch.tensor([history[start:]]), None)
        history.append(int(logits[0, -1].argmax()))
        expected.append(history[-1])
    assert greedy.texts[0] == vocab.decode(torch.tensor(expected))
    sampled = [sample_batch(model, vocab, "abc", 30, [0.7, 1.3], samples=3, seeds=[5, 6]) for _ in range(2)]
    assert [g.texts for g in sampled[0]] == [g.texts for g in sampled[1]]  # seeded identically
    alone = sample_batch(model, vocab, "abc", 30, [1.3], samples=3, seeds=[6])
    assert alone[0].texts == sampled[0][1].texts  # each temperature keeps its own stream


def test_flops_count_every_matrix_and_the_attention_term():
    vocab, width, mlp, blocks, context = 65, 64, 256, 3, 128
    model = build_model("gpt", vocab, width, mlp, blocks, 0.0, heads=4, seq_len=context, tie_embeddings=False)
    matrices = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    assert flops_per_char("gpt", vocab, width, mlp, blocks, context) == 6 * matrices + 12 * blocks * width * context
    assert gpt_attention_flops(width, blocks, context) == 12 * blocks * width * context
    tied = build_model("gpt", vocab, width, mlp, blocks, 0.0, heads=4, seq_len=context)
    assert tied.head.weight is tied.embedding.weight  # tied: fewer parameters, the same matmuls
    assert sum(p.numel() for p in tied.parameters()) == sum(p.numel() for p in model.parameters()) - vocab * width
    assert flops_per_char("lstm", vocab, width, mlp, 2, context) == flops_per_char("lstm", vocab, width, mlp, 2)


def test_heads_must_divide_the_width(tmp_path):
    with pytest.raises(HarnessError, match="embedding_dim 100 is not divisible by heads 8"):
        TrainConfig(model="gpt", embedding_dim=100, heads=8).validate()
    TrainConfig(model="lstm", embedding_dim=100, heads=8).validate()  # heads means nothing to an LSTM
    study = {"study": {"name": "s"}, "fixed": {"model": "gpt"},
             "space": {"embedding_dim": {"type": "int", "low": 64, "high": 128},
                       "heads": {"type": "categorical", "choices": [2, 4]}}}
    with pytest.raises(HarnessError, match=r"\[space.embedding_dim\] / \[space.heads\].*embedding_dim 65 is not "
                                           r"divisible by heads 2"):
        parse_study(study)
    study["space"]["embedding_dim"]["step"] = 32
    assert parse_study(study).space["heads"].choices == [2, 4]


def test_each_family_gets_its_own_space_and_the_record_round_trips():
    data = {
        "study": {"name": "both", "sampler": "random", "trials": 6, "seed": 1},
        "fixed": {"batch_size": 8, "gpt": {"lr_schedule": "cosine", "lr_warmup": 0.05}},
        "space": {"model": {"type": "categorical", "choices": ["lstm", "gpt"]},
                  "lstm": {"hidden_dim": {"type": "int", "low": 16, "high": 32}},
                  "gpt": {"heads": {"type": "categorical", "choices": [1, 2]},
                          "embedding_dim": {"type": "categorical", "choices": [16, 32]}}},
    }
    spec = parse_study(data)
    assert set(spec.space) == {"model", "lstm.hidden_dim", "gpt.heads", "gpt.embedding_dim"}
    assert spec.values_for({"model": "gpt"})["lr_schedule"] == "cosine"
    assert "lr_schedule" not in spec.values_for({"model": "lstm"})
    again = harness.search.StudySpec.from_record(spec.to_record())
    assert again.to_record() == spec.to_record()
    with pytest.raises(HarnessError, match=r"\[fixed/space.gpt\] batch_size: batch_size is already set"):
        parse_study({**data, "fixed": {"batch_size": 8, "gpt": {"batch_size": 4}}})
    with pytest.raises(HarnessError, match="no trial trains gru"):
        parse_study({**data, "space": {**data["space"], "gru": {"lr": {"type": "float", "low": 1e-3, "high": 1e-2}}}})
    with pytest.raises(HarnessError, match=r"\[space.gpt.heads\].*per-family spaces need"):
        parse_study({**data, "study": {**data["study"], "sampler": "grid"}})


def test_the_stateless_trainer_learns_from_random_windows_with_adamw(small_corpus, tmp_path):
    config = TrainConfig(model="gpt", embedding_dim=32, hidden_dim=64, layers=2, heads=4, dropout=0.0, seq_len=32,
                         batch_size=16, lr=3e-3, weight_decay=0.1, lr_schedule="cosine", lr_warmup=0.1)
    trainer = Trainer(config, small_corpus, Budget.parse("40k"), torch.device("cpu"), out_dir=tmp_path, evaluations=Evaluations(2))
    groups = trainer.optimizer.param_groups
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    decayed = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert id(trainer.model.embedding.weight) not in decayed and id(trainer.model.norm.weight) not in decayed
    assert id(trainer.model.blocks[0].attention.qkv.weight) in decayed
    result = trainer.run()
    assert result.status == "completed" and result.train_chars >= 40_000
    assert result.curve[-1].bpc < result.curve[0].bpc + 0.5 and result.best.bpc < 5.0
    assert result.eval_context.startswith("sliding windows of 32, stride 16")
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt.model.context == 32 and ckpt.model.head.weight is ckpt.model.embedding.weight
    assert embedding_matrix(ckpt.model).shape == (len(ckpt.vocab), 32)
    held_out = small_corpus.val.to(torch.long)
    assert evaluate(ckpt.model, held_out) == pytest.approx(result.best.loss, rel=1e-6)


def test_gradflow_says_plainly_why_it_does_not_apply():
    assert "no recurrent state" in not_measured("gpt") and not_measured("lstm") is None
    assert "current character only" in not_measured("mlp")


def test_a_study_compares_lstm_and_gpt_each_in_its_own_space(small_text_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = parse_study({
        "study": {"name": "versus", "corpus": str(small_text_file), "trials": 4, "sampler": "random",
                  "pruner": "none", "device": "cpu", "seed": 2},
        "budget": {"per_trial": "12k", "evals": 3},
        "fixed": {"seq_len": 32, "batch_size": 8, "dropout": 0.0, "layers": 1,
                  "gpt": {"lr_schedule": "cosine", "lr_warmup": 0.1, "hidden_dim": 64}},
        "space": {"model": {"type": "categorical", "choices": ["lstm", "gpt"], "balanced": True},
                  "lr": {"type": "float", "low": 2e-3, "high": 1e-2, "log": True},
                  "lstm": {"hidden_dim": {"type": "categorical", "choices": [32, 48]}},
                  "gpt": {"heads": {"type": "categorical", "choices": [2, 4]},
                          "embedding_dim": {"type": "categorical", "choices": [16, 32]}}},
        "generate": {"length": 40, "samples": 1, "temperatures": [1.0], "prompt": "x" * 50},
    })
    assert harness.run_sweep(spec).stop == "planned"
    study = harness.load_results("results/versus")
    families = sorted(t.user_attrs["config"]["model"] for t in study.trials)
    assert families == ["gpt", "gpt", "lstm", "lstm"], "balanced: each family gets half the trials"
    for t in study.trials:
        config, params = t.user_attrs["config"], t.params
        assert t.state.name == "COMPLETE"
        if config["model"] == "gpt":
            assert set(params) == {"model", "lr", "gpt.heads", "gpt.embedding_dim"}
            assert config["heads"] == params["gpt.heads"] and config["lr_schedule"] == "cosine"
            assert t.user_attrs["eval_context"].startswith("sliding windows of 32")
            assert t.user_attrs["generation"]["prompt_cropped"] == 18  # the 50-character prompt, cut to 32
        else:
            assert set(params) == {"model", "lr", "lstm.hidden_dim"} and config["lr_schedule"] == "constant"
            assert t.user_attrs["eval_context"].startswith("carried state")
    report = harness.build_report("results/versus")
    html = (report.out_dir / "report.html").read_text()
    assert "Which family, for the device-seconds you can spend" in html
    assert "gpt bpc" in html and "lstm bpc" in html and "sliding windows of 32" in html
    assert "gradient flow through time does not apply" in html


def test_resume_compares_each_familys_settings_and_older_records_still_resume():
    from harness.search._resume import check_resume

    data = {"study": {"name": "r", "sampler": "random"}, "fixed": {"gpt": {"lr_schedule": "cosine"}},
            "space": {"model": {"type": "categorical", "choices": ["lstm", "gpt"], "balanced": True},
                      "gpt": {"heads": {"type": "categorical", "choices": [1, 2]}}}}
    before = parse_study(data).to_record()
    changed = {**data, "fixed": {"gpt": {"lr_schedule": "wsd"}}}
    refusals, _ = check_resume(before, parse_study(changed).to_record())
    assert refusals == ["[fixed.gpt] lr_schedule: 'cosine' -> 'wsd'"]
    unbalanced = {**data, "space": {**data["space"], "model": {"type": "categorical", "choices": ["lstm", "gpt"]}}}
    assert check_resume(before, parse_study(unbalanced).to_record())[0] == [
        "[space.model]: {'name': 'model', 'kind': 'categorical', 'log': False, 'choices': ['lstm', 'gpt'], "
        "'balanced': True} -> {'name': 'model', 'kind': 'categorical', 'log': False, 'choices': ['lstm', 'gpt']}"]
    plain = {"study": {"name": "r"}, "space": {"model": {"type": "categorical", "choices": ["lstm", "gru"]}}}
    old = parse_study(plain).to_record()  # a record of the previous release has neither family nor balanced
    for param in old["space"].values():
        param.pop("balanced"), param.pop("family")
    old.pop("family_fixed")
    assert check_resume(old, parse_study(plain).to_record())[0] == []


def test_confirm_refuses_a_study_without_a_test_split(tmp_path, small_text_file):
    from harness.search import ConfirmPlan, SweepOptions, run_confirm

    spec = parse_study({"study": {"name": "nt", "corpus": str(small_text_file), "split": [0.9, 0.1, 0.0]}})
    with pytest.raises(HarnessError, match=r"has no test split \(split \[0.9, 0.1, 0.0\]\)"):
        run_confirm(spec, SweepOptions(results_dir=tmp_path), ConfirmPlan(top=1, seeds=1))


def test_which_family_per_budget_reads_each_familys_frontier():
    import pandas as pd

    from harness.report._families import budget_sentence, family_by_budget

    points = pd.DataFrame({"trial": [1, 1, 2, 2, 3], "state": ["COMPLETE"] * 5, "eval": [1, 2, 1, 2, 1],
                           "device_seconds": [5.0, 10.0, 5.0, 10.0, 10.0], "bpc": [3.0, 2.0, 2.5, 2.2, 2.1],
                           "family": ["lstm", "lstm", "gpt", "gpt", "gpt"]})
    table = family_by_budget(points, [1.0, 5.0, 10.0])
    assert table["winner"].tolist()[1:] == ["gpt", "lstm"] and pd.isna(table["winner"][0])
    assert table["gpt trial"].tolist()[1:] == [2, 3] and table["margin bpc"][2] == pytest.approx(0.1)
    assert budget_sentence(table) == ("Which family, for the device-seconds you can spend: the winner depends on the "
                                      "budget (5 s: gpt by 0.500 bpc; 10 s: lstm by 0.100 bpc).")
    # with the trial counts: a side with too few trials gets no verdict, and the counts are said
    assert budget_sentence(table, {"lstm": 1, "gpt": 2}).startswith(
        "Which family, for the device-seconds you can spend: too few trials to name a winner (gpt, lstm had fewer "
        "than 3; gpt 2 complete trials, lstm 1 complete trial)")
    assert "the winner depends on the budget (gpt 5 complete trials, lstm 4 complete trials)" in budget_sentence(table, {"lstm": 4,
                                                                                                      "gpt": 5})
    close = table.assign(**{"margin bpc": [None, 0.02, 0.01]})
    assert "no family leads by more than the seed noise (0.05 bpc; gpt 5 complete trials, lstm 4 complete trials)" in \
        budget_sentence(close, {"lstm": 4, "gpt": 5})
    assert "10 s: lstm by 0.010 bpc, within noise" in budget_sentence(close, {"lstm": 4, "gpt": 5})
