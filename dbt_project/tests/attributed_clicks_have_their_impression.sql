{#- A click never without its impression: every attributed click of int_recommendation_clicks
    has, in stg_impression_items, the card it names (its impression, position and SKU) of an
    impression of the same session and request, landed in the click's partition or the
    lookback_days before it. Fails on each click without one. With a window, the clicks of the
    partitions a run may have rewritten. Two parents: meta.dagster.ref attaches it to
    int_recommendation_clicks as an asset check. -#}
{{ config(meta={'dagster': {'ref': {'name': 'int_recommendation_clicks'}}}) }}
{%- set window = requested_window() %}
{%- set lookback = lookback_days() %}

with attributed_clicks as (

    select
        event_id,
        session_id,
        request_id,
        position,
        product_sku,
        event_date,
        impression_event_id,
        impression_date
    from {{ ref('int_recommendation_clicks') }}
    where is_attributed
    {%- if window %}
        and {{ in_days('event_date', lookback_start(window), window.end) }}
    {%- endif %}

),

shown_cards as (

    select
        event_id,
        session_id,
        request_id,
        position,
        product_sku,
        event_date
    from {{ ref('stg_impression_items') }}
    where event_id in (select impression_event_id from attributed_clicks)
    {%- if window %}
        and {{ in_days('event_date', shift_days(lookback_start(window), -lookback), window.end) }}
    {%- endif %}

)

select
    attributed_clicks.event_id,
    attributed_clicks.event_date,
    attributed_clicks.impression_event_id
from attributed_clicks
left join shown_cards
    on shown_cards.event_id = attributed_clicks.impression_event_id
    and shown_cards.event_date = attributed_clicks.impression_date
    and shown_cards.session_id = attributed_clicks.session_id
    and shown_cards.request_id = attributed_clicks.request_id
    and shown_cards.position = attributed_clicks.position
    and shown_cards.product_sku = attributed_clicks.product_sku
    and shown_cards.event_date <= attributed_clicks.event_date
    and shown_cards.event_date
        >= cast({{ dbt.dateadd('day', -lookback, 'attributed_clicks.event_date') }} as date)
where shown_cards.event_id is null
