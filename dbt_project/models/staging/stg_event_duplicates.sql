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
    A landed row is a duplicate only if its event landed more than once in the window or already
    landed before it; every other row is the copy stg_events keeps. So only those events' rows
    are compared with stg_events' kept copies, instead of every row of the window.
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
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

first_landings as (

    {# The events landed more than once: in the window, or in the window and before it (one
       look at the earlier partitions, for the window's ids only), with the partition of their
       first copy. #}
    select
        event_id,
        min(first_event_date) as first_event_date
    from (
        select
            event_id,
            min(event_date) as first_event_date
        from window_rows
        group by event_id
        having count(*) > 1
        {%- if window %}
        union all
        select
            event_id,
            min(event_date) as first_event_date
        from {{ source('raw', 'events') }}
        where event_date < {{ date_literal(window.start) }}
            and event_id in (select event_id from window_rows)
        group by event_id
        {%- endif %}
    ) as repeated_landings
    group by event_id

),

kept_copies as (

    select
        source_file,
        line_number
    from {{ ref('stg_events') }}
    where event_id in (select event_id from first_landings)
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

)

select
    cast(window_rows.event_id as varchar) as event_id,
    cast(window_rows.session_id as varchar) as session_id,
    cast(window_rows.server_ts as bigint) as server_ts_ms,
    {{ epoch_ms_to_timestamp('window_rows.server_ts') }} as server_at,
    cast(window_rows.event_date as date) as event_date,
    cast(first_landings.first_event_date as date) as first_event_date,
    cast(window_rows.source_file as varchar) as source_file,
    cast(window_rows.line_number as bigint) as line_number
from window_rows
inner join first_landings
    on first_landings.event_id = window_rows.event_id
left join kept_copies
    on kept_copies.source_file = window_rows.source_file
    and kept_copies.line_number = window_rows.line_number
where kept_copies.source_file is null
