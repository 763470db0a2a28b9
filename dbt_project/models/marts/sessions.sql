{{
    config(
        materialized='incremental',
        incremental_strategy='replace_window_and_keys',
        unique_key='session_id',
        meta={'partition_column': 'session_date'},
    )
}}

{%- set window = incremental_window() %}

with session_events as (

    select
        session_id,
        session_date,
        event_index,
        user_id,
        event_type,
        product_action,
        product_sku,
        client_ts_ms,
        client_at,
        is_late
    from {{ ref('int_session_events') }}
    {%- if window %}
    where {{ rebuilt_sessions_condition(
        'session_id', 'session_date', ref('int_session_events'), window
    ) }}
    {%- endif %}

),

first_known_users as (

    select
        session_id,
        user_id
    from (
        select
            session_id,
            user_id,
            row_number() over (partition by session_id order by event_index) as user_rank
        from session_events
        where user_id is not null
    ) as known_users
    where user_rank = 1

),

product_interactions as (

    select
        session_id,
        {{ array_agg_ordered(
            record_of([
                ('sku', 'product_sku'),
                ('action', 'product_action'),
                ('ts', 'client_ts_ms'),
            ]),
            'event_index'
        ) }} as product_interactions
    from session_events
    where event_type = 'event_product'
    group by session_id

),

session_summaries as (

    select
        session_id,
        session_date,
        min(client_at) as started_at,
        max(client_at) as ended_at,
        cast((max(client_ts_ms) - min(client_ts_ms)) / 1000.0 as decimal(12, 3)) as duration_seconds,
        count(*) as event_count,
        count(case when event_type = 'pageview' then 1 end) as pageview_count,
        count(case when event_type = 'event_product' then 1 end) as product_event_count,
        count(case when product_action = 'detail' then 1 end) as detail_count,
        count(case when product_action = 'add' then 1 end) as add_count,
        count(case when product_action = 'remove' then 1 end) as remove_count,
        count(case when product_action = 'purchase' then 1 end) as purchase_count,
        count(distinct product_sku) as distinct_sku_count,
        count(case when is_late then 1 end) as late_event_count
    from session_events
    group by session_id, session_date

)

select
    session_summaries.session_id,
    session_summaries.session_date,
    first_known_users.user_id,
    session_summaries.started_at,
    session_summaries.ended_at,
    session_summaries.duration_seconds,
    session_summaries.event_count,
    session_summaries.pageview_count,
    session_summaries.product_event_count,
    session_summaries.detail_count,
    session_summaries.add_count,
    session_summaries.remove_count,
    session_summaries.purchase_count,
    session_summaries.distinct_sku_count,
    session_summaries.late_event_count,
    coalesce(product_interactions.product_interactions, {{ empty_array() }}) as product_interactions
from session_summaries
left join first_known_users
    on first_known_users.session_id = session_summaries.session_id
left join product_interactions
    on product_interactions.session_id = session_summaries.session_id
{{ order_by_partition('session_summaries.session_date') }}
