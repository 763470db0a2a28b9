-- The reference of bench_dbt_sessionization.py: one hand-written DuckDB statement doing for one
-- partition day what the dbt models stg_events -> int_session_events -> sessions do, with the
-- same rules, and producing the same rows and column types as analytics.sessions for that day.
--
-- Dedupe (stg_events): of the day's landed rows, keep one row per event_id, the first by
-- (event_date, server_ts, source_file, line_number), and drop an event that already landed on an
-- earlier day. Sessionize (int_session_events + sessions): group by session_id, events ordered
-- by (client_ts, server_ts, event_id); the first non-null user_id, the per-action counts, and the
-- product events as an ordered list of {sku, action, ts}.
--
-- The day's own sessions only: dbt's lookback (rebuild the previous day's sessions, attach the
-- next day's late events) finds nothing more when, as in the benchmark, only this day is loaded.
-- Parameters: $min_date (the day), $max_date (the next day, exclusive). {earlier_events} is
-- replaced by one of the two forms of the earlier days' events in bench_dbt_sessionization.py
-- (EARLIER_EVENTS); the benchmark times both and compares dbt with the faster.
create or replace table handwritten.sessions as
with first_copies as (
    select
        event_id,
        session_id,
        user_id,
        event_type,
        product_action,
        product_sku,
        client_ts,
        server_ts,
        event_date
    from raw.events
    where event_date >= $min_date
        and event_date < $max_date
        and event_id not in ({earlier_events})
    qualify row_number() over (
        partition by event_id
        order by event_date, server_ts, source_file, line_number
    ) = 1
)

select
    session_id,
    min(event_date) as session_date,
    first(user_id order by client_ts, server_ts, event_id) filter (where user_id is not null)
        as user_id,
    epoch_ms(min(client_ts)) as started_at,
    epoch_ms(max(client_ts)) as ended_at,
    cast((max(client_ts) - min(client_ts)) / 1000.0 as decimal(12, 3)) as duration_seconds,
    count(*) as event_count,
    count(*) filter (where event_type = 'pageview') as pageview_count,
    count(*) filter (where event_type = 'event_product') as product_event_count,
    count(*) filter (where product_action = 'detail') as detail_count,
    count(*) filter (where product_action = 'add') as add_count,
    count(*) filter (where product_action = 'remove') as remove_count,
    count(*) filter (where product_action = 'purchase') as purchase_count,
    count(distinct product_sku) as distinct_sku_count,
    count(*) filter (where event_date > cast(epoch_ms(client_ts) as date)) as late_event_count,
    coalesce(
        list(
            struct_pack(sku := product_sku, action := product_action, ts := client_ts)
            order by client_ts, server_ts, event_id
        ) filter (where event_type = 'event_product'),
        []
    ) as product_interactions
from first_copies
group by session_id
