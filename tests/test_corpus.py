from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest
import torch

from harness.common import HarnessError
from harness.data import UNK, CorpusOptions, Vocab, load_corpus, strip_gutenberg

BOOK = (
    "\ufeffThe Project Gutenberg eBook of Test\r\n\r\nLicence words here.\r\n"
    "*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\r\n"
    "THE BODY of the book, with Words.\r\nSecond line.\r\n"
    "*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\r\nMore licence after the end.\r\n"
)


def test_builtin_default_is_large_english_text():
    corpus = load_corpus()
    assert len(corpus.text) > 400_000
    assert corpus.text == corpus.text.lower()
    assert len(corpus.train) + len(corpus.val) + len(corpus.test) == len(corpus.text)
    assert abs(len(corpus.val) / len(corpus.text) - 0.05) < 0.001
    assert corpus.data.dtype == torch.int64
    # splits are views of one tensor, not copies
    assert corpus.val.data_ptr() == corpus.data.data_ptr() + len(corpus.train) * 8


def test_vocab_from_training_split_and_unknown_symbols(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abc" * 40 + "z" * 30)  # 'z' only in the held-out tail
    corpus = load_corpus(str(path), CorpusOptions(split=(0.8, 0.1, 0.1)))
    assert len(corpus.train) == 120
    assert "z" not in corpus.vocab
    assert corpus.vocab.chars[0] == UNK
    assert corpus.test.tolist() == [0] * 15
    assert corpus.val.tolist() == [0] * 15
    assert corpus.vocab.decode(corpus.train[:3]) == "abc"


def test_vocab_encode_matches_dictionary_lookup():
    vocab = Vocab.from_text("hello, wörld ✓")
    text = "hello ✓ unknown Ω"
    expected = [vocab.chars.index(c) if c in vocab else 0 for c in text]
    assert vocab.encode(text).tolist() == expected
    assert vocab.missing(text) == ["u", "n", "k", "Ω"]


def test_lowercase_and_line_ends(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xef\xbb\xbfHello\r\nWorld\r\n" * 50)
    assert load_corpus(str(path)).text.startswith("hello\nworld\n")
    assert load_corpus(str(path), CorpusOptions(lowercase=False)).text.startswith("Hello\nWorld\n")


def test_other_encoding(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("caffè ".encode("latin-1") * 100)
    with pytest.raises(HarnessError, match=r"not valid utf-8 at byte 4 \(line 1, column 5\).*--encoding"):
        load_corpus(str(path))
    assert load_corpus(str(path), CorpusOptions(encoding="latin-1")).text.startswith("caffè")


@pytest.mark.parametrize(
    ("spec", "content", "message"),
    [
        ("missing.txt", None, "does not exist"),
        ("empty.txt", b"", "is empty"),
        ("blank.txt", b"  \n\n ", "is empty"),
        ("binary.bin", b"PK\x03\x04\x00\x00abc", "binary file"),
        ("nope:thing", None, "unknown corpus scheme 'nope'"),
        ("builtin:other", None, "builtin:pydoc"),
        ("gutenberg:12a", None, "must be a number"),
    ],
)
def test_bad_corpus_specs(tmp_path, monkeypatch, spec, content, message):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path(spec).write_bytes(content)
    with pytest.raises(HarnessError, match=message):
        load_corpus(spec)


def test_bad_split():
    with pytest.raises(HarnessError, match="add up to 1"):
        load_corpus(options=CorpusOptions(split=(0.9, 0.2, 0.1)))


def test_too_short_for_shape(small_corpus):
    with pytest.raises(HarnessError, match=r"seq_len 500 x batch size 512 needs at least"):
        small_corpus.check_fits(500, 512)


def test_strip_gutenberg_keeps_only_the_book():
    body = strip_gutenberg(BOOK.replace("\r\n", "\n"))
    assert body == "THE BODY of the book, with Words.\nSecond line.\n"


def test_a_local_gutenberg_file_loses_its_licence_too(tmp_path):
    """Otherwise the contiguous test split of a Gutenberg book is its licence."""
    path = tmp_path / "book.txt"
    path.write_bytes(BOOK.encode("utf-8"))
    corpus = load_corpus(str(path), CorpusOptions(lowercase=False, split=(0.5, 0.25, 0.25)))
    assert corpus.text == "THE BODY of the book, with Words.\nSecond line.\n"
    plain = tmp_path / "plain.txt"
    plain.write_text("no markers here, *** just stars ***\n" * 20)
    assert load_corpus(str(plain), CorpusOptions()).text.startswith("no markers here")


class _BookServer:
    def __init__(self, books: dict[str, bytes]):
        self.hits: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.hits.append(self.path)
                body = books.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def book_server(monkeypatch):
    server = _BookServer({"/books/1232.txt": BOOK.encode("utf-8")})
    monkeypatch.setenv("HARNESS_GUTENBERG_URL", server.url + "/books/{id}.txt")
    yield server
    server.close()


def test_gutenberg_download_strips_licence_and_caches(book_server, monkeypatch):
    corpus = load_corpus("gutenberg:1232", CorpusOptions(lowercase=False))
    assert corpus.text == "THE BODY of the book, with Words.\nSecond line.\n"
    assert book_server.hits == ["/books/1232.txt"]
    # second load comes from the cache, even with the server unreachable
    monkeypatch.setenv("HARNESS_GUTENBERG_URL", "http://127.0.0.1:9/{id}")
    assert load_corpus("gutenberg:1232").text == "the body of the book, with words.\nsecond line.\n"
    assert book_server.hits == ["/books/1232.txt"]


def test_gutenberg_download_failures(book_server, monkeypatch, tmp_path):
    with pytest.raises(HarnessError, match=r"could not download gutenberg:99.*HTTP 404"):
        load_corpus("gutenberg:99")
    monkeypatch.setenv("HARNESS_GUTENBERG_URL", "http://127.0.0.1:9/{id}")
    with pytest.raises(HarnessError, match=r"could not download gutenberg:1232.*pass its path"):
        load_corpus("gutenberg:1232")
    assert not any((tmp_path / "cache").rglob("*.txt"))
