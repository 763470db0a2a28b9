"""`session_model` through Dagster: trains, logs to MLflow, registers, promotes only a winner."""

import dagster as dg
import duckdb
import mlflow
import pytest

from recs_platform.assets.model import CHAMPION_CHECK, CHECKLIST_CHECK
from recs_platform.definitions import build_definitions
from recs_platform.settings import Settings
from recs_platform.simulation import SHOP_CONFIG_FILE, ShopConfig, simulate_sessions
from recs_platform.training import tracking
from recs_platform.training.selection import RULE

SHOP = ShopConfig(days=6, sessions_per_day=400, n_items=300, n_categories=10, seed=3)
FAST_GRU = {"epochs": 3, "hidden_size": 32, "embedding_size": 32, "batch_size": 64}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A warehouse whose training_sessions are the simulated shop's, and the shop's config."""
    data_dir = tmp_path_factory.mktemp("data")
    rows = [
        (session.session_id, session.date, list(session.skus))
        for session in simulate_sessions(SHOP)
        if len(session.skus) >= 2
    ]
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as conn:
        conn.execute("CREATE SCHEMA analytics")
        conn.execute(
            "CREATE TABLE analytics.training_sessions "
            "(session_id VARCHAR, session_date DATE, items VARCHAR[])"
        )
        conn.executemany("INSERT INTO analytics.training_sessions VALUES (?, ?, ?)", rows)
    shop_path = data_dir / "landing" / SHOP_CONFIG_FILE
    shop_path.parent.mkdir(parents=True)
    shop_path.write_text(SHOP.to_json())
    return data_dir


def materialize_model(data_dir, instance=None, **model_config):
    settings = Settings(env="local", data_dir=data_dir, partitions_start=SHOP.start)
    definitions = build_definitions(settings)
    job = dg.define_asset_job("model_only", selection=["training_dataset", "session_model"])
    merged = dg.Definitions.merge(definitions, dg.Definitions(jobs=[job]))
    config = {"search_trials": 1, **model_config}
    return merged.resolve_job_def("model_only").execute_in_process(
        instance=instance,
        run_config={
            "ops": {
                "training_dataset": {"config": {"window_days": SHOP.days}},
                "session_model": {"config": config},
            }
        },
        raise_on_error=False,
    )


def checks_of(result):
    return {
        evaluation.check_name: evaluation for evaluation in result.get_asset_check_evaluations()
    }


def champion_of(data_dir):
    uri, _ = tracking.local_tracking(data_dir)
    return tracking.champion_version(mlflow.MlflowClient(uri, uri))


def test_the_first_model_is_trained_tracked_registered_and_promoted(data_dir):
    instance = dg.DagsterInstance.ephemeral()
    result = materialize_model(
        data_dir,
        instance,
        candidates=["popularity", "markov", "gru4rec"],
        overrides={"gru4rec": FAST_GRU},
    )
    assert result.success
    # The training's progress is in the run's log: the budget's, each epoch's, the choice.
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("of 60.0 min] gru4rec:" in message for message in messages)
    assert any("gru4rec epoch 1 done" in message for message in messages)
    assert any(message.startswith("chosen by the") for message in messages)
    metadata = result.asset_materializations_for_node("session_model")[0].metadata
    rows = {row["name"]: row for row in metadata["evaluation_rows"].value}
    # Every candidate and the oracle are evaluated on the same test targets.
    assert set(rows) == {"oracle", "popularity", "markov", "gru4rec"}
    assert rows["oracle"]["mrr_20"] > rows["popularity"]["mrr_20"]
    assert rows["markov"]["mrr_20"] > rows["popularity"]["mrr_20"]
    chosen = metadata["chosen_candidate"].value
    assert chosen in {"markov", "gru4rec"}
    assert rows[chosen]["chosen"] and metadata["test_mrr_20"].value == rows[chosen]["mrr_20"]
    assert metadata["model_version"].value == "1" and metadata["promoted"].value is True
    assert champion_of(data_dir) == "1"
    checks = checks_of(result)
    assert checks[CHECKLIST_CHECK].passed and checks[CHAMPION_CHECK].passed

    # The run in MLflow holds the params, the per-model metrics, the table and the checklist.
    uri, _ = tracking.local_tracking(data_dir)
    client = mlflow.MlflowClient(uri, uri)
    run = client.get_run(metadata["mlflow_run_id"].value)
    assert run.data.metrics["markov.mrr_20"] == pytest.approx(rows["markov"]["mrr_20"])
    assert "oracle.hr_20" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
    assert {"evaluation/test_metrics.md", "evaluation/mrr_hr.png"} <= artifacts
    # The choice: the rule, each candidate's validation MRR with its interval, and its regret.
    assert metadata["selection_rule"].value == RULE == run.data.tags["selection_rule"]
    assert metadata["selection"].value.startswith(chosen)
    for name in ("popularity", "markov", "gru4rec"):
        low, high = rows[name]["validation_mrr_low"], rows[name]["validation_mrr_high"]
        assert low <= rows[name]["validation_mrr"] <= high
    assert "95% interval" in metadata["evaluation"].value
    best = max(rows[name]["mrr_20"] for name in ("popularity", "markov", "gru4rec"))
    regret = metadata["selection_regret"].value
    assert regret == pytest.approx(1 - rows[chosen]["mrr_20"] / best)
    assert run.data.metrics["selection_regret"] == pytest.approx(regret)
    scores = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/selection/validation_scores.json")
    assert scores["chosen"] == chosen and set(scores["scores"]) == {
        "popularity",
        "markov",
        "gru4rec",
    }
    loaded = tracking.load_registered(metadata["model_uri"].value)
    assert loaded.name == chosen
    # The production defaults: an hour's budget, which a shop this small never trims.
    assert run.data.params["time_budget_s"] == "3600.0"
    windows = metadata["training_windows"].value
    assert set(windows) == {"popularity", "markov", "gru4rec"}
    assert not any(window["trimmed"] for window in windows.values())
    assert 0 < metadata["time_budget_used_minutes"].value < 60
    validation, test = metadata["evaluated_sessions"].value.split(", ")
    assert validation.split(" of ")[0].split()[-1] == validation.split(" of ")[1]


def test_a_worse_model_is_registered_as_challenger_never_champion(data_dir):
    assert champion_of(data_dir) == "1"
    # A spent time budget: the candidate trains on the most recent sessions, and both days are
    # scored on a sample; the metadata says both.
    result = materialize_model(
        data_dir, candidates=["popularity"], time_budget_minutes=1e-5, evaluation_sessions=100
    )
    checks = checks_of(result)
    assert checks[CHECKLIST_CHECK].passed
    assert not checks[CHAMPION_CHECK].passed
    assert "does not beat champion version 1" in checks[CHAMPION_CHECK].description
    # It passed its checklist, so it is the challenger: the failed comparison only warns, and
    # the run goes on to deploy it beside the champion.
    assert checks[CHAMPION_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert result.success
    metadata = result.asset_materializations_for_node("session_model")[0].metadata
    assert metadata["model_version"].value == "2" and metadata["promoted"].value is False
    assert metadata["became_challenger"].value is True
    uri, _ = tracking.local_tracking(data_dir)
    assert tracking.serving_versions(mlflow.MlflowClient(uri, uri)).challenger == "2"
    window = metadata["training_windows"].value["popularity"]
    assert window["trimmed"] and window["sessions"] == 1000 and "of" in window["window"]
    assert "validation 100 of" in metadata["evaluated_sessions"].value
    assert "sampled test sessions" in metadata["test_mrr_20_interval"].value
    assert champion_of(data_dir) == "1"
