"""Each metric against values worked out by hand, including the course's three example texts."""

from __future__ import annotations

import math

import pytest

from harness.common import bits_per_char, perplexity
from harness.measure import textmetrics as m

LOW = "the greatest difficulty.the other to maintain themselves."
MEDIUM = ("the greatest becoming poor at any private person. he kept having followed a bandon of the army in "
          "susperition than recognio, having been seen also assist the venetians, and to rem ain into italy,[1] "
          "this city o")
HIGH = ("the great country who we fuit divides him, so that i any easily eled by bind in the beginning was "
        "cansterfor thy battle, he remains at your discourable.")


def test_low_quality_example():
    assert m.words(LOW) == ["the", "greatest", "difficulty", "the", "other", "to", "maintain", "themselves"]
    assert m.distinctness(LOW) == 7 / 8  # the course printed 1.000: "difficulty.the" was one word
    assert m.repetition_ratio(LOW) == 0.0
    assert m.mean_word_length(LOW) == 49 / 8
    assert m.sentence_count(LOW) == 2  # the course's count ('!' twice, never '.') gave 0
    assert m.mean_sentence_length(LOW) == (3 + 5) / 2
    assert m.vocabulary_size(LOW) == 7
    assert m.word_entropy(LOW) == pytest.approx(0.25 * math.log(4) + 0.75 * math.log(8))


def test_medium_quality_example():
    w = m.words(MEDIUM)
    assert len(w) == 38
    assert w[-5:] == ["italy", "1", "this", "city", "o"]
    assert m.distinctness(MEDIUM) == 35 / 38  # 'the' x3, 'having' x2
    expected = -(3 / 38 * math.log(3 / 38) + 2 / 38 * math.log(2 / 38) + 33 / 38 * math.log(1 / 38))
    assert m.word_entropy(MEDIUM) == pytest.approx(expected)
    assert m.sentence_count(MEDIUM) == 2
    assert m.mean_sentence_length(MEDIUM) == 38 / 2


def test_high_quality_example():
    assert len(m.words(HIGH)) == 28
    assert m.distinctness(HIGH) == 27 / 28
    assert m.word_entropy(HIGH) == pytest.approx(math.log(28) - 2 / 28 * math.log(2))
    assert m.sentence_count(HIGH) == 1
    assert m.mean_sentence_length(HIGH) == 28


def test_repetition_and_terminators():
    assert m.repetition_ratio("the the the and the") == 2 / 4
    assert m.sentence_count("Stop! Really? Yes... fine") == 4
    assert m.sentence_count("!!! ... ??") == 0
    assert m.mean_sentence_length("") == 0.0
    assert m.words("Don't stop_now, ruler,") == ["don't", "stop", "now", "ruler"]


def test_sliding_ttr():
    assert m.sliding_ttr("a b a b c", window=2) == 1.0
    assert m.sliding_ttr("a b a b c", window=3) == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m.sliding_ttr("a a", window=50) == 0.5
    assert m.sliding_ttr("", window=5) == 0.0


def test_coverage_real_words_and_novelty():
    ref = m.Reference("The cat sat on the mat.")
    assert m.real_word_share("the cat sat on a mat", ref) == 5 / 6
    assert m.novelty("the cat sat on a mat", ref) == 2 / 3
    assert m.novelty("the cat sat on the mat", ref) == 0.0
    assert m.novelty("too short", ref) is None
    assert m.vocabulary_coverage("a cat on a hat", "the cat sat on the mat") == 2 / 5
    assert m.vocabulary_coverage("a cat on a hat", ref) == 2 / 5


def test_self_bleu_is_bleu():
    # "a b c d" against "a b c d e": all n-gram precisions 1, brevity penalty exp(1 - 5/4);
    # the other way: precisions 4/5, 3/4, 2/3, 1/2 and no brevity penalty.
    expected = (math.exp(1 - 5 / 4) + (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25) / 2
    assert m.self_bleu(["a b c d", "a b c d e"]) == pytest.approx(expected, abs=1e-4)
    assert m.self_bleu(["same words here today", "same words here today"]) == pytest.approx(1.0)
    assert m.self_bleu(["alpha beta gamma delta", "one two three four"]) == pytest.approx(0.0, abs=1e-6)
    assert m.self_bleu(["only one"]) is None


def test_jaccard_overlap_keeps_its_name():
    assert m.jaccard_overlap(["a b", "b c"]) == 1 / 3
    assert m.jaccard_overlap(["a b c", "a b d"], n=2) == 1 / 3
    assert m.jaccard_overlap(["x"]) is None


def test_perplexity_and_bpc():
    assert perplexity(math.log(55)) == pytest.approx(55)
    assert bits_per_char(math.log(2)) == pytest.approx(1.0)
    assert perplexity(1e4) == math.inf  # a diverged loss: infinite, never a capped number that looks measured


def test_sample_metrics_groups():
    result = m.sample_metrics([LOW, HIGH], m.Reference(MEDIUM))
    assert result["distinctness"] == pytest.approx((7 / 8 + 27 / 28) / 2)
    assert result["sentence_count"] == 1.5
    assert set(result) >= {"real_word_share", "novelty", "self_bleu", "jaccard_overlap", "vocabulary_coverage"}
