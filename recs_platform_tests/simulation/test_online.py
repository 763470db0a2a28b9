"""The simulator's online mode: shoppers follow the family, clicks follow the click model, and a
better carousel earns more clicks, the oracle's the most."""

import itertools

import numpy as np
import pytest

from recs_platform.models.popularity import PopularityRecommender
from recs_platform.simulation import ShopConfig, simulate_sessions
from recs_platform.simulation.online import Carousel, ClickModel, OnlineShopper
from recs_platform.simulation.oracle import Oracle

SHOP = ShopConfig(
    family="mixed", days=4, sessions_per_day=300, n_items=300, n_categories=10, seed=3
)


def carousel_of(model, variant):
    request_ids = itertools.count()

    def recommend(session_id, skus, k):
        items = tuple(model.rank([tuple(skus)], k)[0])
        return Carousel(f"{variant}-{next(request_ids)}", items, variant, "1", variant)

    return recommend


@pytest.fixture(scope="module")
def popularity():
    return PopularityRecommender().fit([session.skus for session in simulate_sessions(SHOP)])


def browse(recommend, sessions=300, click_model=None):
    sent = []
    shopper = OnlineShopper(SHOP, recommend, sent.append, click_model=click_model, seed=1)
    return shopper.browse(sessions), sent


def test_the_oracle_carousel_earns_more_clicks_than_popularity_and_as_many_as_it_expects(
    popularity,
):
    best, _ = browse(carousel_of(Oracle(SHOP).ranker(SHOP.days - 1), "oracle"))
    weak, _ = browse(carousel_of(popularity, "popularity"))
    oracle, pop = best.variants["oracle"], weak.variants["popularity"]
    # The oracle's list is the best list: what it was expected to earn is the ceiling itself.
    assert oracle.expected_clicks == pytest.approx(oracle.oracle_expected_clicks)
    assert pop.expected_clicks < 0.5 * pop.oracle_expected_clicks
    assert oracle.ctr > 2 * pop.ctr
    # The clicks drawn agree with what the click model expects (4 binomial standard errors).
    for tally in (oracle, pop):
        spread = 4 * np.sqrt(tally.expected_clicks)
        assert abs(tally.clicks - tally.expected_clicks) < spread
        assert tally.sessions == 300


def test_each_click_lands_as_a_product_view_of_a_shown_item_at_its_position(popularity):
    report, sent = browse(carousel_of(popularity, "champion"))
    shown = {}
    clicks = 0
    for session in sent:
        assert len({event["session_id"] for event in session}) == 1
        for event in session:
            if event["event_type"] == "impression":
                assert event["product_action"] is None and event["variant"] == "champion"
                assert event["product_sku"] not in event["shown_skus"]
                shown[event["request_id"]] = event["shown_skus"]
            elif "request_id" in event:
                clicks += 1
                assert event["product_action"] == "detail"
                assert shown[event["request_id"]][event["position"] - 1] == event["product_sku"]
    assert clicks == report.variants["champion"].clicks == report.events["click"] > 0
    assert report.events["impression"] == report.variants["champion"].impressions
    every_event = [event for session in sent for event in session]
    assert len({event["event_id"] for event in every_event}) == len(every_event)
    assert report.event_ids == [event["event_id"] for event in every_event]
    # The A/B test's rows: one per session, adding up to the variant's tally.
    rows = report.session_rows
    assert len({row["session_id"] for row in rows}) == len(rows) == len(sent)
    tally = report.variants["champion"]
    assert sum(row["clicks"] for row in rows) == tally.clicks
    assert sum(row["impressions"] for row in rows) == tally.impressions
    assert sum(row["add_to_carts"] for row in rows) == tally.add_to_carts_after_click


def test_without_attention_nobody_clicks_and_the_sessions_stay_the_family_s(popularity):
    blind = ClickModel(attention=1e-9)
    report, sent = browse(carousel_of(popularity, "champion"), click_model=blind)
    assert report.variants["champion"].clicks == 0
    seeing, sent_seeing = browse(carousel_of(popularity, "champion"))

    # The carousel changes how shoppers reach a product, not which product: the same seed
    # walks the same sessions.
    def views(batches):
        return [
            [event["product_sku"] for event in session if event["product_action"] == "detail"]
            for session in batches
        ]

    assert views(sent) == views(sent_seeing)


def test_a_click_model_refuses_impossible_settings():
    with pytest.raises(ValueError, match="attention"):
        ClickModel(attention=1.5)
    with pytest.raises(ValueError, match="position_decay"):
        ClickModel(position_decay=-1)
