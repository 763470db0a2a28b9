import orjson
import pytest

from recs_platform.events.contract import InvalidEvent, parse_line, validate_event
from recs_platform_tests.factories import BAD_LINES, make_event


def test_a_complete_event_is_accepted_with_its_extra_fields():
    event = make_event(1, user_id="u-1", campaign={"utm": "mail"})
    assert parse_line(orjson.dumps(event)) == event


def test_a_page_view_needs_no_product():
    event = make_event(2, event_type="pageview", product_action=None, product_sku=None)
    assert validate_event(event) is event


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_each_broken_rule_is_named(line, reason):
    with pytest.raises(InvalidEvent) as error:
        parse_line(line)
    assert str(error.value) == reason
