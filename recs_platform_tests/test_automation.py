import datetime as dt
import json

import dagster as dg

from recs_platform.automation import changed_partitions
from recs_platform.definitions import INGEST_JOB, build_definitions
from recs_platform.events.s3_landing import upload_landing_folder
from recs_platform.resources import LocalLandingZone, S3LandingZone
from recs_platform.settings import Settings
from recs_platform_tests.factories import DAY, make_event, write_good_file
from recs_platform_tests.fakes import s3_resource_for

OLD_DAY = DAY - dt.timedelta(days=1)


def tick(definitions, landing_root, cursor=None, landing=None, instance=None):
    with dg.build_sensor_context(
        cursor=cursor,
        resources={"landing": landing or LocalLandingZone(root=str(landing_root))},
        repository_def=definitions.get_repository_def(),
        instance=instance or dg.DagsterInstance.ephemeral(),
    ) as context:
        result = definitions.resolve_sensor_def("landing_zone_sensor").evaluate_tick(context)
    return result.run_requests, result.cursor


def test_the_sensor_requests_each_changed_day_once_late_files_included(tmp_path):
    definitions = build_definitions(
        Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    )
    write_good_file(tmp_path, [make_event(n) for n in range(3)])
    write_good_file(tmp_path, [make_event(9, server_ts=make_event(9)["server_ts"] - 86_400_000)])

    first, cursor = tick(definitions, tmp_path)
    assert [r.partition_key for r in first] == [OLD_DAY.isoformat(), DAY.isoformat()]
    assert len({r.run_key for r in first}) == 2

    again, cursor = tick(definitions, tmp_path, cursor)
    assert again == []

    (tmp_path / f"events/date={DAY}/.half-written.jsonl.tmp").write_bytes(b"{")
    still, cursor = tick(definitions, tmp_path, cursor)
    assert still == []

    write_good_file(
        tmp_path,
        [make_event(20, server_ts=make_event(20)["server_ts"] - 86_400_000)],
        producer="late",
    )
    late, cursor = tick(definitions, tmp_path, cursor)
    assert [r.partition_key for r in late] == [OLD_DAY.isoformat()]
    assert late[0].run_key not in {r.run_key for r in first}
    assert set(json.loads(cursor)) == {OLD_DAY.isoformat(), DAY.isoformat()}


def test_a_fresh_cursor_skips_the_days_already_loaded_with_the_files_they_hold(tmp_path):
    # `make demo`, a backfill or a user loads days without the sensor; a new deployment of the
    # sensor (or a reset cursor) then sees every day as changed.
    definitions = build_definitions(
        Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    )
    landing = tmp_path / "landing"
    write_good_file(landing, [make_event(n) for n in range(3)])
    write_good_file(landing, [make_event(9, server_ts=make_event(9)["server_ts"] - 86_400_000)])
    with dg.instance_for_test() as instance:
        backfill = definitions.resolve_job_def(INGEST_JOB).execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": OLD_DAY.isoformat(),
                "dagster/asset_partition_range_end": DAY.isoformat(),
            },
        )
        assert backfill.success

        requests, cursor = tick(definitions, landing, instance=instance)
        assert requests == []
        assert set(json.loads(cursor)) == {OLD_DAY.isoformat(), DAY.isoformat()}

        write_good_file(landing, [make_event(20)], producer="late")
        for fresh_or_kept in (None, cursor):
            (request,), _ = tick(definitions, landing, fresh_or_kept, instance=instance)
            assert request.partition_key == DAY.isoformat()


def test_days_before_the_partitions_wait_until_their_partition_exists():
    seen = {"2026-11-02": "a"}
    current = {"2026-10-30": "x", "2026-11-02": "a", "2026-11-03": "b"}
    to_request, outside, cursor = changed_partitions(seen, current, {"2026-11-02", "2026-11-03"})
    assert to_request == [("2026-11-03", "b")]
    assert outside == ["2026-10-30"]
    assert cursor == {"2026-11-02": "a", "2026-11-03": "b"}
    later, _, _ = changed_partitions(cursor, current, {"2026-10-30", "2026-11-02", "2026-11-03"})
    assert later == [("2026-10-30", "x")]


def test_every_sensor_is_on_by_default_and_the_landing_one_targets_ingest(tmp_path, monkeypatch):
    from recs_platform.definitions import defs

    monkeypatch.setenv("RECS_DATA_DIR", str(tmp_path))
    sensors = {sensor.name: sensor for sensor in defs().sensors}
    assert set(sensors) == {"landing_zone_sensor", "run_failure_alerts", "freshness_checks_sensor"}
    for sensor in sensors.values():
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING, sensor.name
    assert sensors["landing_zone_sensor"].job_name == "ingest_raw_events"


def test_the_sensor_watches_s3_the_same_way(tmp_path, moto_endpoint, s3_client, s3_bucket):
    definitions = build_definitions(
        Settings(env="local", data_dir=tmp_path, partitions_start=dt.date(2026, 11, 1))
    )
    landing = S3LandingZone(s3=s3_resource_for(moto_endpoint), bucket=s3_bucket, prefix="shop/")
    write_good_file(tmp_path / "local", [make_event(n) for n in range(3)])
    upload_landing_folder(s3_client, tmp_path / "local", s3_bucket, "shop/")
    first, cursor = tick(definitions, None, landing=landing)
    assert [r.partition_key for r in first] == [DAY.isoformat()]
    assert tick(definitions, None, cursor, landing=landing)[0] == []
    write_good_file(tmp_path / "late", [make_event(7)], producer="late")
    upload_landing_folder(s3_client, tmp_path / "late", s3_bucket, "shop/")
    (again,) = tick(definitions, None, cursor, landing=landing)[0]
    assert again.partition_key == DAY.isoformat() and again.run_key != first[0].run_key
