"""`ab_test_report`: champion against challenger on live traffic, with a decision and its
confidence (`evaluation/ab_test.py`); promotes a winning challenger when asked to."""

import dagster as dg
import mlflow

from recs_platform.evaluation.ab_test import CHALLENGER, CHAMPION, Decision, ab_test
from recs_platform.reporting.ab_test_report import NoTestSessions, read_test_sessions
from recs_platform.resources import MlflowTracking, Warehouse
from recs_platform.training import tracking

DECISION_CHECK = "challenger_does_not_lose"


class ABTestReportConfig(dg.Config):
    window_days: int = 14
    """The test's sessions: the last N days of analytics.recommendation_sessions."""
    confidence: float = 0.95
    """Of every interval, and of the decision."""
    minimum_detectable_effect: float = 0.05
    """The relative change of the champion's CTR the test should be able to find (sizes
    `sessions_needed`)."""
    power: float = 0.8
    min_sessions: int = 1_000
    """No decision while either variant has fewer sessions than this."""
    promote_winner: bool = False
    """Opt-in: when the challenger wins, move alias `champion` to its version (the next
    deploy serves it to everyone)."""


def build_ab_test_report_asset(
    pool: str | None, retry_policy: dg.RetryPolicy | None = None
) -> dg.AssetsDefinition:
    @dg.asset(
        deps=["recommendation_sessions"],
        pool=pool,
        retry_policy=retry_policy,
        group_name="reporting",
        kinds={"python", "mlflow"},
        check_specs=[
            dg.AssetCheckSpec(
                DECISION_CHECK,
                asset="ab_test_report",
                description="The A/B test's decision: fails (warning) when the challenger "
                "loses on click-through rate with the configured confidence.",
            )
        ],
        description=(
            "Champion against challenger on the carousel's live traffic: per variant the "
            "click-through and add-to-cart rates with confidence intervals, the relative lift "
            "with its interval, the sessions a test of the minimum detectable effect needs, "
            "and a decision (challenger wins / loses / not yet known). Promotes a winner only "
            "when `promote_winner` is set."
        ),
    )
    def ab_test_report(
        context: dg.AssetExecutionContext,
        config: ABTestReportConfig,
        warehouse: Warehouse,
        mlflow_tracking: MlflowTracking,
    ) -> dg.MaterializeResult:
        try:
            sessions, versions = read_test_sessions(warehouse.query, config.window_days)
            report = ab_test(
                sessions,
                confidence=config.confidence,
                minimum_detectable_effect=config.minimum_detectable_effect,
                power=config.power,
                min_sessions=config.min_sessions,
            )
        except (NoTestSessions, ValueError) as error:
            raise dg.Failure(f"no A/B test to report: {error}") from error
        context.log.info(report.describe())
        promoted = False
        if config.promote_winner and report.decision is Decision.WINS:
            mlflow_tracking.activate()
            promoted = promote_tested_challenger(versions[CHALLENGER])
            context.log.info(
                f"challenger version {versions[CHALLENGER]} "
                + ("promoted to champion" if promoted else "is no longer the registry's challenger")
            )
        champion, challenger = report.champion, report.challenger
        return dg.MaterializeResult(
            metadata={
                "decision": str(report.decision),
                "summary": report.describe(),
                "champion_version": versions[CHAMPION],
                "challenger_version": versions[CHALLENGER],
                "champion_sessions": champion.sessions,
                "challenger_sessions": challenger.sessions,
                "champion_ctr": champion.ctr.value,
                "challenger_ctr": challenger.ctr.value,
                "ctr_lift": report.ctr_lift.value,
                "ctr_lift_interval": f"{report.ctr_lift.low:+.2%} to {report.ctr_lift.high:+.2%}",
                "add_to_cart_lift": report.add_to_cart_lift.value,
                "sessions_needed": report.sessions_needed,
                "promoted": promoted,
                "report": dg.MetadataValue.json(report.as_dict()),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=DECISION_CHECK,
                    passed=report.decision is not Decision.LOSES,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=report.describe(),
                    metadata={"decision": str(report.decision)},
                )
            ],
        )

    return ab_test_report


def promote_tested_challenger(version: str) -> bool:
    """Alias `champion` to `version` if it is still the registry's challenger (a retrain may
    have replaced it since the sessions were served); returns whether it moved."""
    client = mlflow.MlflowClient()
    if tracking.serving_versions(client).challenger != version:
        return False
    tracking.promote(version, client)
    return True
