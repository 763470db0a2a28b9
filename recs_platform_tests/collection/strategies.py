"""Hypothesis strategies for what a client might send a collector: anything JSON can hold, and
dictionaries that look more or less like events."""

from hypothesis import strategies as st

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
EVENT_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "session_id": st.text(max_size=12) | JSON_VALUES,
        "event_type": st.sampled_from(["pageview", "event_product", "x", ""]) | JSON_VALUES,
        "product_action": st.sampled_from(["detail", "add", None, "zap"]) | JSON_VALUES,
        "product_sku": st.text(max_size=12) | JSON_VALUES,
        "client_ts": st.integers(-(2**63), 2**63 - 1) | JSON_VALUES,
        "event_id": st.text(max_size=40) | JSON_VALUES,
        "url": st.text(max_size=300),
    },
)
