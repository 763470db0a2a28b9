"""Deploy a packaged model to a SageMaker real-time endpoint, and invoke one (boto3 clients in).

A deployment uploads `model.tar.gz` (the package's files at the archive root: SageMaker unpacks
it into /opt/ml/model, which the container serves with `recs-platform serve --model
/opt/ml/model`), creates a model and an endpoint config named for the version, then creates the
endpoint or moves it to the new config with a blue/green update, and waits until it serves that
config. A deployment that fails is undone where SageMaker allows it; the error says what
happened, what state the endpoint is in and what is left to do.

After an update the previous model and config are kept, so rolling back by hand is one call:
`aws sagemaker update-endpoint --endpoint-name <endpoint> --endpoint-config-name <previous>`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from recs_platform.serving.inference import MODEL_INFO_FILE

ARCHIVE_NAME = "model.tar.gz"
VARIANT_NAME = "AllTraffic"
VERSION_TAG = "recs:model-version"
VERSION_ENV = "RECS_MODEL_VERSION"
JSON_CONTENT_TYPE = "application/json"
# SageMaker's rule for endpoint, config and model names.
NAME_MAX_CHARS = 63
_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_STAMP_FORMAT = "%Y%m%d%H%M%S"


class SageMakerDeployError(RuntimeError):
    """A deployment that did not end serving the new model; the message says why, what state
    the endpoint is in and what the operator can do."""


@dataclass(frozen=True)
class SageMakerTarget:
    endpoint_name: str
    image_uri: str
    """The inference container (deployments/sagemaker, in ECR)."""
    role_arn: str
    """The execution role SageMaker assumes to pull the image and the archive."""
    bucket: str
    prefix: str = ""
    """Key prefix, "" or ending in "/": archives go to <prefix>models/<endpoint>/v<version>/."""
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    timeout_s: float = 1800.0
    poll_s: float = 15.0

    def __post_init__(self) -> None:
        if len(self.endpoint_name) > NAME_MAX_CHARS or not _NAME_PATTERN.fullmatch(
            self.endpoint_name
        ):
            raise ValueError(
                f"endpoint name {self.endpoint_name!r}: SageMaker allows at most "
                f"{NAME_MAX_CHARS} letters, digits and inner hyphens"
            )
        if self.prefix and not self.prefix.endswith("/"):
            raise ValueError(f"prefix {self.prefix!r} must be empty or end in '/'")
        if self.instance_count < 1:
            raise ValueError(f"instance_count must be at least 1, got {self.instance_count}")
        if self.timeout_s <= 0 or self.poll_s <= 0:
            raise ValueError("timeout_s and poll_s must be positive")

    def archive_key(self, version: str) -> str:
        return f"{self.prefix}models/{self.endpoint_name}/v{version}/{ARCHIVE_NAME}"

    def model_data_url(self, version: str) -> str:
        return f"s3://{self.bucket}/{self.archive_key(version)}"


@dataclass(frozen=True)
class SageMakerDeployment:
    endpoint_name: str
    version: str
    model_name: str
    endpoint_config_name: str
    model_data_url: str
    action: str  # "created", "updated" or "unchanged"
    seconds: float


def deployment_name(endpoint_name: str, version: str, when: dt.datetime) -> str:
    """`<endpoint>-v<version>-<yyyymmddHHMMSS>`, the name of a deployment's model and config.

    Characters SageMaker refuses in the version become hyphens; the endpoint part is cut short
    when the whole would pass SageMaker's 63 characters.
    """
    version_part = re.sub(r"[^a-zA-Z0-9]+", "-", version).strip("-")
    if not version_part:
        raise ValueError(f"version {version!r} has no letter or digit to name a deployment by")
    suffix = f"-v{version_part}-{when.strftime(_STAMP_FORMAT)}"
    room = NAME_MAX_CHARS - len(suffix)
    endpoint_part = endpoint_name[:room].rstrip("-")
    if not endpoint_part:
        raise ValueError(f"version {version!r} is too long for a {NAME_MAX_CHARS}-character name")
    return endpoint_part + suffix


def model_archive(package_folder: Path, destination: Path) -> Path:
    """Write `destination`, a model.tar.gz of a packaged model folder (`package_model`) with the
    folder's files at the archive root; returns `destination`."""
    package_folder, destination = Path(package_folder), Path(destination)
    if not (package_folder / MODEL_INFO_FILE).is_file():
        raise FileNotFoundError(
            f"{package_folder} is not a packaged model (no {MODEL_INFO_FILE}): "
            "make one with recs_platform.serving.inference.package_model"
        )
    if destination.resolve().is_relative_to(package_folder.resolve()):
        raise ValueError(f"{destination} is inside {package_folder}: it would archive itself")
    destination.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(path for path in package_folder.rglob("*") if path.is_file())
    with tarfile.open(destination, "w:gz") as archive:
        for path in files:
            archive.add(
                path,
                arcname=path.relative_to(package_folder).as_posix(),
                recursive=False,
                filter=_without_owner,
            )
    return destination


def _without_owner(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def deploy_to_sagemaker(
    sagemaker: Any,
    s3: Any,
    package_folder: Path,
    version: str,
    target: SageMakerTarget,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> SageMakerDeployment:
    """Serve the packaged model in `package_folder` as `version` on `target`'s endpoint.

    Creates the endpoint if it does not exist, does nothing if it already serves this version
    (same image, archive and instances), and otherwise updates it blue/green. Waits for the
    endpoint to be InService on the new config; raises `SageMakerDeployError` otherwise.
    `now` names the deployment; `sleep` and `clock` pace the wait.
    """
    started = clock()
    version = str(version)
    _check_package_version(Path(package_folder), version)
    model_data_url = target.model_data_url(version)
    endpoint = target.endpoint_name
    try:
        current = _describe_endpoint(sagemaker, endpoint)
        if current is not None:
            _check_updatable(current)
            serving_model = _model_already_serving(
                sagemaker, current["EndpointConfigName"], target, version
            )
            if serving_model is not None:
                return SageMakerDeployment(
                    endpoint_name=endpoint,
                    version=version,
                    model_name=serving_model,
                    endpoint_config_name=current["EndpointConfigName"],
                    model_data_url=model_data_url,
                    action="unchanged",
                    seconds=clock() - started,
                )
    except ClientError as error:
        raise SageMakerDeployError(
            f"could not read the state of endpoint {endpoint}: {_client_error(error)}. "
            "Nothing was changed."
        ) from error

    name = deployment_name(endpoint, version, now())
    _upload_archive(s3, Path(package_folder), target, version)
    _create_model_and_config(sagemaker, name, target, version, model_data_url)
    if current is None:
        _create_endpoint(sagemaker, name, target, sleep, clock)
        action = "created"
    else:
        _update_endpoint(sagemaker, name, current["EndpointConfigName"], target, sleep, clock)
        action = "updated"
    return SageMakerDeployment(
        endpoint_name=endpoint,
        version=version,
        model_name=name,
        endpoint_config_name=name,
        model_data_url=model_data_url,
        action=action,
        seconds=clock() - started,
    )


def _check_package_version(package_folder: Path, version: str) -> None:
    info_path = package_folder / MODEL_INFO_FILE
    if not info_path.is_file():
        raise FileNotFoundError(
            f"{package_folder} is not a packaged model (no {MODEL_INFO_FILE}): "
            "make one with recs_platform.serving.inference.package_model"
        )
    packaged_version = str(json.loads(info_path.read_text())["version"])
    if packaged_version != version:
        raise ValueError(
            f"{package_folder} holds version {packaged_version}, not {version}: the endpoint "
            "would report a version other than the one SageMaker is told"
        )


def _describe_endpoint(sagemaker: Any, endpoint_name: str) -> dict | None:
    """`describe_endpoint`'s answer, or None when there is no such endpoint."""
    try:
        return sagemaker.describe_endpoint(EndpointName=endpoint_name)
    except ClientError as error:
        if _is_missing(error, "endpoint"):
            return None
        raise


def _is_missing(error: ClientError, kind: str) -> bool:
    """SageMaker answers a lookup of something absent with a ValidationException."""
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and (
        f"Could not find {kind} " in details.get("Message", "")
    )


def _check_updatable(description: dict) -> None:
    status = description["EndpointStatus"]
    endpoint = description["EndpointName"]
    if status == "InService":
        return
    reason = description.get("FailureReason")
    because = f" ({reason})" if reason else ""
    if status == "Failed":
        advice = (
            f"a Failed endpoint cannot be updated: delete it (`aws sagemaker delete-endpoint "
            f"--endpoint-name {endpoint}`) and deploy again, which creates it anew"
        )
    else:
        advice = (
            "wait until it is InService (`aws sagemaker wait endpoint-in-service "
            f"--endpoint-name {endpoint}`) and deploy again"
        )
    raise SageMakerDeployError(
        f"endpoint {endpoint} is {status}{because}, on config "
        f"{description.get('EndpointConfigName')}; nothing was changed: {advice}"
    )


def _model_already_serving(
    sagemaker: Any, config_name: str, target: SageMakerTarget, version: str
) -> str | None:
    """The model of `config_name` when that config already runs exactly what this deployment
    would (one variant, same instances, image, archive and version); None otherwise."""
    try:
        config = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
    except ClientError as error:
        if _is_missing(error, "endpoint configuration"):
            return None  # deleted under a running endpoint: deploy anew
        raise
    variants = config["ProductionVariants"]
    if len(variants) != 1:
        return None
    (variant,) = variants
    if (
        variant.get("InstanceType") != target.instance_type
        or variant.get("InitialInstanceCount") != target.instance_count
    ):
        return None
    try:
        model = sagemaker.describe_model(ModelName=variant["ModelName"])
    except ClientError as error:
        if _is_missing(error, "model"):
            return None
        raise
    container = model.get("PrimaryContainer", {})
    if (
        container.get("Image") == target.image_uri
        and container.get("ModelDataUrl") == target.model_data_url(version)
        and container.get("Environment", {}).get(VERSION_ENV) == version
    ):
        return variant["ModelName"]
    return None


def _upload_archive(s3: Any, package_folder: Path, target: SageMakerTarget, version: str) -> None:
    key = target.archive_key(version)
    with tempfile.TemporaryDirectory(prefix="recs-sagemaker-") as scratch:
        archive = model_archive(package_folder, Path(scratch) / ARCHIVE_NAME)
        try:
            s3.upload_file(str(archive), target.bucket, key)
        except (ClientError, S3UploadFailedError) as error:
            reason = _client_error(error) if isinstance(error, ClientError) else str(error)
            raise SageMakerDeployError(
                f"could not upload the model archive to s3://{target.bucket}/{key}: {reason}. "
                "Nothing was changed in SageMaker; check the bucket and the credentials' "
                "s3:PutObject permission."
            ) from error


def _create_model_and_config(
    sagemaker: Any, name: str, target: SageMakerTarget, version: str, model_data_url: str
) -> None:
    tags = [{"Key": VERSION_TAG, "Value": version}]
    try:
        sagemaker.create_model(
            ModelName=name,
            PrimaryContainer={
                "Image": target.image_uri,
                "ModelDataUrl": model_data_url,
                "Environment": {VERSION_ENV: version},
            },
            ExecutionRoleArn=target.role_arn,
            Tags=tags,
        )
    except ClientError as error:
        raise SageMakerDeployError(
            f"could not create model {name} for endpoint {target.endpoint_name}: "
            f"{_client_error(error)}. Nothing was changed on the endpoint."
        ) from error
    try:
        sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": VARIANT_NAME,
                    "ModelName": name,
                    "InstanceType": target.instance_type,
                    "InitialInstanceCount": target.instance_count,
                    "InitialVariantWeight": 1.0,
                }
            ],
            Tags=tags,
        )
    except ClientError as error:
        cleanup = _delete_leftovers(sagemaker, model=name)
        raise SageMakerDeployError(
            f"could not create endpoint config {name} for endpoint {target.endpoint_name}: "
            f"{_client_error(error)}. Nothing was changed on the endpoint. {cleanup}"
        ) from error


def _create_endpoint(
    sagemaker: Any, name: str, target: SageMakerTarget, sleep, clock: Callable[[], float]
) -> None:
    endpoint = target.endpoint_name
    try:
        sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)
    except ClientError as error:
        cleanup = _delete_leftovers(sagemaker, config=name, model=name)
        raise SageMakerDeployError(
            f"could not create endpoint {endpoint}: {_client_error(error)}. {cleanup}"
        ) from error
    outcome, description = _wait_for_config(sagemaker, target, name, sleep, clock)
    if outcome == "in-service":
        return
    if outcome == "timed-out":
        happened = (
            f"endpoint {endpoint} was not InService within {target.timeout_s:.0f} s "
            f"(still {description['EndpointStatus']})"
        )
    elif outcome == "gone":
        happened = f"endpoint {endpoint} was deleted while it was being created"
    else:
        on_config = description.get("EndpointConfigName")
        elsewhere = f" on config {on_config}" if on_config != name else ""
        happened = (
            f"endpoint {endpoint} is {description['EndpointStatus']}{elsewhere} instead of "
            f"InService on config {name}{_failure_reason(description)}"
        )
    cleanup = _delete_leftovers(
        sagemaker, endpoint=endpoint if outcome != "gone" else None, config=name, model=name
    )
    raise SageMakerDeployError(
        f"{happened}. Rolled back: the new endpoint is not kept, so nothing serves under "
        f"{endpoint}. {cleanup} Check the container's logs in CloudWatch "
        f"(/aws/sagemaker/Endpoints/{endpoint}), fix the cause and deploy again."
    )


def _update_endpoint(
    sagemaker: Any,
    name: str,
    previous_config: str,
    target: SageMakerTarget,
    sleep,
    clock: Callable[[], float],
) -> None:
    endpoint = target.endpoint_name
    try:
        sagemaker.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=name,
            DeploymentConfig=_blue_green(target),
        )
    except ClientError as error:
        cleanup = _delete_leftovers(sagemaker, config=name, model=name)
        raise SageMakerDeployError(
            f"could not update endpoint {endpoint} to config {name}: {_client_error(error)}. "
            f"It still serves config {previous_config}. {cleanup}"
        ) from error
    outcome, description = _wait_for_config(sagemaker, target, name, sleep, clock)
    if outcome == "in-service":
        return
    if outcome == "rolled-back":
        cleanup = _delete_leftovers(sagemaker, config=name, model=name)
        raise SageMakerDeployError(
            f"SageMaker rolled endpoint {endpoint} back: it is InService on the previous "
            f"config {description['EndpointConfigName']}, not on {name}"
            f"{_failure_reason(description)}. The previous model keeps serving. {cleanup} "
            f"Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
            f"{endpoint}), fix the cause and deploy again."
        )
    if outcome == "failed":
        _roll_back_failed_update(sagemaker, endpoint, name, previous_config, description)
    if outcome == "gone":
        cleanup = _delete_leftovers(sagemaker, config=name, model=name)
        raise SageMakerDeployError(
            f"endpoint {endpoint} was deleted while it was being updated to config {name}; "
            f"nothing serves under {endpoint}. {cleanup} Deploy again to create it."
        )
    raise SageMakerDeployError(
        f"endpoint {endpoint} did not finish moving to config {name} within "
        f"{target.timeout_s:.0f} s: it is {description['EndpointStatus']} on config "
        f"{description.get('EndpointConfigName')}{_failure_reason(description)}. An update in "
        f"progress cannot be rolled back; SageMaker finishes it or rolls it back itself. Watch "
        f"it with `aws sagemaker describe-endpoint --endpoint-name {endpoint}`; if it ends on "
        f"{previous_config}, delete model {name} and endpoint config {name}."
    )


def _roll_back_failed_update(
    sagemaker: Any, endpoint: str, name: str, previous_config: str, description: dict
) -> NoReturn:
    happened = (
        f"updating endpoint {endpoint} to config {name} failed"
        f"{_failure_reason(description)}; the endpoint is Failed"
    )
    try:
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=previous_config)
    except ClientError as error:
        raise SageMakerDeployError(
            f"{happened}, and rolling it back to config {previous_config} was refused: "
            f"{_client_error(error)}. Model {name} and endpoint config {name} are kept, as the "
            f"endpoint still refers to them. Roll back by hand: `aws sagemaker update-endpoint "
            f"--endpoint-name {endpoint} --endpoint-config-name {previous_config}`."
        ) from error
    cleanup = _delete_leftovers(sagemaker, config=name, model=name)
    raise SageMakerDeployError(
        f"{happened}. Rolling back to the previous config {previous_config} has started "
        f"(watch it with `aws sagemaker describe-endpoint --endpoint-name {endpoint}`). "
        f"{cleanup} Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
        f"{endpoint}), fix the cause and deploy again."
    )


def _blue_green(target: SageMakerTarget) -> dict:
    """Blue/green with all traffic shifted at once, bounded by the deployment's own timeout."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": int(min(max(target.timeout_s, 600), 28800)),
        }
    }


def _wait_for_config(
    sagemaker: Any, target: SageMakerTarget, config_name: str, sleep, clock: Callable[[], float]
) -> tuple[str, dict | None]:
    """Poll until the endpoint is InService on `config_name`, or cannot be any more.

    Returns the outcome ("in-service", "rolled-back", "failed", "gone" or "timed-out") and the
    last description. InService on another config counts as SageMaker's own rollback only once
    the update was seen under way or SageMaker gave a reason, not on a first, stale answer.
    """
    deadline = clock() + target.timeout_s
    seen_in_progress = False
    while True:
        try:
            description = _describe_endpoint(sagemaker, target.endpoint_name)
        except ClientError as error:
            raise SageMakerDeployError(
                f"could not read the state of endpoint {target.endpoint_name} while waiting "
                f"for it to serve config {config_name}: {_client_error(error)}. The deployment "
                "may still be under way: check `aws sagemaker describe-endpoint "
                f"--endpoint-name {target.endpoint_name}`."
            ) from error
        if description is None:
            return "gone", None
        status = description["EndpointStatus"]
        if status == "InService" and description.get("EndpointConfigName") == config_name:
            return "in-service", description
        if status == "Failed":
            return "failed", description
        if status == "InService" and (seen_in_progress or description.get("FailureReason")):
            return "rolled-back", description
        seen_in_progress = seen_in_progress or status != "InService"
        remaining = deadline - clock()
        if remaining <= 0:
            return "timed-out", description
        sleep(min(target.poll_s, remaining))


def _delete_leftovers(
    sagemaker: Any, endpoint: str | None = None, config: str | None = None, model: str | None = None
) -> str:
    """Delete what a failed deployment created; a sentence saying what was deleted and what
    could not be (with the command that deletes it)."""
    deleted, left = [], []
    for kind, name, delete, parameter in (
        ("endpoint", endpoint, sagemaker.delete_endpoint, "EndpointName"),
        ("endpoint-config", config, sagemaker.delete_endpoint_config, "EndpointConfigName"),
        ("model", model, sagemaker.delete_model, "ModelName"),
    ):
        if name is None:
            continue
        label = f"{kind.replace('-', ' ')} {name}"
        try:
            delete(**{parameter: name})
        except ClientError as error:
            left.append(
                f"{label} ({_client_error(error)}; delete it with `aws sagemaker delete-{kind} "
                f"--{kind}-name {name}`)"
            )
        else:
            deleted.append(label)
    sentences = []
    if deleted:
        sentences.append(f"Deleted {', '.join(deleted)}.")
    if left:
        sentences.append(f"Could not delete {'; '.join(left)}.")
    return " ".join(sentences)


def _failure_reason(description: dict) -> str:
    reason = description.get("FailureReason")
    return f" (SageMaker: {reason})" if reason else ""


def _client_error(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")


# --- invoking ----------------------------------------------------------------------------------


def sagemaker_runtime_client(
    timeout_s: float = 60.0, region_name: str | None = None, endpoint_url: str | None = None
) -> Any:
    """A `sagemaker-runtime` client whose calls give up after `timeout_s` (SageMaker's own
    limit for an invocation is 60 s); `endpoint_url` points it at a local endpoint."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=min(timeout_s, 10.0),
        read_timeout=timeout_s,
        retries={"max_attempts": 2, "mode": "standard"},
    )
    return boto3.client(
        "sagemaker-runtime", region_name=region_name, endpoint_url=endpoint_url, config=config
    )


def invoke_sagemaker(runtime: Any, endpoint_name: str, payload: dict) -> tuple[int, dict]:
    """POST `payload` (the inference contract's request) through `invoke_endpoint`.

    Returns (200, the response document), or, when the container refuses the request, its HTTP
    status and `{"error": <its reason>}`; SageMaker's own refusals (no such endpoint, throttled)
    likewise come back as their status. Network failures and timeouts (the client's config, see
    `sagemaker_runtime_client`) raise.
    """
    _keep_container_reasons(runtime)
    try:
        response = runtime.invoke_endpoint(
            EndpointName=endpoint_name,
            ContentType=JSON_CONTENT_TYPE,
            Accept=JSON_CONTENT_TYPE,
            Body=orjson.dumps(payload),
        )
    except runtime.exceptions.ModelError as error:
        # SageMaker reached the container, which answered non-2xx: its status and body.
        answer = error.response
        status = answer.get("OriginalStatusCode") or answer["ResponseMetadata"]["HTTPStatusCode"]
        document = {"error": _reason(answer.get("OriginalMessage") or answer["Error"]["Message"])}
        if answer.get("LogStreamArn"):
            document["log_stream"] = answer["LogStreamArn"]
        return int(status), document
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        return int(status), {"error": details.get("Message") or details.get("Code", "")}
    body = response["Body"].read()
    try:
        return 200, orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError(
            f"endpoint {endpoint_name} answered 200 with a body that is not JSON: {body[:200]!r}"
        ) from None


def _keep_container_reasons(runtime: Any) -> None:
    """botocore takes an error's reason from a `message` field; the container answers
    `{"error": ...}`, which a client pointed straight at it (a local endpoint) would drop."""
    runtime.meta.events.register(
        "after-call.sagemaker-runtime.InvokeEndpoint",
        _reason_from_error_body,
        unique_id="recs-platform-container-reason",
    )


def _reason_from_error_body(http_response: Any, parsed: dict, **_: Any) -> None:
    error = parsed.get("Error")
    if http_response.status_code >= 300 and error is not None and not error.get("Message"):
        error["Message"] = _reason(http_response.content.decode("utf-8", errors="replace"))


def _reason(text: str) -> str:
    """The `error` of a container's JSON answer, else the answer itself."""
    try:
        document = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("error"), str):
        return document["error"]
    return text
