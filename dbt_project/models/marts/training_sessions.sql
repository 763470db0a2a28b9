{{
    config(
        materialized='incremental',
        incremental_strategy='replace_window_and_keys',
        unique_key='session_id',
        meta={'partition_column': 'session_date'},
    )
}}

{%- set window = incremental_window() %}
{%- set max_items = var('training_max_items') | int %}
{%- if max_items < 2 %}
    {{ exceptions.raise_compiler_error(
        "training_max_items must be at least 2 (a training session has two views), got "
        ~ var('training_max_items')
    ) }}
{%- endif %}

with product_views as (

    select
        session_id,
        session_date,
        event_index,
        product_sku
    from {{ ref('int_session_events') }}
    where product_action = 'detail'
    {%- if window %}
        and {{ rebuilt_sessions_condition(
            'session_id', 'session_date', ref('int_session_events'), window
        ) }}
    {%- endif %}

),

views_with_previous_sku as (

    select
        session_id,
        session_date,
        event_index,
        product_sku,
        lag(product_sku) over (partition by session_id order by event_index) as previous_sku
    from product_views

),

views_without_repeats as (

    select
        session_id,
        session_date,
        event_index,
        product_sku
    from views_with_previous_sku
    where previous_sku is null
        or previous_sku <> product_sku

),

numbered_views as (

    select
        session_id,
        session_date,
        event_index,
        product_sku,
        row_number() over (
            partition by session_id order by event_index desc
        ) as position_from_end,
        count(*) over (partition by session_id) as view_count
    from views_without_repeats

),

latest_views as (

    select
        session_id,
        session_date,
        event_index,
        product_sku,
        view_count
    from numbered_views
    where view_count >= 2
        and position_from_end <= {{ max_items }}

)

select
    session_id,
    session_date,
    {{ array_agg_ordered('product_sku', 'event_index') }} as items,
    count(*) as item_count,
    max(view_count) as view_count,
    max(view_count) > {{ max_items }} as is_truncated
from latest_views
group by session_id, session_date
{{ order_by_partition('session_date') }}
