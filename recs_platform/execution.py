"""Where a run's steps execute, and what the `session_model` step asks of Kubernetes.

Locally every step runs in the run's own process (one DuckDB file, two cores). In production on
Kubernetes (`RECS_EXECUTOR=k8s`, which deployments/dagster/values.yaml sets) dagster-k8s's
`k8s_job_executor` runs each step as its own Kubernetes Job, and a step's op tag
`dagster-k8s/config` is deep-merged over the run launcher's `runK8sConfig` for that step's pod.
`session_model` carries such a tag (`TrainingPod`): a GPU limit, a node selector and tolerations,
so the training step, and only it, lands on a GPU node; the dataset query before it and the
endpoint deployment after it (minutes waiting for SageMaker) do not hold the GPU. The
K8sRunLauncher on its own (one pod per run, every step inside it) reads the run's tags only,
never a step's: without the executor the tag is inert, as it is locally.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg

from recs_platform.settings import Settings, SettingsError

K8S_CONFIG_TAG = "dagster-k8s/config"
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def executor_for(settings: Settings) -> dg.ExecutorDefinition | None:
    """The Definitions' executor: in-process locally, a Kubernetes Job per step with
    `RECS_EXECUTOR=k8s`, else None (Dagster's default, a subprocess per step)."""
    if settings.executor == "k8s":
        try:
            from dagster_k8s import k8s_job_executor
        except ImportError as error:
            raise SettingsError(
                "RECS_EXECUTOR=k8s needs dagster-k8s (the Dagster image installs "
                "dagster-k8s==0.29.27; elsewhere pip install it, or unset RECS_EXECUTOR)"
            ) from error
        return k8s_job_executor
    # Locally the steps of a run share its process: one DuckDB file, two cores, and a process
    # per step would cost seconds and hundreds of MB each for nothing.
    return dg.in_process_executor if settings.env == "local" else None


@dataclass(frozen=True)
class Toleration:
    """A Kubernetes toleration of the taint `key[=value]:effect` (any value when `value` is
    None: operator Exists)."""

    key: str
    value: str | None
    effect: str

    def as_k8s(self) -> dict[str, str]:
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class TrainingPod:
    """What the `session_model` step's pod asks for, from the environment (`from_env`):

    - `RECS_TRAINING_GPUS` (default 1): GPUs per training pod, as a limit; 0: no tag at all;
    - `RECS_TRAINING_GPU_RESOURCE` (`nvidia.com/gpu`): the device plugin's resource name;
    - `RECS_TRAINING_NODE_SELECTOR` (`nvidia.com/gpu.present=true`): `key=value,...`, empty
      for none;
    - `RECS_TRAINING_TOLERATIONS` (`nvidia.com/gpu:NoSchedule`): the taints tolerated,
      `key[=value]:Effect,...` (no value: any value), empty for none.

    `nvidia.com/gpu.present=true` is the label NVIDIA's GPU feature discovery (GPU Operator)
    puts on GPU nodes, and `nvidia.com/gpu:NoSchedule` the taint GPU node pools commonly carry
    (EKS Auto Mode, GKE) so that other pods stay off them.
    """

    gpus: int = 1
    gpu_resource: str = "nvidia.com/gpu"
    node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    tolerations: tuple[Toleration, ...] = (Toleration("nvidia.com/gpu", None, "NoSchedule"),)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrainingPod:
        environ = os.environ if environ is None else environ
        defaults = cls()
        gpus_text = environ.get("RECS_TRAINING_GPUS", str(defaults.gpus)).strip()
        if not gpus_text.isdigit():
            raise SettingsError(f"RECS_TRAINING_GPUS={gpus_text!r} is not a whole number >= 0")
        resource = environ.get("RECS_TRAINING_GPU_RESOURCE", defaults.gpu_resource).strip()
        if not resource:
            raise SettingsError("RECS_TRAINING_GPU_RESOURCE is empty: say nvidia.com/gpu")
        node_selector = defaults.node_selector
        if "RECS_TRAINING_NODE_SELECTOR" in environ:
            node_selector = _labels(environ["RECS_TRAINING_NODE_SELECTOR"])
        tolerations = defaults.tolerations
        if "RECS_TRAINING_TOLERATIONS" in environ:
            tolerations = _tolerations(environ["RECS_TRAINING_TOLERATIONS"])
        return cls(int(gpus_text), resource, node_selector, tolerations)

    def k8s_config(self) -> dict[str, Any]:
        """The `dagster-k8s/config` value: container limits, node selector, tolerations."""
        if self.gpus == 0:
            return {}
        pod_spec: dict[str, Any] = {}
        if self.node_selector:
            pod_spec["node_selector"] = dict(self.node_selector)
        if self.tolerations:
            pod_spec["tolerations"] = [toleration.as_k8s() for toleration in self.tolerations]
        config: dict[str, Any] = {
            # An extended resource is requested by its limit (the request defaults to it).
            "container_config": {"resources": {"limits": {self.gpu_resource: str(self.gpus)}}}
        }
        if pod_spec:
            config["pod_spec_config"] = pod_spec
        return config

    def op_tags(self) -> dict[str, Any]:
        """The step's op tags: `dagster-k8s/config`, none with `RECS_TRAINING_GPUS=0`."""
        config = self.k8s_config()
        return {K8S_CONFIG_TAG: config} if config else {}


def training_op_tags(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`session_model`'s op tags, read from the environment when the definitions load."""
    return TrainingPod.from_env(environ).op_tags()


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    labels = []
    for item in _items(text):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise SettingsError(
                f"RECS_TRAINING_NODE_SELECTOR: {item!r} is not key=value "
                "(say nvidia.com/gpu.present=true; empty for no node selector)"
            )
        labels.append((key.strip(), value.strip()))
    return tuple(labels)


def _tolerations(text: str) -> tuple[Toleration, ...]:
    tolerations = []
    for item in _items(text):
        taint, colon, effect = item.rpartition(":")
        key, equals, value = taint.partition("=")
        if not colon or not key.strip() or effect.strip() not in TAINT_EFFECTS:
            raise SettingsError(
                f"RECS_TRAINING_TOLERATIONS: {item!r} is not key[=value]:Effect with Effect one "
                f"of {', '.join(TAINT_EFFECTS)} (say nvidia.com/gpu:NoSchedule; empty for none)"
            )
        value = value.strip() if equals else None
        tolerations.append(Toleration(key.strip(), value, effect.strip()))
    return tuple(tolerations)


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
