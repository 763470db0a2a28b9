"""Deploy packaged models to a SageMaker real-time endpoint (boto3 clients in).

A deployment serves a champion and, optionally, a challenger beside it, each as a production
variant named for its role (`champion`, `challenger`: `inference.Variant`) with a weight from
the challenger's share of traffic (champion 1 - share, challenger share). Per variant it uploads
`model.tar.gz` (the package's files at the archive root: SageMaker unpacks it into
/opt/ml/model, which the container serves with `recs-platform serve --model /opt/ml/model`,
told its variant by `RECS_SERVE_VARIANT` so its answers name it) and creates a model named for
the version; then an endpoint config with the variants, and it creates the endpoint or moves it
to the new config with a blue/green update, and waits until it serves that config. When the
endpoint already runs these models and only the share changed, the weights are changed in place
(`update_endpoint_weights_and_capacities`: no new instances). A deployment that fails is undone
where SageMaker allows it; the error says what happened, what state the endpoint is in and what
is left to do. `DeploymentState` names where a deployment stands and `TRANSITIONS` every move
it may make.

SageMaker routes a request without `TargetVariant` by the weights, at random per request; the
`/recommend` facade keeps a session on one variant by naming it (`TargetVariant`, from
`inference.variant_for_session` and the share `challenger_share` reads off the endpoint).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from recs_platform.serving.inference import (
    MODEL_INFO_FILE,
    ChallengerPackage,
    Variant,
)

ARCHIVE_NAME = "model.tar.gz"
VERSION_TAG = "recs:model-version"
CHALLENGER_VERSION_TAG = "recs:challenger-version"
VERSION_ENV = "RECS_MODEL_VERSION"
VARIANT_ENV = "RECS_SERVE_VARIANT"
"""The container's `recs-platform serve --variant` (cli.py): which variant its answers name."""
WEIGHT_TOLERANCE = 1e-6
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
    REWEIGHTING = "reweighting"  # same models, new share: the variants' weights are changing
    UNCHANGED = "unchanged"  # it already served these versions and share: nothing was done
    CREATED = "created"  # the new endpoint is InService on the new config
    UPDATED = "updated"  # the endpoint is InService on the new config
    REWEIGHTED = "reweighted"  # the endpoint is InService with the new weights
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
        {
            DeploymentState.UNCHANGED,
            DeploymentState.ABORTED,
            DeploymentState.STAGING,
            DeploymentState.REWEIGHTING,
        }
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
    DeploymentState.REWEIGHTING: frozenset(
        {
            DeploymentState.REWEIGHTED,
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
    """The state it ended in: "created", "updated", "reweighted" or "unchanged". A plain str, as
    it goes into Dagster metadata, whose serializer refuses enums it does not know."""
    seconds: float
    challenger_version: str | None = None
    challenger_model_name: str | None = None
    challenger_model_data_url: str | None = None
    challenger_share: float = 0.0


@dataclass(frozen=True)
class _VariantPlan:
    """One production variant a deployment wants: its role, version, package and weight."""

    variant: Variant
    version: str
    package_folder: Path
    weight: float


def _variant_plans(
    package_folder: Path, version: str, challenger: ChallengerPackage | None
) -> list[_VariantPlan]:
    if challenger is None:
        return [_VariantPlan(Variant.CHAMPION, version, package_folder, 1.0)]
    if challenger.version == version:
        raise ValueError(f"version {version} cannot be both the champion and the challenger")
    return [
        _VariantPlan(Variant.CHAMPION, version, package_folder, 1.0 - challenger.share),
        _VariantPlan(Variant.CHALLENGER, challenger.version, challenger.folder, challenger.share),
    ]


def challenger_share(endpoint_description: dict, endpoint_config: dict | None = None) -> float:
    """The share of traffic the endpoint's weights give the `challenger` variant (0 without one).

    From `describe_endpoint`'s variants' current weights, else the `describe_endpoint_config`
    answer's initial weights: what the `/recommend` facade needs to keep a session on one variant
    with `inference.variant_for_session` (cache it: the share changes only with a deployment)."""
    weights = _weights(endpoint_description, endpoint_config)
    total = sum(weights.values())
    return weights.get(Variant.CHALLENGER.value, 0.0) / total if total > 0 else 0.0


def _weights(endpoint_description: dict, endpoint_config: dict | None) -> dict[str, float]:
    initial = {
        variant["VariantName"]: float(variant.get("InitialVariantWeight", 1.0))
        for variant in (endpoint_config or {}).get("ProductionVariants", [])
    }
    current = {
        variant["VariantName"]: float(variant["CurrentWeight"])
        for variant in endpoint_description.get("ProductionVariants", [])
        if "CurrentWeight" in variant
    }
    return {**initial, **current}


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
    *,
    challenger: ChallengerPackage | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> SageMakerDeployment:
    """Serve the packaged model in `package_folder` as `version` on `target`'s endpoint, as the
    `champion` variant, and `challenger`'s package beside it as the `challenger` variant, the
    weights giving it its share of traffic.

    Creates the endpoint if it does not exist; does nothing if it already serves these versions
    (same image, archives and instances) with these weights; changes only the weights if it
    serves these versions with others; and otherwise updates it blue/green. Waits for the
    endpoint to be InService on the new config (or weights); raises `SageMakerDeployError`
    otherwise. `now` names the deployment; `sleep` and `clock` pace the wait.
    """
    started = clock()
    version = str(version)
    plans = _variant_plans(Path(package_folder), version, challenger)
    for plan in plans:
        _check_package_version(plan.package_folder, plan.version)
    run = _DeploymentRun(sagemaker, target, plans, sleep, clock)
    current, running = run.read_endpoint()
    if running is not None:
        config_name = current["EndpointConfigName"]
        if run.weights_match(current, running.config):
            run.move(DeploymentState.UNCHANGED)
        else:
            run.reweight(current, running.config)
        models = running.models
    else:
        run.stage(s3, _config_name(target.endpoint_name, plans, now()), now())
        if current is None:
            run.create()
        else:
            run.update(current["EndpointConfigName"])
        config_name, models = run.name, run.models
    challenger_plan = plans[1] if len(plans) == 2 else None
    return SageMakerDeployment(
        endpoint_name=target.endpoint_name,
        version=version,
        model_name=models[Variant.CHAMPION],
        endpoint_config_name=config_name,
        model_data_url=target.model_data_url(version),
        action=run.state.value,
        seconds=clock() - started,
        challenger_version=challenger_plan.version if challenger_plan else None,
        challenger_model_name=models.get(Variant.CHALLENGER),
        challenger_model_data_url=(
            target.model_data_url(challenger_plan.version) if challenger_plan else None
        ),
        challenger_share=challenger_plan.weight if challenger_plan else 0.0,
    )


def _config_name(endpoint_name: str, plans: list[_VariantPlan], when: dt.datetime) -> str:
    """The champion model's name for one variant; `<endpoint>-v<champion>-vs-v<challenger>-
    <stamp>` for two."""
    versions = "-vs-v".join(plan.version for plan in plans)
    return deployment_name(endpoint_name, versions, when)


def _check_package_version(package_folder: Path, version: str) -> None:
    _check_is_package(package_folder)
    packaged_version = str(json.loads((package_folder / MODEL_INFO_FILE).read_text())["version"])
    if packaged_version != version:
        raise ValueError(
            f"{package_folder} holds version {packaged_version}, not {version}: the endpoint "
            "would report a version other than the one SageMaker is told"
        )


@dataclass(frozen=True)
class _RunningConfig:
    """An endpoint config that runs exactly the models a deployment wants, and those models."""

    config: dict
    models: dict[Variant, str]


@dataclass
class _DeploymentRun:
    """One deployment's clients, target and variants, the names of the models and config it
    makes, and its state, which moves only along `TRANSITIONS`."""

    sagemaker: Any
    target: SageMakerTarget
    plans: list[_VariantPlan]
    sleep: Callable[[float], None]
    clock: Callable[[], float]
    state: DeploymentState = DeploymentState.STARTED
    name: str = ""
    """The new endpoint config's (the champion model's too, with one variant), once staging;
    the running config's when reweighting."""
    models: dict[Variant, str] = field(default_factory=dict)
    """The new models, by variant, once created."""
    running_config: dict = field(default_factory=dict)
    """When reweighting: the running endpoint config (its initial weights)."""

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
    def aborting(self, doing: str, then: str = "", **leftovers: Any) -> Iterator[None]:
        """When SageMaker (or S3) refuses a call made inside: delete `leftovers` (`config`,
        `models`) and end ABORTED, saying what could not be done and why, then `then` and what
        was deleted."""
        try:
            yield
        except (ClientError, S3UploadFailedError) as error:
            reason = _client_error(error) if isinstance(error, ClientError) else str(error)
            cleanup = _delete_leftovers(self.sagemaker, **leftovers)
            message = " ".join(filter(None, (f"could not {doing}: {reason}.", then, cleanup)))
            raise self.failure(DeploymentState.ABORTED, message) from error

    def read_endpoint(self) -> tuple[dict | None, _RunningConfig | None]:
        """The endpoint's description (None: there is none) and, when its config already runs
        these versions as these variants, that config and its models."""
        with self.aborting(f"read the state of endpoint {self.endpoint}", "Nothing was changed."):
            current = self.describe_endpoint()
            if current is None:
                return None, None
            self.check_updatable(current)
            return current, _models_already_serving(
                self.sagemaker, current["EndpointConfigName"], self.target, self.plans
            )

    def weights_match(self, description: dict, config: dict) -> bool:
        """Whether the endpoint's variants carry the weights the deployment wants (the share;
        one variant takes all traffic whatever its weight)."""
        if len(self.plans) == 1:
            return True
        wanted = {plan.variant.value: plan.weight for plan in self.plans}
        total = sum(wanted.values())
        return (
            abs(challenger_share(description, config) - wanted[Variant.CHALLENGER] / total)
            <= WEIGHT_TOLERANCE
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

    def stage(self, s3: Any, config_name: str, when: dt.datetime) -> None:
        """Upload each variant's archive, create its model (named for its version and `when`),
        then the endpoint config called `config_name` with the variants."""
        self.move(DeploymentState.STAGING)
        self.name = config_name
        target = self.target
        for plan in self.plans:
            key = target.archive_key(plan.version)
            with tempfile.TemporaryDirectory(prefix="recs-sagemaker-") as scratch:
                archive = model_archive(plan.package_folder, Path(scratch) / ARCHIVE_NAME)
                with self.aborting(
                    f"upload the model archive to s3://{target.bucket}/{key}",
                    "Nothing was changed in SageMaker; check the bucket and the credentials' "
                    "s3:PutObject permission.",
                ):
                    s3.upload_file(str(archive), target.bucket, key)
        unchanged = "Nothing was changed on the endpoint."
        for plan in self.plans:
            model_name = deployment_name(self.endpoint, plan.version, when)
            with self.aborting(
                f"create model {model_name} for endpoint {self.endpoint}",
                unchanged,
                models=tuple(self.models.values()),
            ):
                self.sagemaker.create_model(
                    ModelName=model_name,
                    PrimaryContainer={
                        "Image": target.image_uri,
                        "ModelDataUrl": target.model_data_url(plan.version),
                        "Environment": _container_environment(plan),
                    },
                    ExecutionRoleArn=target.role_arn,
                    Tags=[{"Key": VERSION_TAG, "Value": plan.version}],
                )
            self.models[plan.variant] = model_name
        tags = [{"Key": VERSION_TAG, "Value": self.plans[0].version}]
        if len(self.plans) == 2:
            tags.append({"Key": CHALLENGER_VERSION_TAG, "Value": self.plans[1].version})
        with self.aborting(
            f"create endpoint config {config_name} for endpoint {self.endpoint}",
            unchanged,
            models=tuple(self.models.values()),
        ):
            self.sagemaker.create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[
                    {
                        "VariantName": plan.variant.value,
                        "ModelName": self.models[plan.variant],
                        "InstanceType": target.instance_type,
                        "InitialInstanceCount": target.instance_count,
                        "InitialVariantWeight": plan.weight,
                    }
                    for plan in self.plans
                ],
                Tags=tags,
            )

    def reweight(self, description: dict, config: dict) -> None:
        """Give the running variants (of `config`) the wanted weights in place; wait until they
        carry them."""
        endpoint = self.endpoint
        self.name = description["EndpointConfigName"]
        self.running_config = config
        weights = ", ".join(f"{plan.variant} {plan.weight:g}" for plan in self.plans)
        with self.aborting(
            f"change the weights of endpoint {endpoint} to {weights}",
            "It still serves the same models with the weights it had.",
        ):
            self.sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=endpoint,
                DesiredWeightsAndCapacities=[
                    {"VariantName": plan.variant.value, "DesiredWeight": plan.weight}
                    for plan in self.plans
                ],
            )
        self.move(DeploymentState.REWEIGHTING)
        ended, described = self.wait()
        if ended is DeploymentState.REWEIGHTED:
            self.move(ended)
            return
        if ended is DeploymentState.GONE:
            happened = f"endpoint {endpoint} was deleted while its weights were changing"
        elif ended is DeploymentState.TIMED_OUT:
            happened = (
                f"endpoint {endpoint} did not carry the weights {weights} within "
                f"{self.target.timeout_s:.0f} s (it is {described['EndpointStatus']})"
            )
        else:
            happened = (
                f"endpoint {endpoint} is {described['EndpointStatus']} without the weights "
                f"{weights}{_failure_reason(described)}"
            )
        raise self.failure(
            ended,
            f"{happened}. Its models were not changed. See `aws sagemaker describe-endpoint "
            f"--endpoint-name {endpoint}` and deploy again.",
        )

    def create(self) -> None:
        """Create the endpoint on the new config; when it does not come up, delete it."""
        endpoint, name = self.endpoint, self.name
        models = tuple(self.models.values())
        with self.aborting(f"create endpoint {endpoint}", config=name, models=models):
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
            models=models,
        )
        raise self.failure(
            ended,
            f"{happened}. Rolled back: the new endpoint is not kept, so nothing serves under "
            f"{endpoint}. {cleanup} Check the container's logs in CloudWatch "
            f"(/aws/sagemaker/Endpoints/{endpoint}), fix the cause and deploy again.",
        )

    def update(self, previous_config: str) -> None:
        """Move the endpoint blue/green to the new config; when it ends Failed, move it back."""
        endpoint, name, models = self.endpoint, self.name, tuple(self.models.values())
        with self.aborting(
            f"update endpoint {endpoint} to config {name}",
            f"It still serves config {previous_config}.",
            config=name,
            models=models,
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
            cleanup = _delete_leftovers(self.sagemaker, config=name, models=models)
            message = (
                f"SageMaker rolled endpoint {endpoint} back: it is InService on the previous "
                f"config {description['EndpointConfigName']}, not on {name}"
                f"{_failure_reason(description)}. The previous model keeps serving. {cleanup} "
                f"Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
                f"{endpoint}), fix the cause and deploy again."
            )
        elif ended is DeploymentState.GONE:
            cleanup = _delete_leftovers(self.sagemaker, config=name, models=models)
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
                f"{previous_config}, delete {_named('model', models)} and endpoint config "
                f"{name}."
            )
        raise self.failure(ended, message)

    def roll_back(self, previous_config: str, description: dict) -> NoReturn:
        """After an update that left the endpoint Failed: move it back to `previous_config`."""
        endpoint, name, models = self.endpoint, self.name, tuple(self.models.values())
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
                f"{_client_error(error)}. {_named('Model', models)} and endpoint config {name} "
                "are kept, as the endpoint still refers to them. Roll back by hand: `aws "
                f"sagemaker update-endpoint --endpoint-name {endpoint} --endpoint-config-name "
                f"{previous_config}`.",
            ) from error
        cleanup = _delete_leftovers(self.sagemaker, config=name, models=models)
        raise self.failure(
            DeploymentState.ROLLING_BACK,
            f"{happened}. Rolling back to the previous config {previous_config} has started "
            f"(watch it with `aws sagemaker describe-endpoint --endpoint-name {endpoint}`). "
            f"{cleanup} Check the new container's logs in CloudWatch (/aws/sagemaker/Endpoints/"
            f"{endpoint}), fix the cause and deploy again.",
        )

    def wait(self) -> tuple[DeploymentState, dict | None]:
        """Poll until the endpoint is InService on the new config (when reweighting: with the
        new weights), or cannot be any more.

        Returns the state the last description puts the deployment in (CREATED, UPDATED or
        REWEIGHTED, ROLLED_BACK, FAILED, GONE or TIMED_OUT) and that description. InService
        otherwise is SageMaker's own rollback (for a new endpoint, or weights: FAILED) only
        once the change was seen under way or SageMaker gave a reason, not on a first, stale
        answer.
        """
        served = {
            DeploymentState.CREATING: DeploymentState.CREATED,
            DeploymentState.UPDATING: DeploymentState.UPDATED,
            DeploymentState.REWEIGHTING: DeploymentState.REWEIGHTED,
        }[self.state]
        rolled_back = (
            DeploymentState.ROLLED_BACK
            if self.state is DeploymentState.UPDATING
            else DeploymentState.FAILED
        )
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
            if (
                status == "InService"
                and description.get("EndpointConfigName") == self.name
                and (
                    served is not DeploymentState.REWEIGHTED
                    or self.weights_match(description, self.running_config)
                )
            ):
                return served, description
            if status == "Failed":
                return DeploymentState.FAILED, description
            if status == "InService" and (seen_in_progress or description.get("FailureReason")):
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


def _container_environment(plan: _VariantPlan) -> dict[str, str]:
    return {VERSION_ENV: plan.version, VARIANT_ENV: plan.variant.value}


def _models_already_serving(
    sagemaker: Any, config_name: str, target: SageMakerTarget, plans: list[_VariantPlan]
) -> _RunningConfig | None:
    """`config_name` and its models when that config already runs exactly the models this
    deployment would (the same variants, instances, images, archives, versions), whatever its
    weights; None otherwise, also when the config or a model was deleted under the running
    endpoint (then: deploy anew)."""
    config = _describe(
        sagemaker.describe_endpoint_config,
        "endpoint configuration",
        EndpointConfigName=config_name,
    )
    variants = {
        variant["VariantName"]: variant for variant in (config or {}).get("ProductionVariants", [])
    }
    if set(variants) != {plan.variant.value for plan in plans}:
        return None
    models = {}
    for plan in plans:
        variant = variants[plan.variant.value]
        if (
            variant.get("InstanceType") != target.instance_type
            or variant.get("InitialInstanceCount") != target.instance_count
        ):
            return None
        model = _describe(sagemaker.describe_model, "model", ModelName=variant["ModelName"])
        container = (model or {}).get("PrimaryContainer", {})
        if (
            container.get("Image") != target.image_uri
            or container.get("ModelDataUrl") != target.model_data_url(plan.version)
            or container.get("Environment") != _container_environment(plan)
        ):
            return None
        models[plan.variant] = variant["ModelName"]
    return _RunningConfig(config, models)


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
    sagemaker: Any,
    endpoint: str | None = None,
    config: str | None = None,
    models: tuple[str, ...] = (),
) -> str:
    """Delete what a failed deployment created; a sentence saying what was deleted and what
    could not be (with the command that deletes it)."""
    deleted, left = [], []
    for kind, name, delete, parameter in (
        ("endpoint", endpoint, sagemaker.delete_endpoint, "EndpointName"),
        ("endpoint-config", config, sagemaker.delete_endpoint_config, "EndpointConfigName"),
        *(("model", model, sagemaker.delete_model, "ModelName") for model in models),
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


def _named(kind: str, names: tuple[str, ...]) -> str:
    """`model a` or `models a and b`."""
    return f"{kind}{'s' if len(names) > 1 else ''} {' and '.join(names)}"


def _failure_reason(description: dict) -> str:
    reason = description.get("FailureReason")
    return f" (SageMaker: {reason})" if reason else ""


def _client_error(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message', '')}".rstrip(": ")
