import orjson
import pytest

from recs_platform.events.contract import InvalidEvent, parse_line, validate_event
from recs_platform_tests.factories import (
    BAD_LINES,
    GOOD_CAROUSEL_LINES,
    make_click,
    make_event,
    make_impression,
)


def test_a_complete_event_is_accepted_with_its_extra_fields():
    event = make_event(1, user_id="u-1", campaign={"utm": "mail"})
    assert parse_line(orjson.dumps(event)) == event


def test_a_page_view_needs_no_product():
    event = make_event(2, event_type="pageview", product_action=None, product_sku=None)
    assert validate_event(event) is event


def test_an_impression_keeps_what_the_carousel_showed_and_in_which_order():
    event = parse_line(orjson.dumps(make_impression(3)))
    assert event["event_type"] == "impression"
    assert event["product_sku"] == "sku-0001"  # the page's anchor product
    positions = {sku: index + 1 for index, sku in enumerate(event["shown_skus"])}
    assert positions == {"sku-0004": 1, "sku-0002": 2, "sku-0006": 3}
    assert (event["request_id"], event["model_name"], event["model_version"]) == (
        "req-3",
        "session-recommender",
        "3",
    )
    assert event["variant"] == "champion"


def test_a_carousel_click_is_a_product_view_with_its_request_and_position():
    event = parse_line(orjson.dumps(make_click(4)))
    assert (event["event_type"], event["product_action"], event["product_sku"]) == (
        "event_product",
        "detail",
        "sku-0002",
    )
    assert (event["request_id"], event["position"]) == ("req-4", 2)


@pytest.mark.parametrize("line", GOOD_CAROUSEL_LINES)
def test_the_online_loop_s_good_lines_are_accepted(line):
    assert parse_line(line) == orjson.loads(line)


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_each_broken_rule_is_named(line, reason):
    with pytest.raises(InvalidEvent) as error:
        parse_line(line)
    assert str(error.value) == reason
