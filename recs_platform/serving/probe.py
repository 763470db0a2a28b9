"""The check a deployed endpoint must pass: a probe request and what its answer must look like.

The probe asks for a session of two known items, an empty session and a session of one SKU the
catalogue cannot hold. A well-formed answer has one prediction per instance, k distinct catalogue
items best first, none of the session's, the unknown SKU reported, the popularity fallback named
where no item was known, and no model named but the version that was deployed. With a variant
(`champion`, `challenger`), every instance forces it, and every prediction must name it: an
endpoint serving two models is probed once per variant, each against its own version and
catalogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recs_platform.serving.inference import Variant

UNKNOWN_SKU = "recs-platform-probe-no-such-sku"
PROBE_K = 5


def probe_request(
    item_ids: Sequence[str], k: int = PROBE_K, variant: Variant | None = None
) -> dict[str, Any]:
    forced = {"variant": variant.value} if variant is not None else {}
    return {
        "instances": [
            {"session": list(item_ids[:2]), "k": k, **forced},
            {"session": [], "k": k, **forced},
            {"session": [UNKNOWN_SKU], "k": k, **forced},
        ]
    }


def probe_problems(
    request: dict[str, Any],
    status: int,
    answer: Any,
    expected_version: str,
    item_ids: Sequence[str],
    expected_variant: Variant | None = None,
) -> list[str]:
    """Everything wrong with the endpoint's answer to `request`; empty when it is right. With
    `expected_variant`, every prediction must name that variant."""
    if status != 200:
        return [f"the endpoint answered {status}: {answer}"]
    if not isinstance(answer, dict) or not isinstance(answer.get("predictions"), list):
        return [f"the answer has no predictions list: {str(answer)[:300]}"]
    problems = []
    # Each prediction names its model, and the endpoint once more at the top (an MLflow scoring
    # server serving the same model cannot): every name must be the deployed version.
    named = [answer.get("model")] + [
        prediction.get("model") for prediction in answer["predictions"]
    ]
    versions = {str(model.get("version")) for model in named if isinstance(model, dict)}
    if not versions:
        problems.append("the answer names no model")
    for served in sorted(versions - {str(expected_version)}):
        problems.append(f"the endpoint serves version {served}, not {expected_version}")
    instances = request["instances"]
    if len(answer["predictions"]) != len(instances):
        problems.append(f"{len(answer['predictions'])} predictions for {len(instances)} instances")
        return problems
    catalogue = set(item_ids)
    for position, (instance, prediction) in enumerate(
        zip(instances, answer["predictions"], strict=True)
    ):
        where = f"prediction {position}"
        items, scores = prediction.get("items", []), prediction.get("scores", [])
        session = instance["session"]
        known = [sku for sku in session if sku in catalogue]
        expected_count = min(instance["k"], len(catalogue) - len(set(known)))
        if len(items) != expected_count:
            problems.append(f"{where}: {len(items)} items, expected {expected_count}")
        if len(set(items)) != len(items):
            problems.append(f"{where}: repeated items {items}")
        if set(items) - catalogue:
            problems.append(
                f"{where}: items outside the catalogue {sorted(set(items) - catalogue)}"
            )
        if set(items) & set(session):
            problems.append(f"{where}: the session's own items came back")
        if len(scores) != len(items) or list(scores) != sorted(scores, reverse=True):
            problems.append(f"{where}: scores missing or not best first: {scores}")
        unknown = [sku for sku in session if sku not in catalogue]
        if prediction.get("unknown") != unknown:
            problems.append(f"{where}: unknown {prediction.get('unknown')}, expected {unknown}")
        if not known and prediction.get("fallback") != "popularity":
            problems.append(f"{where}: no known item, yet no popularity fallback")
        if expected_variant is not None and prediction.get("variant") != expected_variant:
            problems.append(
                f"{where}: answered by variant {prediction.get('variant')}, not {expected_variant}"
            )
    return problems
