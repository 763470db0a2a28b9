"""The inference contract (SageMaker's container API, DESIGN.md), as plain functions.

Request: `{"instances": [{"session": ["sku-a", "sku-b"], "k": 10}, ...]}`, or one bare
`{"session": [...], "k": ...}`; `inputs` is taken for `instances` (MLflow's scoring server reads
these records under `inputs` only: its `instances` is TF Serving's column format).

An instance may also carry `session_id` (the tracker's session id, a string) and `variant`
(`champion` or `challenger`). An endpoint holding two models (a champion and a challenger, with
the challenger's share of sessions) answers each instance with one of them: the one `variant`
forces (what SageMaker's `TargetVariant` does one level up), else the one the session id's hash
picks (`variant_for_session`: a session always sees the same one), else, without a session id,
the champion. An endpoint holding one model answers every instance with it, and refuses a
`variant` it does not serve.

Response: `{"predictions": [{"items": [...], "scores": [...], "unknown": [...], "fallback": null,
"model": {...}, "variant": "champion"}], "model": {...}}`, items best first.

`predictions` is the one answer: the endpoint's `/invocations` returns it under `predictions`, and
the MLflow model's `predict` (training/tracking.py) returns it as a DataFrame's records, so
`mlflow models serve`, which answers a pyfunc's records as `{"predictions": [...]}`, answers what
the endpoint answers. Each prediction names the model that made it and the variant it served
as; the top-level `model`, the first prediction's, stays for the readers of the first contract
(the probe, `/recommend`): MLflow's scoring server cannot add it.

Rules, the same for every model:
- the items of the session never come back (exclude-seen);
- SKUs the model does not know are ignored and listed in `unknown`;
- a session with no known SKU gets the popularity ranking (`"fallback": "popularity"`);
- `k` (default 10) is capped to what the catalogue has left once the session is excluded;
- only the last `max_scored_items` items of a long session are scored; all of it is excluded.
Anything else wrong with a request raises `InvalidRequest`, which the server answers with a 400.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from recs_platform.models.base import MANIFEST, SessionRecommender, load_recommender

DEFAULT_K = 10
POPULARITY_FALLBACK = "popularity"
# A packaged model folder: the recommender's own files plus this description of it.
MODEL_INFO_FILE = "model-info.json"
RECOMMENDER_FOLDER = "recommender"
UNKNOWN_VERSION = "unregistered"
# Where a body's list of instances may be: SageMaker's name, then MLflow's.
INSTANCE_KEYS = ("instances", "inputs")


class InvalidRequest(ValueError):
    """A request the contract refuses; the message says why (the 400's JSON `error`)."""


class Variant(enum.StrEnum):
    """The role a model serves in: the champion, or the challenger it is measured against. The
    same names are the SageMaker production variants' (serving/sagemaker.py)."""

    CHAMPION = "champion"
    CHALLENGER = "challenger"


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_048_576
    max_instances: int = 256
    max_session_items: int = 10_000
    max_scored_items: int = 200
    max_sku_chars: int = 256
    max_session_id_chars: int = 256


@dataclass(frozen=True)
class Instance:
    session: tuple[str, ...]
    k: int
    session_id: str | None = None
    """The shopper's session id: what picks the variant, when the endpoint holds two."""
    variant: Variant | None = None
    """A variant the request forces."""


@dataclass
class LoadedModel:
    """A recommender ready to answer, with what the response says about it."""

    recommender: SessionRecommender
    name: str
    version: str
    source: str
    details: dict[str, Any] = field(default_factory=dict)
    package: str | None = None
    """The endpoint folder's package this came from (`current.json`), if any."""
    _popular: tuple[list[str], list[float]] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "recommender": self.recommender.name,
            "items": len(self.recommender.item_ids),
            **self.details,
        }

    def popularity_ranking(self) -> tuple[list[str], list[float]]:
        """The model's ranking for a session with no known item, computed once."""
        if self._popular is None:
            catalogue = len(self.recommender.item_ids)
            self._popular = self.recommender.top_k([()], catalogue, exclude_seen=False)[0]
        return self._popular


def parse_instances(body: bytes, limits: Limits = Limits()) -> list[Instance]:
    """The instances of a request body; raises `InvalidRequest` with the reason."""
    if not body.strip():
        raise InvalidRequest('empty body: send {"instances": [{"session": ["sku", ...]}]}')
    if len(body) > limits.max_body_bytes:
        raise InvalidRequest(f"body larger than {limits.max_body_bytes} bytes")
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"body is not JSON (or not UTF-8): {error}") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"body must be a JSON object, not {_json_type(document)}")
    key = next((key for key in INSTANCE_KEYS if key in document), None)
    if key is not None:
        raw_instances = document[key]
        if not isinstance(raw_instances, list):
            raise InvalidRequest(f"{key} must be a list, not {_json_type(raw_instances)}")
        if not raw_instances:
            raise InvalidRequest(f"{key} is empty")
        if len(raw_instances) > limits.max_instances:
            raise InvalidRequest(
                f"{len(raw_instances)} instances; at most {limits.max_instances} per request"
            )
        where = key + "[{}]"
    elif "session" in document:
        raw_instances, where = [document], "body"
    else:
        raise InvalidRequest(
            'body needs "instances" (a list, or "inputs") or "session" (a list of SKUs)'
        )
    return [
        _instance(raw, where.format(position), limits) for position, raw in enumerate(raw_instances)
    ]


def instances_from_records(
    records: Sequence[Mapping[str, Any]], limits: Limits = Limits()
) -> list[Instance]:
    """The instances of records already decoded (the MLflow model's rows), by a body's rules;
    raises `InvalidRequest`. A body's size and instance count are the server's to limit."""
    return [
        _instance(raw, f"instances[{position}]", limits) for position, raw in enumerate(records)
    ]


def _instance(raw: Any, where: str, limits: Limits) -> Instance:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be an object, not {_json_type(raw)}")
    if "session" not in raw:
        raise InvalidRequest(f"{where} has no session")
    session = raw["session"]
    if not isinstance(session, list):
        raise InvalidRequest(f"{where}.session must be a list of SKUs, not {_json_type(session)}")
    if len(session) > limits.max_session_items:
        raise InvalidRequest(
            f"{where}.session has {len(session)} items; at most {limits.max_session_items}"
        )
    for position, sku in enumerate(session):
        if not isinstance(sku, str):
            raise InvalidRequest(
                f"{where}.session[{position}] must be a string SKU, not {_json_type(sku)}"
            )
        if len(sku) > limits.max_sku_chars:
            raise InvalidRequest(
                f"{where}.session[{position}] is longer than {limits.max_sku_chars} characters"
            )
    k = raw.get("k", DEFAULT_K)
    if k is None:
        k = DEFAULT_K
    if isinstance(k, bool) or not isinstance(k, int):
        raise InvalidRequest(f"{where}.k must be a whole number, not {_json_type(k)}")
    if k < 1:
        raise InvalidRequest(f"{where}.k must be at least 1, got {k}")
    session_id = raw.get("session_id")
    if session_id is not None:
        if not isinstance(session_id, str) or not session_id:
            raise InvalidRequest(
                f"{where}.session_id must be a non-empty string, not {_json_type(session_id)}"
            )
        if len(session_id) > limits.max_session_id_chars:
            raise InvalidRequest(
                f"{where}.session_id is longer than {limits.max_session_id_chars} characters"
            )
    variant = raw.get("variant")
    if variant is not None:
        if variant not in Variant.__members__.values():
            names = " or ".join(f'"{name}"' for name in Variant)
            shown = repr(variant)[:40] if isinstance(variant, str) else _json_type(variant)
            raise InvalidRequest(f"{where}.variant must be {names}, not {shown}")
        variant = Variant(variant)
    return Instance(session=tuple(session), k=k, session_id=session_id, variant=variant)


def predictions(
    model: LoadedModel,
    instances: Sequence[Instance],
    limits: Limits = Limits(),
    variant: Variant = Variant.CHAMPION,
) -> list[dict[str, Any]]:
    """One prediction per instance by `model`, serving as `variant` (see the module docstring).

    The instances' own `session_id` and `variant` are not looked at: `ServedModels` routes."""
    recommender = model.recommender
    index = recommender.item_index()
    catalogue = len(recommender.item_ids)
    known_sessions = [tuple(sku for sku in inst.session if sku in index) for inst in instances]
    scored_rows = [row for row, known in enumerate(known_sessions) if known]
    ranked: dict[int, tuple[list[str], list[float]]] = {}
    if scored_rows:
        prefixes = [known_sessions[row][-limits.max_scored_items :] for row in scored_rows]
        excluded = [known_sessions[row] for row in scored_rows]
        k = min(max(instances[row].k for row in scored_rows), catalogue)
        results = recommender.top_k(prefixes, k, exclude_seen=True, excluded=excluded)
        ranked = dict(zip(scored_rows, results, strict=True))
    described = model.describe()
    answers = []
    for row, instance in enumerate(instances):
        unknown = list(dict.fromkeys(sku for sku in instance.session if sku not in index))
        if row in ranked:
            items, scores = ranked[row]
            fallback = None
        else:
            items, scores = model.popularity_ranking()
            fallback = POPULARITY_FALLBACK
        answers.append(
            {
                "items": items[: instance.k],
                "scores": scores[: instance.k],
                "unknown": unknown,
                "fallback": fallback,
                "model": described,
                "variant": variant.value,
            }
        )
    return answers


def session_bucket(session_id: str) -> float:
    """Where a session id falls in [0, 1): the first 8 bytes of its SHA-256, as a fraction.

    Uniform over session ids, the same in every process and on every machine (unlike Python's
    `hash`), so the facade, a Lambda and the endpoint agree on a session's variant."""
    digest = hashlib.sha256(session_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def variant_for_session(session_id: str | None, challenger_share: float) -> Variant:
    """The variant a session sees when a `challenger_share` of sessions goes to the challenger:
    the challenger when the session's bucket falls below the share; the champion without a
    session id."""
    if session_id is not None and session_bucket(session_id) < challenger_share:
        return Variant.CHALLENGER
    return Variant.CHAMPION


def check_share(challenger_share: float) -> float:
    """`challenger_share` as a float when it is a share of traffic (0 to 1); raises otherwise."""
    share = float(challenger_share)
    if not 0.0 <= share <= 1.0:  # NaN fails too
        raise ValueError(f"challenger share {challenger_share!r} is not between 0 and 1")
    return share


@dataclass(frozen=True)
class ServedModels:
    """The models one endpoint process answers with, by variant, and the challenger's share.

    With both a champion and a challenger, a request's instances are routed (module docstring);
    with one model, every instance goes to it under its own variant's name (a SageMaker
    production variant's container holds one model, and is told which variant it is)."""

    models: Mapping[Variant, LoadedModel]
    challenger_share: float = 0.0

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("an endpoint serves at least one model")
        if len(self.models) == 2 and Variant.CHAMPION not in self.models:
            raise ValueError("two models are a champion and a challenger")
        object.__setattr__(self, "challenger_share", check_share(self.challenger_share))

    @classmethod
    def single(cls, model: LoadedModel, variant: Variant = Variant.CHAMPION) -> ServedModels:
        return cls({variant: model})

    @classmethod
    def pair(
        cls, champion: LoadedModel, challenger: LoadedModel | None, challenger_share: float
    ) -> ServedModels:
        """The champion and, when there is one, the challenger with its share of sessions."""
        if challenger is None:
            return cls.single(champion)
        return cls({Variant.CHAMPION: champion, Variant.CHALLENGER: challenger}, challenger_share)

    @property
    def champion(self) -> LoadedModel:
        """The champion, or the one model a single-variant endpoint holds."""
        return self.models.get(Variant.CHAMPION) or next(iter(self.models.values()))

    def route(self, instance: Instance, where: str = "instance") -> Variant:
        """The variant that answers `instance`; raises `InvalidRequest` for a forced variant
        this endpoint does not serve."""
        if instance.variant is not None:
            if instance.variant not in self.models:
                served = " and ".join(variant.value for variant in self.models)
                raise InvalidRequest(
                    f"{where}.variant is {instance.variant.value}, which this endpoint does "
                    f"not serve (it serves {served})"
                )
            return instance.variant
        if len(self.models) == 1:
            return next(iter(self.models))
        return variant_for_session(instance.session_id, self.challenger_share)

    def predictions(
        self, instances: Sequence[Instance], limits: Limits = Limits()
    ) -> list[dict[str, Any]]:
        """One prediction per instance, each by the model of its variant, in request order."""
        routed = [
            self.route(instance, f"instances[{row}]") for row, instance in enumerate(instances)
        ]
        if len(set(routed)) == 1:  # the usual case: no regrouping
            (variant,) = set(routed)
            return predictions(self.models[variant], instances, limits, variant)
        answers: dict[int, dict[str, Any]] = {}
        for variant in dict.fromkeys(routed):
            rows = [row for row, chosen in enumerate(routed) if chosen is variant]
            grouped = predictions(
                self.models[variant], [instances[row] for row in rows], limits, variant
            )
            answers.update(zip(rows, grouped, strict=True))
        return [answers[row] for row in range(len(instances))]

    def describe(self) -> dict[str, Any]:
        """What `/ping` says about each variant: its model, package and share of sessions."""
        two = len(self.models) == 2
        share = {
            Variant.CHAMPION: 1.0 - self.challenger_share if two else 1.0,
            Variant.CHALLENGER: self.challenger_share if two else 1.0,
        }
        return {
            variant.value: {
                "model": model.describe(),
                "package": model.package,
                "share": share[variant],
            }
            for variant, model in self.models.items()
        }


def predict(
    served: LoadedModel | ServedModels, instances: Sequence[Instance], limits: Limits = Limits()
) -> dict:
    """The endpoint's response document for `instances` (see the module docstring); raises
    `InvalidRequest` for a forced variant the endpoint does not serve."""
    if isinstance(served, LoadedModel):
        served = ServedModels.single(served)
    answers = served.predictions(instances, limits)
    return {"predictions": answers, "model": answers[0]["model"] if answers else None}


def predict_requests(
    served: ServedModels, requests: Sequence[Sequence[Instance]], limits: Limits = Limits()
) -> list[dict]:
    """`predict`'s document for each of several requests, their instances scored together.

    One model call for all of them reads a model's large tables (a torch model's output layer,
    a blend's members) once instead of once per request: what lets one endpoint process keep up
    when requests arrive faster than it answers them one by one (the server batches the
    requests that queued while it was busy). The answers are those of `predict` per request;
    a torch model's scores may differ from a lone call's in the last bits (a product over more
    rows sums in another order)."""
    instances = [instance for request in requests for instance in request]
    answers = served.predictions(instances, limits)
    documents, start = [], 0
    for request in requests:
        mine = answers[start : start + len(request)]
        start += len(request)
        documents.append({"predictions": mine, "model": mine[0]["model"] if mine else None})
    return documents


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


# --- loading -----------------------------------------------------------------------------------


def load_model(source: str | Path, name: str | None = None, version: str | None = None):
    """A `LoadedModel` from a packaged folder (`package_model`), a bare recommender folder, an
    MLflow model folder, or an MLflow model URI (`models:/session-recommender@champion`)."""
    text = str(source)
    folder = Path(text)
    if "://" not in text and not text.startswith("models:/") and folder.is_dir():
        if (folder / MODEL_INFO_FILE).is_file():
            info = json.loads((folder / MODEL_INFO_FILE).read_text())
            return LoadedModel(
                recommender=load_recommender(folder / RECOMMENDER_FOLDER),
                name=name or info["name"],
                version=version or str(info["version"]),
                source=text,
                details={key: info[key] for key in ("model_uri",) if key in info},
            )
        if (folder / MANIFEST).is_file():
            recommender = load_recommender(folder)
            return LoadedModel(recommender, name or recommender.name, version or "local", text)
        if not (folder / "MLmodel").is_file():
            raise FileNotFoundError(
                f"{folder} holds no model: expected {MODEL_INFO_FILE}, {MANIFEST} or MLmodel"
            )
    elif "://" not in text and not text.startswith("models:/"):
        raise FileNotFoundError(f"{text} is neither a folder nor an MLflow model URI")
    import mlflow

    # The MLflow model carries its packaged folder (training/tracking.py): the same description.
    served = mlflow.pyfunc.load_model(text).unwrap_python_model().loaded_model
    if served.version == UNKNOWN_VERSION and text.startswith("models:/"):
        # Logged before the package was: the registry knows which version the URI names.
        served = replace(served, version=_registry_version(text), details={"model_uri": text})
    return replace(served, name=name or served.name, version=version or served.version, source=text)


def _registry_version(model_uri: str) -> str:
    """The registry version a `models:/name/N` or `models:/name@alias` URI names."""
    reference = model_uri.removeprefix("models:/")
    if "@" in reference:
        from mlflow import MlflowClient

        name, alias = reference.split("@", 1)
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    _, _, number = reference.partition("/")
    return number if number.isdigit() else UNKNOWN_VERSION


@dataclass(frozen=True)
class ChallengerPackage:
    """A packaged challenger (`package_model`) and the share of sessions (0 to 1) it answers:
    what a deployment serves beside the champion's package."""

    folder: Path
    version: str
    share: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "folder", Path(self.folder))
        object.__setattr__(self, "version", str(self.version))
        object.__setattr__(self, "share", check_share(self.share))


def package_model(
    recommender: SessionRecommender, folder: Path, name: str, version: str, model_uri: str
) -> Path:
    """Write what an endpoint loads: the recommender's files and `model-info.json`."""
    folder = Path(folder)
    recommender.save(folder / RECOMMENDER_FOLDER)
    info = {"name": name, "version": str(version), "model_uri": model_uri}
    (folder / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2))
    return folder
