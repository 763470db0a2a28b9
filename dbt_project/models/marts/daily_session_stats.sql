{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='partition_date',
        meta={'partition_column': 'partition_date'},
    )
}}

{#-
    One row per partition day: the sessions whose first event landed that day, and the rows and
    events that landed that day. Every day of a requested window gets a row (zeros for a day
    with no data), and so does every day between the first and the last partition with data.
-#}
{%- set requested = requested_window() %}
{%- set window = incremental_window() %}
{%- if window %}
    {%- set rebuild_start = lookback_start(window) %}
{%- endif %}
{%- if requested and (requested.end - requested.start).days > 10000 %}
    {{ exceptions.raise_compiler_error("A partition window of more than 10000 days is not supported") }}
{%- endif %}

with digits as (

    select 0 as digit union all select 1 union all select 2 union all select 3
    union all select 4 union all select 5 union all select 6 union all select 7
    union all select 8 union all select 9

),

day_offsets as (

    select ones.digit + 10 * tens.digit + 100 * hundreds.digit + 1000 * thousands.digit
        as day_offset
    from digits as ones
    cross join digits as tens
    cross join digits as hundreds
    cross join digits as thousands

),

sessions_in_scope as (

    select
        session_date,
        event_count,
        detail_count,
        add_count,
        purchase_count,
        duration_seconds
    from {{ ref('sessions') }}
    {%- if window %}
    where {{ in_days('session_date', rebuild_start, window.end) }}
    {%- endif %}

),

session_stats as (

    select
        session_date as partition_date,
        count(*) as sessions,
        cast(sum(event_count) as bigint) as session_events,
        cast(sum(detail_count) as bigint) as product_views,
        count(case when detail_count > 0 then 1 end) as sessions_with_view,
        count(case when add_count > 0 then 1 end) as sessions_with_add,
        count(case when purchase_count > 0 then 1 end) as sessions_with_purchase,
        {{ ratio('sum(event_count)', 'count(*)') }} as mean_session_events,
        {{ median_of('event_count') }} as median_session_events,
        cast(avg(duration_seconds) as double) as mean_session_seconds,
        {{ median_of('duration_seconds') }} as median_session_seconds
    from sessions_in_scope
    group by session_date

),

session_items as (

    select
        session_date as partition_date,
        count(distinct product_sku) as distinct_items
    from {{ ref('int_session_events') }}
    where product_sku is not null
    {%- if window %}
        and {{ in_days('session_date', rebuild_start, window.end) }}
    {%- endif %}
    group by session_date

),

landed_events as (

    select
        event_date as partition_date,
        count(*) as landed_events,
        count(case when is_late then 1 end) as late_events
    from {{ ref('stg_events') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, window.end) }}
    {%- endif %}
    group by event_date

),

duplicate_rows as (

    select
        event_date as partition_date,
        count(*) as duplicate_rows
    from {{ ref('stg_event_duplicates') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, window.end) }}
    {%- endif %}
    group by event_date

),

events_in_sessions as (

    select
        event_date as partition_date,
        count(*) as events_in_sessions
    from {{ ref('int_session_events') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, window.end) }}
    {%- endif %}
    group by event_date

),

days_with_data as (

    select partition_date from landed_events
    union
    select partition_date from duplicate_rows

),

{%- if window %}

partition_days as (

    {# The window's days, and the lookback days that have data (a lookback day without data
       keeps the row it has). #}
    select
        cast({{ dbt.dateadd('day', 'day_offset', date_literal(window.start)) }} as date)
            as partition_date
    from day_offsets
    where day_offset < {{ (window.end - window.start).days }}
    union
    select partition_date from days_with_data

),
{%- else %}

data_bounds as (

    select
        min(partition_date) as first_day,
        max(partition_date) as last_day
    from days_with_data

),

partition_days as (

    select
        cast({{ dbt.dateadd('day', 'day_offsets.day_offset', 'data_bounds.first_day') }} as date)
            as partition_date
    from data_bounds
    cross join day_offsets
    where day_offsets.day_offset
        <= {{ dbt.datediff('data_bounds.first_day', 'data_bounds.last_day', 'day') }}
    {%- if requested %}
    union
    select
        cast({{ dbt.dateadd('day', 'day_offset', date_literal(requested.start)) }} as date)
            as partition_date
    from day_offsets
    where day_offset < {{ (requested.end - requested.start).days }}
    {%- endif %}

),
{%- endif %}

daily_counts as (

    select
        partition_days.partition_date,
        coalesce(session_stats.sessions, 0) as sessions,
        coalesce(session_stats.session_events, 0) as session_events,
        coalesce(session_stats.product_views, 0) as product_views,
        coalesce(session_stats.sessions_with_view, 0) as sessions_with_view,
        coalesce(session_stats.sessions_with_add, 0) as sessions_with_add,
        coalesce(session_stats.sessions_with_purchase, 0) as sessions_with_purchase,
        session_stats.mean_session_events,
        session_stats.median_session_events,
        session_stats.mean_session_seconds,
        session_stats.median_session_seconds,
        coalesce(session_items.distinct_items, 0) as distinct_items,
        coalesce(landed_events.landed_events, 0) + coalesce(duplicate_rows.duplicate_rows, 0)
            as landed_rows,
        coalesce(duplicate_rows.duplicate_rows, 0) as duplicate_rows,
        coalesce(landed_events.landed_events, 0) as landed_events,
        coalesce(landed_events.late_events, 0) as late_events,
        coalesce(landed_events.landed_events, 0) - coalesce(events_in_sessions.events_in_sessions, 0)
            as events_outside_sessions
    from partition_days
    left join session_stats
        on session_stats.partition_date = partition_days.partition_date
    left join session_items
        on session_items.partition_date = partition_days.partition_date
    left join landed_events
        on landed_events.partition_date = partition_days.partition_date
    left join duplicate_rows
        on duplicate_rows.partition_date = partition_days.partition_date
    left join events_in_sessions
        on events_in_sessions.partition_date = partition_days.partition_date

)

select
    partition_date,
    sessions,
    session_events,
    product_views,
    sessions_with_view,
    sessions_with_add,
    sessions_with_purchase,
    {{ ratio('sessions_with_view', 'sessions') }} as view_session_rate,
    {{ ratio('sessions_with_add', 'sessions') }} as add_session_rate,
    {{ ratio('sessions_with_purchase', 'sessions') }} as purchase_session_rate,
    {{ ratio('sessions_with_add', 'sessions_with_view') }} as view_to_add_rate,
    {{ ratio('sessions_with_purchase', 'sessions_with_add') }} as add_to_purchase_rate,
    mean_session_events,
    median_session_events,
    mean_session_seconds,
    median_session_seconds,
    distinct_items,
    landed_rows,
    duplicate_rows,
    {{ ratio('duplicate_rows', 'landed_rows') }} as duplicate_rate,
    landed_events,
    late_events,
    {{ ratio('late_events', 'landed_events') }} as late_event_rate,
    events_outside_sessions
from daily_counts
