"""Deploying to SageMaker and invoking an endpoint.

The create path runs against moto's SageMaker and S3 (server mode); moto has no
`update_endpoint` and makes every endpoint InService at once, so the update paths and the
failures run on botocore's Stubber, which checks each call and its parameters in order.
Invoking goes through a real `sagemaker-runtime` client to the real inference server.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from recs_platform.models.markov import MarkovRecommender
from recs_platform.serving.inference import ChallengerPackage, load_model, package_model
from recs_platform.serving.sagemaker import (
    SageMakerDeployError,
    SageMakerTarget,
    challenger_share,
    deploy_to_sagemaker,
    deployment_name,
    model_archive,
)
from recs_platform.serving.sagemaker_runtime import invoke_sagemaker, sagemaker_runtime_client
from recs_platform.serving.server import ServerConfig, create_app
from recs_platform_tests.fakes import FAKE_AWS_REGION
from recs_platform_tests.serving.servers import serving_in_a_thread

SESSIONS = [["a", "b"], ["a", "b"], ["a", "b", "c"], ["a", "c"], ["a", "c", "d"], ["d", "e"]]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/recs-platform-inference:1.4.0"
ROLE = "arn:aws:iam::123456789012:role/recs-sagemaker-execution"
DEPLOYED_AT = dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
STAMP = "20250304050607"
OLD_CONFIG = "recs-v3-20250101000000"
NEW_NAME = f"recs-v4-{STAMP}"
TIMEOUTS = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Packaged models of versions 3 and 4 (the same Markov model)."""
    recommender = MarkovRecommender().fit(SESSIONS)
    return {
        version: package_model(
            recommender,
            tmp_path_factory.mktemp(f"package-v{version}"),
            "session-recommender",
            version,
            f"models:/session-recommender/{version}",
        )
        for version in ("3", "4")
    }


class FakeClock:
    """`clock` and `sleep` for the deployment wait: sleeping moves the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# --- the archive and the names -----------------------------------------------------------------


def test_archive_holds_the_package_files_at_its_root(packages, tmp_path: Path) -> None:
    archive_path = model_archive(packages["3"], tmp_path / "out" / "model.tar.gz")
    with tarfile.open(archive_path) as archive:
        names = sorted(archive.getnames())
        archive.extractall(tmp_path / "opt-ml-model", filter="data")
    files = sorted(
        path.relative_to(packages["3"]).as_posix()
        for path in packages["3"].rglob("*")
        if path.is_file()
    )
    assert names == files
    assert "model-info.json" in names and any(name.startswith("recommender/") for name in names)
    # What SageMaker unpacks into /opt/ml/model is a model the server loads.
    assert load_model(tmp_path / "opt-ml-model").version == "3"


def test_archive_refuses_a_folder_that_is_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a packaged model"):
        model_archive(tmp_path, tmp_path.parent / "model.tar.gz")


def test_deployment_names_fit_sagemaker_and_carry_the_version() -> None:
    assert deployment_name("recs", "4", DEPLOYED_AT) == NEW_NAME
    long_name = deployment_name("e" * 63, "12", DEPLOYED_AT)
    assert len(long_name) == 63 and long_name.endswith(f"-v12-{STAMP}")
    assert deployment_name("recs", "1.2+rc", DEPLOYED_AT) == f"recs-v1-2-rc-{STAMP}"


def test_a_package_of_another_version_is_refused(packages) -> None:
    target = SageMakerTarget("recs", IMAGE, ROLE, "models-bucket")
    with pytest.raises(ValueError, match="holds version 3, not 4"):
        deploy_to_sagemaker(object(), object(), packages["3"], "4", target)


# --- the create path on moto -------------------------------------------------------------------


@pytest.fixture
def moto_sagemaker(moto_endpoint: str, fake_aws_env: None) -> Any:
    return boto3.client(
        "sagemaker", endpoint_url=moto_endpoint, region_name=FAKE_AWS_REGION, config=TIMEOUTS
    )


def _counts(sagemaker: Any, endpoint: str) -> tuple[int, int]:
    """Models and endpoint configs named for `endpoint` on the (shared) moto server."""
    models = [m for m in sagemaker.list_models()["Models"] if m["ModelName"].startswith(endpoint)]
    configs = sagemaker.list_endpoint_configs(NameContains=endpoint)["EndpointConfigs"]
    return len(models), len(configs)


def test_create_then_the_same_version_again_is_unchanged(
    moto_sagemaker, s3_client, s3_bucket, packages, tmp_path: Path
) -> None:
    endpoint = f"recs-{uuid.uuid4().hex[:8]}"
    target = SageMakerTarget(endpoint, IMAGE, ROLE, s3_bucket, prefix="serving/", poll_s=0.01)

    deployment = deploy_to_sagemaker(moto_sagemaker, s3_client, packages["3"], "3", target)

    key = f"serving/models/{endpoint}/v3/model.tar.gz"
    assert deployment.action == "created"
    assert deployment.model_data_url == f"s3://{s3_bucket}/{key}"
    assert deployment.model_name.startswith(f"{endpoint}-v3-")
    body = s3_client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        names = archive.getnames()
        info = json.load(archive.extractfile("model-info.json"))
    assert "model-info.json" in names and any(name.startswith("recommender/") for name in names)
    assert info["version"] == "3"

    described = moto_sagemaker.describe_endpoint(EndpointName=endpoint)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == deployment.endpoint_config_name
    config = moto_sagemaker.describe_endpoint_config(
        EndpointConfigName=deployment.endpoint_config_name
    )
    (variant,) = config["ProductionVariants"]
    assert variant["VariantName"] == "champion"
    assert variant["ModelName"] == deployment.model_name
    model = moto_sagemaker.describe_model(ModelName=deployment.model_name)
    assert model["PrimaryContainer"]["Image"] == IMAGE
    assert model["PrimaryContainer"]["ModelDataUrl"] == deployment.model_data_url
    # The container is told which variant it is: its answers name it.
    assert model["PrimaryContainer"]["Environment"] == {
        "RECS_MODEL_VERSION": "3",
        "RECS_SERVE_VARIANT": "champion",
    }
    assert model["ExecutionRoleArn"] == ROLE
    for arn in (model["ModelArn"], config["EndpointConfigArn"]):
        tags = moto_sagemaker.list_tags(ResourceArn=arn)["Tags"]
        assert {"Key": "recs:model-version", "Value": "3"} in tags
    assert _counts(moto_sagemaker, endpoint) == (1, 1)

    again = deploy_to_sagemaker(moto_sagemaker, s3_client, packages["3"], "3", target)

    assert again.action == "unchanged"
    assert (again.model_name, again.endpoint_config_name) == (
        deployment.model_name,
        deployment.endpoint_config_name,
    )
    assert _counts(moto_sagemaker, endpoint) == (1, 1)


def test_champion_and_challenger_are_two_weighted_variants_and_a_new_share_reweighs_them(
    moto_sagemaker, s3_client, s3_bucket, packages
) -> None:
    endpoint = f"recs-{uuid.uuid4().hex[:8]}"
    target = SageMakerTarget(endpoint, IMAGE, ROLE, s3_bucket, poll_s=0.01)

    def deploy(share: float):
        challenger = ChallengerPackage(packages["4"], "4", share)
        return deploy_to_sagemaker(
            moto_sagemaker, s3_client, packages["3"], "3", target, challenger=challenger
        )

    deployment = deploy(0.25)

    assert deployment.action == "created"
    assert deployment.endpoint_config_name.startswith(f"{endpoint}-v3-vs-v4-")
    assert (deployment.version, deployment.challenger_version) == ("3", "4")
    assert deployment.challenger_share == 0.25
    config = moto_sagemaker.describe_endpoint_config(
        EndpointConfigName=deployment.endpoint_config_name
    )
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert {name: v["InitialVariantWeight"] for name, v in variants.items()} == {
        "champion": 0.75,
        "challenger": 0.25,
    }
    assert variants["champion"]["ModelName"] == deployment.model_name
    assert variants["challenger"]["ModelName"] == deployment.challenger_model_name
    for name, version in (("champion", "3"), ("challenger", "4")):
        container = moto_sagemaker.describe_model(ModelName=variants[name]["ModelName"])[
            "PrimaryContainer"
        ]
        assert (
            container["ModelDataUrl"]
            == f"s3://{s3_bucket}/models/{endpoint}/v{version}/model.tar.gz"
        )
        # Each container is told its variant, so its answers name it.
        assert container["Environment"] == {
            "RECS_MODEL_VERSION": version,
            "RECS_SERVE_VARIANT": name,
        }
    tags = moto_sagemaker.list_tags(ResourceArn=config["EndpointConfigArn"])["Tags"]
    assert {"Key": "recs:challenger-version", "Value": "4"} in tags
    # What the /recommend facade reads to keep each session on one variant.
    assert challenger_share(moto_sagemaker.describe_endpoint(EndpointName=endpoint)) == 0.25
    assert _counts(moto_sagemaker, endpoint) == (2, 1)

    assert deploy(0.25).action == "unchanged"

    reweighted = deploy(0.4)  # the same models: only the weights change, in place

    assert reweighted.action == "reweighted"
    assert reweighted.endpoint_config_name == deployment.endpoint_config_name
    described = moto_sagemaker.describe_endpoint(EndpointName=endpoint)
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == {
        "champion": 0.6,
        "challenger": 0.4,
    }
    assert challenger_share(described) == pytest.approx(0.4)
    assert _counts(moto_sagemaker, endpoint) == (2, 1)  # no new model, no new config
    assert deploy(0.4).action == "unchanged"


def test_the_share_of_an_endpoint_without_a_challenger_is_zero() -> None:
    description = {"ProductionVariants": [{"VariantName": "champion", "CurrentWeight": 1.0}]}
    assert challenger_share(description) == 0.0
    # moto leaves a zero weight out of describe_endpoint: the config's initial weight stands in.
    config = {
        "ProductionVariants": [
            {"VariantName": "champion", "InitialVariantWeight": 1.0},
            {"VariantName": "challenger", "InitialVariantWeight": 0.0},
        ]
    }
    assert challenger_share(description, config) == 0.0
    with pytest.raises(ValueError, match="both the champion and the challenger"):
        deploy_to_sagemaker(
            object(),
            object(),
            Path("p"),
            "4",
            SageMakerTarget("recs", IMAGE, ROLE, "b"),
            challenger=ChallengerPackage(Path("p"), "4", 0.5),
        )


# --- updates and failures on the Stubber -------------------------------------------------------


@pytest.fixture
def stubbed(fake_aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    """A real SageMaker client whose calls the Stubber answers (nothing leaves the process)."""
    client = boto3.client("sagemaker", region_name=FAKE_AWS_REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _target(bucket: str, **fields: Any) -> SageMakerTarget:
    return SageMakerTarget("recs", IMAGE, ROLE, bucket, **{"poll_s": 10.0, **fields})


def _url(bucket: str, version: str) -> str:
    return f"s3://{bucket}/models/recs/v{version}/model.tar.gz"


def _endpoint(status: str, config: str, reason: str | None = None) -> dict:
    described = {
        "EndpointName": "recs",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs",
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": DEPLOYED_AT,
        "LastModifiedTime": DEPLOYED_AT,
    }
    if reason:
        described["FailureReason"] = reason
    return described


def _expect_describe(stubber: Stubber, status: str, config: str, reason: str | None = None):
    stubber.add_response(
        "describe_endpoint", _endpoint(status, config, reason), {"EndpointName": "recs"}
    )


def _expect_no_endpoint(stubber: Stubber) -> None:
    stubber.add_client_error(
        "describe_endpoint",
        service_error_code="ValidationException",
        service_message='Could not find endpoint "arn:aws:sagemaker:us-east-1:123:endpoint/recs".',
        http_status_code=400,
        expected_params={"EndpointName": "recs"},
    )


def _expect_serving_version_3(stubber: Stubber, bucket: str) -> None:
    """The endpoint is InService on OLD_CONFIG, whose model is version 3."""
    _expect_describe(stubber, "InService", OLD_CONFIG)
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [
                {
                    "VariantName": "champion",
                    "ModelName": OLD_CONFIG,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                }
            ],
            "CreationTime": DEPLOYED_AT,
        },
        {"EndpointConfigName": OLD_CONFIG},
    )
    stubber.add_response(
        "describe_model",
        {
            "ModelName": OLD_CONFIG,
            "ModelArn": f"arn:aws:sagemaker:us-east-1:123:model/{OLD_CONFIG}",
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataUrl": _url(bucket, "3"),
                "Environment": {"RECS_MODEL_VERSION": "3", "RECS_SERVE_VARIANT": "champion"},
            },
            "CreationTime": DEPLOYED_AT,
        },
        {"ModelName": OLD_CONFIG},
    )


def _expect_model_and_config(stubber: Stubber, bucket: str, version: str = "4") -> None:
    name = f"recs-v{version}-{STAMP}"
    tags = [{"Key": "recs:model-version", "Value": version}]
    stubber.add_response(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:us-east-1:123:model/{name}"},
        {
            "ModelName": name,
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataUrl": _url(bucket, version),
                "Environment": {"RECS_MODEL_VERSION": version, "RECS_SERVE_VARIANT": "champion"},
            },
            "ExecutionRoleArn": ROLE,
            "Tags": tags,
        },
    )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123:endpoint-config/{name}"},
        {
            "EndpointConfigName": name,
            "ProductionVariants": [
                {
                    "VariantName": "champion",
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": 1.0,
                }
            ],
            "Tags": tags,
        },
    )


def _expect_blue_green_update(stubber: Stubber, max_seconds: int = 1800) -> None:
    """SageMaker's own bound is the deployment's timeout, at least its minimum of 600 s."""
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs"},
        {
            "EndpointName": "recs",
            "EndpointConfigName": NEW_NAME,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    },
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": max_seconds,
                }
            },
        },
    )


def _expect_deletes(stubber: Stubber, *, endpoint: bool = False) -> None:
    if endpoint:
        stubber.add_response("delete_endpoint", {}, {"EndpointName": "recs"})
    stubber.add_response("delete_endpoint_config", {}, {"EndpointConfigName": NEW_NAME})
    stubber.add_response("delete_model", {}, {"ModelName": NEW_NAME})


def _deploy(client, s3_client, package: Path, target: SageMakerTarget, clock: FakeClock):
    return deploy_to_sagemaker(
        client,
        s3_client,
        package,
        "4",
        target,
        sleep=clock.sleep,
        clock=clock,
        now=lambda: DEPLOYED_AT,
    )


def test_update_moves_the_endpoint_blue_green(stubbed, s3_client, s3_bucket, packages) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber)
    _expect_describe(stubber, "Updating", OLD_CONFIG)
    _expect_describe(stubber, "Updating", OLD_CONFIG)
    _expect_describe(stubber, "InService", NEW_NAME)
    clock = FakeClock()

    deployment = _deploy(client, s3_client, packages["4"], _target(s3_bucket), clock)

    assert deployment.action == "updated"
    assert (deployment.model_name, deployment.endpoint_config_name) == (NEW_NAME, NEW_NAME)
    assert deployment.seconds == 20.0 and clock.sleeps == [10.0, 10.0]
    head = s3_client.head_object(Bucket=s3_bucket, Key="models/recs/v4/model.tar.gz")
    assert head["ContentLength"] > 0


def test_sagemakers_own_rollback_is_reported(stubbed, s3_client, s3_bucket, packages) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber)
    _expect_describe(stubber, "Updating", OLD_CONFIG)
    _expect_describe(stubber, "InService", OLD_CONFIG, reason="health check failed on /ping")
    _expect_deletes(stubber)

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())

    assert raised.value.state == "rolled-back"
    message = str(raised.value)
    assert "rolled endpoint recs back" in message
    assert f"InService on the previous config {OLD_CONFIG}" in message
    assert "health check failed on /ping" in message
    assert f"Deleted endpoint config {NEW_NAME}, model {NEW_NAME}." in message


def test_a_failed_update_is_rolled_back_to_the_previous_config(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber)
    _expect_describe(stubber, "Updating", OLD_CONFIG)
    _expect_describe(stubber, "Failed", OLD_CONFIG, reason="CannotStartContainerError")
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs"},
        {"EndpointName": "recs", "EndpointConfigName": OLD_CONFIG},
    )
    _expect_deletes(stubber)

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())

    assert raised.value.state == "rolling-back"
    message = str(raised.value)
    assert "the endpoint is Failed" in message and "CannotStartContainerError" in message
    assert f"Rolling back to the previous config {OLD_CONFIG} has started" in message
    assert "describe-endpoint --endpoint-name recs" in message


def test_a_timeout_mid_update_names_the_state_and_keeps_the_new_config(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber, max_seconds=600)
    for _ in range(4):  # at 0, 10, 20 and 30 s: then the 30 s are up
        _expect_describe(stubber, "Updating", OLD_CONFIG)
    clock = FakeClock()
    target = _target(s3_bucket, timeout_s=30.0)

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], target, clock)

    assert raised.value.state == "timed-out"
    message = str(raised.value)
    assert f"did not finish moving to config {NEW_NAME} within 30 s" in message
    assert f"it is Updating on config {OLD_CONFIG}" in message
    assert "cannot be rolled back" in message
    assert clock.sleeps == [10.0, 10.0, 10.0]  # and no delete: the stubber expects none


@pytest.mark.parametrize("ending", ["Failed", "timeout"])
def test_a_failed_create_deletes_endpoint_config_and_model(
    stubbed, s3_client, s3_bucket, packages, ending: str
) -> None:
    client, stubber = stubbed
    _expect_no_endpoint(stubber)
    _expect_model_and_config(stubber, s3_bucket)
    stubber.add_response(
        "create_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs"},
        {"EndpointName": "recs", "EndpointConfigName": NEW_NAME},
    )
    _expect_describe(stubber, "Creating", NEW_NAME)
    if ending == "Failed":
        _expect_describe(stubber, "Failed", NEW_NAME, reason="image not found in ECR")
    else:
        _expect_describe(stubber, "Creating", NEW_NAME)
    _expect_deletes(stubber, endpoint=True)

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket, timeout_s=10.0), FakeClock())

    assert raised.value.state == ("failed" if ending == "Failed" else "timed-out")
    message = str(raised.value)
    if ending == "Failed":
        assert f"endpoint recs is Failed instead of InService on config {NEW_NAME}" in message
        assert "image not found in ECR" in message
    else:
        assert "not InService within 10 s (still Creating)" in message
    assert "nothing serves under recs" in message
    assert f"Deleted endpoint recs, endpoint config {NEW_NAME}, model {NEW_NAME}." in message


def test_a_failed_upload_changes_nothing_in_sagemaker(stubbed, s3_client, packages) -> None:
    client, stubber = stubbed
    _expect_no_endpoint(stubber)  # and no create_*: the stubber refuses any other call

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target("no-such-bucket"), FakeClock())

    assert raised.value.state == "aborted"
    message = str(raised.value)
    assert "could not upload the model archive to s3://no-such-bucket/models/recs/v4/" in message
    assert "NoSuchBucket" in message and "Nothing was changed in SageMaker" in message


def test_an_endpoint_mid_update_is_left_alone(stubbed, s3_client, s3_bucket, packages) -> None:
    client, stubber = stubbed
    _expect_describe(stubber, "Updating", OLD_CONFIG)

    with pytest.raises(
        SageMakerDeployError, match="recs is Updating.*nothing was changed"
    ) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())
    assert raised.value.state == "aborted"


def test_a_refused_rollback_keeps_the_new_config_and_says_how_to_roll_back(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber)
    _expect_describe(stubber, "Failed", OLD_CONFIG, reason="CannotStartContainerError")
    stubber.add_client_error(
        "update_endpoint",
        service_error_code="ValidationException",
        service_message="Cannot update in-progress endpoint",
        http_status_code=400,
        expected_params={"EndpointName": "recs", "EndpointConfigName": OLD_CONFIG},
    )  # and no delete: the endpoint still refers to the new config

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())

    assert raised.value.state == "failed"
    message = str(raised.value)
    assert f"rolling it back to config {OLD_CONFIG} was refused" in message
    assert f"Model {NEW_NAME} and endpoint config {NEW_NAME} are kept" in message
    assert f"--endpoint-config-name {OLD_CONFIG}`" in message


def test_an_endpoint_that_cannot_be_read_while_waiting_is_left_as_it_is(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_serving_version_3(stubber, s3_bucket)
    _expect_model_and_config(stubber, s3_bucket)
    _expect_blue_green_update(stubber)
    stubber.add_client_error(
        "describe_endpoint",
        service_error_code="AccessDeniedException",
        service_message="not authorized to perform sagemaker:DescribeEndpoint",
        http_status_code=400,
    )  # and no delete: the update may still be under way

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())

    assert raised.value.state == "unknown"
    assert "The deployment may still be under way" in str(raised.value)


def test_a_refused_endpoint_config_deletes_the_new_model(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_no_endpoint(stubber)
    stubber.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123:model/m"})
    stubber.add_client_error(
        "create_endpoint_config",
        service_error_code="ResourceLimitExceeded",
        service_message="account limit of endpoint configs",
        http_status_code=400,
    )
    stubber.add_response("delete_model", {}, {"ModelName": NEW_NAME})

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy(client, s3_client, packages["4"], _target(s3_bucket), FakeClock())

    assert raised.value.state == "aborted"
    assert str(raised.value) == (
        f"could not create endpoint config {NEW_NAME} for endpoint recs: ResourceLimitExceeded: "
        "account limit of endpoint configs. Nothing was changed on the endpoint. "
        f"Deleted model {NEW_NAME}."
    )


TWO_VARIANTS = f"recs-v3-vs-v4-{STAMP}"
CHAMPION_V3, CHALLENGER_V4 = f"recs-v3-{STAMP}", f"recs-v4-{STAMP}"


def _expect_two_models_and_their_config(stubber: Stubber, bucket: str, share: float) -> None:
    for name, version, variant in (
        (CHAMPION_V3, "3", "champion"),
        (CHALLENGER_V4, "4", "challenger"),
    ):
        stubber.add_response(
            "create_model",
            {"ModelArn": f"arn:aws:sagemaker:us-east-1:123:model/{name}"},
            {
                "ModelName": name,
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": _url(bucket, version),
                    "Environment": {"RECS_MODEL_VERSION": version, "RECS_SERVE_VARIANT": variant},
                },
                "ExecutionRoleArn": ROLE,
                "Tags": [{"Key": "recs:model-version", "Value": version}],
            },
        )
    stubber.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123:endpoint-config/{TWO_VARIANTS}"},
        {
            "EndpointConfigName": TWO_VARIANTS,
            "ProductionVariants": [
                {
                    "VariantName": variant,
                    "ModelName": name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 1,
                    "InitialVariantWeight": weight,
                }
                for variant, name, weight in (
                    ("champion", CHAMPION_V3, 1.0 - share),
                    ("challenger", CHALLENGER_V4, share),
                )
            ],
            "Tags": [
                {"Key": "recs:model-version", "Value": "3"},
                {"Key": "recs:challenger-version", "Value": "4"},
            ],
        },
    )


def _deploy_with_challenger(client, s3_client, packages, bucket: str, clock: FakeClock):
    return deploy_to_sagemaker(
        client,
        s3_client,
        packages["3"],
        "3",
        _target(bucket),
        challenger=ChallengerPackage(packages["4"], "4", 0.1),
        sleep=clock.sleep,
        clock=clock,
        now=lambda: DEPLOYED_AT,
    )


def test_a_challenger_joins_a_champion_only_endpoint_blue_green(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_describe(stubber, "InService", OLD_CONFIG)
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [{"VariantName": "champion", "ModelName": OLD_CONFIG}],
            "CreationTime": DEPLOYED_AT,
        },
        {"EndpointConfigName": OLD_CONFIG},
    )  # one variant: not what is wanted, whatever its model
    _expect_two_models_and_their_config(stubber, s3_bucket, 0.1)
    stubber.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs"},
        {
            "EndpointName": "recs",
            "EndpointConfigName": TWO_VARIANTS,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 0,
                    },
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": 1800,
                }
            },
        },
    )
    _expect_describe(stubber, "Updating", OLD_CONFIG)
    _expect_describe(stubber, "InService", TWO_VARIANTS)

    deployment = _deploy_with_challenger(client, s3_client, packages, s3_bucket, FakeClock())

    assert deployment.action == "updated"
    assert (deployment.model_name, deployment.challenger_model_name) == (CHAMPION_V3, CHALLENGER_V4)
    assert deployment.endpoint_config_name == TWO_VARIANTS
    for version in ("3", "4"):
        head = s3_client.head_object(Bucket=s3_bucket, Key=f"models/recs/v{version}/model.tar.gz")
        assert head["ContentLength"] > 0


def test_a_refused_two_variant_config_deletes_both_new_models(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    client, stubber = stubbed
    _expect_no_endpoint(stubber)
    stubber.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123:model/a"})
    stubber.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123:model/b"})
    stubber.add_client_error(
        "create_endpoint_config",
        service_error_code="ResourceLimitExceeded",
        service_message="account limit of instances",
        http_status_code=400,
    )
    stubber.add_response("delete_model", {}, {"ModelName": CHAMPION_V3})
    stubber.add_response("delete_model", {}, {"ModelName": CHALLENGER_V4})

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy_with_challenger(client, s3_client, packages, s3_bucket, FakeClock())

    assert raised.value.state == "aborted"
    assert f"Deleted model {CHAMPION_V3}, model {CHALLENGER_V4}." in str(raised.value)


def test_weights_that_do_not_take_leave_the_models_and_say_so(
    stubbed, s3_client, s3_bucket, packages
) -> None:
    """The endpoint runs versions 3 and 4 at 50/50; the share 0.1 is asked for, and SageMaker
    ends the change InService with the old weights."""
    client, stubber = stubbed
    at_half = [
        {"VariantName": "champion", "CurrentWeight": 0.5},
        {"VariantName": "challenger", "CurrentWeight": 0.5},
    ]
    stubber.add_response(
        "describe_endpoint",
        {**_endpoint("InService", TWO_VARIANTS), "ProductionVariants": at_half},
        {"EndpointName": "recs"},
    )
    stubber.add_response(
        "describe_endpoint_config",
        {
            "EndpointConfigName": TWO_VARIANTS,
            "EndpointConfigArn": f"arn:aws:sagemaker:us-east-1:123:endpoint-config/{TWO_VARIANTS}",
            "ProductionVariants": [
                {"VariantName": variant, "ModelName": name, "InstanceType": "ml.m5.large",
                 "InitialInstanceCount": 1, "InitialVariantWeight": 0.5}
                for variant, name in (("champion", CHAMPION_V3), ("challenger", CHALLENGER_V4))
            ],
            "CreationTime": DEPLOYED_AT,
        },
        {"EndpointConfigName": TWO_VARIANTS},
    )  # fmt: skip
    for name, version, variant in (
        (CHAMPION_V3, "3", "champion"),
        (CHALLENGER_V4, "4", "challenger"),
    ):
        stubber.add_response(
            "describe_model",
            {
                "ModelName": name,
                "ModelArn": f"arn:aws:sagemaker:us-east-1:123:model/{name}",
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": _url(s3_bucket, version),
                    "Environment": {"RECS_MODEL_VERSION": version, "RECS_SERVE_VARIANT": variant},
                },
                "CreationTime": DEPLOYED_AT,
            },
            {"ModelName": name},
        )
    stubber.add_response(
        "update_endpoint_weights_and_capacities",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/recs"},
        {
            "EndpointName": "recs",
            "DesiredWeightsAndCapacities": [
                {"VariantName": "champion", "DesiredWeight": 0.9},
                {"VariantName": "challenger", "DesiredWeight": 0.1},
            ],
        },
    )
    stubber.add_response(
        "describe_endpoint",
        {**_endpoint("Updating", TWO_VARIANTS), "ProductionVariants": at_half},
        {"EndpointName": "recs"},
    )
    stubber.add_response(
        "describe_endpoint",
        {
            **_endpoint("InService", TWO_VARIANTS, reason="weights update failed"),
            "ProductionVariants": at_half,
        },
        {"EndpointName": "recs"},
    )  # and nothing deleted: the models still serve

    with pytest.raises(SageMakerDeployError) as raised:
        _deploy_with_challenger(client, s3_client, packages, s3_bucket, FakeClock())

    assert raised.value.state == "failed"
    message = str(raised.value)
    assert "without the weights champion 0.9, challenger 0.1" in message
    assert "weights update failed" in message and "Its models were not changed" in message


# --- invoking ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local_endpoint_url(packages) -> Iterator[str]:
    """The real inference server (uvicorn in a thread) serving version 3 on 127.0.0.1."""
    with serving_in_a_thread(create_app(ServerConfig(model_source=str(packages["3"])))) as url:
        yield url


@pytest.fixture
def runtime(local_endpoint_url: str, fake_aws_env: None) -> Any:
    return sagemaker_runtime_client(
        timeout_s=5, region_name=FAKE_AWS_REGION, endpoint_url=local_endpoint_url
    )


def test_invoke_returns_the_predictions_and_the_model_version(runtime) -> None:
    status, document = invoke_sagemaker(
        runtime, "recs", {"instances": [{"session": ["a"], "k": 2}, {"session": ["x"]}]}
    )
    assert status == 200
    first, second = document["predictions"]
    assert first["items"] == ["b", "c"]
    assert second["unknown"] == ["x"] and second["fallback"] == "popularity"
    assert document["model"]["version"] == "3"


def test_a_bad_payload_comes_back_as_a_400_with_the_servers_reason(runtime) -> None:
    status, document = invoke_sagemaker(runtime, "recs", {"session": "a"})
    assert status == 400
    assert document == {"error": "body.session must be a list of SKUs, not a string"}


def test_a_container_refusal_through_sagemaker_keeps_its_status_and_reason(
    fake_aws_env: None,
) -> None:
    """Real SageMaker wraps the container's 4xx in a ModelError (HTTP 424)."""
    client = boto3.client("sagemaker-runtime", region_name=FAKE_AWS_REGION)
    log_stream = "arn:aws:logs:us-east-1:123:log-group:/aws/sagemaker/Endpoints/recs"
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (400) from primary with message ...",
            http_status_code=424,
            modeled_fields={
                "OriginalStatusCode": 400,
                "OriginalMessage": '{"error": "instances is empty"}',
                "LogStreamArn": log_stream,
            },
        )
        status, document = invoke_sagemaker(client, "recs", {"instances": []})
        stubber.assert_no_pending_responses()
    assert status == 400
    assert document == {"error": "instances is empty", "log_stream": log_stream}
