"""MLflow: where runs go, the recommender as a pyfunc model, the registry and its aliases.

Locally the tracking store is a sqlite file and artifacts a folder, both under the data directory;
in production any tracking server named by `MLFLOW_TRACKING_URI`. Nothing here imports Dagster.

Two aliases of `session-recommender` say what serves (`recommendation_endpoint` deploys them):
- `champion`: the version that answers the shop's sessions; a retrain moves it to its new
  version when that passes its checklist and beats the champion offline (training/retrain.py).
- `challenger`: the latest version that passed its checklist without becoming champion; it
  answers a configured share of sessions beside the champion, so the two are compared on live
  traffic. A new champion retires it (the alias is removed); `serving_versions` leaves it out
  when it names the champion's version (after a challenger is promoted by hand, say).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType, Array, Object, Property

from recs_platform.models.base import SessionRecommender, load_recommender
from recs_platform.serving.inference import (
    DEFAULT_K,
    UNKNOWN_VERSION,
    InvalidRequest,
    LoadedModel,
    ServedModels,
    instances_from_records,
    load_model,
    package_model,
)

REGISTERED_MODEL = "session-recommender"
CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "session-recommender"
# The pyfunc's artifact: the folder an endpoint serves (`inference.package_model`).
PACKAGE_ARTIFACT = "package"


def local_tracking(data_dir: Path) -> tuple[str, str]:
    """(tracking URI, artifact location) of the local store under `data_dir/mlflow`."""
    folder = Path(data_dir).absolute() / "mlflow"
    return f"sqlite:///{folder / 'mlflow.db'}", (folder / "artifacts").as_uri()


def use_experiment(tracking_uri: str, experiment: str, artifact_location: str | None) -> str:
    """Points mlflow at the store and the experiment (created if missing); returns its id."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = mlflow.create_experiment(experiment, artifact_location=artifact_location)
    else:
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


class SessionRecommenderModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of any `SessionRecommender`, answering the endpoint's contract.

    Input: rows with `session` (skus, oldest first) and optionally `k`, `session_id` and
    `variant`, as a DataFrame or as the records themselves (`[{"session": [...], "k": 10}]`,
    what `/invocations` takes under `instances` or `inputs`). Output: a DataFrame of
    `inference.predictions`, a row per input row (`items`, `scores`, `unknown`, `fallback`,
    `model`, `variant`): its records are the list the endpoint answers under `predictions`, and
    what `mlflow models serve` answers under the same name. One model answers, as an endpoint
    holding one model does: as the champion, refusing rows that force the challenger.
    """

    def load_context(self, context) -> None:
        artifacts = context.artifacts
        if PACKAGE_ARTIFACT in artifacts:
            self.loaded_model = load_model(Path(artifacts[PACKAGE_ARTIFACT]))
        else:  # logged before the package: the recommender alone, its version unknown to it
            folder = artifacts["recommender"]
            recommender = load_recommender(Path(folder))
            self.loaded_model = LoadedModel(recommender, REGISTERED_MODEL, UNKNOWN_VERSION, folder)

    @property
    def recommender(self) -> SessionRecommender:
        return self.loaded_model.recommender

    def predict(
        self, context, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        # MLflow hands the rows over as a DataFrame (records too, once checked by the signature).
        rows = [_as_json(row) for row in model_input.to_dict("records")]
        try:
            instances = instances_from_records(rows)
        except InvalidRequest as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None
        try:
            answers = ServedModels.single(self.loaded_model).predictions(instances)
        except InvalidRequest as error:
            raise MlflowException.invalid_parameter_value(str(error)) from None
        return pd.DataFrame(answers, columns=SIGNATURE.outputs.input_names())


def _as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the JSON instance it stands for: pandas gives arrays for lists, and a `k` column
    with a gap is float64 with NaN where the request left `k` out."""
    record = dict(row)
    session = record.get("session")
    if isinstance(session, np.ndarray | tuple):
        record["session"] = list(session)
    if isinstance(record.get("session"), list):
        record["session"] = [str(sku) if isinstance(sku, str) else sku for sku in record["session"]]
    for optional in ("session_id", "variant"):  # absent from some rows: None or NaN in others
        value = record.get(optional)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            record.pop(optional, None)
    k = record.get("k")
    if k is None or (isinstance(k, float) and math.isnan(k)):
        record.pop("k", None)
    elif isinstance(k, np.integer) or (isinstance(k, float) and k.is_integer()):
        record["k"] = int(k)
    return record


# The contract's instance and prediction (serving/inference.py). MLflow checks no type for `k`:
# instances with and without `k` make a float column with NaN, which a `long` refuses and a
# `double` refuses when no `k` is missing. The contract refuses a `k` that is not a whole number.
SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(Array(DataType.string), "session"),
            ColSpec(AnyType(), "k", required=False),
            ColSpec(AnyType(), "session_id", required=False),
            ColSpec(AnyType(), "variant", required=False),
        ]
    ),
    outputs=Schema(
        [
            ColSpec(Array(DataType.string), "items"),
            ColSpec(Array(DataType.double), "scores"),
            ColSpec(Array(DataType.string), "unknown"),
            ColSpec(DataType.string, "fallback", required=False),
            ColSpec(
                Object(
                    [
                        Property("name", DataType.string),
                        Property("version", DataType.string),
                        Property("recommender", DataType.string),
                        Property("items", DataType.long),
                        Property("model_uri", DataType.string, required=False),
                    ]
                ),
                "model",
            ),
            ColSpec(DataType.string, "variant"),
        ]
    ),
)


def _pip_requirements() -> list[str]:
    import torch

    return [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pd.__version__}",
        f"torch=={torch.__version__.split('+')[0]}",
        "recs-platform",
    ]


@dataclass(frozen=True)
class LoggedRecommender:
    model_uri: str
    version: str
    run_id: str


def log_and_register(
    recommender: SessionRecommender, example_sessions: list[list[str]]
) -> LoggedRecommender:
    """Logs the recommender as a pyfunc in the active run and registers a new version.

    The version is registered first, so the model's own files can say which version they are:
    its answers name it, as the endpoint's do. A version whose files fail to log is deleted."""
    run_id = mlflow.active_run().info.run_id
    logged_model = mlflow.initialize_logged_model(name="model", source_run_id=run_id)
    registered = mlflow.register_model(f"models:/{logged_model.model_id}", REGISTERED_MODEL)
    version = str(registered.version)
    model_uri = f"models:/{REGISTERED_MODEL}/{version}"
    examples = [{"session": list(session), "k": DEFAULT_K} for session in example_sessions[:3]]
    try:
        with tempfile.TemporaryDirectory() as scratch:
            package = package_model(
                recommender, Path(scratch) / "package", REGISTERED_MODEL, version, model_uri
            )
            mlflow.pyfunc.log_model(
                name="model",
                model_id=logged_model.model_id,
                python_model=SessionRecommenderModel(),
                artifacts={PACKAGE_ARTIFACT: str(package)},
                signature=SIGNATURE,
                input_example=examples,
                pip_requirements=_pip_requirements(),
            )
    except BaseException:
        MlflowClient().delete_model_version(REGISTERED_MODEL, version)
        mlflow.finalize_logged_model(logged_model.model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(logged_model.model_id, LoggedModelStatus.READY)
    return LoggedRecommender(model_uri=model_uri, version=version, run_id=run_id)


def load_registered(model_uri: str) -> SessionRecommender:
    """The `SessionRecommender` inside a registered pyfunc model (for evaluation and serving)."""
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    return pyfunc.unwrap_python_model().recommender


def alias_version(alias: str, client: MlflowClient | None = None) -> str | None:
    """The version `alias` points at, or None when it points nowhere (or no model exists)."""
    client = client or MlflowClient()
    try:
        return str(client.get_model_version_by_alias(REGISTERED_MODEL, alias).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def champion_version(client: MlflowClient | None = None) -> str | None:
    """The version that alias `champion` points at, or None when there is none yet."""
    return alias_version(CHAMPION, client)


@dataclass(frozen=True)
class ServingVersions:
    """What the endpoint serves: the champion's version, and the challenger's when there is one
    that is not the champion."""

    champion: str | None
    challenger: str | None


def serving_versions(client: MlflowClient | None = None) -> ServingVersions:
    """The versions aliases `champion` and `challenger` point at; the challenger is None when
    the alias is absent or names the champion's version."""
    client = client or MlflowClient()
    champion = alias_version(CHAMPION, client)
    challenger = alias_version(CHALLENGER, client)
    return ServingVersions(champion, challenger if challenger != champion else None)


def promote(version: str, client: MlflowClient | None = None) -> None:
    """Alias `champion` to `version`; a challenger alias is removed (its comparison was with
    the champion before)."""
    client = client or MlflowClient()
    client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
    retire_challenger(client)


def make_challenger(version: str, client: MlflowClient | None = None) -> None:
    """Alias `challenger` to `version` (the endpoint serves it beside the champion)."""
    (client or MlflowClient()).set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, version)


def retire_challenger(client: MlflowClient | None = None) -> None:
    """Remove alias `challenger`, if it is set."""
    client = client or MlflowClient()
    if alias_version(CHALLENGER, client) is not None:
        client.delete_registered_model_alias(REGISTERED_MODEL, CHALLENGER)
