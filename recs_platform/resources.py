"""Dagster resources: one interface per role, one implementation per environment.

The assets ask for `landing` (where raw event files arrive), `warehouse` (where they are
loaded) and `reports` (where rendered reports go). `resources_for(settings)` picks the
implementations when the definitions load: local folders and a DuckDB file by default, S3 and
Snowflake with `RECS_ENV=prod`.
"""

import datetime as dt
import gc
import os
import uuid
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import dagster as dg
import pandas as pd
from dagster_aws.s3 import S3Resource
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource
from dagster_snowflake import SnowflakeResource

from recs_platform.datasets.training import (
    DatasetStore,
    FolderStore,
    S3Store,
    load_training_dataset,
    save_training_dataset,
)
from recs_platform.events.landing import LandingFile, list_local_dates, list_local_partition
from recs_platform.notifications import Alert
from recs_platform.serving.inference import ChallengerPackage
from recs_platform.settings import Settings
from recs_platform.training import tracking
from recs_platform.transform.dbt_invocation import DBT_EXECUTABLE, DBT_PROJECT_DIR
from recs_platform.warehouse.schema import PartitionLoad


class LandingZone(dg.ConfigurableResource, ABC):
    """Immutable raw-event files, partitioned by arrival date."""

    @abstractmethod
    def list_partition(self, day: dt.date) -> list[LandingFile]:
        """The finalized files of one day."""

    @abstractmethod
    def list_dates(self) -> list[dt.date]:
        """Every day that has a partition."""

    @abstractmethod
    def open_file(self, landing_file: LandingFile) -> AbstractContextManager[IO[bytes]]:
        """A binary stream of one file's bytes."""

    def local_root(self) -> Path | None:
        """The folder holding the files, when they are on this machine."""
        return None


class LocalLandingZone(LandingZone):
    root: str

    def list_partition(self, day: dt.date) -> list[LandingFile]:
        return list_local_partition(Path(self.root), day)

    def list_dates(self) -> list[dt.date]:
        return list_local_dates(Path(self.root))

    def open_file(self, landing_file: LandingFile) -> AbstractContextManager[IO[bytes]]:
        return open(Path(self.root) / landing_file.key, "rb")

    def local_root(self) -> Path | None:
        return Path(self.root)


class S3LandingZone(LandingZone):
    """The landing zone on S3, as Kinesis Firehose writes it (`<prefix>events/date=.../`)."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str
    prefix: str = ""

    def list_partition(self, day: dt.date) -> list[LandingFile]:
        from recs_platform.events.s3_landing import list_s3_partition

        return list_s3_partition(self.s3.get_client(), self.bucket, self.prefix, day)

    def list_dates(self) -> list[dt.date]:
        from recs_platform.events.s3_landing import list_s3_dates

        return list_s3_dates(self.s3.get_client(), self.bucket, self.prefix)

    def open_file(self, landing_file: LandingFile) -> AbstractContextManager[IO[bytes]]:
        from recs_platform.events.s3_landing import open_s3_file

        return open_s3_file(self.s3.get_client(), self.bucket, self.prefix, landing_file)


class Warehouse(dg.ConfigurableResource, ABC):
    """The warehouse holding `raw.events` and everything dbt builds from it."""

    @abstractmethod
    def load_raw_events(self, day: dt.date, landing: LandingZone) -> PartitionLoad:
        """Replace one day of raw.events with that day's landing files."""

    @abstractmethod
    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        """Rows of a read-only query; `?` marks a parameter."""


class DuckDBWarehouse(Warehouse):
    duckdb: dg.ResourceDependency[DuckDBResource]

    def load_raw_events(self, day: dt.date, landing: LandingZone) -> PartitionLoad:
        from recs_platform.warehouse.duckdb_raw import load_raw_events_partition

        root = landing.local_root()
        if root is None:
            raise dg.Failure(
                "The DuckDB warehouse loads landing files from a local folder; "
                f"{type(landing).__name__} is not local. Use RECS_ENV=prod for S3 + Snowflake."
            )
        files = landing.list_partition(day)
        with self.duckdb.get_connection() as conn:
            return load_raw_events_partition(conn, root, day, files)

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        with self.duckdb.get_connection() as conn:
            return conn.execute(sql, parameters or []).fetchall()


class SnowflakeWarehouse(Warehouse):
    snowflake: dg.ResourceDependency[SnowflakeResource]

    def load_raw_events(self, day: dt.date, landing: LandingZone) -> PartitionLoad:
        from recs_platform.warehouse.snowflake_raw import load_raw_events_partition

        files = landing.list_partition(day)
        with self.snowflake.get_connection() as conn:
            return load_raw_events_partition(conn, day, files, landing.open_file)

    def query(self, sql: str, parameters: list[Any] | None = None) -> list[tuple]:
        # Queries are written with qmark placeholders (DuckDB's); the connector binds pyformat.
        with self.snowflake.get_connection() as conn:
            cursor = conn.cursor()
            cursor.execute(sql.replace("?", "%s"), parameters or None)
            return cursor.fetchall()


class MlflowTracking(dg.ConfigurableResource):
    """Where runs and registered models go: a tracking URI (and artifact root for new stores)."""

    tracking_uri: str
    artifact_location: str | None = None
    experiment: str = tracking.EXPERIMENT

    def activate(self) -> str:
        """Points mlflow at this store and experiment; returns the experiment id."""
        return tracking.use_experiment(self.tracking_uri, self.experiment, self.artifact_location)


def local_mlflow(settings: Settings) -> MlflowTracking:
    """The sqlite store and artifact folder under the data directory (what `mlflow ui` reads)."""
    tracking_uri, artifact_location = tracking.local_tracking(settings.data_dir)
    return MlflowTracking(tracking_uri=tracking_uri, artifact_location=artifact_location)


class ReportStore(dg.ConfigurableResource, ABC):
    """Where rendered reports go, one file per report name, the newest replacing the last."""

    @abstractmethod
    def write_report(
        self, name: str, content: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        """Store `content` (UTF-8) as the report `name`; returns where it is (path or URI)."""


def _report_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"report name {name!r} must be a plain file name")
    return name


class LocalReportStore(ReportStore):
    """Reports in a local folder (`$RECS_DATA_DIR/reports/`), each replaced atomically."""

    root: str

    def write_report(
        self, name: str, content: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        folder = Path(self.root)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / _report_name(name)
        temporary = folder / f".{name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as stream:
                stream.write(content)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return str(path.absolute())


class S3ReportStore(ReportStore):
    """Reports on S3 under `<prefix>reports/`, beside the landing zone's `<prefix>events/`."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str
    prefix: str = ""

    def key(self, name: str) -> str:
        root = self.prefix.strip("/")
        return f"{root}/reports/{_report_name(name)}" if root else f"reports/{_report_name(name)}"

    def write_report(
        self, name: str, content: str, content_type: str = "text/html; charset=utf-8"
    ) -> str:
        key = self.key(name)
        self.s3.get_client().put_object(
            Bucket=self.bucket, Key=key, Body=content.encode("utf-8"), ContentType=content_type
        )
        return f"s3://{self.bucket}/{key}"


class RecommendationEndpoint(dg.ConfigurableResource, ABC):
    """Where the champion (and a challenger beside it) serve: deploy packaged models, invoke
    what is deployed."""

    challenger_share: float = 0.0
    """The share of sessions (0 to 1) a deployed challenger answers (RECS_CHALLENGER_SHARE)."""

    @abstractmethod
    def deploy(
        self, package_folder: Path, version: str, challenger: ChallengerPackage | None = None
    ) -> dict[str, Any]:
        """Serve the package as the champion and, when given, the challenger with its share;
        returns metadata (where, which versions, what was done)."""

    @abstractmethod
    def invoke(self, payload: dict[str, Any], target_variant: str | None = None) -> tuple[int, Any]:
        """POST `payload` to the deployed models' /invocations, to `target_variant` when given
        (`champion`, `challenger`): (status, answer document)."""


class LocalRecommendationEndpoint(RecommendationEndpoint):
    """A `recs-platform serve` process on this machine following `endpoint_dir`."""

    endpoint_dir: str
    host: str = "127.0.0.1"
    port: int = 8080
    timeout_s: float = 120.0

    def _endpoint(self):
        from recs_platform.serving.local_endpoint import LocalEndpoint

        return LocalEndpoint(Path(self.endpoint_dir), self.host, self.port, self.timeout_s)

    def deploy(
        self, package_folder: Path, version: str, challenger: ChallengerPackage | None = None
    ) -> dict[str, Any]:
        from recs_platform.serving.local_endpoint import EndpointError

        try:
            deployment = self._endpoint().deploy(package_folder, version, challenger)
        except EndpointError as error:
            raise dg.Failure(str(error)) from error
        metadata = {
            "endpoint_url": dg.MetadataValue.url(deployment.url),
            "model_version": deployment.version,
            "action": deployment.action,
            "package": deployment.package,
            "deploy_seconds": round(deployment.seconds, 2),
        }
        if deployment.challenger_version is not None:
            metadata["challenger_version"] = deployment.challenger_version
            metadata["challenger_package"] = str(deployment.challenger_package)
            metadata["challenger_share"] = deployment.challenger_share
        return metadata

    def invoke(self, payload: dict[str, Any], target_variant: str | None = None) -> tuple[int, Any]:
        return self._endpoint().invoke(payload, target_variant=target_variant)


class SageMakerRecommendationEndpoint(RecommendationEndpoint):
    """A SageMaker real-time endpoint running the inference container (deployments/sagemaker).

    Blue/green: every deployment is a new model and endpoint configuration, and the endpoint is
    created or updated to it; a version that does not come up is rolled back.
    """

    s3: dg.ResourceDependency[S3Resource]
    bucket: str
    prefix: str = ""
    endpoint_name: str
    image_uri: str
    role_arn: str
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    timeout_s: float = 1800.0
    poll_s: float = 15.0
    region_name: str | None = None
    sagemaker_endpoint_url: str | None = None
    """Only to point the control-plane client elsewhere (tests: moto)."""
    runtime_endpoint_url: str | None = None
    """Only to point the runtime client elsewhere (tests: a local inference server)."""

    def deploy(
        self, package_folder: Path, version: str, challenger: ChallengerPackage | None = None
    ) -> dict[str, Any]:
        from recs_platform.serving.sagemaker import (
            SageMakerDeployError,
            SageMakerTarget,
            deploy_to_sagemaker,
        )

        target = SageMakerTarget(
            endpoint_name=self.endpoint_name,
            image_uri=self.image_uri,
            role_arn=self.role_arn,
            bucket=self.bucket,
            prefix=self.prefix,
            instance_type=self.instance_type,
            instance_count=self.instance_count,
            timeout_s=self.timeout_s,
            poll_s=self.poll_s,
        )
        import boto3

        sagemaker = boto3.client(
            "sagemaker", region_name=self.region_name, endpoint_url=self.sagemaker_endpoint_url
        )
        try:
            deployment = deploy_to_sagemaker(
                sagemaker,
                self.s3.get_client(),
                package_folder,
                version,
                target,
                challenger=challenger,
            )
        except SageMakerDeployError as error:
            raise dg.Failure(str(error)) from error
        metadata = {
            "endpoint_name": deployment.endpoint_name,
            "model_version": deployment.version,
            "action": deployment.action,
            "sagemaker_model": deployment.model_name,
            "endpoint_config": deployment.endpoint_config_name,
            "model_data_url": deployment.model_data_url,
            "deploy_seconds": round(deployment.seconds, 2),
        }
        if deployment.challenger_version is not None:
            metadata["challenger_version"] = deployment.challenger_version
            metadata["challenger_sagemaker_model"] = str(deployment.challenger_model_name)
            metadata["challenger_model_data_url"] = str(deployment.challenger_model_data_url)
            metadata["challenger_share"] = deployment.challenger_share
        return metadata

    def invoke(self, payload: dict[str, Any], target_variant: str | None = None) -> tuple[int, Any]:
        from recs_platform.serving.sagemaker_runtime import (
            invoke_sagemaker,
            sagemaker_runtime_client,
        )

        runtime = sagemaker_runtime_client(
            region_name=self.region_name, endpoint_url=self.runtime_endpoint_url
        )
        return invoke_sagemaker(runtime, self.endpoint_name, payload, target_variant)


class Notifier(dg.ConfigurableResource, ABC):
    """Where alerts about failed runs go."""

    @abstractmethod
    def notify(self, alert: Alert) -> str:
        """Send the alert; returns where it went."""


class LocalFileNotifier(Notifier):
    """A log line and one JSON line per alert in a file (`$RECS_DATA_DIR/alerts/alerts.jsonl`)."""

    path: str

    def notify(self, alert: Alert) -> str:
        from recs_platform.notifications import append_to_file

        append_to_file(Path(self.path), alert)
        return self.path


class WebhookNotifier(Notifier):
    """Slack-compatible incoming webhook (the URL is a secret: from the environment only)."""

    webhook_url: str
    timeout_s: float = 10.0

    def notify(self, alert: Alert) -> str:
        from recs_platform.notifications import post_to_webhook

        post_to_webhook(self.webhook_url, alert, self.timeout_s)
        return "webhook"


# --- the training dataset's files ----------------------------------------------------------


def _store_output(store: DatasetStore, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
    written = save_training_dataset(dataset, dataset.attrs["vocabulary"], store)
    context.add_output_metadata({"files": dg.MetadataValue.json(written)})


def _load_input(store: DatasetStore) -> pd.DataFrame:
    # Locally the step that wrote the dataset ran in this process a moment ago, and left its
    # frame in reference cycles that only a full collection frees: 4.0 of 4.8 GB for the
    # Coveo-sized month, which the training step would otherwise carry to its end.
    gc.collect()
    dataset, vocabulary = load_training_dataset(store)
    dataset.attrs["vocabulary"] = vocabulary
    return dataset


class TrainingDatasetIOManager(dg.ConfigurableIOManager):
    """One parquet file per split plus `vocabulary.json`, in a folder per asset."""

    base_dir: str

    def _folder(self, context) -> Path:
        return Path(self.base_dir) / "_".join(context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
        _store_output(FolderStore(self._folder(context)), context, dataset)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return _load_input(FolderStore(self._folder(context)))


class S3TrainingDatasetIOManager(dg.ConfigurableIOManager):
    """The same files on S3, under `<prefix>datasets/<asset key path>/` of the bucket (beside the
    landing zone's `<prefix>events/` and the reports' `<prefix>reports/`)."""

    s3: dg.ResourceDependency[S3Resource]
    bucket: str
    prefix: str = ""

    def key_prefix(self, asset_key: dg.AssetKey) -> str:
        root = self.prefix.strip("/")
        return "/".join([*([root] if root else []), "datasets", *asset_key.path]) + "/"

    def _store(self, context) -> S3Store:
        return S3Store(self.s3.get_client(), self.bucket, self.key_prefix(context.asset_key))

    def handle_output(self, context: dg.OutputContext, dataset: pd.DataFrame) -> None:
        _store_output(self._store(context), context, dataset)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return _load_input(self._store(context))


def resources_for(settings: Settings) -> dict[str, Any]:
    """The resource set of one environment. Nothing here connects to anything."""
    dbt = DbtCliResource(
        project_dir=str(DBT_PROJECT_DIR),
        profiles_dir=str(DBT_PROJECT_DIR),
        target=settings.env,
        dbt_executable=str(DBT_EXECUTABLE),
    )
    if settings.env == "local":
        duckdb = DuckDBResource(database=str(settings.warehouse_path))
        return {
            "dataset_io_manager": TrainingDatasetIOManager(
                base_dir=str(settings.data_dir / "datasets")
            ),
            "dbt": dbt,
            "mlflow_tracking": local_mlflow(settings),
            "landing": LocalLandingZone(root=str(settings.landing_dir)),
            "notifier": LocalFileNotifier(path=str(settings.data_dir / "alerts" / "alerts.jsonl")),
            "endpoint": LocalRecommendationEndpoint(
                endpoint_dir=str(settings.endpoint_dir),
                port=settings.endpoint_port,
                challenger_share=settings.challenger_share,
            ),
            "reports": LocalReportStore(root=str(settings.data_dir / "reports")),
            "warehouse": DuckDBWarehouse(duckdb=duckdb),
        }
    s3 = S3Resource(region_name=dg.EnvVar("AWS_REGION"))
    snowflake = SnowflakeResource(
        account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        user=dg.EnvVar("SNOWFLAKE_USER"),
        password=dg.EnvVar("SNOWFLAKE_PASSWORD"),
        database=dg.EnvVar("SNOWFLAKE_DATABASE"),
        warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
        role=dg.EnvVar("SNOWFLAKE_ROLE"),
    )
    return {
        "dataset_io_manager": S3TrainingDatasetIOManager(
            s3=s3, bucket=dg.EnvVar("RECS_LANDING_BUCKET"), prefix=settings.landing_prefix
        ),
        "dbt": dbt,
        # The tracking server's own artifact root applies (e.g. S3 on SageMaker managed MLflow).
        "mlflow_tracking": MlflowTracking(tracking_uri=dg.EnvVar("MLFLOW_TRACKING_URI")),
        "landing": S3LandingZone(
            s3=s3, bucket=dg.EnvVar("RECS_LANDING_BUCKET"), prefix=settings.landing_prefix
        ),
        "notifier": WebhookNotifier(webhook_url=dg.EnvVar("RECS_ALERT_WEBHOOK_URL")),
        "endpoint": SageMakerRecommendationEndpoint(
            s3=s3,
            bucket=dg.EnvVar("RECS_LANDING_BUCKET"),
            prefix=settings.landing_prefix,
            endpoint_name=dg.EnvVar("RECS_SAGEMAKER_ENDPOINT"),
            image_uri=dg.EnvVar("RECS_SAGEMAKER_IMAGE_URI"),
            role_arn=dg.EnvVar("RECS_SAGEMAKER_ROLE_ARN"),
            region_name=dg.EnvVar("AWS_REGION"),
            challenger_share=settings.challenger_share,
        ),
        "reports": S3ReportStore(
            s3=s3, bucket=dg.EnvVar("RECS_LANDING_BUCKET"), prefix=settings.landing_prefix
        ),
        "warehouse": SnowflakeWarehouse(snowflake=snowflake),
    }
