"""`recommendation_endpoint`: the MLflow champion, and the challenger beside it when the registry
has one, deployed where the shop's pages are served."""

import tempfile
from pathlib import Path

import dagster as dg

from recs_platform.resources import MlflowTracking, RecommendationEndpoint
from recs_platform.serving.inference import ChallengerPackage, Variant, package_model
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
                "with well-formed recommendations from the champion's version, and, when a "
                "challenger is deployed, a probe forced to the challenger from its version.",
            )
        ],
        description=(
            "Deploys `session-recommender@champion` from the MLflow registry, and "
            "`@challenger` beside it when there is one (answering the endpoint resource's "
            "`challenger_share` of sessions, RECS_CHALLENGER_SHARE): locally one "
            "`recs-platform serve` process under RECS_DATA_DIR/endpoint holding both (models "
            "swapped without a dropped request), in production a SageMaker endpoint with a "
            "production variant each (blue/green, rolled back when the new version does not "
            "come up; a new share alone changes the weights in place). The check invokes each."
        ),
    )
    def recommendation_endpoint(
        context: dg.AssetExecutionContext,
        mlflow_tracking: MlflowTracking,
        endpoint: RecommendationEndpoint,
    ) -> dg.MaterializeResult:
        mlflow_tracking.activate()
        versions = tracking.serving_versions()
        if versions.champion is None:
            raise dg.Failure(
                f"the registry has no `{tracking.REGISTERED_MODEL}@{tracking.CHAMPION}` yet: "
                "materialize session_model first (a version becomes champion once it passes "
                "its checks)"
            )
        served = {Variant.CHAMPION: versions.champion}
        if versions.challenger is not None:
            served[Variant.CHALLENGER] = versions.challenger
        recommenders = {
            variant: tracking.load_registered(_model_uri(version))
            for variant, version in served.items()
        }
        with tempfile.TemporaryDirectory() as scratch:
            packages = {
                variant: package_model(
                    recommenders[variant],
                    Path(scratch) / variant.value,
                    tracking.REGISTERED_MODEL,
                    version,
                    _model_uri(version),
                )
                for variant, version in served.items()
            }
            challenger = None
            if Variant.CHALLENGER in served:
                challenger = ChallengerPackage(
                    packages[Variant.CHALLENGER],
                    served[Variant.CHALLENGER],
                    endpoint.challenger_share,
                )
            deployed = endpoint.deploy(packages[Variant.CHAMPION], versions.champion, challenger)
        context.log.info(f"deployed {', '.join(f'{v} {n}' for v, n in served.items())}: {deployed}")
        problems, answers = [], {}
        for variant, version in served.items():
            item_ids = recommenders[variant].item_ids
            request = probe_request(item_ids, variant=variant)
            status, answer = endpoint.invoke(request, target_variant=variant.value)
            answers[variant.value] = answer
            problems += [
                f"{variant}: {problem}"
                for problem in probe_problems(request, status, answer, version, item_ids, variant)
            ]
        champion = recommenders[Variant.CHAMPION]
        return dg.MaterializeResult(
            metadata={
                **deployed,
                "model_uri": _model_uri(versions.champion),
                "recommender": champion.name,
                "catalogue_items": len(champion.item_ids),
                **(
                    {"challenger_recommender": recommenders[Variant.CHALLENGER].name}
                    if Variant.CHALLENGER in served
                    else {}
                ),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=SERVES_CHAMPION_CHECK,
                    passed=not problems,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "problems": dg.MetadataValue.json(problems),
                        "probe_answer": dg.MetadataValue.json(answers[Variant.CHAMPION.value]),
                        "probe_answers": dg.MetadataValue.json(answers),
                    },
                )
            ],
        )

    return recommendation_endpoint


def _model_uri(version: str) -> str:
    return f"models:/{tracking.REGISTERED_MODEL}/{version}"
