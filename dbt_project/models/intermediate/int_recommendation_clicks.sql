{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{#-
    Every carousel click: a product view (stg_events, so each once) whose payload carries the
    request_id and position of the carousel it came from, in the partition the click landed in,
    with the impression it is attributed to. The impression is the request's in the same
    session, landed in the click's partition or in the lookback_days partitions before it (the
    first of them, should a request have several), and the click is attributed when that
    impression showed the clicked SKU at the clicked position. Every other click stays, with
    the reason: `impression_not_found` (none landed in those partitions: never sent, lost, or
    landed after the click or more than lookback_days before it) or `sku_not_at_position`.

    A click's attribution reads only partitions up to its own, so a day's run decides it for
    good and any grouping of days into runs gives the same rows.
-#}
{%- set window = incremental_window() %}
{%- set lookback = lookback_days() %}

with click_fields as (

    {# The carousel fields of the raw rows of product views that carry them (the payload is
       read for those rows only). #}
    select
        event_date,
        source_file,
        line_number,
        cast({{ json_field_text('payload', 'request_id') }} as varchar) as request_id,
        cast({{ json_field_text('payload', 'position') }} as integer) as position
    from {{ source('raw', 'events') }}
    where event_type = 'event_product'
        and product_action = 'detail'
        and {{ json_field_text('payload', 'request_id') }} is not null
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

clicks as (

    select
        stg_events.event_id,
        stg_events.session_id,
        click_fields.request_id,
        click_fields.position,
        stg_events.product_sku,
        stg_events.client_ts_ms,
        stg_events.server_ts_ms,
        stg_events.client_at,
        stg_events.event_date
    from {{ ref('stg_events') }} as stg_events
    inner join click_fields
        on click_fields.event_date = stg_events.event_date
        and click_fields.source_file = stg_events.source_file
        and click_fields.line_number = stg_events.line_number
    where stg_events.event_type = 'event_product'
        and stg_events.product_action = 'detail'
    {%- if window %}
        and {{ in_days('stg_events.event_date', window.start, window.end) }}
    {%- endif %}

),

request_impressions as (

    select
        event_id as impression_event_id,
        session_id,
        request_id,
        event_date as impression_date,
        client_ts_ms,
        server_ts_ms,
        variant,
        model_name,
        model_version,
        fallback
    from {{ ref('stg_impressions') }}
    where request_id in (select request_id from clicks)
    {%- if window %}
        and {{ in_days('event_date', lookback_start(window), window.end) }}
    {%- endif %}

),

ranked_impressions as (

    select
        clicks.event_id,
        request_impressions.impression_event_id,
        request_impressions.impression_date,
        request_impressions.variant,
        request_impressions.model_name,
        request_impressions.model_version,
        request_impressions.fallback,
        row_number() over (
            partition by clicks.event_id
            order by
                request_impressions.impression_date,
                request_impressions.client_ts_ms,
                request_impressions.server_ts_ms,
                request_impressions.impression_event_id
        ) as impression_rank
    from clicks
    inner join request_impressions
        on request_impressions.session_id = clicks.session_id
        and request_impressions.request_id = clicks.request_id
        and request_impressions.impression_date <= clicks.event_date
        and request_impressions.impression_date
            >= cast({{ dbt.dateadd('day', -lookback, 'clicks.event_date') }} as date)

),

click_impressions as (

    select
        event_id,
        impression_event_id,
        impression_date,
        variant,
        model_name,
        model_version,
        fallback
    from ranked_impressions
    where impression_rank = 1

),

shown_items as (

    select
        event_id,
        position,
        product_sku,
        event_date
    from {{ ref('stg_impression_items') }}
    where event_id in (select impression_event_id from click_impressions)
    {%- if window %}
        and {{ in_days('event_date', lookback_start(window), window.end) }}
    {%- endif %}

)

select
    clicks.event_id,
    clicks.session_id,
    clicks.request_id,
    clicks.position,
    clicks.product_sku,
    clicks.client_ts_ms,
    clicks.server_ts_ms,
    clicks.client_at,
    clicks.event_date,
    case
        when click_impressions.impression_event_id is null then 'impression_not_found'
        when shown_items.event_id is null then 'sku_not_at_position'
        else 'attributed'
    end as attribution,
    shown_items.event_id is not null as is_attributed,
    click_impressions.impression_event_id,
    click_impressions.impression_date,
    click_impressions.variant,
    click_impressions.model_name,
    click_impressions.model_version,
    click_impressions.fallback
from clicks
left join click_impressions
    on click_impressions.event_id = clicks.event_id
left join shown_items
    on shown_items.event_id = click_impressions.impression_event_id
    and shown_items.event_date = click_impressions.impression_date
    and shown_items.position = clicks.position
    and shown_items.product_sku = clicks.product_sku
{{ order_by_partition('clicks.event_date') }}
