{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{%- set window = incremental_window() %}

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

events_landed_before_window as (

    {# Only the window's events are looked up in the earlier partitions: the set built is the
       window's ids, not every id ever landed (with a week of history that set cost 9 s). #}
    select distinct event_id
    from {{ source('raw', 'events') }}
    where event_date < {{ date_literal(window.start) }}
        and event_id in (select event_id from landed_rows)

),
{%- endif %}

repeated_events as (

    {# Events landed more than once in the window: only their copies need ranking (about 1 % of
       the rows), a window over every row costs about 1 s a day. #}
    select event_id
    from landed_rows
    group by event_id
    having count(*) > 1

),

ranked_repeated_copies as (

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
        line_number,
        row_number() over (
            partition by event_id
            order by event_date, server_ts, source_file, line_number
        ) as copy_number
    from landed_rows
    where event_id in (select event_id from repeated_events)

),

first_copies_in_window as (

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
    from ranked_repeated_copies
    where copy_number = 1

),

first_copies as (

    select first_copies_in_window.*
    from first_copies_in_window
    {%- if window %}
    left join events_landed_before_window
        on events_landed_before_window.event_id = first_copies_in_window.event_id
    where events_landed_before_window.event_id is null
    {%- endif %}

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
