"""Deploy a packaged model to a SageMaker real-time endpoint, and invoke one (boto3 clients in).

A deployment uploads `model.tar.gz` (the package's files at the archive root: SageMaker unpacks
it into /opt/ml/model, which the container serves with `recs-platform serve --model
/opt/ml/model`), creates a model and an endpoint config named for the version, then creates the
endpoint or moves it to the new config with a blue/green update, and waits until it serves that
config. A deployment that fails is undone where SageMaker allows it; the error says what
happened, what state the endpoint is in and what is left to do. `DeploymentState` names where a
deployment stands and `TRANSITIONS` every move it may make.

After an update the previous model and config are kept, so rolling back by hand is one call:
`aws sagemaker update-endpoint --endpoint-name <endpoint> --endpoint-config-name <previous>`.

MLflow's SageMaker client (`mlflow.sagemaker`) does not do this job: it uploads an MLflow model
directory for MLflow's own serving image, not this package for the `recs-platform serve` image,
and it updates without a blue/green policy, leaves a Failed update as it is, and deletes the
previous model once an update succeeds, the model a rollback by hand needs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from recs_platform.serving.inference import MODEL_INFO_FILE

ARCHIVE_NAME = "model.tar.gz"
VARIANT_NAME = "AllTraffic"
VERSION_TAG = "recs:model-version"
VERSION_ENV = "RECS_MODEL_VERSION"
# SageMaker's rule for endpoint, config and model names.
NAME_MAX_CHARS = 63
_NAME_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_STAMP_FORMAT = "%Y%m%d%H%M%S"


class DeploymentState(enum.StrEnum):
    """Where a deployment stands. It starts STARTED and ends in a state without exits in
    `TRANSITIONS`: CREATED, UPDATED or UNCHANGED when the endpoint serves the version, any
    other when it raised `SageMakerDeployError` (whose `state` that is)."""

    STARTED = "started"  # reading the endpoint and what its config runs
    STAGING = "staging"  # uploading the archive, creating the model and the endpoint config
    CREATING = "creating"  # the endpoint is being created on the new config
    UPDATING = "updating"  # the endpoint is moving blue/green to the new config
    UNCHANGED = "unchanged"  # it already served this version: nothing was done
    CREATED = "created"  # the new endpoint is InService on the new config
    UPDATED = "updated"  # the endpoint is InService on the new config
    ABORTED = "aborted"  # stopped before the endpoint changed; what it made is deleted
    ROLLED_BACK = "rolled-back"  # SageMaker rolled the update back: the previous config serves
    ROLLING_BACK = "rolling-back"  # the update ended Failed; the move back has started
    FAILED = "failed"  # Failed: a new endpoint is deleted; an update could not be moved back
    TIMED_OUT = "timed-out"  # a new endpoint is deleted; an update is left to SageMaker
    GONE = "gone"  # the endpoint was deleted while the deployment waited
    UNKNOWN = "unknown"  # the endpoint could not be read while the deployment waited


TRANSITIONS: dict[DeploymentState, frozenset[DeploymentState]] = {
    **dict.fromkeys(DeploymentState, frozenset()),  # the states a deployment ends in, and:
    DeploymentState.STARTED: frozenset(
        {DeploymentState.UNCHANGED, DeploymentState.ABORTED, DeploymentState.STAGING}
    ),
    DeploymentState.STAGING: frozenset(
        {DeploymentState.ABORTED, DeploymentState.CREATING, DeploymentState.UPDATING}
    ),
    DeploymentState.CREATING: frozenset(
        {
            DeploymentState.CREATED,
            DeploymentState.FAILED,
            DeploymentState.TIMED_OUT,
            DeploymentState.GONE,
            DeploymentState.UNKNOWN,
        }
    ),
    DeploymentState.UPDATING: frozenset(
        {
            DeploymentState.UPDATED,
            DeploymentState.ROLLED_BACK,
            DeploymentState.ROLLING_BACK,
            DeploymentState.FAILED,
            DeploymentState.TIMED_OUT,
            DeploymentState.GONE,
            DeploymentState.UNKNOWN,
        }
    ),
}
"""Every state and the states a deployment in it may move to."""


def transition(state: DeploymentState, to: DeploymentState) -> DeploymentState:
    """`to`, when a deployment in `state` may move there (`TRANSITIONS`); raises otherwise."""
    exits = TRANSITIONS[state]
    if to not in exits:
        allowed = ", ".join(sorted(exits)) or "nowhere: a deployment ends there"
        raise ValueError(f"a deployment cannot move from {state} to {to} (it moves to {allowed})")
    return to


class SageMakerDeployError(RuntimeError):
    """A deployment that did not end serving the new model; the message says why, what state
    the endpoint is in and what the operator can do, and `state` where the deployment ended."""

    def __init__(self, message: str, state: DeploymentState) -> None:
        super().__init__(message)
        self.state = state


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
    action: str
    """The state it ended in: "created", "updated" or "unchanged". A plain str, as it goes into
    Dagster metadata, whose serializer refuses enums it does not know."""
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
    _check_is_package(package_folder)
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


def _check_is_package(package_folder: Path) -> None:
    if not (package_folder / MODEL_INFO_FILE).is_file():
        raise FileNotFoundError(
            f"{package_folder} is not a packaged model (no {MODEL_INFO_FILE}): "
            "make one with recs_platform.serving.inference.package_model"
        )


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
    package_folder = Path(package_folder)
    _check_package_version(package_folder, version)
    run = _DeploymentRun(sagemaker, target, version, sleep, clock)
    current, serving_model = run.read_endpoint()
    if serving_model is not None:
        run.move(DeploymentState.UNCHANGED)
        model_name = serving_model
        config_name = current["EndpointConfigName"]
    else:
        run.stage(s3, package_folder, deployment_name(target.endpoint_name, version, now()))
        if current is None:
            run.create()
        else:
            run.update(current["EndpointConfigName"])
        model_name = config_name = run.name
    return SageMakerDeployment(
        endpoint_name=target.endpoint_name,
        version=version,
        model_name=model_name,
        endpoint_config_name=config_name,
        model_data_url=target.model_data_url(version),
        action=run.state.value,
        seconds=clock() - started,
    )


def _check_package_version(package_folder: Path, version: str) -> None:
    _check_is_package(package_folder)
    packaged_version = str(json.loads((package_folder / MODEL_INFO_FILE).read_text())["version"])
    if packaged_version != version:
        raise ValueError(
            f"{package_folder} holds version {packaged_version}, not {version}: the endpoint "
            "would report a version other than the one SageMaker is told"
        )


@dataclass
class _DeploymentRun:
    """One deployment's clients, target and version, the name of the model and config it makes,
    and its state, which moves only along `TRANSITIONS`."""

    sagemaker: Any
    target: SageMakerTarget
    version: str
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    state: DeploymentState = DeploymentState.STARTED
    name: str = ""
    """The new model's and endpoint config's, once staging."""

    @property
    def endpoint(self) -> str:
        return self.target.endpoint_name

    def move(self, to: DeploymentState) -> None:
        self.state = transition(self.state, to)

    def failure(self, to: DeploymentState, message: str) -> SageMakerDeployError:
        """Move to `to`, where the deployment ends, and return the error that says so."""
        self.move(to)
        return SageMakerDeployError(message, to)

    @contextlib.contextmanager
    def aborting(self, doing: str, then: str = "", **leftovers: str) -> Iterator[None]:
        """When SageMaker (or S3) refuses a call made inside: delete `leftovers` (`config`,
        `model`) and end ABORTED, saying what could not be done and why, then `then` and what
        was deleted."""
        try:
            yield
        except (ClientError, S3UploadFailedError) as error:
            reason = _client_error(error) if isinstance(error, ClientError) else str(error)
            cleanup = _delete_leftovers(self.sagemaker, **leftovers) if leftovers else ""
            message = " ".join(filter(None, (f"could not {doing}: {reason}.", then, cleanup)))
            raise self.failure(DeploymentState.ABORTED, message) from error

    def read_endpoint(self) -> tuple[dict | None, str | None]:
        """The endpoint's description (None: there is none) and, when its config already runs
        this version, that config's model."""
        with self.aborting(f"read the state of endpoint {self.endpoint}", "Nothing was changed."):
            current = self.describe_endpoint()
            if current is None:
                return None, None
            self.check_updatable(current)
            return current, _model_already_serving(
                self.sagemaker, current["EndpointConfigName"], self.target, self.version
            )

    def describe_endpoint(self) -> dict | None:
        return _describe(self.sagemaker.describe_endpoint, "endpoint", EndpointName=self.endpoint)

    def check_updatable(self, description: dict) -> None:
        status = description["EndpointStatus"]
        if status == "InService":
            return
        reason = description.get("FailureReason")
        because = f" ({reason})" if reason else ""
        if status == "Failed":
            advice = (
                f"a Failed endpoint cannot be updated: delete it (`aws sagemaker delete-endpoint "
                f"--endpoint-name {self.endpoint}`) and deploy again, which creates it anew"
            )
        else:
            advice = (
                "wait until it is InService (`aws sagemaker wait endpoint-in-service "
                f"--endpoint-name {self.endpoint}`) and deploy again"
            )
        raise self.failure(
            DeploymentState.ABORTED,
            f"endpoint {self.endpoint} is {status}{because}, on config "
            f"{description.get('EndpointConfigName')}; nothing was changed: {advice}",
        )

    def stage(self, s3: Any, package_folder: Path, name: str) -> None:
        """Upload the archive, then create the model and the endpoint config called `name`."""
        self.move(DeploymentState.STAGING)
        self.name = name
        target, version = self.target, self.version
        key = target.archive_key(version)
        with tempfile.TemporaryDirectory(prefix="recs-sagemaker-") as scratch:
            archive = model_archive(package_folder, Path(scratch) / ARCHIVE_NAME)
            with self.aborting(
                f"upload the model archive to s3://{target.bucket}/{key}",
                "Nothing was changed in SageMaker; check the bucket and the credentials' "
                "s3:PutObject permission.",
            ):
                s3.upload_file(str(archive), target.bucket, key)
        tags = [{"Key": VERSION_TAG, "Value": version}]
        unchanged = "Nothing was changed on the endpoint."
        with self.aborting(f"create model {name} for endpoint {self.endpoint}", unchanged):
            self.sagemaker.create_model(
                ModelName=name,
                PrimaryContainer={
                    "Image": target.image_uri,
                    "ModelDataUrl": target.model_data_url(version),
                    "Environment": {VERSION_ENV: version},
                },
                ExecutionRoleArn=target.role_arn,
                Tags=tags,
            )
        with self.aborting(
            f"create endpoint config {name} for endpoint {self.endpoint}", unchanged, model=name
        ):
            self.sagemaker.create_endpoint_config(
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

    def create(self) -> None:
        """Create the endpoint on the new config; when it does not come up, delete it."""
        endpoint, name = self.endpoint, self.name
        with self.aborting(f"create endpoint {endpoint}", config=name, model=name):
            self.sagemaker.create_endpoint(EndpointName=endpoint, EndpointConfigName=name)
        self.move(DeploymentState.CREATING)
        ended, description = self.wait()
        if ended is DeploymentState.CREATED:
            self.move(ended)
            return
        if ended is DeploymentState.TIMED_OUT:
            happened = (
                f"endpoint {endpoint} was not InService within {self.target.timeout_s:.0f} s "
                f"(still {description['EndpointStatus']})"
            )
        elif ended is DeploymentState.GONE:
            happened = f"endpoint {endpoint} was deleted while it was being created"
        else:
            on_config = description.get("EndpointConfigName")
            elsewhere = f" on config {on_config}" if on_config != name else ""
            happened = (
                f"endpoint {endpoint} is {description['EndpointStatus']}{elsewhere} instead of "
                f"InService on config {name}{_failure_reason(description)}"
            )
        cleanup = _delete_leftovers(
            self.sagemaker,
            endpoint=endpoint if ended is not DeploymentState.GONE else None,
            config=name,
            model=name,
        )
        raise self.failure(
            ended,
            f"{happened}. Rolled back: the new endpoint is not kept, so nothing serves under "
            f"{endpoint}. {cleanup} Check the container's logs in CloudWatch "
            f"(/aws/sagemaker/Endpoints/{endpoint}), fix the cause and deploy again.",
        )

    def update(self, previous_config: str) -> None:
        """Move the endpoint blue/green to the new config; when it ends Failed, move it back."""
        endpoint, name = self.endpoint, self.name
        with self.aborting(
            f"update endpoint {endpoint} to config {name}",
            f"It still serves config {previous_config}.",
            config=name,
            model=name,
        ):
            self.sagemaker.update_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=name,
                DeploymentConfig=_blue_green(self.target),
            )
        self.move(DeploymentState.UPDATING)
        ended, description = self.wait()
        if ended is DeploymentState.UPDATED:
            self.move(ended)
            return
        if ended is DeploymentState.FAILED:
            self.roll_back(previous_config, description)
        if ended is DeploymentState.ROLLED_BACK:
            cleanup = _delete_leftovers(self.sagemaker, config=name, model=name)
            message = (
                f"SageMaker rolled endpoint {endpoint} back: it is InService on the previous "
                f"config {description['EndpointConfigName']}, not on {name}"
                f"{_failure_reason(description)}. The previous model keeps serving. {cleanup} "
                f"Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
                f"{endpoint}), fix the cause and deploy again."
            )
        elif ended is DeploymentState.GONE:
            cleanup = _delete_leftovers(self.sagemaker, config=name, model=name)
            message = (
                f"endpoint {endpoint} was deleted while it was being updated to config {name}; "
                f"nothing serves under {endpoint}. {cleanup} Deploy again to create it."
            )
        else:
            message = (
                f"endpoint {endpoint} did not finish moving to config {name} within "
                f"{self.target.timeout_s:.0f} s: it is {description['EndpointStatus']} on "
                f"config {description.get('EndpointConfigName')}"
                f"{_failure_reason(description)}. An update in progress cannot be rolled back; "
                f"SageMaker finishes it or rolls it back itself. Watch it with `aws sagemaker "
                f"describe-endpoint --endpoint-name {endpoint}`; if it ends on "
                f"{previous_config}, delete model {name} and endpoint config {name}."
            )
        raise self.failure(ended, message)

    def roll_back(self, previous_config: str, description: dict) -> NoReturn:
        """After an update that left the endpoint Failed: move it back to `previous_config`."""
        endpoint, name = self.endpoint, self.name
        happened = (
            f"updating endpoint {endpoint} to config {name} failed"
            f"{_failure_reason(description)}; the endpoint is Failed"
        )
        try:
            self.sagemaker.update_endpoint(
                EndpointName=endpoint, EndpointConfigName=previous_config
            )
        except ClientError as error:
            raise self.failure(
                DeploymentState.FAILED,
                f"{happened}, and rolling it back to config {previous_config} was refused: "
                f"{_client_error(error)}. Model {name} and endpoint config {name} are kept, as "
                f"the endpoint still refers to them. Roll back by hand: `aws sagemaker "
                f"update-endpoint --endpoint-name {endpoint} --endpoint-config-name "
                f"{previous_config}`.",
            ) from error
        cleanup = _delete_leftovers(self.sagemaker, config=name, model=name)
        raise self.failure(
            DeploymentState.ROLLING_BACK,
            f"{happened}. Rolling back to the previous config {previous_config} has started "
            f"(watch it with `aws sagemaker describe-endpoint --endpoint-name {endpoint}`). "
            f"{cleanup} Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
            f"{endpoint}), fix the cause and deploy again.",
        )

    def wait(self) -> tuple[DeploymentState, dict | None]:
        """Poll until the endpoint is InService on the new config, or cannot be any more.

        Returns the state the last description puts the deployment in (CREATED or UPDATED,
        ROLLED_BACK, FAILED, GONE or TIMED_OUT) and that description. InService on another
        config is SageMaker's own rollback (for a new endpoint: FAILED) only once the change
        was seen under way or SageMaker gave a reason, not on a first, stale answer.
        """
        creating = self.state is DeploymentState.CREATING
        deadline = self.clock() + self.target.timeout_s
        seen_in_progress = False
        while True:
            try:
                description = self.describe_endpoint()
            except ClientError as error:
                raise self.failure(
                    DeploymentState.UNKNOWN,
                    f"could not read the state of endpoint {self.endpoint} while waiting for "
                    f"it to serve config {self.name}: {_client_error(error)}. The deployment "
                    "may still be under way: check `aws sagemaker describe-endpoint "
                    f"--endpoint-name {self.endpoint}`.",
                ) from error
            if description is None:
                return DeploymentState.GONE, None
            status = description["EndpointStatus"]
            if status == "InService" and description.get("EndpointConfigName") == self.name:
                served = DeploymentState.CREATED if creating else DeploymentState.UPDATED
                return served, description
            if status == "Failed":
                return DeploymentState.FAILED, description
            if status == "InService" and (seen_in_progress or description.get("FailureReason")):
                rolled_back = DeploymentState.FAILED if creating else DeploymentState.ROLLED_BACK
                return rolled_back, description
            seen_in_progress = seen_in_progress or status != "InService"
            remaining = deadline - self.clock()
            if remaining <= 0:
                return DeploymentState.TIMED_OUT, description
            self.sleep(min(self.target.poll_s, remaining))


def _describe(describe: Callable[..., dict], kind: str, **name: str) -> dict | None:
    """`describe(**name)`'s answer, or None when SageMaker has no such `kind`: it answers a
    lookup of something absent with a ValidationException."""
    try:
        return describe(**name)
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") == "ValidationException" and (
            f"Could not find {kind} " in details.get("Message", "")
        ):
            return None
        raise


def _model_already_serving(
    sagemaker: Any, config_name: str, target: SageMakerTarget, version: str
) -> str | None:
    """The model of `config_name` when that config already runs exactly what this deployment
    would (one variant, same instances, image, archive and version); None otherwise, also when
    the config or its model was deleted under the running endpoint (then: deploy anew)."""
    config = _describe(
        sagemaker.describe_endpoint_config,
        "endpoint configuration",
        EndpointConfigName=config_name,
    )
    variants = config["ProductionVariants"] if config else []
    if len(variants) != 1:
        return None
    (variant,) = variants
    if (
        variant.get("InstanceType") != target.instance_type
        or variant.get("InitialInstanceCount") != target.instance_count
    ):
        return None
    model = _describe(sagemaker.describe_model, "model", ModelName=variant["ModelName"])
    container = (model or {}).get("PrimaryContainer", {})
    if (
        container.get("Image") == target.image_uri
        and container.get("ModelDataUrl") == target.model_data_url(version)
        and container.get("Environment", {}).get(VERSION_ENV) == version
    ):
        return variant["ModelName"]
    return None


def _blue_green(target: SageMakerTarget) -> dict:
    """Blue/green with all traffic shifted at once, bounded by the deployment's own timeout."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": int(min(max(target.timeout_s, 600), 28800)),
        }
    }


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
