{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        meta={'partition_column': 'event_date'},
    )
}}

{%- set window = incremental_window() %}
{%- set history_lookback = history_lookback_days() %}

{#-
    first_seen_date is the first day of the sku's current run of days with product events, a
    run ending where the sku has none for more than history_lookback_days days: a sku back after
    a longer absence is seen for the first time again. Every row carries its run's first day,
    so a run reads the window's skus' rows of the history_lookback_days days before it (where
    the previous day of a run continuing into the window lies), never the whole table. The rule
    is the sku's days', never the run's, so any grouping of days into runs gives the same rows.
-#}

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

item_days as (

    {# The window's sku days, and the lookback days of the same skus, which carry their run's
       first day. #}
    select
        event_date,
        product_sku,
        cast(null as date) as carried_first_seen_date
    from daily_item_counts
    {%- if window %}
    union all
    select
        event_date,
        product_sku,
        first_seen_date as carried_first_seen_date
    from {{ this }}
    where {{ in_days('event_date', history_start(window.start), window.start) }}
        and product_sku in (select product_sku from daily_item_counts)
    {%- endif %}

),

run_starts as (

    select
        event_date,
        product_sku,
        case
            when carried_first_seen_date is not null then carried_first_seen_date
            when previous_date is null
                or previous_date
                    < cast({{ dbt.dateadd('day', -history_lookback, 'event_date') }} as date)
                then event_date
        end as run_first_seen_date
    from (
        select
            event_date,
            product_sku,
            carried_first_seen_date,
            lag(event_date) over (partition by product_sku order by event_date) as previous_date
        from item_days
    ) as item_days_with_previous

),

first_seen as (

    {# A day's run began at the latest run start up to it (run starts only grow). #}
    select
        event_date,
        product_sku,
        max(run_first_seen_date) over (
            partition by product_sku
            order by event_date
            rows between unbounded preceding and current row
        ) as first_seen_date
    from run_starts

)

select
    daily_item_counts.event_date,
    daily_item_counts.product_sku,
    daily_item_counts.view_count,
    daily_item_counts.add_count,
    daily_item_counts.remove_count,
    daily_item_counts.purchase_count,
    daily_item_counts.session_count,
    first_seen.first_seen_date
from daily_item_counts
inner join first_seen
    on first_seen.product_sku = daily_item_counts.product_sku
    and first_seen.event_date = daily_item_counts.event_date
{{ order_by_partition('daily_item_counts.event_date') }}
