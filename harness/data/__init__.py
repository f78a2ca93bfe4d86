"""The text: from a spec string (a file, builtin:pydoc, gutenberg:ID) to one integer tensor with contiguous splits."""

from harness.data._corpus import (
    DEFAULT_SPEC,
    DEFAULT_SPLIT,
    UNK,
    Corpus,
    CorpusOptions,
    Vocab,
    builtin_text,
    check_split,
    load_corpus,
    strip_gutenberg,
)
from harness.data._ngram import Baseline, KneserNey, ngram_baseline

__all__ = [
    "DEFAULT_SPEC",
    "DEFAULT_SPLIT",
    "UNK",
    "Baseline",
    "Corpus",
    "CorpusOptions",
    "KneserNey",
    "Vocab",
    "builtin_text",
    "check_split",
    "load_corpus",
    "ngram_baseline",
    "strip_gutenberg",
]
