"""MLflow: where runs go, the recommender as a pyfunc model, the registry and its champion alias.

Locally the tracking store is a sqlite file and artifacts a folder, both under the data directory;
in production any tracking server named by `MLFLOW_TRACKING_URI`. Nothing here imports Dagster.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from recs_platform.models.base import SessionRecommender, load_recommender

REGISTERED_MODEL = "session-recommender"
CHAMPION = "champion"
EXPERIMENT = "session-recommender"
DEFAULT_K = 20


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
    """The pyfunc face of any `SessionRecommender`.

    Input: a DataFrame with a column `session` (a list of skus, oldest first) and optionally `k`.
    Output: a DataFrame with `items` (best first, seen skus excluded) and `scores` per row.
    """

    def load_context(self, context) -> None:
        self.recommender = load_recommender(Path(context.artifacts["recommender"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        sessions = [list(session) for session in model_input["session"]]
        if "k" in model_input.columns:
            ks = [int(k) if pd.notna(k) else DEFAULT_K for k in model_input["k"]]
        else:
            ks = [DEFAULT_K] * len(sessions)
        return pd.DataFrame(recommend(self.recommender, sessions, ks))


def recommend(
    recommender: SessionRecommender, sessions: list[list[str]], ks: list[int]
) -> list[dict[str, Any]]:
    """Top-k items and their scores per session, best first, items of the session left out."""
    if not sessions:
        return []
    ranked = recommender.top_k(sessions, k=max(ks), exclude_seen=True)
    return [
        {"items": items[:k], "scores": scores[:k]}
        for (items, scores), k in zip(ranked, ks, strict=True)
    ]


# `session`: skus, oldest first; `k` optional (DEFAULT_K). Out: items best first, their scores.
SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(Array(DataType.string), "session"),
            ColSpec(DataType.long, "k", required=False),
        ]
    ),
    outputs=Schema(
        [ColSpec(Array(DataType.string), "items"), ColSpec(Array(DataType.double), "scores")]
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
    """Logs the recommender as a pyfunc in the active run and registers a new version."""
    examples = [list(session) for session in example_sessions[:3]]
    example = pd.DataFrame({"session": examples, "k": [DEFAULT_K] * len(examples)})
    with tempfile.TemporaryDirectory() as scratch:
        folder = recommender.save(Path(scratch) / "recommender")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=SessionRecommenderModel(),
            artifacts={"recommender": str(folder)},
            signature=SIGNATURE,
            input_example=example,
            pip_requirements=_pip_requirements(),
            registered_model_name=REGISTERED_MODEL,
        )
    version = str(info.registered_model_version)
    return LoggedRecommender(
        model_uri=f"models:/{REGISTERED_MODEL}/{version}",
        version=version,
        run_id=mlflow.active_run().info.run_id,
    )


def load_registered(model_uri: str) -> SessionRecommender:
    """The `SessionRecommender` inside a registered pyfunc model (for evaluation and serving)."""
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    return pyfunc.unwrap_python_model().recommender


def resolve_version(model_uri: str, client: MlflowClient | None = None) -> str | None:
    """The registry version a `models:/name/N` or `models:/name@alias` URI names."""
    reference = model_uri.removeprefix("models:/")
    if "@" in reference:
        name, alias = reference.split("@", 1)
        return str((client or MlflowClient()).get_model_version_by_alias(name, alias).version)
    name, _, version = reference.partition("/")
    return version if version.isdigit() else None


def champion_version(client: MlflowClient | None = None) -> str | None:
    """The version that alias `champion` points at, or None when there is none yet."""
    client = client or MlflowClient()
    try:
        return str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def promote(version: str, client: MlflowClient | None = None) -> None:
    (client or MlflowClient()).set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
