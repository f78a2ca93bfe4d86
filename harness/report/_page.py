"""The report's page as typed blocks in reading order; report.md and report.html only format them.

A section (the forecast, the families, PBT, files on other machines) is a `Section`; the page lays
out the answer, the lead figures, the verdict tables, the sections, the details, the remaining
figures, the efficiency and parameter tables, the samples and the notes, and `Page.blocks()`
yields them once for both formats.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.report._figures import FIGURE_TEXT
from harness.report._tables import html_table, markdown_table

LEAD = ["frontier", "confirmed"]  # figures shown right after the answer


@dataclass
class Section:
    """A titled part of the report: sentences, captioned tables, the figures it places, the files it wrote."""

    title: str
    sentences: list[str] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # beside the report (full tables as CSV)


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame


@dataclass
class Picture:
    name: str  # its caption is FIGURE_TEXT[name]
    path: Path


@dataclass
class Status:
    text: str


@dataclass
class Answer:
    question: str
    lines: list[str]


@dataclass
class Facts:
    pairs: list[tuple[str, str]]


@dataclass
class Samples:
    prompt: str
    texts: list[str]


@dataclass
class Note:
    text: str


Block = Heading | Bullets | Table | Picture | Status | Answer | Facts | Samples | Note


@dataclass
class Page:
    """What both documents show."""

    title: str
    status: str
    question: str
    said: list[str]
    figures: dict[str, list[Path]]
    tables: list[tuple[str, pd.DataFrame]]
    sections: list[Section]
    facts: list[tuple[str, str]]
    by_eff: pd.DataFrame
    summary: pd.DataFrame
    samples: list[dict]
    prompt: str
    best_number: int
    notes: list[str]
    top_k: int

    def blocks(self) -> Iterator[Block]:
        """The page in reading order: the answer first, every figure once."""
        if self.status:
            yield Status(self.status)
        yield Answer(self.question, self.said)
        yield from self._pictures(LEAD)
        for title, table in self.tables:
            yield Heading(title)
            yield Table(table)
        for section in self.sections:
            yield Heading(section.title)
            yield Bullets(section.sentences)
            for caption, table in section.tables:
                if caption:
                    yield Heading(caption, 3)
                yield Table(table)
            yield from self._pictures(section.figures)
        yield Heading("Details")
        yield Facts(self.facts)
        placed = LEAD + [name for section in self.sections for name in section.figures]
        yield from self._pictures([name for name in self.figures if name not in placed])
        yield Heading(f"Top {self.top_k} by efficiency (bits/char saved over a uniform guess per device-second)")
        yield Table(self.by_eff)
        yield Heading("Parameters")
        yield Table(self.summary)
        if self.samples:
            yield Heading(f"Samples of trial #{self.best_number} (prompt {self.prompt!r})")
            for group in self.samples:
                yield Heading(f"Temperature {group['temperature']:g}", 3)
                yield Samples(self.prompt, group["samples"])
        for note in self.notes:
            yield Note(note)

    def _pictures(self, names: list[str]) -> Iterator[Picture]:
        for name in names:
            if self.figures.get(name):
                yield Picture(name, self.figures[name][0])


def markdown(page: Page) -> str:
    md = [f"# Study report: {page.title}", ""]
    for block in page.blocks():
        md += _markdown(block)
    return "\n".join(md) + "\n"


def _markdown(b: Block) -> list[str]:
    if isinstance(b, Status):
        return [f"**{b.text}**", ""]
    if isinstance(b, Answer):
        return [f"**Question**: {b.question}", ""] + [f"- {line}" for line in b.lines] + [""]
    if isinstance(b, Heading):
        return [f"{'#' * b.level} {b.text}", ""]
    if isinstance(b, Bullets):
        return [f"- {s}" for s in b.items] + [""]
    if isinstance(b, Table):
        return [markdown_table(b.frame), ""]
    if isinstance(b, Picture):
        return [f"![{FIGURE_TEXT[b.name]}]({b.path.name})", "", f"*{FIGURE_TEXT[b.name]}*", ""]
    if isinstance(b, Facts):
        return [f"- **{k}**: {v}" for k, v in b.pairs] + [""]
    if isinstance(b, Samples):  # a fence inside a sample must not end the block
        return ["```text", *[b.prompt + s.replace("```", "` ` `") for s in b.texts], "```", ""]
    return [f"_Note: {b.text}_"]


# Numbers stay on one line and right-aligned; text columns wrap, so a table fits the page at 1280 px
# (a box that scrolls is the fallback, with its header row inside it). Print: the page's full width,
# figures at column width, nothing cut at a box's edge.
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:80em;margin:auto;padding:1em 1.5em;line-height:1.4;"
    "color:#222}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}"
    ".answer{background:#eef5ff;border-left:4px solid #1f77b4;padding:0.6em 1em}.answer p{margin:0.35em 0}"
    ".wrap{overflow-x:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}"
    "td,th{border:1px solid #ccc;padding:2px 6px;vertical-align:top}th{background:#f4f4f4;text-align:center;"
    "font-weight:600}td.n{text-align:right;white-space:nowrap}td.t{text-align:left;min-width:6em;max-width:32em}"
    "figure{margin:1em 0}figcaption{font-size:0.85em;color:#555}img{max-width:100%;height:auto}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:0.5em}"
    ".partial{background:#fff3cd;padding:0.5em;border:1px solid #e0c36c}"
    "@media print{body{max-width:none;padding:0;font-size:10pt}.wrap{overflow:visible}table{font-size:7.5pt}"
    "td.n,td.t{white-space:normal;max-width:none}figure,table,pre{break-inside:avoid}h2,h3{break-after:avoid}"
    "img{max-width:100%}.answer{border-left-width:2px}}"
)


def html_page(page: Page) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
             "style-src 'unsafe-inline'\">",
             f"<title>Study report: {esc(page.title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Study report: {esc(page.title)}</h1>"]
    parts += [_html(block) for block in page.blocks()]
    parts.append("</body></html>")
    return "\n".join(parts)


def _html(b: Block) -> str:
    esc = html.escape
    if isinstance(b, Status):
        return f"<p class='partial'><b>{esc(b.text)}</b></p>"
    if isinstance(b, Answer):
        return (f"<div class='answer'><p><b>Question</b>: {esc(b.question)}</p>"
                + "".join(f"<p>{esc(line)}</p>" for line in b.lines) + "</div>")
    if isinstance(b, Heading):
        return f"<h{b.level}>{esc(b.text)}</h{b.level}>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in b.items) + "</ul>"
    if isinstance(b, Table):
        return f"<div class='wrap'>{html_table(b.frame)}</div>"
    if isinstance(b, Picture):  # embedded: the page makes no request
        data = base64.b64encode(b.path.read_bytes()).decode()
        return (f"<figure><img alt='{esc(FIGURE_TEXT[b.name])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{esc(FIGURE_TEXT[b.name])}</figcaption></figure>")
    if isinstance(b, Facts):
        return "<ul>" + "".join(f"<li><b>{esc(k)}</b>: {esc(str(v))}</li>" for k, v in b.pairs) + "</ul>"
    if isinstance(b, Samples):
        return "\n".join(f"<pre>{esc(b.prompt + s)}</pre>" for s in b.texts)
    return f"<p><i>Note: {esc(b.text)}</i></p>"
