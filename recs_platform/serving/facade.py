"""`GET /recommend?session=sku1,sku2&k=10`: what the shop's page calls.

The same rules on the local collector (calling the local endpoint over HTTP) and on the Lambda
(calling SageMaker's runtime): the query becomes one instance of the inference contract, the
endpoint's first prediction comes back with the model that made it:

    {"request_id": "<uuid4 hex>", "items": [...best first], "scores": [...], "unknown": [...],
     "fallback": null, "model": {"name": ..., "version": ...}, "variant": "champion"}

`request_id` is new for every answer: the page's impression and the clicks on what it shows carry
it, so the warehouse can tie a click to the list it came from. `variant` is the one that answered
(champion or challenger), the endpoint's own word where it gives one, else "champion".

`session` is comma-separated SKUs, oldest first (empty or absent: a session with nothing yet,
answered by popularity); `k` defaults to 10 and is capped at `MAX_K`; `session_id` (optional) is
the tracker's session id, passed on to the endpoint so that a session always meets the same
variant. A bad query is a 400 with a JSON `error`; an endpoint that does not answer is a 503 the
page can ignore.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

import orjson

from recs_platform.serving.inference import DEFAULT_K

RECOMMEND_PATH = "/recommend"
MAX_K = 100
MAX_SESSION_ITEMS = 200
MAX_SKU_CHARS = 256
MAX_SESSION_ID_CHARS = 256
DEFAULT_VARIANT = "champion"


class BadRecommendQuery(ValueError):
    """The query is not usable; the message says why (the 400's `error`)."""


class EndpointUnavailable(RuntimeError):
    """The inference endpoint did not answer usefully (the 503's `error`)."""


@dataclass(frozen=True)
class RecommendQuery:
    session: tuple[str, ...]
    k: int
    session_id: str | None = None

    def invocation_body(self) -> bytes:
        instance: dict = {"session": list(self.session), "k": self.k}
        if self.session_id is not None:
            instance["session_id"] = self.session_id
        return orjson.dumps({"instances": [instance]})


def parse_recommend_query(query: Mapping[str, str]) -> RecommendQuery:
    """The query string (already decoded) as a request; raises `BadRecommendQuery`."""
    session_id = query.get("session_id", "").strip() or None
    if session_id is not None and len(session_id) > MAX_SESSION_ID_CHARS:
        raise BadRecommendQuery(f"session_id is longer than {MAX_SESSION_ID_CHARS} characters")
    return replace(_parse_session_and_k(query), session_id=session_id)


def _parse_session_and_k(query: Mapping[str, str]) -> RecommendQuery:
    text = query.get("session", "")
    session = tuple(sku.strip() for sku in text.split(",") if sku.strip())
    if len(session) > MAX_SESSION_ITEMS:
        # The page keeps the session; a longer one is a bug or an attack, not a shopper.
        raise BadRecommendQuery(
            f"session has {len(session)} SKUs; send at most the last {MAX_SESSION_ITEMS}"
        )
    for sku in session:
        if len(sku) > MAX_SKU_CHARS:
            raise BadRecommendQuery(f"a SKU is longer than {MAX_SKU_CHARS} characters")
    k_text = query.get("k", "").strip()
    if not k_text:
        return RecommendQuery(session, DEFAULT_K)
    if not (k_text.isascii() and k_text.lstrip("-").isdigit()):
        raise BadRecommendQuery(f"k must be a whole number, got {k_text[:20]!r}")
    k = int(k_text) if len(k_text) < 10 else MAX_K + 1
    if k < 1 or k_text.startswith("-"):
        raise BadRecommendQuery(f"k must be at least 1, got {k_text[:20]}")
    return RecommendQuery(session, min(k, MAX_K))


def new_request_id() -> str:
    return uuid.uuid4().hex


def recommend_answer(status: int, body: bytes, *, variant: str | None = None) -> dict:
    """The facade's answer from the endpoint's status and body; raises `EndpointUnavailable`.

    `variant` is the variant that answered where the caller knows it (SageMaker names the
    production variant it invoked); otherwise the endpoint's answer names it, else it is the
    champion.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EndpointUnavailable(f"the endpoint answered {status} with no JSON") from None
    if status != 200:
        reason = document.get("error") if isinstance(document, dict) else None
        raise EndpointUnavailable(f"the endpoint answered {status}: {reason}")
    try:
        (prediction,) = document["predictions"]
        answer = {
            "request_id": new_request_id(),
            "items": prediction["items"],
            "scores": prediction["scores"],
            "unknown": prediction.get("unknown", []),
            "fallback": prediction.get("fallback"),
            # Each prediction names its model; endpoints before that named it once, at the top.
            "model": prediction.get("model") or document.get("model", {}),
            "variant": variant or prediction.get("variant") or document.get("variant"),
        }
    except (KeyError, TypeError, ValueError):
        raise EndpointUnavailable("the endpoint's answer is not the inference contract") from None
    if answer["variant"] is None:
        answer["variant"] = DEFAULT_VARIANT
    elif not isinstance(answer["variant"], str):
        raise EndpointUnavailable("the endpoint's answer names a variant that is not a string")
    return answer
