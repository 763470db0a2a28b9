"""The dashboard's numbers are those of the marts, and its page stands on its own."""

import datetime as dt
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from recs_platform.reporting.dashboard import (
    CURVE_POINTS,
    HISTOGRAM_CAP,
    SECTIONS,
    EmptyWarehouseError,
    ShopDashboard,
    _histogram,
    _popularity,
    build_shop_dashboard,
    render_html,
)
from recs_platform_tests.dbt.fixture_days import (
    D3,
    D4,
    EXPECTED_DAILY_SESSION_STATS,
    EXPECTED_ITEM_STATS,
    EXPECTED_RECOMMENDATION_PERFORMANCE,
    EXPECTED_SESSIONS,
)

DAILY = pd.DataFrame(EXPECTED_DAILY_SESSION_STATS)
ITEMS = pd.DataFrame(EXPECTED_ITEM_STATS)
SESSIONS = pd.DataFrame(EXPECTED_SESSIONS)


def duckdb_query(path: Path):
    def query(sql: str, parameters: list | None = None) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(sql, parameters or []).fetchall()

    return query


def execute(path: Path, *statements: str) -> None:
    with duckdb.connect(str(path)) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture(scope="module")
def dashboard(marts_warehouse: Path) -> ShopDashboard:
    return build_shop_dashboard(duckdb_query(marts_warehouse))


def test_the_totals_are_those_of_the_hand_worked_marts(dashboard):
    # Seven sessions (four on D1, two on D2, none on D3, one on D4) with 25 events between them.
    assert (dashboard.first_day, dashboard.last_day, dashboard.days) == (
        DAILY.partition_date.min(),
        DAILY.partition_date.max(),
        4,
    )
    assert dashboard.sessions == DAILY.sessions.sum() == 7
    assert dashboard.events == DAILY.session_events.sum() == SESSIONS.event_count.sum() == 25
    assert dashboard.product_views == DAILY.product_views.sum() == 15
    assert dashboard.mean_session_length == pytest.approx(25 / 7)
    assert dashboard.median_session_length == SESSIONS.event_count.median() == 2
    assert dashboard.add_to_cart_rate == pytest.approx(3 / 7)
    assert dashboard.purchase_rate == pytest.approx(1 / 7)
    # Rows: 14 + 11 + 0 + 4 landed, one duplicate on each of D1, D2, D4.
    assert (dashboard.landed_rows, dashboard.duplicate_rows) == (29, 3)
    assert dashboard.duplicate_rate == pytest.approx(DAILY.duplicate_rows.sum() / 29)
    # Late: e24, e50, e51 on D2 and e60 on D4, of 26 distinct events.
    assert (dashboard.landed_events, dashboard.late_events) == (26, 4)
    assert dashboard.late_rate == pytest.approx(4 / 26)
    assert dashboard.events_outside_sessions == 1


def test_the_daily_rows_agree_with_the_marts_own_rates(dashboard):
    for row, expected in zip(dashboard.daily, EXPECTED_DAILY_SESSION_STATS, strict=True):
        assert row.day == expected["partition_date"]
        assert (row.sessions, row.events, row.distinct_items) == (
            expected["sessions"],
            expected["session_events"],
            expected["distinct_items"],
        )
        for mine, theirs in [
            (row.mean_session_length, "mean_session_events"),
            (row.add_to_cart_rate, "add_session_rate"),
            (row.purchase_rate, "purchase_session_rate"),
            (row.duplicate_rate, "duplicate_rate"),
            (row.late_rate, "late_event_rate"),
        ]:
            assert mine == pytest.approx(expected[theirs]), (row.day, theirs)


def test_the_funnel_and_the_session_length_histogram(dashboard):
    assert [(step.sessions, step.share_of_previous) for step in dashboard.funnel] == [
        (7, None),
        (6, pytest.approx(6 / 7)),
        (3, pytest.approx(3 / 6)),
        (1, pytest.approx(1 / 3)),
    ]
    assert [step.share_of_sessions for step in dashboard.funnel] == pytest.approx(
        [1, 6 / 7, 3 / 7, 1 / 7]
    )
    # Session lengths 8 (s-browse), 2, 5, 1 on D1; 5, 2 on D2; 2 on D4.
    counts = SESSIONS.event_count.value_counts()
    expected = [int(counts.get(length, 0)) for length in range(1, 9)]
    assert expected == [1, 3, 0, 0, 2, 0, 0, 1]
    histogram = dashboard.session_length_histogram
    assert [(b.label, b.sessions) for b in histogram] == [
        (str(n), count) for n, count in zip(range(1, 9), expected, strict=True)
    ]
    assert sum(b.sessions for b in histogram) == dashboard.sessions


def test_popularity_gini_and_top_items(dashboard):
    per_sku = ITEMS.groupby("product_sku")[["view_count", "add_count", "purchase_count"]].sum()
    ranked = per_sku.reset_index().sort_values(
        ["view_count", "product_sku"], ascending=[False, True]
    )
    # sku-a: 5 views, sku-b: 3, eight skus with one view each; 16 views (e60's sku-z included).
    assert ranked.view_count.tolist() == [5, 3, *[1] * 8]
    assert (dashboard.items_seen, dashboard.distinct_items_viewed, dashboard.item_views) == (
        10,
        10,
        16,
    )
    # Gini of (1 x8, 3, 5): 2 * (36 + 27 + 50) / (10 * 16) - 11 / 10.
    assert dashboard.gini_item_views == pytest.approx(2 * 113 / 160 - 1.1) == 0.3125
    shares = np.concatenate([[0], np.cumsum(ranked.view_count)]) / 16
    np.testing.assert_allclose(
        dashboard.popularity_curve, [(k / 10, share) for k, share in enumerate(shares)]
    )
    # The top 1 % is a tenth of sku-a; the top 10 % is sku-a; the top 20 % adds sku-b.
    np.testing.assert_allclose(
        dashboard.popularity_marks, [(0.01, 0.5 / 16), (0.1, 5 / 16), (0.2, 8 / 16)]
    )
    assert [
        (item.sku, item.views, item.adds, item.purchases) for item in dashboard.top_items
    ] == list(ranked.itertuples(index=False, name=None))
    assert dashboard.top_items[1].share_of_views == 3 / 16


def test_the_carousel_s_variants_per_day_are_those_of_the_mart(dashboard):
    got = [
        (row.day, row.variant, row.model_version, row.impressions, row.clicks)
        for row in dashboard.recommendations
    ]
    # Rows without a variant (clicks no impression explains) are not a variant's.
    want = [
        (row["partition_date"], row["variant"], row["model_version"], row["impressions"],
         row["clicks"])
        for row in EXPECTED_RECOMMENDATION_PERFORMANCE
        if row["variant"] is not None
    ]  # fmt: skip
    assert got == sorted(want)
    assert len(got) == 6
    page = render_html(dashboard)
    assert "Carousel click-through rate by variant" in page
    assert "challenger (version 4)" in page


def test_the_key_numbers_are_named_for_the_metadata(dashboard):
    assert dashboard.key_numbers() == {
        "first_day": "2026-03-01",
        "last_day": "2026-03-04",
        "days_covered": 4,
        "total_sessions": 7,
        "total_events": 25,
        "mean_session_length": pytest.approx(25 / 7),
        "add_to_cart_rate": pytest.approx(3 / 7),
        "purchase_rate": pytest.approx(1 / 7),
        "distinct_items_viewed": 10,
        "gini_item_views": 0.3125,
        "duplicate_rate": pytest.approx(3 / 29),
        "late_rate": pytest.approx(4 / 26),
    }


def test_a_window_keeps_the_last_days(marts_warehouse):
    last_two = build_shop_dashboard(duckdb_query(marts_warehouse), window_days=2, top_n=2)
    assert (last_two.first_day, last_two.last_day, last_two.days) == (D3, D4, 2)
    # D4: s-d4 (2 events, sku-a and sku-b viewed); item_stats adds e60's sku-z.
    assert (last_two.sessions, last_two.events) == (1, 2)
    assert [item.sku for item in last_two.top_items] == ["sku-a", "sku-b"]
    assert (last_two.items_seen, last_two.gini_item_views) == (3, 0.0)
    assert (last_two.duplicate_rate, last_two.late_rate) == (1 / 4, 1 / 3)
    assert build_shop_dashboard(duckdb_query(marts_warehouse), window_days=30).days == 4
    with pytest.raises(ValueError, match="window_days must be at least 1"):
        build_shop_dashboard(duckdb_query(marts_warehouse), window_days=0)


def test_long_sessions_share_the_last_bar_and_long_tails_are_thinned():
    lengths = [(1, 5), (2, 3), (HISTOGRAM_CAP - 1, 1), (HISTOGRAM_CAP, 2), (120, 4)]
    histogram = _histogram(lengths)
    assert len(histogram) == HISTOGRAM_CAP
    assert (histogram[-1].label, histogram[-1].sessions) == (f"{HISTOGRAM_CAP}+", 6)
    assert (histogram[-2].label, histogram[-2].sessions) == (str(HISTOGRAM_CAP - 1), 1)
    assert sum(b.sessions for b in histogram) == 15

    views = np.sort(np.random.default_rng(3).zipf(1.7, size=5000))[::-1]
    curve, marks = _popularity(views)
    assert len(curve) == CURVE_POINTS + 1
    assert curve[0] == (0.0, 0.0) and curve[-1] == (1.0, 1.0)
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(curve, curve[1:], strict=False))
    top_ten = views[:500].sum() / views.sum()
    assert dict(marks)[0.1] == pytest.approx(top_ten)


class Page(HTMLParser):
    """Every tag with its attributes, and the text inside each tag name."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def test_the_page_is_self_contained_with_every_section(dashboard):
    page = render_html(dashboard, generated_at=dt.datetime(2026, 3, 5, 6, 0, tzinfo=dt.UTC))
    parsed = parse(page)
    names = [tag for tag, _ in parsed.tags]
    assert page.startswith("<!DOCTYPE html>")
    assert not {"script", "link", "img", "iframe", "object", "embed", "base", "form"} & set(names)
    for tag, attrs in parsed.tags:
        assert "src" not in attrs and "srcset" not in attrs, tag
        assert all(not name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("href", "xlink:href", "action"):
            assert attrs.get(name) is None or attrs[name].startswith("#"), (tag, attrs)
    lowered = page.lower()
    for outside in ("http:", "https:", "@import", "//cdn", "data:", "@font-face"):
        assert outside not in lowered, outside
    # The charts refer to clip paths and markers of their own: every url() and link points to
    # an id on the page, and no id repeats though five charts share the page.
    element_ids = [attrs["id"] for _, attrs in parsed.tags if "id" in attrs]
    assert len(element_ids) == len(set(element_ids))
    references = re.findall(r"url\(#([^)]*)\)", page) + [
        attrs[name][1:]
        for _, attrs in parsed.tags
        for name in ("href", "xlink:href")
        if name in attrs
    ]
    assert page.count("url(") == len(re.findall(r"url\(#", page))
    assert set(references) <= set(element_ids)

    ids = {attrs.get("id") for tag, attrs in parsed.tags if tag == "section"}
    assert ids == {key for key, _ in SECTIONS}
    text = " ".join(parsed.text)
    for _, title in SECTIONS:
        assert title in text
    # Six charts (sessions and events per day, funnel, lengths, popularity, the carousel's
    # variants), each captioned.
    assert names.count("svg") == 6
    assert names.count("figure") == names.count("figcaption") == 6
    assert "Gini of item views 0.312" in text
    assert "2026-03-01 to 2026-03-04 (4 days)" in text
    assert "Generated 2026-03-05 06:00 UTC" in text


class Charts(HTMLParser):
    """Each inline chart by its aria-label: its role, the hover titles in it and its other text."""

    def __init__(self) -> None:
        super().__init__()
        self.charts: dict[str, dict] = {}
        self.chart: dict | None = None
        self.in_title = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "svg":
            self.chart = {"role": attrs.get("role"), "titles": [], "text": []}
            self.charts[attrs["aria-label"]] = self.chart
        self.in_title = tag == "title"

    def handle_endtag(self, tag):
        self.in_title = False
        if tag == "svg":
            self.chart = None

    def handle_data(self, data):
        if self.chart is not None:
            self.chart["titles" if self.in_title else "text"].append(data)


def test_the_charts_show_the_numbers_of_the_marts(dashboard):
    """What a reader sees of each chart: an image with a label, one bar per day (or per session
    length) whose hover title is its value, the axis text as text, the funnel's numbers."""
    page = render_html(dashboard, generated_at=dt.datetime(2026, 3, 5, 6, 0, tzinfo=dt.UTC))
    parser = Charts()
    parser.feed(page)
    charts = parser.charts
    assert list(charts) == [
        "Sessions per day",
        "Events per day",
        "Session funnel",
        "Session-length histogram",
        "Popularity curve",
        "Carousel click-through rate by variant",
    ]
    assert {chart["role"] for chart in charts.values()} == {"img"}
    days = ["03-01", "03-02", "03-03", "03-04"]
    sessions, events = DAILY.sessions.tolist(), DAILY.session_events.tolist()
    assert (sessions, events) == ([4, 2, 0, 1], [16, 7, 0, 2])
    for label, counts in [("Sessions per day", sessions), ("Events per day", events)]:
        chart = charts[label]
        assert chart["titles"] == [f"{day}: {n}" for day, n in zip(days, counts, strict=True)]
        assert set(days) <= set(chart["text"]), label
    lengths = charts["Session-length histogram"]
    assert lengths["titles"] == [f"{n}: {c}" for n, c in enumerate([1, 3, 0, 0, 2, 0, 0, 1], 1)]
    assert set(map(str, range(1, 9))) <= set(lengths["text"])
    funnel = charts["Session funnel"]["text"]
    for step in ("all sessions", "viewed a product", "added to cart", "purchased"):
        assert step in funnel
    assert "7 · 100.0 % of sessions" in funnel
    assert "6 · 85.7 % of sessions · 85.7 % of the step before" in funnel
    assert "1 · 14.3 % of sessions · 33.3 % of the step before" in funnel
    popularity = charts["Popularity curve"]
    assert popularity["titles"] == [
        "top 1 % of items: 3.1 % of views",
        "top 10 % of items: 31.2 % of views",
        "top 20 % of items: 50.0 % of views",
    ]
    assert {"0%", "50%", "100%", "share of product views"} <= set(popularity["text"])
    variants = charts["Carousel click-through rate by variant"]
    # One hover title per day and line: the challenger's D1 impressions were both clicked.
    assert "challenger 2026-03-01: CTR 100.0 %" in variants["titles"]
    assert "champion 2026-03-01: CTR 66.7 %" in variants["titles"]
    assert "click-through rate" in variants["text"]


def test_the_same_numbers_give_the_same_page(dashboard):
    """The charts' ids are not random and carry no date, so an unchanged shop rewrites the same
    bytes; drawing leaves matplotlib's own settings and figure list as they were."""
    import matplotlib
    from matplotlib import pyplot

    settings = dict(matplotlib.rcParams)
    stamp = dt.datetime(2026, 3, 5, 6, 0, tzinfo=dt.UTC)
    first = render_html(dashboard, generated_at=stamp)
    assert render_html(dashboard, generated_at=stamp) == first
    assert dict(matplotlib.rcParams) == settings
    assert pyplot.get_fignums() == []


def test_skus_from_the_data_are_escaped(data_dir):
    nasty = '<script>alert("x")</script> & <b onclick=x>'
    execute(
        data_dir / "warehouse.duckdb",
        f"UPDATE analytics.item_stats SET product_sku = '{nasty}' WHERE product_sku = 'sku-a'",
    )
    dashboard = build_shop_dashboard(duckdb_query(data_dir / "warehouse.duckdb"))
    assert dashboard.top_items[0].sku == nasty
    page = render_html(dashboard)
    assert "<script" not in page and "<b " not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b onclick=x&gt;" in page
    parsed = parse(page)
    assert "script" not in {tag for tag, _ in parsed.tags}
    assert nasty in "".join(parsed.text)


def test_an_empty_warehouse_is_a_clear_error(data_dir):
    path = data_dir / "warehouse.duckdb"
    execute(path, "UPDATE analytics.daily_session_stats SET sessions = 0")
    with pytest.raises(EmptyWarehouseError, match="no sessions .* from 2026-03-01 to 2026-03-04"):
        build_shop_dashboard(duckdb_query(path))
    execute(path, "DELETE FROM analytics.daily_session_stats")
    with pytest.raises(EmptyWarehouseError, match="daily_session_stats is empty: build the"):
        build_shop_dashboard(duckdb_query(path))


def test_the_same_numbers_through_the_snowflake_warehouse(
    marts_warehouse, snowflake_conn, snowflake_resource
):
    """The queries are portable: the marts' rows copied into Snowflake (fakesnow's server) give
    the same dashboard through `SnowflakeWarehouse.query` (qmark to pyformat, Decimal sums)."""
    from recs_platform.resources import SnowflakeWarehouse

    tables = {
        "daily_session_stats": "*",
        "item_stats": "*",
        "sessions": "session_id, session_date, event_count",
        "recommendation_performance": "partition_date, variant, model_version, impressions, clicks",
    }
    types = {
        "DATE": "DATE",
        "BIGINT": "INTEGER",
        "INTEGER": "INTEGER",
        "HUGEINT": "INTEGER",
        "DOUBLE": "FLOAT",
        "VARCHAR": "VARCHAR",
    }
    cursor = snowflake_conn.cursor()
    cursor.execute("CREATE SCHEMA analytics")
    with duckdb.connect(str(marts_warehouse), read_only=True) as local:
        for table, columns in tables.items():
            result = local.execute(f"SELECT {columns} FROM analytics.{table}")
            names = [(d[0], types[str(d[1])]) for d in result.description]
            rows = result.fetchall()
            cursor.execute(
                f"CREATE TABLE analytics.{table} ("
                + ", ".join(f"{name} {kind}" for name, kind in names)
                + ")"
            )
            cursor.executemany(
                f"INSERT INTO analytics.{table} VALUES ({', '.join(['%s'] * len(names))})", rows
            )

    warehouse = SnowflakeWarehouse(snowflake=snowflake_resource)
    snowflake = build_shop_dashboard(warehouse.query)
    local = build_shop_dashboard(duckdb_query(marts_warehouse))
    assert snowflake.key_numbers() == local.key_numbers()
    assert snowflake == local and len(local.recommendations) == 6
    assert not any(isinstance(v, float) and math.isnan(v) for v in local.key_numbers().values())
