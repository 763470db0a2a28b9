{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{%- set window = incremental_window() %}

with product_events as (

    select
        event_date,
        product_sku,
        product_action,
        session_id
    from {{ ref('stg_events') }}
    where event_type = 'event_product'
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

daily_item_counts as (

    select
        event_date,
        product_sku,
        count(case when product_action = 'detail' then 1 end) as view_count,
        count(case when product_action = 'add' then 1 end) as add_count,
        count(case when product_action = 'remove' then 1 end) as remove_count,
        count(case when product_action = 'purchase' then 1 end) as purchase_count,
        count(distinct session_id) as session_count
    from product_events
    group by event_date, product_sku

),

{%- if window %}

first_seen_before_window as (

    select
        product_sku,
        min(event_date) as first_seen_date
    from {{ this }}
    where event_date < {{ date_literal(window.start) }}
    group by product_sku

),
{%- endif %}

first_seen_in_scope as (

    select
        product_sku,
        min(event_date) as first_seen_date
    from daily_item_counts
    group by product_sku

)

select
    daily_item_counts.event_date,
    daily_item_counts.product_sku,
    daily_item_counts.view_count,
    daily_item_counts.add_count,
    daily_item_counts.remove_count,
    daily_item_counts.purchase_count,
    daily_item_counts.session_count,
    {%- if window %}
    coalesce(
        first_seen_before_window.first_seen_date, first_seen_in_scope.first_seen_date
    ) as first_seen_date
    {%- else %}
    first_seen_in_scope.first_seen_date
    {%- endif %}
from daily_item_counts
inner join first_seen_in_scope
    on first_seen_in_scope.product_sku = daily_item_counts.product_sku
{%- if window %}
left join first_seen_before_window
    on first_seen_before_window.product_sku = daily_item_counts.product_sku
{%- endif %}
