"""The shop dashboard: what the warehouse's marts say about the shop, as numbers and as a page.

`build_shop_dashboard(query)` reads `analytics.daily_session_stats`, `analytics.sessions` and
`analytics.item_stats` through any `query(sql, params) -> rows` callable (`?` placeholders, SQL
that DuckDB and Snowflake both run) and returns a `ShopDashboard` of plain numbers.
`render_html(dashboard)` turns it into one self-contained page: inline CSS, the charts drawn by
matplotlib as inline SVG (text kept as text, no font embedded), no script, no link to anything
outside the file, every text that comes from the data escaped.

What each number counts:
- Days, sessions, events, product views and the funnel come from `daily_session_stats`, which puts
  a session in the partition of its first event; "events" are the events of those sessions
  (duplicates removed). Rates are totals over totals, never means of daily rates.
- The session-length histogram is of `sessions.event_count` (events per session) over the same
  sessions, so its counts add up to the sessions.
- Items come from `item_stats` (product events by the day they landed): the popularity curve,
  its Gini and the top items are over every sku with a product event in the window (a sku only
  ever added, never viewed, counts with zero views). The warehouse does not know the catalogue,
  so skus never touched are not in the Gini, unlike the simulator's catalogue-wide figure.
- Duplicate rate: raw rows whose event_id had already landed / raw rows; late rate: events that
  landed after the UTC date of their client_ts / distinct events landed.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recs_platform.simulation.stats import gini

if TYPE_CHECKING:  # matplotlib is imported when a chart is drawn, not with the module
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Query = Callable[[str, list | None], list[tuple]]

SCHEMA = "analytics"
TOP_ITEMS = 20
HISTOGRAM_CAP = 30
"""Sessions of at least this many events share the histogram's last bar."""
CURVE_POINTS = 200
"""The popularity curve keeps at most this many segments (the whole curve below that)."""
POPULARITY_MARKS = (0.01, 0.1, 0.2)
"""Shares of the items (most viewed first) whose share of the views the dashboard states; read
off the curve, so a fraction of an item counts that fraction of its views."""


class EmptyWarehouseError(ValueError):
    """The marts hold no session to report on."""


@dataclass(frozen=True)
class DailyRow:
    """One day of `daily_session_stats`."""

    day: dt.date
    sessions: int
    events: int
    product_views: int
    sessions_with_view: int
    sessions_with_add: int
    sessions_with_purchase: int
    distinct_items: int
    landed_rows: int
    duplicate_rows: int
    landed_events: int
    late_events: int
    events_outside_sessions: int

    @property
    def mean_session_length(self) -> float | None:
        return _share(self.events, self.sessions)

    @property
    def add_to_cart_rate(self) -> float | None:
        return _share(self.sessions_with_add, self.sessions)

    @property
    def purchase_rate(self) -> float | None:
        return _share(self.sessions_with_purchase, self.sessions)

    @property
    def duplicate_rate(self) -> float | None:
        return _share(self.duplicate_rows, self.landed_rows)

    @property
    def late_rate(self) -> float | None:
        return _share(self.late_events, self.landed_events)


@dataclass(frozen=True)
class FunnelStep:
    label: str
    sessions: int
    share_of_sessions: float
    share_of_previous: float | None  # None for the first step or after a step of zero sessions


@dataclass(frozen=True)
class HistogramBin:
    """Sessions of `low` to `high` events (`high` None: `low` or more)."""

    low: int
    high: int | None
    sessions: int

    @property
    def label(self) -> str:
        if self.high is None:
            return f"{self.low}+"
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"


@dataclass(frozen=True)
class TopItem:
    sku: str
    views: int
    adds: int
    purchases: int
    share_of_views: float


@dataclass(frozen=True)
class VariantDay:
    """What one variant's carousels did on one day (`recommendation_performance`)."""

    day: dt.date
    variant: str
    model_version: str
    impressions: int
    clicks: int

    @property
    def ctr(self) -> float | None:
        return _share(self.clicks, self.impressions)


@dataclass(frozen=True)
class ShopDashboard:
    """The numbers of the dashboard, over the days `first_day` to `last_day` (both included)."""

    first_day: dt.date
    last_day: dt.date
    daily: tuple[DailyRow, ...]
    sessions: int
    events: int
    product_views: int
    mean_session_length: float  # events per session
    median_session_length: float
    session_length_histogram: tuple[HistogramBin, ...]
    funnel: tuple[FunnelStep, ...]
    items_seen: int  # skus with any product event
    distinct_items_viewed: int
    item_views: int  # product views in item_stats (by landing day, late ones included)
    gini_item_views: float
    popularity_curve: tuple[tuple[float, float], ...]  # (share of items, share of their views)
    popularity_marks: tuple[tuple[float, float], ...]  # the same at POPULARITY_MARKS
    top_items: tuple[TopItem, ...]
    landed_rows: int
    duplicate_rows: int
    landed_events: int
    late_events: int
    events_outside_sessions: int
    recommendations: tuple[VariantDay, ...] = ()  # per day and variant, when carousels showed

    @property
    def days(self) -> int:
        return len(self.daily)

    @property
    def sessions_with_add(self) -> int:
        return sum(row.sessions_with_add for row in self.daily)

    @property
    def sessions_with_purchase(self) -> int:
        return sum(row.sessions_with_purchase for row in self.daily)

    @property
    def add_to_cart_rate(self) -> float:
        return _share(self.sessions_with_add, self.sessions) or 0.0

    @property
    def purchase_rate(self) -> float:
        return _share(self.sessions_with_purchase, self.sessions) or 0.0

    @property
    def duplicate_rate(self) -> float:
        return _share(self.duplicate_rows, self.landed_rows) or 0.0

    @property
    def late_rate(self) -> float:
        return _share(self.late_events, self.landed_events) or 0.0

    def key_numbers(self) -> dict[str, int | float | str]:
        """The headline numbers, named as they appear in the asset's metadata."""
        return {
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "days_covered": self.days,
            "total_sessions": self.sessions,
            "total_events": self.events,
            "mean_session_length": self.mean_session_length,
            "add_to_cart_rate": self.add_to_cart_rate,
            "purchase_rate": self.purchase_rate,
            "distinct_items_viewed": self.distinct_items_viewed,
            "gini_item_views": self.gini_item_views,
            "duplicate_rate": self.duplicate_rate,
            "late_rate": self.late_rate,
        }


def _share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _int(value: Any) -> int:
    """A count as Python's int (Snowflake returns sums as Decimal)."""
    return 0 if value is None else int(value)


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


# --------------------------------------------------------------------------------- the numbers

_DAILY_COLUMNS = (
    "partition_date, sessions, session_events, product_views, sessions_with_view, "
    "sessions_with_add, sessions_with_purchase, distinct_items, landed_rows, duplicate_rows, "
    "landed_events, late_events, events_outside_sessions"
)


def build_shop_dashboard(
    query: Query, *, window_days: int | None = None, top_n: int = TOP_ITEMS
) -> ShopDashboard:
    """The dashboard of every day in the marts, or of the last `window_days` of them.

    Raises `EmptyWarehouseError` when the days hold no session.
    """
    if window_days is not None and window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if top_n < 1:
        raise ValueError(f"top_n must be at least 1, got {top_n}")
    ((first, last),) = query(
        f"SELECT min(partition_date), max(partition_date) FROM {SCHEMA}.daily_session_stats", None
    )
    if last is None:
        raise EmptyWarehouseError(
            f"{SCHEMA}.daily_session_stats is empty: build the warehouse (the dbt models) first"
        )
    first, last = _date(first), _date(last)
    if window_days is not None:
        first = max(first, last - dt.timedelta(days=window_days - 1))
    window = [first, last]

    daily = tuple(
        DailyRow(_date(row[0]), *(_int(value) for value in row[1:]))
        for row in query(
            f"SELECT {_DAILY_COLUMNS} FROM {SCHEMA}.daily_session_stats "
            "WHERE partition_date >= ? AND partition_date <= ? ORDER BY partition_date",
            window,
        )
    )
    sessions = sum(row.sessions for row in daily)
    if sessions == 0:
        raise EmptyWarehouseError(
            f"no sessions in {SCHEMA}.daily_session_stats from {first} to {last}: "
            "nothing to report (load events and build the warehouse first)"
        )
    events = sum(row.events for row in daily)

    lengths = sorted(
        (_int(length), _int(count))
        for length, count in query(
            f"SELECT event_count, count(*) FROM {SCHEMA}.sessions "
            "WHERE session_date >= ? AND session_date <= ? GROUP BY event_count",
            window,
        )
    )
    items = sorted(
        (
            (str(sku), _int(views), _int(adds), _int(purchases))
            for sku, views, adds, purchases in query(
                "SELECT product_sku, sum(view_count), sum(add_count), sum(purchase_count) "
                f"FROM {SCHEMA}.item_stats WHERE event_date >= ? AND event_date <= ? "
                "GROUP BY product_sku",
                window,
            )
        ),
        key=lambda item: (-item[1], item[0]),
    )
    recommendations = tuple(
        VariantDay(_date(day), str(variant), str(version), _int(impressions), _int(clicks))
        for day, variant, version, impressions, clicks in query(
            "SELECT partition_date, variant, model_version, sum(impressions), sum(clicks) "
            f"FROM {SCHEMA}.recommendation_performance "
            # Rows without a variant count clicks no impression explains: not a variant's.
            "WHERE partition_date >= ? AND partition_date <= ? AND variant IS NOT NULL "
            "GROUP BY partition_date, variant, model_version "
            "ORDER BY partition_date, variant, model_version",
            window,
        )
    )
    views = np.array([item[1] for item in items], dtype=np.int64)
    item_views = int(views.sum())
    curve, marks = _popularity(views)

    return ShopDashboard(
        first_day=first,
        last_day=last,
        daily=daily,
        sessions=sessions,
        events=events,
        product_views=sum(row.product_views for row in daily),
        mean_session_length=events / sessions,
        median_session_length=_median(lengths),
        session_length_histogram=_histogram(lengths),
        funnel=_funnel(daily),
        items_seen=len(items),
        distinct_items_viewed=int((views > 0).sum()),
        item_views=item_views,
        gini_item_views=gini(views),
        popularity_curve=curve,
        popularity_marks=marks,
        top_items=tuple(
            TopItem(sku, item_views_, adds, purchases, _share(item_views_, item_views) or 0.0)
            for sku, item_views_, adds, purchases in items[:top_n]
        ),
        landed_rows=sum(row.landed_rows for row in daily),
        duplicate_rows=sum(row.duplicate_rows for row in daily),
        landed_events=sum(row.landed_events for row in daily),
        late_events=sum(row.late_events for row in daily),
        events_outside_sessions=sum(row.events_outside_sessions for row in daily),
        recommendations=recommendations,
    )


def _median(lengths: Sequence[tuple[int, int]]) -> float:
    """Median of a distribution given as sorted (value, count) pairs."""
    total = sum(count for _, count in lengths)
    middle = ((total - 1) // 2, total // 2)
    found: list[int] = []
    seen = 0
    for value, count in lengths:
        found += [value for position in middle if seen <= position < seen + count]
        seen += count
    return sum(found) / 2


def _histogram(lengths: Sequence[tuple[int, int]]) -> tuple[HistogramBin, ...]:
    """One bar per length from 1, the lengths from HISTOGRAM_CAP on in one last bar."""
    longest = max(length for length, _ in lengths)
    counts = dict(lengths)
    if longest < HISTOGRAM_CAP:
        return tuple(HistogramBin(n, n, counts.get(n, 0)) for n in range(1, longest + 1))
    head = [HistogramBin(n, n, counts.get(n, 0)) for n in range(1, HISTOGRAM_CAP)]
    tail = sum(count for length, count in lengths if length >= HISTOGRAM_CAP)
    return (*head, HistogramBin(HISTOGRAM_CAP, None, tail))


def _funnel(daily: Sequence[DailyRow]) -> tuple[FunnelStep, ...]:
    counts = [
        ("all sessions", sum(row.sessions for row in daily)),
        ("viewed a product", sum(row.sessions_with_view for row in daily)),
        ("added to cart", sum(row.sessions_with_add for row in daily)),
        ("purchased", sum(row.sessions_with_purchase for row in daily)),
    ]
    total = counts[0][1]
    steps = []
    for index, (label, count) in enumerate(counts):
        previous = _share(count, counts[index - 1][1]) if index else None
        steps.append(FunnelStep(label, count, count / total, previous))
    return tuple(steps)


def _covered_by_top(share: float, views: np.ndarray, covered: np.ndarray) -> float:
    """Views of the top `share` of the items, a fraction of an item counting that fraction of its
    views (the curve between two items is a straight line)."""
    whole, part = divmod(share * views.size, 1)
    whole = int(whole)
    return float(covered[whole] + (part * views[whole] if whole < views.size else 0))


def _popularity(
    views: np.ndarray,
) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    """The curve (share of items, share of views they have), most viewed first, and its marks."""
    total = int(views.sum())
    if views.size == 0 or total == 0:
        return (), ()
    covered = np.concatenate([[0], np.cumsum(views)])
    if views.size <= CURVE_POINTS:
        kept = range(views.size + 1)
    else:
        kept = sorted({round(i * views.size / CURVE_POINTS) for i in range(CURVE_POINTS + 1)})
    curve = tuple((k / views.size, float(covered[k]) / total) for k in kept)
    marks = tuple(
        (share, _covered_by_top(share, views, covered) / total) for share in POPULARITY_MARKS
    )
    return curve, marks


# ------------------------------------------------------------------------------- the HTML page

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f6f8;color:#1f2430;
  font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
  line-height:1.45}
main{max-width:1060px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:1.6em;margin:8px 0 2px}
h2{font-size:1.2em;margin:0 0 10px}
.sub{color:#5a6273;margin:0 0 12px}
nav{font-size:.9em;margin:8px 0 4px}
nav a{color:#2f5d8a;margin-right:14px;text-decoration:none}
section{background:#fff;border:1px solid #dfe3ea;border-radius:8px;padding:16px 20px;margin:16px 0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(165px,1fr));gap:10px}
.card{border:1px solid #e4e7ee;border-radius:6px;padding:10px 12px;background:#fbfcfd}
.card .value{font-size:1.45em;font-weight:600;font-variant-numeric:tabular-nums}
.card .label{color:#5a6273;font-size:.85em}
figure{margin:0 0 12px}
figcaption{color:#5a6273;font-size:.9em;margin-top:4px}
svg{display:block;width:100%;height:auto}
table{border-collapse:collapse;width:100%;font-size:.88em;font-variant-numeric:tabular-nums}
th,td{padding:4px 6px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th{color:#5a6273;font-weight:600;white-space:normal;vertical-align:bottom}
th:first-child,td:first-child{text-align:left}
.sku{text-align:left!important;white-space:normal;word-break:break-all}
.left{text-align:left!important}
.scroll{max-height:420px;overflow:auto}
.bar{display:inline-block;height:9px;background:#4c78a8;border-radius:2px;vertical-align:middle}
footer{color:#8a91a0;font-size:.8em;margin-top:24px}
"""

BLUE, ORANGE, GREEN, GREY, MUTED = "#4c78a8", "#f58518", "#54a24b", "#9aa2b1", "#5a6273"

CHART_STYLE = {
    "svg.fonttype": "none",  # text stays text: selectable, small, no font embedded
    "svg.hashsalt": "shop-dashboard",  # fixed ids: the same data gives the same page
    "font.sans-serif": ["DejaVu Sans"],  # shipped with matplotlib, which measures text with it
    "font.size": 11,
    "text.color": MUTED,
    "axes.labelcolor": MUTED,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "axes.edgecolor": GREY,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e8ebf0",
    "axes.axisbelow": True,
}
"""matplotlib's settings for the charts, in force only while one is drawn."""


def _esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _percent(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f} %"


def _decimal(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


@contextmanager
def _chart(width: int, height: int) -> Iterator[tuple[Figure, Axes]]:
    """A figure of `width` x `height` SVG units (CSS pixels at full size) under CHART_STYLE.
    Made without pyplot, it is in no global registry: nothing to close, it goes with the chart."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(CHART_STYLE):
        figure = Figure(figsize=(width / 72, height / 72), layout="constrained")
        yield figure, figure.add_subplot()


def _inline_svg(figure: Figure, label: str, max_width: int = 0) -> str:
    """The figure as an `<svg>` element of the page: no XML prolog or doctype, a role and an
    aria-label, a hover `<title>` for each artist whose gid is "tip:" and its text, and the ids
    that are referred to (clip paths, markers) prefixed with the chart's name to be unique."""
    buffer = io.StringIO()
    # No metadata: no date to change the bytes from run to run, no RDF links to outside schemas.
    figure.savefig(
        buffer, format="svg", metadata=dict.fromkeys(["Creator", "Date", "Format", "Type"])
    )
    svg = re.sub(r">\s+<", "><", buffer.getvalue())
    opening = re.search(r'<svg [^>]*viewBox="([^"]+)"[^>]*>', svg)
    body = re.sub(r'<g id="tip:([^"]*)">', r"<g><title>\1</title>", svg[opening.end() :])
    body = re.sub(r'<g id="[^"]*"', "<g", body)
    prefix = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + "-"
    body = re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{prefix}", body)
    style = f' style="max-width:{max_width}px"' if max_width else ""
    aria = f'role="img" aria-label="{_esc(label)}"'
    return f'<svg viewBox="{opening.group(1)}"{style} {aria}>{body}'


def _bar_chart(
    values: Sequence[float],
    labels: Sequence[str],
    *,
    label: str,
    color: str = BLUE,
    formatter: Callable[[float], str] = _count,
) -> str:
    """Vertical bars of counts, one per value, each with its label and value on hover; at most
    16 labels below (every k-th)."""
    with _chart(1000, 220) as (figure, axes):
        bars = axes.bar(range(len(values)), values, width=0.78, color=color)
        for bar, value, text in zip(bars, values, labels, strict=True):
            bar.set_gid(f"tip:{text}: {formatter(value)}")
        every = math.ceil(len(values) / 16)
        axes.set_xticks(range(0, len(values), every), labels[::every])
        axes.set(xlim=(-0.5, len(values) - 0.5), ylim=(0, max(*values, 1) * 1.05))
        axes.yaxis.get_major_locator().set_params(integer=True, nbins=4)
        axes.yaxis.set_major_formatter(lambda value, _: formatter(value))
        axes.tick_params(axis="x", length=0)
        axes.grid(axis="x", visible=False)
        return _inline_svg(figure, label)


def _funnel_chart(steps: Sequence[FunnelStep]) -> str:
    """One bar per step, as long as its share of all sessions, with its numbers beside it."""
    notes = []
    for step in steps:
        notes.append(f"{_count(step.sessions)} · {_percent(step.share_of_sessions)} of sessions")
        if step.share_of_previous is not None:
            notes[-1] += f" · {_percent(step.share_of_previous)} of the step before"
    with _chart(1000, 34 * len(steps) + 8) as (figure, axes):
        colors = [BLUE, *[GREEN] * (len(steps) - 1)]
        rows = range(len(steps))
        bars = axes.barh(rows, [step.share_of_sessions for step in steps], 0.7, color=colors)
        axes.bar_label(bars, notes, padding=8)
        axes.set_yticks(rows, [step.label for step in steps])
        axes.set(xlim=(0, 1), ylim=(len(steps) - 0.5, -0.5))  # the first step on top
        axes.xaxis.set_visible(False)
        axes.tick_params(axis="y", length=0)
        axes.grid(visible=False)
        axes.spines[:].set_visible(False)
        return _inline_svg(figure, "Session funnel")


def _popularity_chart(dashboard: ShopDashboard) -> str:
    """The popularity curve, the diagonal of a shop where every item is as popular, and the
    marks the caption states."""
    with _chart(560, 380) as (figure, axes):
        axes.plot([0, 1], [0, 1], color=GREY, linestyle=(0, (5, 4)), linewidth=1)
        axes.plot(*zip(*dashboard.popularity_curve, strict=True), color=ORANGE, linewidth=2)
        for share, views in dashboard.popularity_marks:
            tip = f"tip:top {_percent(share, 0)} of items: {_percent(views)} of views"
            axes.plot([share], [views], "o", color=ORANGE, markersize=7, gid=tip)
        ticks = [0, 0.25, 0.5, 0.75, 1]
        axes.set(xlim=(0, 1), ylim=(0, 1), xticks=ticks, yticks=ticks)
        axes.set(xlabel="share of items, most viewed first", ylabel="share of product views")
        axes.xaxis.set_major_formatter("{x:.0%}")
        axes.yaxis.set_major_formatter("{x:.0%}")
        return _inline_svg(figure, "Popularity curve", max_width=560)


def _variants_chart(rows: Sequence[VariantDay]) -> str:
    """Click-through rate per day, one line per variant and model version."""
    with _chart(1000, 260) as (figure, axes):
        lines = sorted({(row.variant, row.model_version) for row in rows})
        for (variant, version), color in zip(lines, [BLUE, ORANGE, GREEN, GREY] * 8, strict=False):
            points = [row for row in rows if (row.variant, row.model_version) == (variant, version)]
            axes.plot(
                [row.day for row in points],
                [row.ctr or 0.0 for row in points],
                "o-",
                color=color,
                linewidth=2,
                label=f"{variant} (version {version})",
            )
            for row in points:
                tip = f"tip:{variant} {row.day.isoformat()}: CTR {_percent(row.ctr)}"
                axes.plot([row.day], [row.ctr or 0.0], "o", color=color, gid=tip)
        axes.set(ylabel="click-through rate", ylim=(0, None))
        axes.yaxis.set_major_formatter("{x:.0%}")
        axes.legend(loc="lower left")
        figure.autofmt_xdate()
        return _inline_svg(figure, "Carousel click-through rate by variant")


def _cards(cards: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="value">{_esc(value)}</div>'
            f'<div class="label">{_esc(label)}</div></div>'
            for value, label in cards
        )
        + "</div>"
    )


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] = ()
) -> str:
    """A table of already escaped cells; `classes` gives a CSS class per column."""

    def cell(tag: str, index: int, content: str) -> str:
        css = classes[index] if index < len(classes) else ""
        return f'<{tag} class="{css}">{content}</{tag}>' if css else f"<{tag}>{content}</{tag}>"

    head = "".join(cell("th", i, _esc(header)) for i, header in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, content) for i, content in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar_span(fraction: float) -> str:
    return f'<span class="bar" style="width:{120 * fraction:.0f}px"></span>'


def _captioned(chart: str, caption: str) -> str:
    return f"<figure>{chart}<figcaption>{_esc(caption)}</figcaption></figure>"


SECTIONS = (
    ("overview", "Key numbers"),
    ("daily", "Daily sessions and events"),
    ("funnel", "Funnel"),
    ("lengths", "Session lengths"),
    ("popularity", "Item popularity"),
    ("top-items", "Top items"),
    ("quality", "Data quality"),
    ("recommendations", "Carousel by variant"),
)


def render_html(dashboard: ShopDashboard, generated_at: dt.datetime | None = None) -> str:
    """One self-contained HTML page of the dashboard (inline CSS and SVG, no script, no links
    outside the page)."""
    generated_at = (generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    d = dashboard
    window = f"{d.first_day.isoformat()} to {d.last_day.isoformat()} ({d.days} days)"
    sections: dict[str, str] = {}

    sections["overview"] = _cards(
        [
            (_count(d.days), "days covered"),
            (_count(d.sessions), "sessions"),
            (_count(d.events), "events in those sessions"),
            (_count(d.product_views), "product views"),
            (_decimal(d.mean_session_length), "mean session length (events)"),
            (_decimal(d.median_session_length, 1), "median session length (events)"),
            (_percent(d.add_to_cart_rate), "sessions with an add to cart"),
            (_percent(d.purchase_rate), "sessions with a purchase"),
            (_count(d.distinct_items_viewed), "distinct items viewed"),
            (_decimal(d.gini_item_views, 3), "Gini of item views"),
            (_percent(d.duplicate_rate, 2), "duplicate rate"),
            (_percent(d.late_rate, 2), "late rate"),
        ]
    )

    day_labels = [row.day.strftime("%m-%d") for row in d.daily]
    sections["daily"] = (
        _captioned(
            _bar_chart([row.sessions for row in d.daily], day_labels, label="Sessions per day"),
            "Sessions per day, each counted on the day its first event landed (UTC).",
        )
        + _captioned(
            _bar_chart(
                [row.events for row in d.daily],
                day_labels,
                label="Events per day",
                color=ORANGE,
            ),
            "Events per day: the events of that day's sessions, duplicates removed.",
        )
        + '<div class="scroll">'
        + _table(
            [
                "day",
                "sessions",
                "events",
                "product views",
                "mean length",
                "add to cart",
                "purchase",
                "items",
                "events landed",
                "duplicates",
                "late",
            ],
            [
                [
                    _esc(row.day.isoformat()),
                    _count(row.sessions),
                    _count(row.events),
                    _count(row.product_views),
                    _decimal(row.mean_session_length),
                    _percent(row.add_to_cart_rate),
                    _percent(row.purchase_rate),
                    _count(row.distinct_items),
                    _count(row.landed_events),
                    _percent(row.duplicate_rate, 2),
                    _percent(row.late_rate, 2),
                ]
                for row in d.daily
            ],
        )
        + "</div>"
    )

    sections["funnel"] = _captioned(
        _funnel_chart(d.funnel),
        "Sessions that reached each step at least once, as a share of all sessions and of the "
        "step before (a purchase without an add to cart still counts as a purchase).",
    )

    histogram = d.session_length_histogram
    open_ended = histogram[-1].high is None
    sections["lengths"] = _captioned(
        _bar_chart(
            [bin_.sessions for bin_ in histogram],
            [bin_.label for bin_ in histogram],
            label="Session-length histogram",
            color=GREEN,
        ),
        "Sessions by their number of events (page views and product events)"
        + (f", {histogram[-1].label} events in the last bar" if open_ended else "")
        + f". Mean {_decimal(d.mean_session_length)}, "
        f"median {_decimal(d.median_session_length, 1)} events.",
    )

    if d.popularity_curve:
        marks = ", ".join(
            f"the top {_percent(share, 0)} of items have {_percent(covered)} of the views"
            for share, covered in d.popularity_marks
        )
        sections["popularity"] = _captioned(
            _popularity_chart(d),
            f"Share of product views covered by the most viewed items: {marks}. The dashed "
            f"diagonal is a shop where every item is equally popular. Gini of item views "
            f"{_decimal(d.gini_item_views, 3)} over {_count(d.items_seen)} items with a product "
            f"event ({_count(d.distinct_items_viewed)} of them viewed, "
            f"{_count(d.item_views)} views).",
        )
    else:
        sections["popularity"] = '<p class="sub">No product views in these days.</p>'

    top_share = max((item.share_of_views for item in d.top_items), default=0.0) or 1.0
    sections["top-items"] = (
        f'<p class="sub">The {_count(len(d.top_items))} most viewed items of '
        f"{_count(d.items_seen)} (views, adds to cart and purchases by the day they landed).</p>"
        + _table(
            ["#", "sku", "views", "share of views", "", "adds", "purchases"],
            [
                [
                    str(rank),
                    _esc(item.sku),
                    _count(item.views),
                    _percent(item.share_of_views),
                    _bar_span(item.share_of_views / top_share),
                    _count(item.adds),
                    _count(item.purchases),
                ]
                for rank, item in enumerate(d.top_items, start=1)
            ],
            classes=["", "sku", "", "", "left"],
        )
    )

    sections["quality"] = _cards(
        [
            (_percent(d.duplicate_rate, 2), "duplicate rate"),
            (_percent(d.late_rate, 2), "late rate"),
            (_count(d.duplicate_rows), "duplicate rows"),
            (_count(d.late_events), "late events"),
            (_count(d.landed_events), "events landed"),
            (_count(d.events_outside_sessions), "events outside any session"),
        ]
    ) + (
        '<p class="sub">Duplicate rate: raw rows whose event_id had already landed, of all raw '
        "rows. Late rate: events that landed after the UTC date of their client timestamp, of "
        "all distinct events landed. Events outside any session landed too long after their "
        "session's first day (beyond the lookback) to be attached to it. Per day in the "
        "daily table.</p>"
    )

    if d.recommendations:
        sections["recommendations"] = _captioned(
            _variants_chart(d.recommendations),
            "Clicks on the carousel's items per impression, per day and variant (champion, "
            "challenger) with the model version that answered (recommendation_performance). "
            "The A/B test's decision is ab_test_report's.",
        ) + _table(
            ["day", "variant", "version", "impressions", "clicks", "CTR"],
            [
                [
                    _esc(row.day.isoformat()),
                    _esc(row.variant),
                    _esc(row.model_version),
                    _count(row.impressions),
                    _count(row.clicks),
                    _percent(row.ctr, 2),
                ]
                for row in d.recommendations
            ],
        )
    else:
        sections["recommendations"] = '<p class="sub">No carousel impressions in these days.</p>'

    nav = "".join(f'<a href="#{key}">{_esc(title)}</a>' for key, title in SECTIONS)
    body = "".join(
        f'<section id="{key}"><h2>{_esc(title)}</h2>{sections[key]}</section>'
        for key, title in SECTIONS
    )
    stamp = generated_at.strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Shop dashboard · {_esc(window)}</title><style>{_CSS}</style></head>"
        f"<body><main><h1>Shop dashboard</h1>"
        f'<p class="sub">{_esc(window)} · from the warehouse marts daily_session_stats, '
        f"sessions and item_stats</p><nav>{nav}</nav>{body}"
        f"<footer>Generated {_esc(stamp)} by recs-platform's shop_dashboard asset.</footer>"
        "</main></body></html>\n"
    )
