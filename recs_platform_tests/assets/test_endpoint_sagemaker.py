"""`recommendation_endpoint` on the production path: the champion (and the challenger, as a second
production variant) goes to S3 and SageMaker (moto in server mode on 127.0.0.1), and the blocking
check invokes each variant through boto3's sagemaker-runtime client (`TargetVariant`), here
answered by the real inference container's server, which loads the same registered versions
from MLflow. moto has no `update_endpoint`: the update and rollback paths are tested with
botocore's Stubber in `serving/test_sagemaker.py`; it has `update_endpoint_weights_and_capacities`,
which a new share alone calls."""

from __future__ import annotations

import datetime as dt
import tarfile
from pathlib import Path

import boto3
import dagster as dg
import mlflow
import pytest

from recs_platform.assets.endpoint import SERVES_CHAMPION_CHECK
from recs_platform.definitions import DEPLOY_JOB, build_definitions
from recs_platform.models.markov import MarkovRecommender
from recs_platform.models.popularity import PopularityRecommender
from recs_platform.resources import SageMakerRecommendationEndpoint, local_mlflow, resources_for
from recs_platform.serving.sagemaker import challenger_share
from recs_platform.settings import Settings
from recs_platform.training import tracking
from recs_platform_tests.fakes import FAKE_AWS_REGION, s3_resource_for
from recs_platform_tests.serving.hand_model import HAND_SESSIONS
from recs_platform_tests.serving.servers import running_inference_server


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(env="prod", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))


def test_the_champion_is_created_on_sagemaker_and_checked_through_the_runtime(
    settings: Settings,
    moto_endpoint: str,
    s3_bucket: str,
    s3_client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow_tracking = local_mlflow(settings)
    mlflow_tracking.activate()
    with mlflow.start_run():
        logged = tracking.log_and_register(MarkovRecommender().fit(HAND_SESSIONS), [["a"]])
    tracking.promote(logged.version)
    # The container loads the champion itself here; on SageMaker it reads /opt/ml/model.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking.tracking_uri)
    champion_uri = f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION}"
    with running_inference_server(champion_uri) as container_url:
        endpoint = SageMakerRecommendationEndpoint(
            s3=s3_resource_for(moto_endpoint),
            bucket=s3_bucket,
            prefix="shop/",
            endpoint_name="recs-test",
            image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/recs-platform:test",
            role_arn="arn:aws:iam::123456789012:role/recs-sagemaker",
            region_name=FAKE_AWS_REGION,
            poll_s=0.1,
            sagemaker_endpoint_url=moto_endpoint,
            runtime_endpoint_url=container_url,
        )
        resources = {
            **resources_for(settings),
            "mlflow_tracking": mlflow_tracking,
            "endpoint": endpoint,
        }
        definitions = build_definitions(settings, resources=resources)

        def deploy():
            return definitions.resolve_job_def(DEPLOY_JOB).execute_in_process(
                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
            )

        created = deploy()
        assert created.success
        metadata = {
            key: value.value
            for key, value in created.asset_materializations_for_node("recommendation_endpoint")[
                0
            ].metadata.items()
        }
        assert metadata["action"] == "created"
        assert metadata["model_version"] == logged.version
        assert metadata["endpoint_name"] == "recs-test"
        (check,) = created.get_asset_check_evaluations()
        assert check.check_name == SERVES_CHAMPION_CHECK and check.passed

        key = f"shop/models/recs-test/v{logged.version}/model.tar.gz"
        assert metadata["model_data_url"] == f"s3://{s3_bucket}/{key}"
        archive = Path(settings.data_dir) / "model.tar.gz"
        s3_client.download_file(s3_bucket, key, str(archive))
        with tarfile.open(archive) as members:
            names = members.getnames()
        assert "model-info.json" in names and "recommender/recommender.json" in names

        again = deploy()
        assert again.success
        metadata = again.asset_materializations_for_node("recommendation_endpoint")[0].metadata
        assert metadata["action"].value == "unchanged"


def test_champion_and_challenger_become_weighted_variants_and_the_share_is_configuration(
    settings: Settings,
    moto_endpoint: str,
    s3_bucket: str,
    fake_aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mlflow_tracking = local_mlflow(settings)
    mlflow_tracking.activate()
    with mlflow.start_run():
        champion = tracking.log_and_register(MarkovRecommender().fit(HAND_SESSIONS), [["a"]])
    with mlflow.start_run():
        challenger = tracking.log_and_register(PopularityRecommender().fit(HAND_SESSIONS), [["a"]])
    tracking.promote(champion.version)
    tracking.make_challenger(challenger.version)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_tracking.tracking_uri)
    sagemaker = boto3.client("sagemaker", endpoint_url=moto_endpoint, region_name=FAKE_AWS_REGION)
    # One process stands in for both containers: TargetVariant reaches the model it names.
    with running_inference_server(
        f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHAMPION}",
        "--challenger",
        f"models:/{tracking.REGISTERED_MODEL}@{tracking.CHALLENGER}",
        "--challenger-share",
        "0.3",
    ) as container_url:

        def deploy(share: float) -> dict:
            endpoint = SageMakerRecommendationEndpoint(
                s3=s3_resource_for(moto_endpoint),
                bucket=s3_bucket,
                endpoint_name="recs-ab-test",
                image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/recs-platform:test",
                role_arn="arn:aws:iam::123456789012:role/recs-sagemaker",
                region_name=FAKE_AWS_REGION,
                poll_s=0.1,
                sagemaker_endpoint_url=moto_endpoint,
                runtime_endpoint_url=container_url,
                challenger_share=share,
            )
            resources = {
                **resources_for(settings),
                "mlflow_tracking": mlflow_tracking,
                "endpoint": endpoint,
            }
            result = (
                build_definitions(settings, resources=resources)
                .resolve_job_def(DEPLOY_JOB)
                .execute_in_process(instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
            )
            assert result.success
            (check,) = result.get_asset_check_evaluations()
            assert check.passed, check.metadata["problems"].value
            materialization = result.asset_materializations_for_node("recommendation_endpoint")[0]
            return {key: value.value for key, value in materialization.metadata.items()}

        created = deploy(0.3)
        assert created["action"] == "created"
        assert (created["model_version"], created["challenger_version"]) == (
            champion.version,
            challenger.version,
        )
        config = sagemaker.describe_endpoint_config(EndpointConfigName=created["endpoint_config"])
        weights = {
            v["VariantName"]: v["InitialVariantWeight"] for v in config["ProductionVariants"]
        }
        assert weights == {"champion": 0.7, "challenger": 0.3}

        reweighted = deploy(0.5)
        assert reweighted["action"] == "reweighted"
        assert reweighted["endpoint_config"] == created["endpoint_config"]
        described = sagemaker.describe_endpoint(EndpointName="recs-ab-test")
        assert challenger_share(described) == 0.5
