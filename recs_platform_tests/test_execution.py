"""Where steps execute: in-process locally, a Kubernetes Job per step in production, and the
`dagster-k8s/config` tag that puts `session_model`'s step on a GPU node."""

import datetime as dt
import json
import sys
import types
from pathlib import Path

import dagster as dg
import pytest
import yaml

from recs_platform.definitions import build_definitions
from recs_platform.execution import (
    K8S_CONFIG_TAG,
    Toleration,
    TrainingPod,
    executor_for,
    training_op_tags,
)
from recs_platform.settings import Settings, SettingsError

VALUES_YAML = Path(__file__).resolve().parents[1] / "deployments" / "dagster" / "values.yaml"
GPU_CONFIG = {
    "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}},
    "pod_spec_config": {
        "node_selector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    },
}


def settings(tmp_path, env="local", executor=None) -> Settings:
    return Settings(
        env=env, data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1), executor=executor
    )


def values_env() -> dict[str, str]:
    values = yaml.safe_load(VALUES_YAML.read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return {name: str(value) for name, value in deployment["env"].items()}


def test_by_default_the_training_step_asks_for_one_gpu_node():
    assert TrainingPod.from_env({}).k8s_config() == GPU_CONFIG
    assert training_op_tags({}) == {K8S_CONFIG_TAG: GPU_CONFIG}


def test_the_environment_sets_the_gpus_the_node_selector_and_the_tolerations():
    pod = TrainingPod.from_env(
        {
            "RECS_TRAINING_GPUS": "2",
            "RECS_TRAINING_GPU_RESOURCE": "amd.com/gpu",
            "RECS_TRAINING_NODE_SELECTOR": "eks.amazonaws.com/nodegroup=gpu, team=recs",
            "RECS_TRAINING_TOLERATIONS": "nvidia.com/gpu=present:NoSchedule,spot:NoExecute",
        }
    )
    assert pod.tolerations == (
        Toleration("nvidia.com/gpu", "present", "NoSchedule"),
        Toleration("spot", None, "NoExecute"),
    )
    assert pod.k8s_config() == {
        "container_config": {"resources": {"limits": {"amd.com/gpu": "2"}}},
        "pod_spec_config": {
            "node_selector": {"eks.amazonaws.com/nodegroup": "gpu", "team": "recs"},
            "tolerations": [
                {
                    "key": "nvidia.com/gpu",
                    "operator": "Equal",
                    "value": "present",
                    "effect": "NoSchedule",
                },
                {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
            ],
        },
    }


def test_empty_selector_and_tolerations_leave_the_gpu_limit_alone():
    pod = TrainingPod.from_env({"RECS_TRAINING_NODE_SELECTOR": "", "RECS_TRAINING_TOLERATIONS": ""})
    assert pod.k8s_config() == {
        "container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}
    }


def test_no_gpu_means_no_tag_at_all():
    assert training_op_tags({"RECS_TRAINING_GPUS": "0"}) == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RECS_TRAINING_GPUS", "one"),
        ("RECS_TRAINING_GPUS", "-1"),
        ("RECS_TRAINING_GPU_RESOURCE", " "),
        ("RECS_TRAINING_NODE_SELECTOR", "gpu"),
        ("RECS_TRAINING_NODE_SELECTOR", "=true"),
        ("RECS_TRAINING_TOLERATIONS", "nvidia.com/gpu"),
        ("RECS_TRAINING_TOLERATIONS", "nvidia.com/gpu:NoScheduleAtAll"),
    ],
)
def test_a_wrong_training_pod_setting_is_named(name, value):
    with pytest.raises(SettingsError, match=name):
        TrainingPod.from_env({name: value})


def test_session_model_carries_the_tag_the_k8s_executor_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("RECS_TRAINING_NODE_SELECTOR", "eks.amazonaws.com/nodegroup=gpu")
    definitions = build_definitions(settings(tmp_path, env="prod"))
    tags = definitions.resolve_assets_def("session_model").op.tags
    expected = {
        **GPU_CONFIG["pod_spec_config"],
        "node_selector": {"eks.amazonaws.com/nodegroup": "gpu"},
    }
    assert json.loads(tags[K8S_CONFIG_TAG])["pod_spec_config"] == expected
    # No other step asks for a GPU.
    others = [assets for assets in definitions.assets if "session_model" not in str(assets.keys)]
    assert others and all(K8S_CONFIG_TAG not in assets.op.tags for assets in others)


def test_the_executor_setting_is_read_and_checked():
    environ = {"RECS_DATA_DIR": "/tmp/recs"}
    assert Settings.from_env(environ).executor is None
    assert Settings.from_env({**environ, "RECS_EXECUTOR": "k8s"}).executor == "k8s"
    with pytest.raises(SettingsError, match="RECS_EXECUTOR"):
        Settings.from_env({**environ, "RECS_EXECUTOR": "celery"})


def test_steps_run_in_process_locally_and_by_default_in_production(tmp_path):
    assert executor_for(settings(tmp_path)) is dg.in_process_executor
    assert executor_for(settings(tmp_path, env="prod")) is None


def test_the_k8s_executor_is_dagster_k8s_s_and_its_absence_is_explained(tmp_path, monkeypatch):
    fake = types.ModuleType("dagster_k8s")
    fake.k8s_job_executor = dg.ExecutorDefinition(name="k8s", executor_creation_fn=None)
    monkeypatch.setitem(sys.modules, "dagster_k8s", fake)
    assert executor_for(settings(tmp_path, env="prod", executor="k8s")) is fake.k8s_job_executor
    monkeypatch.setitem(sys.modules, "dagster_k8s", None)  # not installed
    with pytest.raises(SettingsError, match="dagster-k8s"):
        executor_for(settings(tmp_path, env="prod", executor="k8s"))


def test_the_helm_values_run_every_step_in_its_own_pod_and_training_on_a_gpu():
    environ = values_env()
    assert environ["RECS_EXECUTOR"] == "k8s"
    assert Settings.from_env(environ).executor == "k8s"
    config = TrainingPod.from_env(environ).k8s_config()
    assert config["container_config"]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert config["pod_spec_config"]["node_selector"]
    assert config["pod_spec_config"]["tolerations"]


def test_dagster_k8s_builds_the_training_step_pod_on_a_gpu_node():
    """What the k8s_job_executor does with the step's tag: merged over the Helm values'
    runK8sConfig into the step's Kubernetes Job (dagster-k8s's own code; the image has it)."""
    pytest.importorskip("dagster_k8s", reason="dagster-k8s is installed in the Dagster image only")
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import (
        DagsterK8sJobConfig,
        UserDefinedDagsterK8sConfig,
        construct_dagster_k8s_job,
        get_user_defined_k8s_config,
    )

    values = yaml.safe_load(VALUES_YAML.read_text())
    run_k8s_config = values["runLauncher"]["config"]["k8sRunLauncher"]["runK8sConfig"]
    snake = {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config"}
    launcher = K8sContainerContext(
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {snake[key]: value for key, value in run_k8s_config.items()}
        )
    )
    step_tags = {K8S_CONFIG_TAG: json.dumps(TrainingPod.from_env(values_env()).k8s_config())}
    step = launcher.merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(step_tags))
    )
    job = construct_dagster_k8s_job(
        DagsterK8sJobConfig(
            job_image="recs-platform-dagster:test",
            dagster_home="/opt/dagster/dagster_home",
            instance_config_map="dagster-instance",
        ),
        ["dagster", "api", "execute_step"],
        "dagster-step-session-model",
        user_defined_k8s_config=step.run_k8s_config,
    )
    pod = job.spec.template.spec
    assert pod.node_selector == {"nvidia.com/gpu.present": "true"}
    assert [(t.key, t.operator, t.effect) for t in pod.tolerations] == [
        ("nvidia.com/gpu", "Exists", "NoSchedule")
    ]
    (container,) = pod.containers
    # The GPU is added to the run launcher's requests and limits, not in place of them.
    assert container.resources.limits == {"nvidia.com/gpu": "1", "memory": "16Gi"}
    assert container.resources.requests == {"cpu": "2", "memory": "8Gi"}
