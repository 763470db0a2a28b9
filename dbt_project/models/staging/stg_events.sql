{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{#-
    Page views and product events, each once: the rule is macros/first_landed_copies.sql's.
    Impressions are left to stg_impressions, so that nothing downstream of this model (sessions,
    their statistics, item statistics) changes when carousels are shown.
-#}

{{ first_landed_copies('not (' ~ is_impression() ~ ')') }},

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
