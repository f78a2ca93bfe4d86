"""The figure a model must beat: an interpolated Kneser-Ney character n-gram, counted on the training split.

"1.95 bits per character" means nothing on its own. A count model that has read the training text
is what any compressor would give: if a trained LSTM does not beat it, the sweep has not learned
anything a table of counts had not. It takes seconds and no GPU.

The model (Chen and Goodman's interpolated Kneser-Ney, one absolute discount per order,
D = n1 / (n1 + 2 n2)): the highest order uses raw counts, each lower order counts how many
different characters precede a string (its continuation count), and the unigram falls back on
the uniform distribution over the vocabulary, so every character, seen or not, has a non-zero
probability. The order is the one with the lowest bits per character on the validation split
(2..`max_order`), and both held-out splits are scored as the harness scores a model: every
character after the split's first, once, in order, with context from the split itself.

Two figures, never mixed: `static` keeps the training counts fixed (the baseline a model is held
to); `adaptive` adds each held-out character to the counts after predicting it (what a PPM
compressor does, and the fair comparison for dynamic evaluation, harness.training._dynamic).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

MAX_ORDER = 10


class _Counts:
    """Every statistic one order needs, kept up to date as characters are added (the adaptive figure)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()  # raw count (highest order) or continuation count (lower orders)
        self.total: Counter[str] = Counter()  # sum over the next character, per context
        self.types: Counter[str] = Counter()  # distinct next characters, per context

    def copy(self) -> _Counts:
        other = _Counts()
        other.count, other.total, other.types = Counter(self.count), Counter(self.total), Counter(self.types)
        return other

    def add(self, gram: str, by: int = 1) -> None:
        if self.count[gram] == 0:
            self.types[gram[:-1]] += 1
        self.count[gram] += by
        self.total[gram[:-1]] += by


class Tables:
    """The training text's counts up to `order`, built once and shared by the models of every lower order."""

    def __init__(self, text: str, order: int):
        self.order = order
        self.seen = gram_counts(text, order)
        self.continuation = [_Counts() for _ in range(order)]  # index k: continuation counts of k-grams
        for k in range(1, order):
            for gram in self.seen[k + 1]:
                self.continuation[k].add(gram[1:])


class KneserNey:
    """An interpolated Kneser-Ney model of one order over `vocab_size` characters."""

    def __init__(self, text: str, order: int, vocab_size: int, shared: Tables | None = None, copy: bool = False):
        self.order, self.vocab_size = order, vocab_size
        tables = shared if shared is not None and shared.order >= order else Tables(text, order)
        # seen[k][g]: raw count of the k-gram g; levels[k]: continuation statistics below the top order,
        # raw ones at it. Copied when asked: the adaptive figure adds to them.
        self.seen = [Counter(c) for c in tables.seen[:order + 1]] if copy else tables.seen
        continuation = tables.continuation[:order]
        self.levels = [level.copy() for level in continuation] if copy else list(continuation)
        top = _Counts()
        for gram, c in tables.seen[order].items():
            top.add(gram, c)
        self.levels.append(top)
        self.discounts = [0.0] + [_discount(self.levels[k].count) for k in range(1, order + 1)]

    def prob(self, context: str, char: str) -> float:
        """P(char | the last order-1 characters of context), interpolated down to the uniform distribution."""
        total1 = self.levels[1].total[""]
        d = self.discounts[1]
        p = 1.0 / self.vocab_size
        if total1:
            p = (max(self.levels[1].count[char] - d, 0.0) + d * self.levels[1].types[""] * p) / total1
        for k in range(2, self.order + 1):
            h = context[len(context) - (k - 1):] if k > 1 else ""
            if len(h) < k - 1:
                break
            level = self.levels[k]
            total = level.total[h]
            if not total:
                continue  # an unseen context: the lower order's estimate stands
            d = self.discounts[k]
            p = (max(level.count[h + char] - d, 0.0) + d * level.types[h] * p) / total
        return p

    def observe(self, context: str, char: str) -> None:
        """Count one more character, as if it had been in the training text (the adaptive figure)."""
        text = context[-(self.order - 1):] + char if self.order > 1 else char
        for k in range(1, self.order + 1):
            if len(text) < k:
                break
            gram = text[-k:]
            if k < self.order and k + 1 <= len(text) and self.seen[k + 1][text[-(k + 1):]] == 0:
                self.levels[k].add(gram)  # a new predecessor of gram: its continuation count grows
        for k in range(1, self.order + 1):
            if len(text) >= k:
                self.seen[k][text[-k:]] += 1
        if len(text) >= self.order:
            self.levels[self.order].add(text[-self.order:])

    def bits(self, text: str, adaptive: bool = False) -> float:
        """Bits per character over text[1:], each character predicted once from the characters before it."""
        if len(text) < 2:
            return math.nan
        total = 0.0
        window = self.order - 1
        for i in range(1, len(text)):
            context = text[max(0, i - window):i]
            total -= math.log2(self.prob(context, text[i]))
            if adaptive:
                self.observe(context, text[i])
        return total / (len(text) - 1)


def gram_counts(text: str, order: int) -> list[Counter[str]]:
    """Raw counts of every k-gram of text, k = 1..order (index 0 is empty)."""
    return [Counter()] + [Counter(text[i:i + k] for i in range(len(text) - k + 1)) for k in range(1, order + 1)]


def _discount(counts: Counter[str]) -> float:
    """Ney's absolute discount from the count-of-counts: n1 / (n1 + 2 n2), kept inside (0, 1)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)


@dataclass(frozen=True)
class Baseline:
    """The count model's figures for one corpus and split, as a study stores them (`harness:baseline`)."""

    model: str  # e.g. "interpolated Kneser-Ney 6-gram"
    order: int
    val_bpc: float  # static: the training counts only
    test_bpc: float | None  # None where the split has no test part
    val_bpc_adaptive: float  # counts keep growing on the held-out text as it is read (PPM-style)
    test_bpc_adaptive: float | None
    unigram_val_bpc: float
    val_by_order: dict[str, float]  # the selection: validation bpc of every order tried

    def to_dict(self) -> dict:
        return asdict(self)


def ngram_baseline(train: str, val: str, test: str, vocab_size: int, max_order: int = MAX_ORDER,
                   unigram_val_bpc: float | None = None) -> Baseline:
    """Fit orders 2..max_order on `train`, keep the best on `val`, and score val and test with it."""
    by_order: dict[str, float] = {}
    tables = Tables(train, max_order)
    for order in range(2, max_order + 1):
        by_order[str(order)] = KneserNey(train, order, vocab_size, tables).bits(val)
        if order > 3 and by_order[str(order)] > by_order[str(order - 1)] > by_order[str(order - 2)]:
            break  # two orders in a row worse: longer contexts only get sparser
    order = int(min(by_order, key=by_order.get))

    def score(text: str, adaptive: bool) -> float | None:
        if len(text) < 2:
            return None
        return KneserNey(train, order, vocab_size, tables, copy=adaptive).bits(text, adaptive)

    return Baseline(model=f"interpolated Kneser-Ney {order}-gram", order=order, val_bpc=by_order[str(order)],
                    test_bpc=score(test, False), val_bpc_adaptive=score(val, True),
                    test_bpc_adaptive=score(test, True),
                    unigram_val_bpc=unigram_val_bpc if unigram_val_bpc is not None else math.nan,
                    val_by_order=by_order)


def counts_by_context(text: str, order: int) -> dict[str, Counter[str]]:
    """Next-character counts per context of order-1 characters: the oracle tests check KneserNey against."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for i in range(order - 1, len(text)):
        table[text[i - order + 1:i]][text[i]] += 1
    return table
