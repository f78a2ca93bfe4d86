"""Text-quality metrics for generated samples: plain functions, each with what it measures and its range.

Words are maximal runs of letters or digits, with inner apostrophes kept ("don't"), lower-cased:
splitting on white space, as the course toolkit did, counts "difficulty.the" as one word and
"ruler," and "ruler" as two. Sentences are the stretches between runs of '.', '!' or '?' that
hold at least one word (an unterminated tail counts as a sentence).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")
_TERMINATORS = re.compile(r"[.!?]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinctness(text: str) -> float:
    """Type-token ratio: distinct words / words. Range [0, 1]; higher is more varied; 0 for no words."""
    w = words(text)
    return len(set(w)) / len(w) if w else 0.0


def repetition_ratio(text: str) -> float:
    """Share of adjacent word pairs that repeat ("the the"). Range [0, 1]; lower is better; 0 below 2 words."""
    w = words(text)
    if len(w) < 2:
        return 0.0
    return sum(a == b for a, b in zip(w, w[1:], strict=False)) / (len(w) - 1)


def mean_word_length(text: str) -> float:
    """Mean characters per word. Range [0, inf); 0 for no words."""
    w = words(text)
    return sum(map(len, w)) / len(w) if w else 0.0


def sentences(text: str) -> list[list[str]]:
    return [w for w in (words(part) for part in _TERMINATORS.split(text)) if w]


def sentence_count(text: str) -> int:
    """Sentences: stretches between '.', '!' or '?' runs that contain a word. Range 0, 1, 2, ..."""
    return len(sentences(text))


def mean_sentence_length(text: str) -> float:
    """Mean words per sentence. Range [0, inf); 0 for no sentences."""
    s = sentences(text)
    return sum(map(len, s)) / len(s) if s else 0.0


def vocabulary_size(text: str) -> int:
    """Number of distinct words. Range 0, 1, 2, ..."""
    return len(set(words(text)))


def word_entropy(text: str) -> float:
    """Entropy of the word frequency distribution in nats. Range [0, ln(words)]; higher is more diverse."""
    counts = Counter(words(text))
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0


def sliding_ttr(text: str, window: int = 50) -> float:
    """Mean type-token ratio over every window of `window` consecutive words (whole text if shorter).

    Unlike plain TTR it does not fall just because a text is long. Range [0, 1]; 0 for no words.
    """
    w = words(text)
    if not w:
        return 0.0
    if len(w) <= window:
        return len(set(w)) / len(w)
    counts = Counter(w[:window])
    total = len(counts)
    for i in range(window, len(w)):
        out, new = w[i - window], w[i]
        counts[out] -= 1
        if counts[out] == 0:
            del counts[out]
        counts[new] += 1
        total += len(counts)
    return total / (len(w) - window + 1) / window


def vocabulary_coverage(generated: str, reference: str | Reference) -> float:
    """Share of the reference text's distinct words that the generated text uses. Range [0, 1]."""
    ref = reference.words if isinstance(reference, Reference) else set(words(reference))
    return len(set(words(generated)) & ref) / len(ref) if ref else 0.0


def self_bleu(samples: Sequence[str]) -> float | None:
    """Mean sentence-BLEU (n = 1..4, brevity penalty, sacrebleu's 13a tokens) of each sample against the rest.

    Range [0, 1]; higher means the samples repeat each other; None with fewer than two samples.
    """
    if len(samples) < 2:
        return None
    from sacrebleu.metrics import BLEU

    bleu = BLEU(max_ngram_order=4, effective_order=True)
    scores = [bleu.sentence_score(s, [r for j, r in enumerate(samples) if j != i]).score
              for i, s in enumerate(samples)]
    return sum(scores) / len(scores) / 100.0


def jaccard_overlap(samples: Sequence[str], n: int = 1) -> float | None:
    """Mean pairwise Jaccard overlap of the samples' word n-gram sets (the course's "self-BLEU").

    Range [0, 1]; None with fewer than two samples.
    """
    if len(samples) < 2:
        return None
    grams = [ngrams(words(s), n) for s in samples]
    scores = [len(a & b) / len(a | b) if a and b else 0.0
              for i, a in enumerate(grams) for b in grams[i + 1 :]]
    return sum(scores) / len(scores)


def ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class Reference:
    """The training text's words and word 4-grams, computed once and reused for every sample."""

    def __init__(self, text: str):
        tokens = words(text)
        self.words = set(tokens)
        self.fourgrams = ngrams(tokens, 4)


def real_word_share(text: str, reference: Reference) -> float | None:
    """Share of generated words that occur in the training text. Range [0, 1]; None for no words."""
    w = words(text)
    return sum(x in reference.words for x in w) / len(w) if w else None


def novelty(text: str, reference: Reference) -> float | None:
    """Share of generated word 4-grams absent from the training text: 0 means copied verbatim.

    Range [0, 1]; None for fewer than four words.
    """
    grams = [tuple(g) for g in _windows(words(text), 4)]
    return sum(g not in reference.fourgrams for g in grams) / len(grams) if grams else None


def _windows(tokens: Sequence[str], n: int) -> Iterable[Sequence[str]]:
    return (tokens[i : i + n] for i in range(len(tokens) - n + 1))


SINGLE_TEXT_METRICS = {
    "distinctness": distinctness,
    "repetition_ratio": repetition_ratio,
    "mean_word_length": mean_word_length,
    "sentence_count": sentence_count,
    "mean_sentence_length": mean_sentence_length,
    "vocabulary_size": vocabulary_size,
    "word_entropy": word_entropy,
    "sliding_ttr": sliding_ttr,
}


def sample_metrics(samples: Sequence[str], reference: Reference | None = None) -> dict[str, float | None]:
    """Every metric for one group of samples (one temperature): per-text metrics averaged, plus the set ones."""
    result: dict[str, float | None] = {}
    for name, fn in SINGLE_TEXT_METRICS.items():
        result[name] = sum(fn(s) for s in samples) / len(samples) if samples else None
    if reference is not None:
        result["real_word_share"] = _mean(real_word_share(s, reference) for s in samples)
        result["novelty"] = _mean(novelty(s, reference) for s in samples)
        result["vocabulary_coverage"] = _mean(vocabulary_coverage(s, reference) for s in samples)
    result["self_bleu"] = self_bleu(samples)
    result["jaccard_overlap"] = jaccard_overlap(samples)
    return result


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
