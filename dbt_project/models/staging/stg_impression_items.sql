{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{#- What each carousel showed, one row per card: stg_impressions' shown_skus unnested, a SKU's
    position its index + 1 (the contract's numbering, the one clicks carry). -#}
{%- set window = incremental_window() %}

with impressions as (

    select
        event_id,
        session_id,
        request_id,
        shown_skus,
        event_date
    from {{ ref('stg_impressions') }}
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

)

select
    impressions.event_id,
    impressions.session_id,
    impressions.request_id,
    {{ array_item_position('shown_item') }} as position,
    {{ array_item_value('shown_item') }} as product_sku,
    impressions.event_date
from impressions
{{ array_items_join('impressions.shown_skus', 'shown_item') }}
{{ order_by_partition('impressions.event_date') }}
