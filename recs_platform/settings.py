"""Platform settings, read from the environment when asked for (never at import time)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENTS = ("local", "prod")
# How a run's steps execute (RECS_EXECUTOR); unset: in the run's process locally, Dagster's
# default (a subprocess per step) in production. See recs_platform/execution.py.
EXECUTORS = ("k8s",)


class SettingsError(ValueError):
    """A setting in the environment has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    env: str
    data_dir: Path
    partitions_start: dt.date
    landing_prefix: str = ""
    cors_origins: tuple[str, ...] = ()
    endpoint_port: int = 8080
    """Port of the local endpoint process on 127.0.0.1 (RECS_ENDPOINT_PORT)."""
    dagster_url: str | None = None
    """The Dagster UI's address, for links in alerts (RECS_DAGSTER_URL)."""
    executor: str | None = None
    """`k8s`: every step in its own Kubernetes pod (RECS_EXECUTOR); None: the default."""
    challenger_share: float = 0.0
    """The share of sessions (0 to 1) the endpoint's challenger answers, when the registry has
    one (RECS_CHALLENGER_SHARE; 0: deployed beside the champion, reached only when a request
    names it). A session always sees the same variant (serving/inference.py)."""

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def endpoint_dir(self) -> Path:
        return self.data_dir / "endpoint"

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.endpoint_port}"

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = environ.get("RECS_ENV", "local").strip() or "local"
        if env not in ENVIRONMENTS:
            raise SettingsError(f"RECS_ENV={env!r} is not one of {', '.join(ENVIRONMENTS)}")
        start_text = environ.get("RECS_PARTITIONS_START", "2026-11-01")
        try:
            partitions_start = dt.date.fromisoformat(start_text)
        except ValueError as error:
            raise SettingsError(
                f"RECS_PARTITIONS_START={start_text!r} is not a date like 2026-11-01"
            ) from error
        data_dir = Path(environ.get("RECS_DATA_DIR", "data")).expanduser()
        landing_prefix = environ.get("RECS_LANDING_PREFIX", "")
        if landing_prefix and not landing_prefix.endswith("/"):
            landing_prefix += "/"
        cors_origins = tuple(
            origin.strip()
            for origin in environ.get("RECS_CORS_ORIGINS", "").split(",")
            if origin.strip()
        )
        port_text = environ.get("RECS_ENDPOINT_PORT", "8080").strip()
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SettingsError(f"RECS_ENDPOINT_PORT={port_text!r} is not a port number")
        default_ui = "http://127.0.0.1:3000" if env == "local" else ""
        executor = environ.get("RECS_EXECUTOR", "").strip() or None
        if executor is not None and executor not in EXECUTORS:
            raise SettingsError(
                f"RECS_EXECUTOR={executor!r} is not one of {', '.join(EXECUTORS)} (or unset)"
            )
        share_text = environ.get("RECS_CHALLENGER_SHARE", "0").strip() or "0"
        try:
            challenger_share = float(share_text)
        except ValueError:
            challenger_share = float("nan")
        if not 0.0 <= challenger_share <= 1.0:
            raise SettingsError(
                f"RECS_CHALLENGER_SHARE={share_text!r} is not a share of sessions between 0 and 1 "
                "(0.1: a tenth of sessions see the challenger)"
            )
        return cls(
            env=env,
            executor=executor,
            challenger_share=challenger_share,
            dagster_url=environ.get("RECS_DAGSTER_URL", default_ui).strip() or None,
            endpoint_port=int(port_text),
            cors_origins=cors_origins,
            data_dir=data_dir.absolute(),
            partitions_start=partitions_start,
            landing_prefix=landing_prefix,
        )
