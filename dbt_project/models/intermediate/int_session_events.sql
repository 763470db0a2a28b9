{{
    config(
        materialized='incremental',
        incremental_strategy='replace_window_and_keys',
        unique_key='session_id',
        meta={'partition_column': 'session_date'},
    )
}}

{#-
    A run for the window [start, end) rebuilds the sessions whose first event landed in the
    window, and those of the lookback days [start - lookback, start) that received an event in
    the window (midnight, a late event): the only earlier sessions its events can change. Their
    events landed in [start - lookback, end + lookback).

    The scan also holds events of sessions that began before it (late ones, left out of their
    session), which must not be taken for new sessions. A session that began before the scan
    has an event landed before it; this run looks for one in the history_lookback_days
    partitions before the scan only, so that what it reads does not grow with the history.
    Bounding by lookback_days alone would not be exact: such a session receives no event of
    the scan (its events attach up to lookback days after its first, before the scan), but its
    late events are still in the scan. With history_lookback_days it is exact unless a
    session's events stop landing for more than history_lookback_days partitions and then land
    again: those later events then make a session of their own (same session_id, a later
    partition; the earlier session's rows are left as they are, see
    macros/replace_window_and_keys.sql), where a run that also scans the earlier partitions
    (a backfill from before it, a full refresh) leaves them out of any session.
-#}
{%- set window = incremental_window() %}
{%- set lookback = lookback_days() %}
{%- if window %}
    {%- set rebuild_start = lookback_start(window) %}
    {%- set scan_end = shift_days(window.end, lookback) %}
{%- endif %}

with candidate_events as (

    select
        event_id,
        session_id,
        user_id,
        event_type,
        product_action,
        product_sku,
        client_ts_ms,
        server_ts_ms,
        client_at,
        server_at,
        event_date,
        is_late
    from {{ ref('stg_events') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, scan_end) }}
    {%- endif %}

),

session_first_partitions as (

    select
        session_id,
        min(event_date) as session_date
    from candidate_events
    group by session_id

),

{%- if window %}

sessions_started_before_rebuild as (

    {# Seen in the scan, but an event of theirs landed in the history_lookback_days partitions
       before it: they began before it, built by an earlier run. #}
    select distinct session_id
    from {{ ref('stg_events') }}
    where {{ in_days('event_date', history_start(rebuild_start), rebuild_start) }}
        and session_id in (select session_id from candidate_events)

),
{%- endif %}

sessions_to_build as (

    select
        session_first_partitions.session_id,
        session_first_partitions.session_date
    from session_first_partitions
    {%- if window %}
    left join sessions_started_before_rebuild
        on sessions_started_before_rebuild.session_id = session_first_partitions.session_id
    where sessions_started_before_rebuild.session_id is null
        and {{ rebuilt_sessions_condition(
            'session_first_partitions.session_id',
            'session_first_partitions.session_date',
            'candidate_events',
            window,
        ) }}
    {%- endif %}

),

attached_events as (

    select
        candidate_events.session_id,
        sessions_to_build.session_date,
        candidate_events.event_id,
        candidate_events.user_id,
        candidate_events.event_type,
        candidate_events.product_action,
        candidate_events.product_sku,
        candidate_events.client_ts_ms,
        candidate_events.server_ts_ms,
        candidate_events.client_at,
        candidate_events.server_at,
        candidate_events.event_date,
        candidate_events.is_late
    from candidate_events
    inner join sessions_to_build
        on sessions_to_build.session_id = candidate_events.session_id
    where candidate_events.event_date
        <= cast({{ dbt.dateadd('day', lookback, 'sessions_to_build.session_date') }} as date)

)

select
    session_id,
    session_date,
    row_number() over (
        partition by session_id
        order by client_ts_ms, server_ts_ms, event_id
    ) as event_index,
    event_id,
    user_id,
    event_type,
    product_action,
    product_sku,
    client_ts_ms,
    server_ts_ms,
    client_at,
    server_at,
    event_date,
    is_late
from attached_events
{{ order_by_partition('session_date') }}
