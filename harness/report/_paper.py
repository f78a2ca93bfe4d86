"""The report's PDFs laid out for a paper, and the check that they read there.

A figure pasted into a paper is shrunk to the column (about 3.3 in) or, for a figure of several
panels, to the text width (about 6.9 in, a two-column paper's `figure*`). Shrinking a 6-in figure
drawn at 10 pt to 3.3 in leaves 5.5-pt text, and a 9.6-in one 3.4 pt: unreadable. So the PDF is
drawn again at the size it will be printed, with text at 6.5-8 pt, long labels wrapped, and the
layout recomputed; the PNG the web page shows keeps the screen layout. The check then measures
the drawn PDF's text: none under MIN_PT, none outside the page, no two labels on top of each other.
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import matplotlib.ticker
from matplotlib.figure import Figure
from matplotlib.text import Text

COLUMN_IN = 3.3  # one column of a two-column paper (ACM, IEEE, NeurIPS-style single column is 5.5)
TEXT_IN = 6.9  # the full text width of a two-column paper
MIN_PT = 6.0  # below this, text in a printed figure is not read (most publishers ask for 6-7 pt or more)
MIN_PANEL_IN = (1.0, 0.8)  # a plot area smaller than this shows no shape
PAPER_PT = (6.5, 8.0)  # the range every text is brought into: 10-pt screen text becomes 8 pt


class PaperLayoutWarning(UserWarning):
    """A figure's PDF, at the width a paper prints it, has text too small, off the page, or overlapping."""


def save_figure(fig, out: Path, name: str, formats: list[str]) -> list[Path]:
    """PNG (and SVG) at the screen layout the web page shows; the PDF last, laid out for a paper's page.

    A PDF whose printed text would be unreadable warns (PaperLayoutWarning); the report lists it."""
    paths = []
    fig.tight_layout()
    for fmt in ["png", *[f for f in formats if f not in ("png", "pdf")], *[f for f in formats if f == "pdf"]]:
        path = out / f"{name}.{fmt}"
        if fmt == "pdf":
            width = lay_out_for_paper(fig)
            problems = layout_problems(fig)
            if problems:
                warnings.warn(PaperLayoutWarning(f"{path.name} at {width:g} in: " + "; ".join(problems[:3]) +
                                                 (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")),
                              stacklevel=2)
        fig.savefig(path, dpi=200 if fmt == "png" else None)
        paths.append(path)
    return paths


def panels(fig: Figure) -> tuple[int, int]:
    """Visible panels across and down: a figure of one column of panels fits a paper's column."""
    boxes = [ax.get_position() for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    across = len({round(b.x0, 2) for b in boxes}) or 1
    down = len({round(b.y0, 2) for b in boxes}) or 1
    return across, down


def lay_out_for_paper(fig: Figure) -> float:
    """Resize the figure to the width it will be printed at, fonts to paper sizes; returns that width in inches."""
    across, down = panels(fig)
    width = COLUMN_IN if across == 1 else TEXT_IN
    old_w, old_h = fig.get_size_inches()
    height = max(old_h * width / old_w, down * (1.9 if across == 1 else 1.7))
    fig.set_size_inches(width, min(height, 9.0))
    for text in _texts(fig):
        text.set_fontsize(_paper_size(text.get_fontsize()))
    for ax in fig.axes:  # tick labels made later (a thinned axis) take the paper size too
        for axis in (ax.xaxis, ax.yaxis):
            ticks = axis.get_major_ticks()
            if ticks:
                axis.set_tick_params(which="both", labelsize=_paper_size(ticks[0].label1.get_fontsize(), 1.0))
    fig.tight_layout()
    bottom = None  # the share of the page a legend moved below the panels takes
    for _ in range(5):  # a narrower page can crowd tick labels and trial labels, and overfill a panel's legend
        moved = _legend_below(fig) if bottom is None else None
        bottom = moved if moved is not None else bottom
        if moved is None and not (_wrap_titles(fig) | _thin_ticks(fig) | _declutter(fig)):
            break
        fig.tight_layout(rect=(0, bottom or 0.0, 1, 1))
    return width


def _paper_size(points: float, factor: float = 0.8) -> float:
    low, high = PAPER_PT
    return min(high, max(low, points * factor))


def _wrap_titles(fig: Figure) -> bool:
    """Break a title or axis label longer than its panel into lines that fit (a margin short of the
    page: the PDF backend measures text a little wider than the screen's renderer)."""
    fig.draw_without_rendering()
    renderer = fig._get_renderer()
    across = panels(fig)[0]
    changed = False
    for text, ax in _titles(fig, with_axes=True):
        before, vertical = text.get_text(), text.get_rotation() % 180 == 90
        if ax is None:  # the figure's own title
            room = 0.92 * fig.bbox.width
        else:
            box = ax.bbox
            span, centre, page = ((box.height, (box.y0 + box.y1) / 2, fig.bbox.height) if vertical
                                  else (box.width, (box.x0 + box.x1) / 2, fig.bbox.width))
            room = min(span * (1.0 if across > 1 or vertical else 1.15), 1.9 * min(centre, page - centre))
        words = " ".join(text.get_text().split())
        text.set_text(words)
        extent = text.get_window_extent(renderer)
        length = extent.height if vertical else extent.width
        wrapped = (textwrap.fill(words, max(8, int(len(words) * room / length)), break_on_hyphens=False)
                   if length > room else words)
        text.set_text(wrapped)
        changed |= wrapped != before
    return changed


def _numeric(label: str) -> bool:
    try:
        float(label.replace("\N{MINUS SIGN}", "-").replace(",", ""))
    except ValueError:
        return False
    return True


def _legend_below(fig: Figure) -> float | None:
    """Move the panels' legends that would cover much of their panel below the figure, as one legend
    (panels that share entries list them once) wrapped to the page; returns the share of the page's
    height it takes (None: nothing moved)."""
    fig.draw_without_rendering()
    entries: dict[str, object] = {}
    size = PAPER_PT[0]
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not ax.get_visible():
            continue
        box = legend.get_window_extent()
        if box.width <= 0.9 * ax.bbox.width and box.height <= 0.4 * ax.bbox.height:
            continue
        size = legend.get_texts()[0].get_fontsize()
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=False):
            entries.setdefault(" ".join(text.get_text().split()), handle)
        legend.remove()
    if not entries:
        return None
    chars = max(20, int(fig.bbox.width * 0.95 / (fig.dpi / 72 * size * 0.55)) - 4)
    below = fig.legend(list(entries.values()), [textwrap.fill(label, chars) for label in entries],
                       loc="lower center", bbox_to_anchor=(0.5, 0.0), fontsize=size, frameon=False,
                       borderaxespad=0.2)
    fig.draw_without_rendering()
    extra = below.get_window_extent().height / fig.dpi + 0.05  # the page grows by the legend's height
    w, h = fig.get_size_inches()
    fig.set_size_inches(w, h + extra)
    return extra / (h + extra)


def _declutter(fig: Figure) -> bool:
    """Hide a panel's annotations (trial labels) that would print on top of a later one: the later
    steps of a frontier are the better trials, and the web page's PNG keeps every label."""
    fig.draw_without_rendering()
    renderer = fig._get_renderer()
    changed = False
    for ax in fig.axes:
        kept = []
        for text in reversed([t for t in ax.texts if t.get_visible() and t.get_text()]):
            box = text.get_window_extent(renderer)
            if any(box.overlaps(other) for other in kept):
                text.set_visible(False)
                changed = True
            else:
                kept.append(box)
    return changed


def _thin_ticks(fig: Figure) -> bool:
    """Keep every other tick on a numeric axis whose drawn tick labels touch, so each value can be read;
    a category's name is never dropped: a crowded category axis gets more height, or slanted labels."""
    fig.draw_without_rendering()
    renderer = fig._get_renderer()
    changed = False
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            ticks = [t for t in axis._update_ticks() if t.label1.get_visible() and t.label1.get_text()]
            boxes = [t.label1.get_window_extent(renderer).padded(2) for t in ticks]
            if not any(a.overlaps(b) for a, b in zip(boxes, boxes[1:], strict=False)):
                continue
            if all(_numeric(t.label1.get_text()) for t in ticks):
                if len(ticks) > 2:
                    axis.set_major_locator(matplotlib.ticker.FixedLocator([t.get_loc() for t in ticks][::2]))
                    changed = True
            elif axis is ax.yaxis:
                w, h = fig.get_size_inches()
                fig.set_size_inches(w, min(h * 1.3, 9.0))
                changed = h < 9.0
            elif not ax.xaxis.get_ticklabels()[0].get_rotation():
                for t in ticks:
                    t.label1.set(rotation=30, ha="right", rotation_mode="anchor")
                changed = True
    return changed


def layout_problems(fig: Figure, tolerance_pt: float = 0.5) -> list[str]:
    """What a reader of the printed figure would stumble on, measured on the drawn figure:
    text under MIN_PT, text that leaves the page, labels that overlap one another, panels too small to read."""
    fig.draw_without_rendering()
    renderer = fig._get_renderer()
    page = fig.bbox
    px = fig.dpi / 72 * tolerance_pt
    problems, drawn = [], []
    for text in _texts(fig):
        words = text.get_text()
        box = text.get_window_extent(renderer)
        if text.get_fontsize() < MIN_PT:
            problems.append(f"{words!r} is {text.get_fontsize():.1f} pt (under {MIN_PT:g})")
        if box.x0 < page.x0 - px or box.x1 > page.x1 + px or box.y0 < page.y0 - px or box.y1 > page.y1 + px:
            problems.append(f"{words!r} runs off the page")
        drawn.append((words, box.expanded(1, 1).padded(-px)))
    for ax in fig.axes:
        if ax.get_visible() and ax.get_label() != "<colorbar>":
            w, h = ax.bbox.width / fig.dpi, ax.bbox.height / fig.dpi
            if w < MIN_PANEL_IN[0] or h < MIN_PANEL_IN[1]:
                problems.append(f"a panel ({ax.get_title() or ax.get_xlabel()!r}) is only {w:.2f} x {h:.2f} in")
    for i, (a, box_a) in enumerate(drawn):
        for b, box_b in drawn[i + 1:]:
            if box_a.width > 0 and box_b.width > 0 and box_a.overlaps(box_b):
                problems.append(f"{a!r} overlaps {b!r}")
    return problems


def _texts(fig: Figure) -> list[Text]:
    """Every text the printed figure shows: titles, axis labels, the tick labels drawn, annotations,
    legends; not the tick labels matplotlib keeps for ticks outside the view."""
    found: list[Text] = [t for t in fig.texts if t.get_visible() and t.get_text()] + _titles(fig)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis._update_ticks():  # the ticks inside the view: the ones drawn
                found += [t for t in (tick.label1, tick.label2) if t.get_visible() and t.get_text()]
        found += [t for t in ax.texts if t.get_visible() and t.get_text()]
        legend = ax.get_legend()
        if legend is not None and legend.get_visible():
            found += [t for t in [legend.get_title(), *legend.get_texts()] if t.get_visible() and t.get_text()]
    for legend in fig.legends:
        found += [t for t in [legend.get_title(), *legend.get_texts()] if t.get_visible() and t.get_text()]
    return list({id(t): t for t in found}.values())  # the suptitle is also among fig.texts


def _titles(fig: Figure, with_axes: bool = False) -> list:
    """The figure's and panels' titles and the axis labels (with the panel each belongs to: an axis
    label's own `axes` is not set)."""
    found = [(fig._suptitle, None)] if fig._suptitle is not None else []
    for ax in fig.axes:
        if ax.get_visible():
            found += [(t, ax) for t in (ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label)]
    found = [(t, ax) for t, ax in found if t.get_visible() and t.get_text()]
    return found if with_axes else [t for t, _ in found]
