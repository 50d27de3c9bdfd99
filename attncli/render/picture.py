"""SVG and HTML pictures of what attn draws (tables, explain's panels): as the terminal
shows them, offline, and readable. Returns text; never prints.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from .table import RGB

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.terminal_theme import TerminalTheme


# The widest a picture of a table gets, in columns of text: 640 holds 40 columns (as many
# as the 40 rows a table shows) of 12 characters (a long token's header is cut there;
# numbers at 4 decimals are narrower) beside a 20-character row label. A wider matrix
# loses its middle columns, and the caption says how many. Narrower tables make
# narrower pictures; an explain walkthrough keeps to render_explain.READING_WIDTH.
PICTURE_WIDTH = 640


def export_picture(renderable: RenderableType, kind: str, title: str, color: bool = True) -> str:
    """A rich renderable as the terminal would show it, as an SVG picture or a
    standalone HTML page, as wide as it needs (at most PICTURE_WIDTH columns).

    Both work offline (no web font, no script) and use picture_theme(), whose text,
    dim text included, reads at 4.5:1 or better on its background."""
    from rich.console import Console
    from rich.measure import Measurement

    probe = Console(width=PICTURE_WIDTH, file=io.StringIO())
    needed = Measurement.get(probe, probe.options, renderable).maximum
    console = Console(
        width=max(20, min(PICTURE_WIDTH, needed)),
        file=io.StringIO(),
        record=True,
        force_terminal=True,
        color_system="truecolor",
        highlight=False,
    )
    console.print(renderable if color else _Colourless(renderable))
    theme = picture_theme()
    if kind == "svg":
        return console.export_svg(title=title, theme=theme, code_format=_offline_svg_format())
    return console.export_html(theme=theme, inline_styles=True)


# A dark page: its text reads at 15.6:1, and dim text (captions, masked cells), which rich
# blends 40% (SVG) or 50% (HTML) towards the background, at 6.2:1 and 4.8:1.
PICTURE_BACKGROUND: RGB = (24, 24, 24)
PICTURE_FOREGROUND: RGB = (240, 240, 240)


def picture_theme() -> TerminalTheme:
    """The colours of SVG and HTML pictures (the heat map's own are exact RGB)."""
    from rich.terminal_theme import SVG_EXPORT_THEME, TerminalTheme

    palette = [SVG_EXPORT_THEME.ansi_colors[i] for i in range(16)]
    return TerminalTheme(
        PICTURE_BACKGROUND,
        PICTURE_FOREGROUND,
        [(c.red, c.green, c.blue) for c in palette[:8]],
        [(c.red, c.green, c.blue) for c in palette[8:]],
    )


def _offline_svg_format() -> str:
    """rich's SVG template without what a viewer would fetch: its @font-face rules load
    Fira Code from a CDN. A locally installed Fira Code is still used, else the system's
    monospace font (each text's width is fixed, so the grid holds)."""
    from rich._export_format import CONSOLE_SVG_FORMAT

    template = re.sub(r"\s*@font-face \{\{.*?\}\}", "", CONSOLE_SVG_FORMAT, flags=re.DOTALL)
    template = re.sub(r"\s*<!--.*?-->", "", template, flags=re.DOTALL)  # rich's web address
    return template.replace(
        "font-family: Fira Code, monospace",
        "font-family: 'Fira Code', 'DejaVu Sans Mono', Menlo, Consolas, monospace",
    )


class _Colourless:
    """A renderable drawn without colour (bold, dim and italics stay): a recorded
    console keeps the colours of what it prints even with no_color set."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        yield from Segment.remove_color(console.render(self.renderable, options))
