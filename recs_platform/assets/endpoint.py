"""`recommendation_endpoint`: the MLflow champion, deployed where the shop's pages are served."""

import tempfile
from pathlib import Path

import dagster as dg

from recs_platform.resources import MlflowTracking, RecommendationEndpoint
from recs_platform.serving.inference import package_model
from recs_platform.serving.probe import probe_problems, probe_request
from recs_platform.training import tracking

SERVES_CHAMPION_CHECK = "serves_champion"


def build_recommendation_endpoint_asset(
    kinds: set[str], retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    @dg.asset(
        group_name="serving",
        kinds=kinds,
        deps=["session_model"],
        retry_policy=retry_policy,
        check_specs=[
            dg.AssetCheckSpec(
                SERVES_CHAMPION_CHECK,
                asset="recommendation_endpoint",
                blocking=True,
                description="The endpoint answers a probe (known, empty and unknown sessions) "
                "with well-formed recommendations from the champion's version.",
            )
        ],
        description=(
            "Deploys `session-recommender@champion` from the MLflow registry: locally a "
            "`recs-platform serve` process under RECS_DATA_DIR/endpoint (models swapped without "
            "a dropped request), in production a SageMaker endpoint (blue/green, rolled back "
            "when the new version does not come up). The check invokes it."
        ),
    )
    def recommendation_endpoint(
        context: dg.AssetExecutionContext,
        mlflow_tracking: MlflowTracking,
        endpoint: RecommendationEndpoint,
    ) -> dg.MaterializeResult:
        mlflow_tracking.activate()
        version = tracking.champion_version()
        if version is None:
            raise dg.Failure(
                f"the registry has no `{tracking.REGISTERED_MODEL}@{tracking.CHAMPION}` yet: "
                "materialize session_model first (a version becomes champion once it passes "
                "its checks)"
            )
        model_uri = f"models:/{tracking.REGISTERED_MODEL}/{version}"
        recommender = tracking.load_registered(model_uri)
        with tempfile.TemporaryDirectory() as scratch:
            package = package_model(
                recommender,
                Path(scratch) / "package",
                tracking.REGISTERED_MODEL,
                version,
                model_uri,
            )
            deployed = endpoint.deploy(package, version)
        context.log.info(f"deployed version {version}: {deployed}")
        request = probe_request(recommender.item_ids)
        status, answer = endpoint.invoke(request)
        problems = probe_problems(request, status, answer, version, recommender.item_ids)
        return dg.MaterializeResult(
            metadata={
                **deployed,
                "model_uri": model_uri,
                "recommender": recommender.name,
                "catalogue_items": len(recommender.item_ids),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=SERVES_CHAMPION_CHECK,
                    passed=not problems,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "problems": dg.MetadataValue.json(problems),
                        "probe_answer": dg.MetadataValue.json(answer),
                    },
                )
            ],
        )

    return recommendation_endpoint
