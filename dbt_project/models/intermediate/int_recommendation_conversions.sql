{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{#-
    Adds to cart and purchases that follow a recommended click: one row per add or purchase
    (stg_events, so each once) after an attributed click on the same SKU in the same session,
    in session order (client_ts, then server_ts, then event_id, as int_session_events orders),
    in the partition the add or purchase landed in. It goes to the latest such click (so an add
    counts once, however many carousels led to the SKU), among the clicks landed in its
    partition or before, whose impression landed at most lookback_days before it: so an
    impression, its clicks and what they led to all land within lookback_days of the
    impression's partition, the window of the marts' rebuilds, and a day's run decides its rows
    for good.
-#}
{%- set window = incremental_window() %}
{%- set lookback = lookback_days() %}

with recommended_clicks as (

    select
        event_id as click_event_id,
        session_id,
        product_sku,
        position,
        client_ts_ms,
        server_ts_ms,
        event_date as click_event_date,
        impression_event_id,
        impression_date,
        variant,
        model_name,
        model_version
    from {{ ref('int_recommendation_clicks') }}
    where is_attributed
    {%- if window %}
        and {{ in_days('event_date', lookback_start(window), window.end) }}
    {%- endif %}

),

adds_and_purchases as (

    select
        event_id,
        session_id,
        product_action,
        product_sku,
        client_ts_ms,
        server_ts_ms,
        client_at,
        event_date
    from {{ ref('stg_events') }}
    where event_type = 'event_product'
        and product_action in ('add', 'purchase')
        and session_id in (select session_id from recommended_clicks)
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

ranked_clicks as (

    select
        adds_and_purchases.event_id,
        adds_and_purchases.session_id,
        adds_and_purchases.product_action,
        adds_and_purchases.product_sku,
        adds_and_purchases.client_ts_ms,
        adds_and_purchases.client_at,
        adds_and_purchases.event_date,
        recommended_clicks.click_event_id,
        recommended_clicks.click_event_date,
        recommended_clicks.position,
        recommended_clicks.impression_event_id,
        recommended_clicks.impression_date,
        recommended_clicks.variant,
        recommended_clicks.model_name,
        recommended_clicks.model_version,
        row_number() over (
            partition by adds_and_purchases.event_id
            order by
                recommended_clicks.client_ts_ms desc,
                recommended_clicks.server_ts_ms desc,
                recommended_clicks.click_event_id desc
        ) as click_rank
    from adds_and_purchases
    inner join recommended_clicks
        on recommended_clicks.session_id = adds_and_purchases.session_id
        and recommended_clicks.product_sku = adds_and_purchases.product_sku
        and recommended_clicks.click_event_date <= adds_and_purchases.event_date
        and recommended_clicks.impression_date
            >= cast({{ dbt.dateadd('day', -lookback, 'adds_and_purchases.event_date') }} as date)
        and (
            recommended_clicks.client_ts_ms < adds_and_purchases.client_ts_ms
            or (
                recommended_clicks.client_ts_ms = adds_and_purchases.client_ts_ms
                and (
                    recommended_clicks.server_ts_ms < adds_and_purchases.server_ts_ms
                    or (
                        recommended_clicks.server_ts_ms = adds_and_purchases.server_ts_ms
                        and recommended_clicks.click_event_id < adds_and_purchases.event_id
                    )
                )
            )
        )

)

select
    event_id,
    session_id,
    product_action,
    product_sku,
    client_ts_ms,
    client_at,
    event_date,
    click_event_id,
    click_event_date,
    position as click_position,
    impression_event_id,
    impression_date,
    variant,
    model_name,
    model_version
from ranked_clicks
where click_rank = 1
{{ order_by_partition('event_date') }}
