"""The many-pass regime's tools: regularizers that act at every depth, settings that cannot act, patience,
evaluation spacing. Each test would fail if its feature broke (a dropout that does nothing at one
layer, a stopped trial charged its full budget, an inactive setting credited with an effect)."""

from __future__ import annotations

import optuna
import pytest
import torch
from torch import nn

from harness.data import CorpusOptions, load_corpus
from harness.models import embedding_rows, locked_dropout
from harness.search import parse_study
from harness.search._trial import suggest
from harness.training import Budget, Evaluations, TrainConfig, Trainer, eval_fractions, train

SMALL = dict(embedding_dim=16, hidden_dim=32, seq_len=16, batch_size=8, lr=3e-3)


@pytest.mark.parametrize(("family", "cell"), [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)])
def test_without_regularizers_the_model_is_the_plain_stack_bit_for_bit(family, cell):
    """Off (the default), the forward pass is embedding -> cuDNN stack -> linear, as it always was: same
    initialization order, same random draws of the between-layer dropout, same numbers."""
    torch.manual_seed(7)
    model = TrainConfig(model=family, layers=2, dropout=0.3, **SMALL).build(30)
    torch.manual_seed(7)
    embedding = nn.Embedding(30, 16)
    stack = cell(16, 32, num_layers=2, batch_first=True, dropout=0.3)
    head = nn.Linear(32, 30)
    tokens = torch.randint(0, 30, (4, 12))
    for training in (True, False):
        model.train(training), stack.train(training)
        torch.manual_seed(3)
        ours, _ = model(tokens)
        torch.manual_seed(3)
        plain = head(stack(embedding(tokens))[0])
        assert torch.equal(ours, plain)


def test_locked_dropout_keeps_one_mask_for_every_time_step():
    torch.manual_seed(0)
    x = torch.ones(6, 20, 40)
    y = locked_dropout(x, 0.5, training=True)
    assert torch.equal(y, y[:, :1].expand_as(y))  # the same mask at every step
    assert set(y.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1/(1-p)
    assert not torch.equal(y[0], y[1])  # one mask per sequence
    assert torch.equal(locked_dropout(x, 0.5, training=False), x)


def test_embedding_dropout_drops_whole_characters():
    torch.manual_seed(0)
    weight = torch.randn(50, 8)
    dropped = embedding_rows(weight, 0.4, training=True)
    zero = (dropped == 0).all(dim=1)
    assert 0 < int(zero.sum()) < 50
    assert torch.allclose(dropped[~zero], weight[~zero] / 0.6)


@pytest.mark.parametrize("setting", ["embedding_drop", "dropout_input", "dropout_output", "weight_drop"])
def test_each_regularizer_acts_at_one_layer(setting):
    """At layers = 1, `dropout` acts on nothing; each of these does (train differs from eval), and only
    while training."""
    torch.manual_seed(1)
    plain = TrainConfig(layers=1, dropout=0.5, **SMALL)
    assert "dropout" in plain.inactive()
    tokens = torch.randint(0, 30, (4, 12))
    model = TrainConfig(layers=1, **SMALL, **{setting: 0.5}).build(30)
    model.eval()
    reference, _ = model(tokens)
    model.train()
    regularized, _ = model(tokens)
    assert not torch.allclose(regularized, reference)
    model.eval()
    assert torch.equal(model(tokens)[0], reference)
    idle = plain.build(30)
    idle.train()
    assert torch.equal(idle(tokens)[0], idle.eval()(tokens)[0])  # the old lever: nothing moves


def test_weight_drop_trains_the_raw_matrix_and_leaves_it_in_place():
    torch.manual_seed(2)
    model = TrainConfig(layers=2, weight_drop=0.5, **SMALL).build(30)
    before = {n: p.detach().clone() for n, p in model.rnn.named_parameters()}
    logits, _ = model.train()(torch.randint(0, 30, (4, 12)))
    logits.square().mean().backward()
    for name, p in model.rnn.named_parameters():
        assert torch.equal(p.detach(), before[name]), name  # the mask is applied to a copy per chunk
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert isinstance(model.rnn.weight_hh_l0, nn.Parameter)


def test_decoupled_decay_is_adamw_with_biases_exempt(small_corpus):
    c = TrainConfig(layers=1, weight_decay=0.1, decoupled_decay=True, **SMALL)
    trainer = Trainer(c, small_corpus, Budget.parse("2k"), torch.device("cpu"))
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    decayed, exempt = trainer.optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and exempt["weight_decay"] == 0.0
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    assert all("bias" in names[id(p)] for p in exempt["params"]) and exempt["params"]
    assert isinstance(Trainer(TrainConfig(**SMALL), small_corpus, Budget.parse("2k"), torch.device("cpu")).optimizer,
                      torch.optim.Adam)


def test_settings_that_cannot_act_are_named():
    assert TrainConfig(layers=1).inactive() == ("dropout", "heads", "tie_embeddings")
    assert "dropout" not in TrainConfig(layers=2).inactive()
    gpt = TrainConfig(model="gpt", embedding_dim=32).inactive()
    assert {"weight_drop", "dropout_input", "decoupled_decay"} <= set(gpt) and "heads" not in gpt
    assert {"hidden_dim", "layers", "dropout"} <= set(TrainConfig(model="mlp").inactive())
    assert "dropout" in TrainConfig(model="residual_rnn", layers=1).inactive()


def study(space: str):
    return parse_study({"study": {"name": "t", "sampler": "random"}, **__import__("tomllib").loads(space)})


def test_a_setting_that_cannot_act_is_not_sampled_and_is_recorded():
    spec = study("""
        [space.dropout]
        type = "float"
        low = 0.0
        high = 0.5
        [space.layers]
        type = "int"
        low = 1
        high = 2
        [space.weight_drop]
        type = "float"
        low = 0.0
        high = 0.5
    """)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = trials.ask()
        params = suggest(trial, spec)
        layers = params["layers"]
        seen.add(layers)
        assert ("dropout" in params) == (layers > 1), params  # sampled only where it acts, though listed first
        assert ("dropout" in trial.user_attrs.get("inactive", [])) == (layers == 1)
        assert "weight_drop" in params
        trials.tell(trial, 1.0)
    assert seen == {1, 2}


def overfitting_corpus(tmp_path):
    """Training text 'abab...', validation text 'aaaa...': the better a model learns the training text, the
    worse it predicts the held-out one, from the first evaluation on. Real overfitting, every time."""
    path = tmp_path / "ab.txt"
    path.write_text("ab" * 8000 + "a" * 4000, encoding="utf-8")
    return load_corpus(str(path), CorpusOptions(split=(0.8, 0.2, 0.0)))


def test_patience_stops_a_run_that_stopped_improving_and_charges_what_it_spent(tmp_path):
    corpus = overfitting_corpus(tmp_path)
    config = TrainConfig(model="mlp", embedding_dim=8, seq_len=16, batch_size=8, lr=1e-2)
    full = train(config, corpus, Budget.parse("40k"), evaluations=Evaluations(10))
    assert full.status == "completed" and len(full.curve) == 10
    losses = [p.loss for p in full.curve]
    assert min(losses) == losses[0]  # the text does overfit from the start
    stopped = train(config, corpus, Budget.parse("40k"), evaluations=Evaluations(10, patience=2))
    assert stopped.status == "stopped_early"
    assert [p.index for p in stopped.curve] == [1, 2, 3]
    assert "after evaluation 1" in stopped.reason
    assert stopped.best.index == 1 and stopped.best.loss == full.best.loss
    assert stopped.train_chars < full.train_chars / 2  # it stopped, and its charge is what it ran
    assert stopped.device_seconds == pytest.approx(stopped.train_seconds + stopped.eval_seconds)
    assert stopped.curve[-1].device_seconds <= stopped.device_seconds < full.device_seconds
    assert stopped.summary()["status"] == "stopped_early"


def test_geometric_spacing_evaluates_early_and_ends_at_the_budget(small_corpus):
    even, geometric = eval_fractions(10), eval_fractions(10, "geometric")
    assert even == [k / 10 for k in range(1, 11)]
    assert geometric[0] == pytest.approx(0.01) and geometric[-1] == 1.0
    assert sum(f <= 0.1 for f in geometric) == 5 and sum(f <= 0.1 for f in even) == 1
    result = train(TrainConfig(model="mlp", embedding_dim=8, seq_len=16, batch_size=8), small_corpus,
                   Budget.parse("50k"), evaluations=Evaluations(5, "geometric"))
    fractions = [p.chars / 50_000 for p in result.curve]
    for seen, due in zip(fractions, eval_fractions(5, "geometric"), strict=True):
        assert due <= seen < due + 0.01, (fractions, due)


def test_study_files_take_patience_and_spacing_and_report_a_shared_resource():
    spec = parse_study({"study": {"name": "t"}, "budget": {"evals": 10, "eval_spacing": "geometric", "patience": 3}})
    assert spec.patience == 3 and spec.eval_spacing == "geometric"
    assert [spec.pruner_step(i) for i in (1, 5, 10)] == [10, 77, 1000]  # thousandths of the budget
    assert parse_study({"study": {"name": "t"}}).pruner_step(4) == 4  # even spacing: as always
    from harness.common import HarnessError

    for budget, message in [({"patience": 8, "evals": 8}, "can never run out"),
                            ({"eval_spacing": "log"}, "not one of even, geometric"),
                            ({"patience": -1}, "must be 0")]:
        with pytest.raises(HarnessError, match=message):
            parse_study({"study": {"name": "t"}, "budget": budget})


def test_the_report_does_not_credit_an_old_studys_dropout_at_one_layer(tmp_path):
    """A study from before conditional sampling drew dropout at one layer too: the frame blanks it there,
    and the importance leaves dropout out instead of crediting it with what layers did."""
    from harness.report._figures import fig_importance
    from harness.report._frame import study_frame

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.create_study()
    dists = {"layers": optuna.distributions.IntDistribution(1, 2),
             "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
             "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    for i in range(8):
        layers, dropout, lr = 1 + i % 2, 0.05 * i, 1e-3 * (1 + i)
        config = TrainConfig(layers=layers, dropout=dropout, lr=lr).to_dict()
        trials.add_trial(optuna.trial.create_trial(
            params={"layers": layers, "dropout": dropout, "lr": lr}, distributions=dists,
            value=2.0 - 0.1 * layers + 0.01 * i, user_attrs={"config": config}))
    frame = study_frame(trials)
    one = frame["layers"] == 1
    assert frame.loc[one, "dropout"].isna().all() and frame.loc[~one, "dropout"].notna().all()
    assert (frame.loc[one, "inactive"] == "dropout").all()
    paths, note = fig_importance(trials, tmp_path, ["png"])
    assert paths and "dropout" in note


def test_a_new_studys_unsampled_dropout_is_not_credited_from_the_configs_default():
    """Conditional sampling leaves dropout out of a one-layer trial's params, but its config still holds the
    default (0.3): the frame must blank that too, or the figures credit 0.3 with what layers did."""
    from harness.report._frame import study_frame
    from harness.report._tables import param_summary

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    trials = optuna.create_study()
    for i in range(6):
        layers = 1 + i % 2
        params = {"layers": layers, **({"dropout": 0.1 * i} if layers == 2 else {})}
        dists = {"layers": optuna.distributions.IntDistribution(1, 2),
                 "dropout": optuna.distributions.FloatDistribution(0.0, 0.5)}
        config = TrainConfig(layers=layers, dropout=params.get("dropout", 0.3)).to_dict()
        inactive = ["dropout"] if layers == 1 else []  # what the trial runner records for a draw it skipped
        trials.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                   value=2.0 + 0.01 * i,
                                                   user_attrs={"config": config, "inactive": inactive}))
    frame = study_frame(trials)
    assert frame.loc[frame["layers"] == 1, "dropout"].isna().all()
    summary = param_summary(frame, {"dropout": {"kind": "float"}}).set_index("parameter")
    assert summary.loc["dropout", "trials"] == 3  # the two-layer trials only


def test_max_chars_keeps_the_texts_start_and_a_study_records_it(small_text_file):
    from harness.search import load_study

    corpus = load_corpus(str(small_text_file), CorpusOptions(max_chars=5000))
    assert len(corpus.text) == 5000 and corpus.describe()["max_chars"] == 5000
    assert "max_chars" not in load_corpus(str(small_text_file)).describe()  # older checkpoints' meta unchanged
    from pathlib import Path

    spec = load_study(Path(__file__).parent.parent / "studies" / "prince-many-passes.toml")
    assert spec.corpus_options.max_chars == 64000 and spec.patience == 1 and spec.eval_spacing == "geometric"
    assert spec.to_record()["max_chars"] == 64000
    from harness.common import HarnessError

    with pytest.raises(HarnessError, match=r"\[study\] max_chars"):
        parse_study({"study": {"name": "t", "max_chars": 10}})


@pytest.mark.parametrize(("flags", "message"), [(["--patience", "-1"], "--patience is a number"),
                                                 (["--weight-drop", "1.5"], "weight_drop must be in"),
                                                 (["--max-chars", "10"], "max_chars must be")])
def test_harness_train_refuses_bad_values_before_writing_anything(tmp_path, small_text_file, flags, message, capsys,
                                                                  monkeypatch):
    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--corpus", str(small_text_file), "--budget", "2k", *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
