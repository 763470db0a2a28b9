{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='partition_date',
        meta={'partition_column': 'partition_date'},
    )
}}

{#-
    One row per partition day, variant and model version that has impressions or unattributed
    clicks. An impression counts on the day it landed, with its clicks and what followed them
    (they land within lookback_days after it: int_recommendation_clicks,
    int_recommendation_conversions), so a run recomputes the lookback days before its window
    whole, like daily_session_stats; an unattributed click counts on the day it landed. A day
    without either has no row.

    A click is a clicked card: the attributed clicks of one impression at one position count
    once (a second click on the same card, back from its page, is counted in repeat_clicks), so
    clicks never exceed the cards shown (shown_items).
-#}
{%- set window = incremental_window() %}
{%- if window %}
    {%- set rebuild_start = lookback_start(window) %}
    {%- set scan_end = shift_days(window.end, lookback_days()) %}
{%- endif %}
{%- set unversioned = "'unversioned'" %}

with impression_counts as (

    select
        event_date as partition_date,
        variant,
        coalesce(model_version, {{ unversioned }}) as model_version,
        count(distinct session_id) as sessions,
        count(*) as impressions,
        sum(shown_count) as shown_items
    from {{ ref('stg_impressions') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, window.end) }}
    {%- endif %}
    group by event_date, variant, coalesce(model_version, {{ unversioned }})

),

clicked_cards as (

    select
        impression_date as partition_date,
        variant,
        coalesce(model_version, {{ unversioned }}) as model_version,
        impression_event_id,
        position,
        count(*) as click_events
    from {{ ref('int_recommendation_clicks') }}
    where is_attributed
    {%- if window %}
        and {{ in_days('event_date', rebuild_start, scan_end) }}
        and {{ in_days('impression_date', rebuild_start, window.end) }}
    {%- endif %}
    group by
        impression_date,
        variant,
        coalesce(model_version, {{ unversioned }}),
        impression_event_id,
        position

),

click_counts as (

    select
        partition_date,
        variant,
        model_version,
        count(*) as clicks,
        sum(click_events) - count(*) as repeat_clicks,
        sum(position) as clicked_position_sum
    from clicked_cards
    group by partition_date, variant, model_version

),

conversion_counts as (

    select
        impression_date as partition_date,
        variant,
        coalesce(model_version, {{ unversioned }}) as model_version,
        count(case when product_action = 'add' then 1 end) as add_to_carts_after_click,
        count(case when product_action = 'purchase' then 1 end) as purchases_after_click
    from {{ ref('int_recommendation_conversions') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, scan_end) }}
        and {{ in_days('impression_date', rebuild_start, window.end) }}
    {%- endif %}
    group by impression_date, variant, coalesce(model_version, {{ unversioned }})

),

unattributed_counts as (

    {# Under the variant and version of the request's impression where one was found, else
       with both null. #}
    select
        event_date as partition_date,
        variant,
        case
            when impression_event_id is not null
                then coalesce(model_version, {{ unversioned }})
        end as model_version,
        count(*) as unattributed_clicks
    from {{ ref('int_recommendation_clicks') }}
    where not is_attributed
    {%- if window %}
        and {{ in_days('event_date', rebuild_start, window.end) }}
    {%- endif %}
    group by
        event_date,
        variant,
        case
            when impression_event_id is not null
                then coalesce(model_version, {{ unversioned }})
        end

),

counts as (

    select
        partition_date, variant, model_version,
        sessions, impressions, shown_items,
        0 as clicks, 0 as repeat_clicks, 0 as clicked_position_sum,
        0 as add_to_carts_after_click, 0 as purchases_after_click, 0 as unattributed_clicks
    from impression_counts
    union all
    select
        partition_date, variant, model_version,
        0, 0, 0,
        clicks, repeat_clicks, clicked_position_sum,
        0, 0, 0
    from click_counts
    union all
    select
        partition_date, variant, model_version,
        0, 0, 0,
        0, 0, 0,
        add_to_carts_after_click, purchases_after_click, 0
    from conversion_counts
    union all
    select
        partition_date, variant, model_version,
        0, 0, 0,
        0, 0, 0,
        0, 0, unattributed_clicks
    from unattributed_counts

),

daily_counts as (

    select
        partition_date,
        variant,
        model_version,
        cast(sum(sessions) as bigint) as sessions,
        cast(sum(impressions) as bigint) as impressions,
        cast(sum(shown_items) as bigint) as shown_items,
        cast(sum(clicks) as bigint) as clicks,
        cast(sum(repeat_clicks) as bigint) as repeat_clicks,
        cast(sum(clicked_position_sum) as bigint) as clicked_position_sum,
        cast(sum(add_to_carts_after_click) as bigint) as add_to_carts_after_click,
        cast(sum(purchases_after_click) as bigint) as purchases_after_click,
        cast(sum(unattributed_clicks) as bigint) as unattributed_clicks
    from counts
    group by partition_date, variant, model_version

)

select
    partition_date,
    variant,
    model_version,
    sessions,
    impressions,
    shown_items,
    clicks,
    {{ ratio('clicks', 'impressions') }} as ctr,
    {{ ratio('clicked_position_sum', 'clicks') }} as mean_clicked_position,
    repeat_clicks,
    add_to_carts_after_click,
    purchases_after_click,
    unattributed_clicks
from daily_counts
{{ order_by_partition('partition_date') }}
