"""A small builder for one self-contained HTML report, and the generic figures reports share.

Why one file with everything inline: a report is attached to a ticket, mailed or opened on a
machine without network; plotly.js is embedded once and every figure is a div drawn by it, so
the page makes no request at all. plotly.js is 4.8 MB as text: it is embedded gzipped and
base64-encoded (about 1.9 MB) and unpacked by the browser's own DecompressionStream, so a
report with many figures stays well under 5 MB. Each figure is its JSON (numpy arrays as
plotly's base64 typed arrays) in a ``<script type="application/json">`` beside its div; one
loader draws them all once plotly.js is unpacked (``document.body.dataset.plotted`` is then
the number of figures drawn).

Escaping: every text that reaches the page is escaped here, once: `esc` for HTML, and
`plot_text` for what goes into a figure (plotly renders a subset of HTML tags in labels and hover
texts, so a tag in a marker's reason would otherwise be drawn or followed). Already-escaped HTML
is wrapped in `Html`, the only type `Report` inserts as is.

plotly is imported inside the functions that draw (`autoopt` does not pay for it at import).
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from autoopt.errors import ConfigError

if TYPE_CHECKING:
    import plotly.graph_objects as go

NS_PER_S = 1_000_000_000


class Html(str):
    """A fragment of HTML that is already escaped (made by this module's helpers)."""


def esc(text: object) -> Html:
    """``text`` as HTML text: ``<``, ``>``, ``&`` and both quotes escaped."""
    return Html(html.escape(str(text), quote=True))


def plot_text(text: object) -> str:
    """``text`` for a plotly label or hover text: ``<``, ``>`` and ``&`` escaped so plotly shows
    it literally (plotly decodes those entities, not ``&quot;``), newlines as line breaks."""
    return html.escape(str(text), quote=False).replace("\n", "<br>")


class MarkerLike(Protocol):
    """What a figure needs of a marker (`autoopt.backtest.result.Marker` is one); read-only, so a
    frozen marker with a literal ``kind`` matches."""

    @property
    def ts(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def text(self) -> str: ...


# Marker look per kind; an unknown kind is drawn as a grey dot.
MARKER_STYLES: dict[str, dict[str, Any]] = {
    "retrain": {"symbol": "triangle-up", "color": "#1f77b4", "size": 9},
    "release": {"symbol": "star", "color": "#2ca02c", "size": 11},
    "refusal": {"symbol": "x", "color": "#d62728", "size": 10},
    "failed": {"symbol": "x-thin-open", "color": "#7f0000", "size": 10},
    "params": {"symbol": "diamond", "color": "#9467bd", "size": 10},
    "params_refusal": {"symbol": "diamond-open", "color": "#d62728", "size": 10},
    "params_failed": {"symbol": "diamond-x", "color": "#7f0000", "size": 10},
}
_OTHER_STYLE: dict[str, Any] = {"symbol": "circle", "color": "#888888", "size": 7}


# One colour per series position, the same in every figure of a report (plotly's default cycle
# would shift when marker traces are interleaved).
PALETTE = (
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a",
    "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
)  # fmt: skip


def series_color(index: int) -> str:
    """The colour of the ``index``-th series of a figure."""
    return PALETTE[index % len(PALETTE)]


def to_datetimes(ts_ns: Sequence[int] | np.ndarray) -> np.ndarray:
    """Unix nanoseconds as numpy datetimes (UTC), the x axis of every time figure."""
    return np.asarray(ts_ns, dtype=np.int64).astype("datetime64[ns]")


def equity_curve(returns: Sequence[float] | np.ndarray) -> np.ndarray:
    """Compounded equity after each bar, starting from 1."""
    return np.cumprod(1.0 + np.asarray(returns, dtype=np.float64))


def drawdown_curve(returns: Sequence[float] | np.ndarray) -> np.ndarray:
    """Fall of the equity below its running peak (the start counts as a peak of 1), <= 0."""
    equity = equity_curve(returns)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    return equity / peak - 1.0


def _layout(fig: go.Figure, title: str, yaxis: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": plot_text(title), "x": 0.0, "font": {"size": 15}},
        yaxis_title=plot_text(yaxis),
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        hovermode="closest",
    )
    return fig


def equity_figure(
    series: Mapping[str, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    markers: Mapping[str, Sequence[MarkerLike]] | None = None,
    title: str = "Equity",
    height: int = 420,
) -> go.Figure:
    """One compounded equity line per named series of ``(ts_ns, returns)``, and the markers of
    each series drawn on its line at the last bar at or before the marker's time (hover: kind and
    text), one legend entry per series and kind."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, (ts, returns)) in enumerate(series.items()):
        t = np.asarray(ts, dtype=np.int64)
        equity = equity_curve(returns)
        fig.add_trace(
            go.Scatter(
                x=to_datetimes(t),
                y=equity,
                mode="lines",
                name=plot_text(name),
                line={"color": series_color(i)},
            )
        )
        by_kind: dict[str, list[MarkerLike]] = {}
        for m in (markers or {}).get(name, ()):
            by_kind.setdefault(m.kind, []).append(m)
        for kind, ms in by_kind.items():
            at = np.searchsorted(t, [m.ts for m in ms], side="right") - 1
            y = np.where(at >= 0, equity[np.maximum(at, 0)], 1.0) if t.size else np.ones(len(ms))
            style = MARKER_STYLES.get(kind, _OTHER_STYLE)
            fig.add_trace(
                go.Scatter(
                    x=to_datetimes([m.ts for m in ms]),
                    y=y,
                    mode="markers",
                    name=plot_text(f"{name}: {kind}"),
                    marker={
                        "symbol": style["symbol"],
                        "color": style["color"],
                        "size": style["size"],
                        "line": {"width": 1, "color": style["color"]},
                    },
                    text=[plot_text(f"{kind}: {m.text}") for m in ms],
                    hovertemplate="%{x}<br>%{text}<extra>" + plot_text(name) + "</extra>",
                )
            )
    return _layout(fig, title, "equity (start = 1)", height)


def drawdown_figure(
    series: Mapping[str, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    title: str = "Drawdown",
    height: int = 300,
) -> go.Figure:
    """Drawdown below the running peak of each named series of ``(ts_ns, returns)``, in %."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, (ts, returns)) in enumerate(series.items()):
        fig.add_trace(
            go.Scatter(
                x=to_datetimes(ts),
                y=100.0 * drawdown_curve(returns),
                mode="lines",
                name=plot_text(name),
                line={"color": series_color(i)},
            )
        )
    return _layout(fig, title, "drawdown (%)", height)


def line_figure(
    series: Mapping[str, tuple[Sequence[int] | np.ndarray, Sequence[float] | np.ndarray]],
    title: str,
    yaxis: str,
    height: int = 300,
) -> go.Figure:
    """One line per named series of ``(ts_ns, values)``; NaN values leave gaps; a short series
    (under 60 points) also shows its points, so a single reading is visible."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, (name, (ts, values)) in enumerate(series.items()):
        y = np.asarray(values, dtype=np.float64)
        fig.add_trace(
            go.Scatter(
                x=to_datetimes(ts),
                y=y,
                mode="lines+markers" if y.size < 60 else "lines",
                name=plot_text(name),
                line={"color": series_color(i)},
            )
        )
    return _layout(fig, title, yaxis, height)


def selector_figure(figures: Mapping[str, go.Figure], label: str = "show") -> go.Figure:
    """The figures' traces in one figure with a drop-down that shows one figure at a time (the
    first at load), e.g. one equity chart per symbol in the space of one."""
    import plotly.graph_objects as go

    if not figures:
        raise ValueError("selector_figure needs at least one figure")
    first = next(iter(figures.values()))
    out = go.Figure(layout=first.layout)
    spans: list[tuple[str, int, int]] = []
    for name, fig in figures.items():
        start = len(out.data)
        out.add_traces(list(fig.data))
        spans.append((name, start, len(out.data)))
    total = len(out.data)
    buttons = []
    for i, (name, start, stop) in enumerate(spans):
        visible = [start <= j < stop for j in range(total)]
        if i == 0:
            for j, trace in enumerate(out.data):
                trace.visible = visible[j]
        title = figures[name].layout.title.text or plot_text(name)
        buttons.append(
            {
                "label": plot_text(name),
                "method": "update",
                "args": [{"visible": visible}, {"title.text": title}],
            }
        )
    out.update_layout(
        updatemenus=[
            {
                "buttons": buttons,
                "direction": "down",
                "x": 1.0,
                "xanchor": "right",
                "y": 1.15,
                "yanchor": "top",
                "showactive": True,
                "name": plot_text(label),
            }
        ]
    )
    return out


# ------------------------------------------------------------------------------------ tables


def format_value(value: object) -> str:
    """A table cell: floats with 4 significant digits, NaN as an en dash, infinities as ∞."""
    if isinstance(value, bool) or value is None:
        return "–" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}"
    return str(value)


def percent(value: float) -> str:
    """A fraction as a percentage with two decimals."""
    return "–" if math.isnan(value) else f"{100.0 * value:.2f}%"


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its header, and how its values are written."""

    key: str
    label: str
    fmt: Callable[[Any], str] = format_value
    numeric: bool = True


def table_html(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> Html:
    """An HTML table of ``rows`` (a missing key is an empty cell); every cell escaped."""
    head = "".join(
        f'<th class="{"num" if c.numeric else "txt"}">{esc(c.label)}</th>' for c in columns
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="{"num" if c.numeric else "txt"}">'
            f"{esc(c.fmt(row[c.key])) if c.key in row else ''}</td>"
            for c in columns
        )
        body.append(f"<tr>{cells}</tr>")
    return Html(
        f'<div class="table"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def paragraphs(lines: Sequence[str], css_class: str = "") -> Html:
    """Each line as an escaped paragraph."""
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return Html("".join(f"<p{cls}>{esc(line)}</p>" for line in lines))


# ----------------------------------------------------------------------------------- builder

Block = Html | Any  # an escaped fragment or a plotly figure


@dataclass
class _Section:
    heading: str
    blocks: list[Block] = field(default_factory=list)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#fafafa}
header{background:#17324d;color:#fff;padding:18px 32px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#cfd8e3}
main{padding:8px 32px 24px;max-width:1400px}
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;margin:16px 0;padding:8px 16px}
h2{font-size:17px;margin:10px 0}
.summary p{font-size:15px;margin:6px 0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #eee;white-space:nowrap}
th{background:#f3f5f7;text-align:left;position:sticky;top:0}td.num,th.num{text-align:right}
.table{overflow:auto;max-height:480px;max-width:100%}
.plot{min-height:200px}
footer{color:#666;font-size:12px;padding:12px 32px 24px}
"""


_LOADER_JS = """
(async () => {
  const raw = atob(document.getElementById("plotly-gz").textContent);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  (0, eval)(await new Response(stream).text());
  const config = {displaylogo: false, responsive: true};
  let n = 0;
  for (const el of document.querySelectorAll("script.fig")) {
    const fig = JSON.parse(el.textContent);
    await Plotly.newPlot(document.getElementById(el.dataset.target), fig.data, fig.layout, config);
    n += 1;
  }
  document.body.dataset.plotted = String(n);
})();
"""


@functools.lru_cache(maxsize=1)
def plotly_loader() -> str:
    """plotly.js gzipped and base64-encoded in an inert script element, and the loader that
    unpacks it and draws every figure of the page (computed once per process)."""
    from plotly.offline import get_plotlyjs

    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()
    return (f'<script type="application/octet-stream" id="plotly-gz">{packed}</script>'
            f"<script>{_LOADER_JS}</script>")


class Report:
    """A page: title, subtitle, sections of figures, tables and text, a footer with the run
    digest. `render` returns the one self-contained HTML document; `write` writes it."""

    def __init__(self, title: str, subtitle: str = "", footer: Sequence[str] = ()) -> None:
        self.title = title
        self.subtitle = subtitle
        self.footer = list(footer)
        self._sections: list[_Section] = []
        self._figures = 0

    def section(self, heading: str, *blocks: Block) -> Report:
        """Append a section of blocks: `Html` fragments (from `table_html`, `paragraphs`, `esc`)
        and plotly figures; returns the report for chaining."""
        self._sections.append(_Section(heading, list(blocks)))
        return self

    def _block(self, block: Block) -> str:
        if isinstance(block, Html):
            return str(block)
        if isinstance(block, str):
            raise TypeError(
                "plain str blocks are not escaped: wrap them with esc() or paragraphs()"
            )
        self._figures += 1
        # "<" only occurs inside JSON strings: \u003c keeps "</script>" and "<!--" out of the page
        data = block.to_json().replace("<", "\\u003c")
        fig_id = f"fig-{self._figures}"
        height = int(block.layout.height or 400)
        return (
            f'<div class="plot"><div id="{fig_id}" class="plotly-graph-div" '
            f'style="height:{height}px;width:100%"></div>'
            f'<script type="application/json" class="fig" data-target="{fig_id}">{data}'
            "</script></div>"
        )

    def render(self) -> str:
        """The whole page as one string (plotly.js inline, once, gzipped; see the module doc)."""
        self._figures = 0
        sections = "".join(
            f"<section><h2>{esc(s.heading)}</h2>{''.join(self._block(b) for b in s.blocks)}"
            "</section>"
            for s in self._sections
        )
        subtitle = f"<p>{esc(self.subtitle)}</p>" if self.subtitle else ""
        footer = "<br>".join(esc(line) for line in self.footer)
        return (
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<header><h1>{esc(self.title)}</h1>{subtitle}</header>"
            f"<main>{sections}</main><footer>{footer}</footer>"
            f"{plotly_loader() if self._figures else ''}</body></html>"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page to ``path`` (UTF-8, parent directories created), atomically; a path
        that cannot be written is a `ConfigError` naming it."""
        out = Path(path)
        page = self.render()
        tmp = out.with_name(f".{out.name}.tmp")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(page, encoding="utf-8")
            tmp.replace(out)
        except OSError as exc:
            raise ConfigError(f"cannot write the report to {out}: {exc.strerror or exc}") from None
        return out


__all__ = [
    "MARKER_STYLES",
    "PALETTE",
    "Column",
    "Html",
    "MarkerLike",
    "Report",
    "drawdown_curve",
    "drawdown_figure",
    "equity_curve",
    "equity_figure",
    "esc",
    "format_value",
    "line_figure",
    "paragraphs",
    "percent",
    "plot_text",
    "selector_figure",
    "series_color",
    "table_html",
    "to_datetimes",
]
