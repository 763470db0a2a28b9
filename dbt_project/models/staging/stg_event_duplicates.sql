{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{%- set window = incremental_window() %}

{#-
    The window's rows that stg_events did not keep (macros/first_landed_copies.sql has the
    rule), each with the partition of the copy of its event that stg_events keeps. Impressions
    are not stg_events' rows: their copies are stg_impressions' business. Only the events landed more than
    once in the window, or also in the history_lookback_days partitions before it, can have
    such rows, so only their rows are compared with stg_events' kept copies, instead of every
    row of the window.

    A duplicate's kept copy is the latest kept copy of its event at or before its partition. It
    lies in the lookback partitions or the window, or further back when copies kept landing at
    most history_lookback_days apart since: then an earlier duplicate of the same chain of
    copies landed in the lookback partitions, and this table's row for it names that copy.
-#}

with window_rows as (

    select
        event_id,
        session_id,
        server_ts,
        event_date,
        source_file,
        line_number
    from {{ source('raw', 'events') }}
    where not ({{ is_impression() }})
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

{%- if window %}

earlier_kept_copies as (

    {# The window's events landed in the lookback partitions before it, with the partition of
       their kept copy: the copy itself if stg_events kept it, else the duplicate's record. #}
    select
        event_id,
        event_date as kept_copy_date
    from {{ ref('stg_events') }}
    where {{ in_days('event_date', history_start(window.start), window.start) }}
        and event_id in (select event_id from window_rows)
    union all
    select
        event_id,
        first_event_date as kept_copy_date
    from {{ this }}
    where {{ in_days('event_date', history_start(window.start), window.start) }}
        and event_id in (select event_id from window_rows)

),
{%- endif %}

repeated_events as (

    select event_id
    from window_rows
    group by event_id
    having count(*) > 1
    {%- if window %}
    union
    select event_id
    from earlier_kept_copies
    {%- endif %}

),

kept_copies as (

    select
        event_id,
        event_date,
        source_file,
        line_number
    from {{ ref('stg_events') }}
    where event_id in (select event_id from repeated_events)
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

kept_copy_dates as (

    select
        event_id,
        event_date as kept_copy_date
    from kept_copies
    {%- if window %}
    union all
    select
        event_id,
        kept_copy_date
    from earlier_kept_copies
    {%- endif %}

),

duplicate_rows as (

    select
        window_rows.event_id,
        window_rows.session_id,
        window_rows.server_ts,
        window_rows.event_date,
        window_rows.source_file,
        window_rows.line_number
    from window_rows
    left join kept_copies
        on kept_copies.source_file = window_rows.source_file
        and kept_copies.line_number = window_rows.line_number
    where window_rows.event_id in (select event_id from repeated_events)
        and kept_copies.source_file is null

),

first_landings as (

    select
        duplicate_rows.source_file,
        duplicate_rows.line_number,
        max(kept_copy_dates.kept_copy_date) as first_event_date
    from duplicate_rows
    inner join kept_copy_dates
        on kept_copy_dates.event_id = duplicate_rows.event_id
        and kept_copy_dates.kept_copy_date <= duplicate_rows.event_date
    group by duplicate_rows.source_file, duplicate_rows.line_number

)

select
    cast(duplicate_rows.event_id as varchar) as event_id,
    cast(duplicate_rows.session_id as varchar) as session_id,
    cast(duplicate_rows.server_ts as bigint) as server_ts_ms,
    {{ epoch_ms_to_timestamp('duplicate_rows.server_ts') }} as server_at,
    cast(duplicate_rows.event_date as date) as event_date,
    cast(first_landings.first_event_date as date) as first_event_date,
    cast(duplicate_rows.source_file as varchar) as source_file,
    cast(duplicate_rows.line_number as bigint) as line_number
from duplicate_rows
inner join first_landings
    on first_landings.source_file = duplicate_rows.source_file
    and first_landings.line_number = duplicate_rows.line_number
{{ order_by_partition('duplicate_rows.event_date') }}
