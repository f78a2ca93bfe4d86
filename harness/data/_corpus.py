"""Corpora: from a spec string to one integer tensor with contiguous train/validation/test splits.

A spec is a file path, `builtin:pydoc` (the English reference text shipped inside CPython, so
the default job needs no network), or `gutenberg:ID` (downloaded once, cached, licence stripped).
The vocabulary comes from the training split only, so validation and test text never leak into
the model's alphabet; a symbol unseen in training maps to the reserved index 0 (`UNK`), which the
model can learn to predict (e.g. rare symbols in training are just as unknown) and whose
probability is what the held-out loss charges for an unseen symbol.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.common import HarnessError, write_atomic
from harness.data._ngram import MAX_ORDER, Baseline, ngram_baseline

UNK = "\ufffd"
DEFAULT_SPEC = "builtin:pydoc"
DEFAULT_SPLIT = (0.9, 0.05, 0.05)
GUTENBERG_URL = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$")
_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG EBOOK.*$", re.M | re.I)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG EBOOK.*$", re.M | re.I)


@dataclass(frozen=True)
class CorpusOptions:
    lowercase: bool = True
    split: tuple[float, float, float] = DEFAULT_SPLIT
    encoding: str = "utf-8"
    max_chars: int | None = None  # only the text's first N characters (a short text passed many times)


_BASELINES: dict[tuple, Baseline] = {}


class Vocab:
    """Character <-> index mapping; index 0 is `UNK`, the rest sorted by code point."""

    def __init__(self, chars: str):
        if not chars.startswith(UNK):
            chars = UNK + chars.replace(UNK, "")
        self.chars = chars
        self._codes = np.array([ord(c) for c in chars[1:]], dtype=np.int64)
        self._index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        return cls(UNK + "".join(sorted(set(text) - {UNK})))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def missing(self, text: str) -> list[str]:
        """Symbols of `text` that the vocabulary lacks, in order of first appearance."""
        return [c for c in dict.fromkeys(text) if c not in self._index]

    def encode(self, text: str) -> torch.Tensor:
        """Vectorised: code points are looked up with one `searchsorted`, not a Python loop."""
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._codes, codes)
        pos_clipped = np.minimum(pos, len(self._codes) - 1)
        found = (pos < len(self._codes)) & (self._codes[pos_clipped] == codes) if len(self._codes) else False
        ids = np.where(found, pos + 1, 0)
        return torch.from_numpy(ids.astype(np.int64))

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return "".join(self.chars[i] for i in ids)


@dataclass
class Corpus:
    """The whole text as one int64 tensor; the splits are views into it."""

    name: str
    text: str
    vocab: Vocab
    data: torch.Tensor
    bounds: tuple[int, int] = field(default=(0, 0))
    options: CorpusOptions = field(default_factory=lambda: CorpusOptions())

    @property
    def train(self) -> torch.Tensor:
        return self.data[: self.bounds[0]]

    @property
    def val(self) -> torch.Tensor:
        return self.data[self.bounds[0] : self.bounds[1]]

    @property
    def test(self) -> torch.Tensor:
        return self.data[self.bounds[1] :]

    @property
    def train_text(self) -> str:
        return self.text[: self.bounds[0]]

    @property
    def test_text(self) -> str:
        return self.text[self.bounds[1] :]

    def describe(self) -> dict:
        """What a checkpoint needs to find the same text and split again."""
        o = self.options
        info = {"spec": self.name, "lowercase": o.lowercase, "split": list(o.split), "encoding": o.encoding}
        if o.max_chars is not None:
            info["max_chars"] = o.max_chars
        return info

    @property
    def sha256(self) -> str:
        """Fingerprint of the text as trained on (after lower-casing): a moved copy of the same book matches."""
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def unigram_entropy_bits(self, split: str = "val") -> float:
        """Bits per character of the training unigram model on a split: the bar every model must beat."""
        counts = torch.bincount(self.train.cpu(), minlength=len(self.vocab)).double() + 1.0
        logp = torch.log2(counts / counts.sum())
        target = getattr(self, split).cpu()
        return float(-logp[target].mean())

    def count_baseline(self, max_order: int = MAX_ORDER) -> Baseline:
        """The count model a trained model must beat (harness.data._ngram), on the text as the model sees it:
        held-out characters outside the training vocabulary are UNK for both."""
        key = (self.sha256, self.bounds, max_order)
        if key not in _BASELINES:  # seconds per corpus: once per process (workers, tests, confirm)
            train, val, test = (self.vocab.decode(split) for split in (self.train, self.val, self.test))
            _BASELINES[key] = ngram_baseline(train, val, test, len(self.vocab), max_order, self.unigram_entropy_bits())
        return _BASELINES[key]

    def check_fits(self, seq_len: int, batch_size: int) -> None:
        """Refuse a training shape the text cannot fill, before any model is built."""
        need = batch_size * (seq_len + 1)
        have = len(self.train)
        if have < need:
            raise HarnessError(
                f"corpus {self.name!r} has {have} training characters, but seq_len {seq_len} x batch "
                f"size {batch_size} needs at least {need}; use a longer text or a smaller "
                f"--seq-len / --batch-size"
            )
        if len(self.val) < 2:
            raise HarnessError(
                f"corpus {self.name!r} leaves {len(self.val)} validation characters; use a longer text "
                f"or a larger validation share of the split"
            )


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "harness"


def normalize(text: str) -> str:
    """Drop a byte-order mark and Windows line ends, so the same book gives the same vocabulary."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def decode_bytes(raw: bytes, where: str, encoding: str) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0 and not encoding.lower().replace("-", "").startswith(("utf16", "utf32")):
        raise HarnessError(
            f"{where}: looks like a binary file (NUL byte at offset {nul}); "
            f"give a plain-text file, or --encoding utf-16 if it is UTF-16 text"
        )
    try:
        return raw.decode(encoding)
    except LookupError:
        raise HarnessError(f"unknown encoding {encoding!r}; use a Python codec name such as utf-8 or latin-1") from None
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise HarnessError(
            f"{where}: not valid {encoding} at byte {e.start} (line {line}, column {column}): {e.reason}; "
            f"pass --encoding with the file's encoding (e.g. latin-1 or cp1252)"
        ) from None


def read_file(path: str, encoding: str) -> str:
    p = Path(path).expanduser()
    if not p.exists():
        raise HarnessError(f"corpus file {path!r} does not exist; give a text file, builtin:pydoc or gutenberg:ID")
    if p.is_dir():
        raise HarnessError(f"corpus {path!r} is a directory; give a text file")
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise HarnessError(f"cannot read corpus file {path!r}: {e.strerror}") from None
    return decode_bytes(raw, path, encoding)


def builtin_text(name: str) -> str:
    if name != "pydoc":
        raise HarnessError(f"unknown built-in corpus 'builtin:{name}'; the built-in corpus is builtin:pydoc")
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))


def strip_gutenberg(text: str) -> str:
    """Keep what lies between the START and END markers; a text without them is kept whole."""
    start = _GUTENBERG_START.search(text)
    end = _GUTENBERG_END.search(text, start.end() if start else 0)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    return body.strip("\n") + "\n"


def gutenberg_text(book_id: str, encoding: str = "utf-8") -> str:
    if not book_id.isdigit():
        raise HarnessError(f"gutenberg:{book_id}: the book id must be a number, e.g. gutenberg:1232 (The Prince)")
    cached = cache_dir() / "gutenberg" / f"{book_id}.txt"
    if not cached.exists():
        url = os.environ.get("HARNESS_GUTENBERG_URL", GUTENBERG_URL).format(id=book_id)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            raise HarnessError(
                f"could not download gutenberg:{book_id} from {url}: HTTP {e.code} {e.reason}; "
                f"check the book id, or download the text yourself and pass its path"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise HarnessError(
                f"could not download gutenberg:{book_id} from {url}: {reason}; without network, "
                f"download the text elsewhere and pass its path (e.g. --corpus theprince.txt)"
            ) from None
        decode_bytes(raw, url, encoding)
        write_atomic(cached, lambda tmp: tmp.write_bytes(raw))
    return strip_gutenberg(normalize(decode_bytes(cached.read_bytes(), str(cached), encoding)))


def load_text(spec: str, encoding: str = "utf-8") -> str:
    """The raw (normalized, not yet lower-cased) text that a spec names."""
    match = _SCHEME.match(spec)
    if match and not Path(spec).exists():
        scheme, rest = match.group(1).lower(), match.group(2)
        if scheme == "builtin":
            return builtin_text(rest)
        if scheme == "gutenberg":
            return gutenberg_text(rest, encoding)
        if scheme == "file":
            return book_only(normalize(read_file(rest, encoding)))
        raise HarnessError(
            f"unknown corpus scheme {scheme!r} in {spec!r}; use a file path, builtin:pydoc or gutenberg:ID"
        )
    return book_only(normalize(read_file(spec, encoding)))


def book_only(text: str) -> str:
    """A local copy of a Project Gutenberg book loses its licence too, as a downloaded one does.

    Without this, a contiguous split of The Prince (Gutenberg #1232, the reference workload) puts
    the licence text in the test split: measured 0.63 bpc "harder" than the validation split.
    Files without the START marker are kept whole.
    """
    return strip_gutenberg(text) if _GUTENBERG_START.search(text) else text


def check_split(split: tuple[float, float, float]) -> None:
    if len(split) != 3 or any(s < 0 for s in split) or abs(sum(split) - 1.0) > 1e-6 or split[0] <= 0 or split[1] <= 0:
        raise HarnessError(
            f"split {tuple(split)} must be three non-negative fractions (train, validation, test) that add "
            f"up to 1, with train and validation above 0, e.g. 0.9 0.05 0.05"
        )


def load_corpus(spec: str = DEFAULT_SPEC, options: CorpusOptions | None = None) -> Corpus:
    options = options or CorpusOptions()
    check_split(options.split)
    text = load_text(spec, options.encoding)
    if options.max_chars is not None:
        if not isinstance(options.max_chars, int) or isinstance(options.max_chars, bool) or options.max_chars < 1000:
            raise HarnessError(f"max_chars must be a whole number of at least 1000 characters, got {options.max_chars!r}")
        text = text[: options.max_chars]
    if options.lowercase:
        text = text.lower()
    if not text.strip():
        raise HarnessError(f"corpus {spec!r} is empty; give a file with text in it")
    n = len(text)
    train_end = int(n * options.split[0])
    val_end = train_end + int(n * options.split[1])
    vocab = Vocab.from_text(text[:train_end])
    return Corpus(spec, text, vocab, vocab.encode(text), (train_end, val_end), options)
