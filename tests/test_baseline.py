"""The count model every report holds the best model to: a proper distribution, chosen on validation, and
scored on every held-out character once."""

from __future__ import annotations

import math

import pytest

from harness.data import KneserNey, ngram_baseline
from harness.data._ngram import gram_counts

TRAIN = "the cat sat on the mat. the dog sat on the log. " * 20 + "a bat and a rat."
HELD = "the rat sat on the cat. zebra!"
CHARS = sorted(set(TRAIN + HELD))


@pytest.mark.parametrize("order", [2, 3, 5])
def test_every_context_gives_a_distribution_that_sums_to_one(order):
    model = KneserNey(TRAIN, order, len(CHARS))
    for context in ["", "t", "th", "the c", "zzzz", " sat o", "q!"]:
        total = sum(model.prob(context, c) for c in CHARS)
        assert total == pytest.approx(1.0, abs=1e-9), (context, total)
        assert all(model.prob(context, c) > 0 for c in CHARS)  # an unseen character is never impossible


def test_the_adaptive_model_stays_a_distribution_and_learns_the_held_out_text():
    model = KneserNey(TRAIN, 4, len(CHARS))
    static = KneserNey(TRAIN, 4, len(CHARS)).bits(HELD * 3)
    adaptive = model.bits(HELD * 3, adaptive=True)
    assert adaptive < static - 0.3  # it has read the first copy when it predicts the second
    for context in ["", "the", "zeb", "a!"]:
        assert sum(model.prob(context, c) for c in CHARS) == pytest.approx(1.0, abs=1e-9)
    fresh = gram_counts(TRAIN, 4)
    assert model.seen[4]["zebr"] > fresh[4]["zebr"] == 0  # the held-out 4-grams were counted


def test_bits_score_every_character_after_the_first_once():
    model = KneserNey(TRAIN, 3, len(CHARS))
    by_hand = -sum(math.log2(model.prob(HELD[max(0, i - 2):i], HELD[i])) for i in range(1, len(HELD)))
    assert model.bits(HELD) == pytest.approx(by_hand / (len(HELD) - 1))


def test_the_order_is_chosen_on_validation_and_test_is_scored_with_it():
    b = ngram_baseline(TRAIN, HELD, HELD + " the end", len(CHARS), max_order=6, unigram_val_bpc=4.0)
    assert b.order == int(min(b.val_by_order, key=b.val_by_order.get))
    assert b.val_bpc == b.val_by_order[str(b.order)]
    assert b.test_bpc == pytest.approx(KneserNey(TRAIN, b.order, len(CHARS)).bits(HELD + " the end"))
    assert b.model == f"interpolated Kneser-Ney {b.order}-gram"
    assert ngram_baseline(TRAIN, HELD, "", len(CHARS), max_order=3).test_bpc is None  # no test split


def test_the_corpus_scores_the_text_as_the_model_sees_it(small_corpus):
    b = small_corpus.count_baseline(max_order=5)
    assert b.val_bpc < b.unigram_val_bpc - 1.0
    assert b.val_bpc_adaptive < b.val_bpc  # reading the held-out text as it goes can only help here


def test_a_sweep_stores_the_figure_to_beat_and_every_reader_shows_it(tmp_path, small_text_file, capsys):
    """A tiny many-pass study (geometric evaluations, patience, a regularizer, dropout at one layer) end to end:
    the study holds the count model's figures, and status, the report's opening and trials.meta.json say them."""
    import json

    from harness.cli import main
    from harness.search import BASELINE_ATTR, open_storage

    study_file = tmp_path / "passes.toml"
    study_file.write_text(f"""
[study]
name = "passes"
corpus = "{small_text_file}"
trials = 3
sampler = "random"
pruner = "none"
device = "cpu"

[budget]
per_trial = "30k"
evals = 4
eval_spacing = "geometric"
patience = 2

[fixed]
model = "lstm"
layers = 1
embedding_dim = 16
hidden_dim = 32
seq_len = 32
batch_size = 16

[space.dropout]
type = "float"
low = 0.0
high = 0.5

[space.dropout_output]
type = "float"
low = 0.0
high = 0.5
""")
    results = tmp_path / "res"
    assert main(["sweep", str(study_file), "--results", str(results)]) == 0
    import optuna

    study = optuna.load_study(study_name="passes", storage=open_storage(results, None))
    stored = study.user_attrs[BASELINE_ATTR]
    assert stored["val_bpc"] == pytest.approx(study_baseline(small_text_file)["val_bpc"])
    trials = study.get_trials()
    assert all("dropout" not in t.params and "dropout_output" in t.params for t in trials)
    assert all(t.user_attrs["inactive"] == ["dropout"] for t in trials)
    assert all(sorted(t.intermediate_values) == [62, 157, 397, 1000][:len(t.intermediate_values)] for t in trials)
    capsys.readouterr()
    assert main(["status", str(results)]) == 0
    assert f"figure to beat: {stored['model']}" in capsys.readouterr().out
    assert main(["report", str(results)]) == 0
    report = (results / "report" / "report.md").read_text()
    opening = report[report.index("Against the figure to beat"):].splitlines()[0]
    assert f"count-based {stored['order']}-gram" in opening and f"{stored['val_bpc']:.3f}" in opening
    meta = json.loads((results / "report" / "trials.meta.json").read_text())
    assert meta["count_model"]["val_bpc"] == stored["val_bpc"]


def study_baseline(path):
    from harness.data import CorpusOptions, load_corpus

    return load_corpus(str(path), CorpusOptions()).count_baseline().to_dict()
