"""deployments/lambda: the SAM template through cfn-lint, then read with cfn-lint's decoder for
what a user relies on: the routes the handlers answer, handlers that import, least-privilege
IAM, the Firehose configuration `raw_events` reads (as recs_platform_tests/fakes.py has it); the
Lambda image linted and holding everything the handlers import."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from recs_platform.collection.lambda_handler import HEALTH_PATH
from recs_platform.collection.routes import COLLECT_PATH, PIXEL_PATHS, SNOWPLOW_POST_PATH
from recs_platform.serving.facade import RECOMMEND_PATH
from recs_platform_tests.deployments.lint import assert_common_image_rules, run_tool, tool
from recs_platform_tests.fakes import (
    FIREHOSE_ERRORS_PREFIX,
    FIREHOSE_EVENTS_PREFIX,
    FIREHOSE_FILE_EXTENSION,
)

REPO = Path(__file__).resolve().parents[2]
LAMBDA_DIR = REPO / "deployments" / "lambda"
TEMPLATE = LAMBDA_DIR / "template.yaml"
REJECTED_EVENTS_PREFIX = "rejected/date=!{timestamp:yyyy-MM-dd}/"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return cfn_yaml.load(str(TEMPLATE))


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = tool("cfn-lint", "cfn-lint")
    # Informational checks too: nothing at all may be reported.
    result = run_tool(cfn_lint, "--include-checks", "I", "--", TEMPLATE)
    assert result.returncode == 0, f"cfn-lint:\n{result.stdout}{result.stderr}"


def _routes(function: dict) -> set[tuple[str, str]]:
    events = function["Properties"]["Events"].values()
    for event in events:
        assert event["Type"] == "HttpApi" and event["Properties"]["ApiId"] == {"Ref": "HttpApi"}
    return {(e["Properties"]["Method"], e["Properties"]["Path"]) for e in events}


def test_the_http_api_routes_reach_the_handlers_that_answer_them(template: dict) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert set(resources(template, "AWS::Serverless::HttpApi")) == {"HttpApi"}
    functions = resources(template, "AWS::Serverless::Function")
    assert set(functions) == {"CollectFunction", "RecommendFunction"}
    assert _routes(functions["CollectFunction"]) == {
        *(("GET", path) for path in PIXEL_PATHS),
        ("POST", COLLECT_PATH),
        ("POST", SNOWPLOW_POST_PATH),
        ("GET", HEALTH_PATH),
        ("OPTIONS", "/{proxy+}"),  # the collect handler answers every preflight
    }
    assert _routes(functions["RecommendFunction"]) == {("GET", RECOMMEND_PATH)}
    handlers = {}
    for name, function in functions.items():
        assert function["Properties"]["PackageType"] == "Image"
        (handler,) = function["Properties"]["ImageConfig"]["Command"]
        module, _, attribute = handler.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attribute)), handler
        handlers[name] = handler
        assert function["Metadata"]["Dockerfile"] == "deployments/lambda/Dockerfile"
        context = (LAMBDA_DIR / function["Metadata"]["DockerContext"]).resolve()
        assert (context / function["Metadata"]["Dockerfile"]).is_file()
    assert handlers == {
        "CollectFunction": "recs_platform.collection.lambda_handler.handler",
        "RecommendFunction": "recs_platform.serving.recommend_lambda.handler",
    }
    environment = functions["CollectFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["RECS_FIREHOSE_STREAM"] == {"Ref": "EventsDeliveryStream"}
    assert environment["RECS_FIREHOSE_REJECTED_STREAM"] == {"Ref": "RejectedDeliveryStream"}
    environment = functions["RecommendFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["RECS_SAGEMAKER_ENDPOINT"] == {"Ref": "SageMakerEndpointName"}
    assert template["Globals"]["Function"]["Environment"]["Variables"] == {
        "RECS_CORS_ORIGINS": {"Ref": "CorsOrigins"}
    }
    assert {"ApiUrl", "LandingBucket"} <= set(template["Outputs"])


def _only_statement(function: dict) -> dict:
    (policy,) = function["Properties"]["Policies"]  # no managed policy beside it
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    return statement


def test_each_function_may_do_one_thing_on_its_own_resources(template: dict) -> None:
    functions = resources(template, "AWS::Serverless::Function")
    collect = _only_statement(functions["CollectFunction"])
    assert collect["Action"] == "firehose:PutRecordBatch"
    assert collect["Resource"] == [
        {"Fn::GetAtt": ["EventsDeliveryStream", "Arn"]},
        {"Fn::GetAtt": ["RejectedDeliveryStream", "Arn"]},
    ]
    recommend = _only_statement(functions["RecommendFunction"])
    # Invoke, and read the variants' weights (a session keeps its variant).
    assert recommend["Action"] == ["sagemaker:InvokeEndpoint", "sagemaker:DescribeEndpoint"]
    arn = recommend["Resource"]["Fn::Sub"]
    assert arn == (
        "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}"
        ":endpoint/${SageMakerEndpointName}"
    )


def _statements(role: dict) -> list[dict]:
    policies = role["Properties"]["Policies"]
    return [s for policy in policies for s in policy["PolicyDocument"]["Statement"]]


def _listed(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _sub(value: Any) -> str:
    if isinstance(value, dict) and "Fn::Sub" in value:
        return value["Fn::Sub"]
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    return value


def test_firehose_may_only_write_its_prefixes_of_the_landing_bucket(template: dict) -> None:
    role = template["Resources"]["FirehoseDeliveryRole"]
    trust = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "firehose.amazonaws.com"}]
    allowed_objects = {
        "${LandingBucket.Arn}/${LandingPrefix}" + prefix + "*"
        for prefix in ("events/", "rejected/", "errors/")
    }
    for statement in _statements(role):
        assert statement["Effect"] == "Allow"
        actions = set(_listed(statement["Action"]))
        targets = {_sub(r) for r in _listed(statement["Resource"])}
        assert not any("*" in action for action in actions), actions
        if actions & {"s3:PutObject", "s3:AbortMultipartUpload"}:
            assert actions == {"s3:PutObject", "s3:AbortMultipartUpload"}
            assert targets == allowed_objects
        elif any(action.startswith("s3:") for action in actions):
            # Bucket-level actions only, on the bucket itself: no object is read or listed.
            assert actions <= {"s3:GetBucketLocation", "s3:ListBucketMultipartUploads"}
            assert targets == {"${LandingBucket.Arn}"}
        else:
            assert actions == {"logs:PutLogEvents"}


def test_the_delivery_streams_land_files_where_raw_events_reads_them(template: dict) -> None:
    streams = resources(template, "AWS::KinesisFirehose::DeliveryStream")
    expected = {
        "EventsDeliveryStream": FIREHOSE_EVENTS_PREFIX,
        "RejectedDeliveryStream": REJECTED_EVENTS_PREFIX,
    }
    assert set(streams) == set(expected)
    for name, prefix in expected.items():
        properties = streams[name]["Properties"]
        assert properties["DeliveryStreamType"] == "DirectPut"
        s3 = properties["ExtendedS3DestinationConfiguration"]
        assert s3["BucketARN"] == {"Fn::GetAtt": ["LandingBucket", "Arn"]}
        assert s3["RoleARN"] == {"Fn::GetAtt": ["FirehoseDeliveryRole", "Arn"]}
        assert s3["Prefix"] == {"Fn::Sub": "${LandingPrefix}" + prefix}
        assert s3["ErrorOutputPrefix"] == {"Fn::Sub": "${LandingPrefix}" + FIREHOSE_ERRORS_PREFIX}
        assert s3["CompressionFormat"] == "GZIP"
        assert s3["FileExtension"] == FIREHOSE_FILE_EXTENSION
    # Settings normalise RECS_LANDING_PREFIX to "" or "…/": the parameter accepts only those.
    pattern = template["Parameters"]["LandingPrefix"]["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "shop/eu/")
    assert not re.fullmatch(pattern, "shop") and not re.fullmatch(pattern, "/shop/")


def test_no_role_is_granted_everything(template: dict) -> None:
    roles = resources(template, "AWS::IAM::Role")
    assert {"FirehoseDeliveryRole", "SageMakerExecutionRole", "DagsterPodRole"} <= set(roles)
    for name, role in roles.items():
        for statement in _statements(role):
            if statement["Effect"] != "Allow":
                continue
            for action in _listed(statement["Action"]):
                assert action != "*" and not action.endswith(":*"), (name, action)
            wildcard = [r for r in _listed(statement["Resource"]) if r == "*"]
            if wildcard:  # only actions IAM cannot scope to a resource
                assert set(_listed(statement["Action"])) <= {
                    "ecr:GetAuthorizationToken",
                    "cloudwatch:PutMetricData",
                }, (name, statement)
    passed = [s for s in _statements(roles["DagsterPodRole"]) if s["Action"] == "iam:PassRole"]
    assert [s["Resource"] for s in passed] == [{"Fn::GetAtt": ["SageMakerExecutionRole", "Arn"]}]


def _requirement_names() -> set[str]:
    return {
        canonicalize_name(Requirement(line).name)
        for line in (LAMBDA_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }


def _installed_closure(names: set[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions of `names` and of everything they require (no extras)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # the runtime interface client: in the image, not in this virtualenv
        found[name] = distribution
        for text in distribution.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return list(found.values())


def test_the_lambda_image_is_linted_and_holds_what_the_handlers_import(tmp_path: Path) -> None:
    """The handlers run with nothing but the standard library, the recs_platform source and
    the distributions of requirements.txt (with their dependencies): what the image holds."""
    assert_common_image_rules(LAMBDA_DIR / "Dockerfile")
    names = _requirement_names()
    assert {"orjson", "numpy", "boto3", "awslambdaric"} <= names
    image_path = tmp_path / "var-task"
    image_path.mkdir()
    (image_path / "recs_platform").symlink_to(REPO / "recs_platform")
    for distribution in _installed_closure(names):
        for top in {Path(str(f)).parts[0] for f in distribution.files or []}:
            source = Path(str(distribution.locate_file(top)))
            wanted = source.exists() and not top.endswith(".dist-info") and top != ".."
            if wanted and not (image_path / top).exists():
                (image_path / top).symlink_to(source)
    # Imports the handlers, what they import lazily (Snowplow parsing, botocore's errors) and
    # makes their boto3 clients (which sends nothing).
    probe = f"""
import sys
sys.path.insert(0, {str(image_path)!r})
import recs_platform.collection.lambda_handler as collect
import recs_platform.serving.recommend_lambda as recommend
import recs_platform.collection.snowplow
import botocore.exceptions
collect.firehose_client()
recommend.sagemaker_runtime_client()
recommend.sagemaker_control_client()
print("ok")
"""
    result = subprocess.run(
        # -S: no site-packages, -E: no PYTHON* variables; only the folder above is added.
        [sys.executable, "-S", "-E", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
