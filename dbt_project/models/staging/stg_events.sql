{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{%- set window = incremental_window() %}
{%- set history_lookback = history_lookback_days() %}

{#-
    A landed row is a duplicate when an earlier copy of its event (by event_date, server_ts,
    source_file, line_number) landed in the same partition or in the history_lookback_days
    partitions before it; every other row is kept. So a copy delivered again within that many
    days of the event's previous copy is dropped, and one landing later than that is kept as a
    new event. Only that many partitions before the window are read, whatever the history: a
    row's previous copy, if it counts, landed in [its partition - history_lookback_days, its
    partition], so within [window start - history_lookback_days, window end). The rule is a
    row's own, never the run's, so any grouping of days into runs keeps the same rows.
-#}

with landed_rows as (

    select
        event_id,
        session_id,
        user_id,
        event_type,
        product_action,
        product_sku,
        url,
        client_ts,
        server_ts,
        source,
        event_date,
        source_file,
        line_number
    from {{ source('raw', 'events') }}
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

{%- if window %}

earlier_landings as (

    {# The window's events that also landed in the lookback partitions before it, with the
       latest of those partitions. Only the window's ids are looked up: the set built is the
       window's, not every id of the lookback days. #}
    select
        event_id,
        max(event_date) as last_earlier_date
    from {{ source('raw', 'events') }}
    where {{ in_days('event_date', history_start(window.start), window.start) }}
        and event_id in (select event_id from landed_rows)
    group by event_id

),
{%- endif %}

repeated_events as (

    {# Events landed more than once in the window or also before it: only their copies need
       comparing (about 1 % of the rows); a window function over every row costs about 1 s a
       day. #}
    select event_id
    from landed_rows
    group by event_id
    having count(*) > 1
    {%- if window %}
    union
    select event_id
    from earlier_landings
    {%- endif %}

),

{%- set previous_copy_in_window %}
        lag(landed_rows.event_date) over (
            partition by landed_rows.event_id
            order by
                landed_rows.event_date,
                landed_rows.server_ts,
                landed_rows.source_file,
                landed_rows.line_number
        )
{%- endset %}

repeated_copies as (

    {# Each copy with the partition of its event's previous copy: the copy before it in the
       window, else the latest one landed in the lookback partitions before the window. #}
    select
        landed_rows.event_id,
        landed_rows.session_id,
        landed_rows.user_id,
        landed_rows.event_type,
        landed_rows.product_action,
        landed_rows.product_sku,
        landed_rows.url,
        landed_rows.client_ts,
        landed_rows.server_ts,
        landed_rows.source,
        landed_rows.event_date,
        landed_rows.source_file,
        landed_rows.line_number,
        {%- if window %}
        coalesce({{ previous_copy_in_window }}, earlier_landings.last_earlier_date)
        {%- else %}
        {{ previous_copy_in_window }}
        {%- endif %} as previous_copy_date
    from landed_rows
    {%- if window %}
    left join earlier_landings
        on earlier_landings.event_id = landed_rows.event_id
    {%- endif %}
    where landed_rows.event_id in (select event_id from repeated_events)

),

first_copies as (

    select
        event_id,
        session_id,
        user_id,
        event_type,
        product_action,
        product_sku,
        url,
        client_ts,
        server_ts,
        source,
        event_date,
        source_file,
        line_number
    from landed_rows
    where event_id not in (select event_id from repeated_events)
    union all
    select
        event_id,
        session_id,
        user_id,
        event_type,
        product_action,
        product_sku,
        url,
        client_ts,
        server_ts,
        source,
        event_date,
        source_file,
        line_number
    from repeated_copies
    where previous_copy_date is null
        or previous_copy_date
            < cast({{ dbt.dateadd('day', -history_lookback, 'event_date') }} as date)

),

typed_events as (

    select
        cast(event_id as varchar) as event_id,
        cast(session_id as varchar) as session_id,
        cast(user_id as varchar) as user_id,
        cast(event_type as varchar) as event_type,
        cast(product_action as varchar) as product_action,
        cast(product_sku as varchar) as product_sku,
        cast(url as varchar) as page_url,
        cast(source as varchar) as event_source,
        cast(client_ts as bigint) as client_ts_ms,
        cast(server_ts as bigint) as server_ts_ms,
        {{ epoch_ms_to_timestamp('client_ts') }} as client_at,
        {{ epoch_ms_to_timestamp('server_ts') }} as server_at,
        cast(event_date as date) as event_date,
        cast(source_file as varchar) as source_file,
        cast(line_number as bigint) as line_number
    from first_copies

)

select
    event_id,
    session_id,
    user_id,
    event_type,
    product_action,
    product_sku,
    page_url,
    event_source,
    client_ts_ms,
    server_ts_ms,
    client_at,
    server_at,
    cast(client_at as date) as client_date,
    event_date,
    event_date > cast(client_at as date) as is_late,
    source_file,
    line_number
from typed_events
{{ order_by_partition('event_date') }}
