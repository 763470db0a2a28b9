{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{#-
    Every impression once: raw.events' impression rows deduplicated on event_id by the rule of
    stg_events (macros/first_landed_copies.sql), with the carousel's fields read from the
    payload, where the contract keeps them (raw.events has no column for them). The loaders
    checked those fields, so they are read as they are.
-#}

{{ first_landed_copies(is_impression(), ['payload']) }},

typed_impressions as (

    select
        cast(event_id as varchar) as event_id,
        cast(session_id as varchar) as session_id,
        cast(user_id as varchar) as user_id,
        cast({{ json_field_text('payload', 'request_id') }} as varchar) as request_id,
        cast(product_sku as varchar) as anchor_sku,
        {{ json_field_text_array('payload', 'shown_skus') }} as shown_skus,
        cast({{ json_field_text('payload', 'model_name') }} as varchar) as model_name,
        cast({{ json_field_text('payload', 'model_version') }} as varchar) as model_version,
        cast({{ json_field_text('payload', 'variant') }} as varchar) as variant,
        cast({{ json_field_text('payload', 'fallback') }} as varchar) as fallback,
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
    request_id,
    anchor_sku,
    shown_skus,
    cast({{ array_length('shown_skus') }} as integer) as shown_count,
    model_name,
    model_version,
    variant,
    fallback,
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
from typed_impressions
{{ order_by_partition('event_date') }}
