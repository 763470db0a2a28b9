{{
    config(
        materialized='incremental',
        incremental_strategy='replace_window_and_keys',
        unique_key='session_id',
        meta={'partition_column': 'session_date'},
    )
}}

{#-
    The A/B test's unit: one row per session that saw a carousel, per variant and model version
    that answered it (a deploy during the session gives it a row per version), in the partition
    of the session's first impression (session_date). As int_session_events does for events, a
    session holds what landed in that partition or the lookback_days partitions after it: its
    impressions, the cards of them it clicked (attributed clicks, a card once) and its adds to
    cart after those clicks (int_recommendation_conversions); later ones are left out.

    A run for the window rebuilds the sessions whose first impression landed in the window, and
    those of the lookback days before it that received an impression, a recommended click or
    an add after one in the window; it reads [window start - lookback_days, window end +
    lookback_days). A session seen there began earlier when one of its impressions landed in
    the history_lookback_days partitions before: int_session_events' rule, and its exception
    (a session whose impressions stop for longer than that and come back makes a second row).
-#}
{%- set window = incremental_window() %}
{%- set lookback = lookback_days() %}
{%- if window %}
    {%- set rebuild_start = lookback_start(window) %}
    {%- set scan_end = shift_days(window.end, lookback) %}
{%- endif %}

with candidate_impressions as (

    select
        event_id,
        session_id,
        variant,
        coalesce(model_version, 'unversioned') as model_version,
        event_date
    from {{ ref('stg_impressions') }}
    {%- if window %}
    where {{ in_days('event_date', rebuild_start, scan_end) }}
    {%- endif %}

),

recommended_clicks as (

    select
        session_id,
        impression_event_id,
        position,
        event_date
    from {{ ref('int_recommendation_clicks') }}
    where is_attributed
    {%- if window %}
        and {{ in_days('event_date', rebuild_start, scan_end) }}
    {%- endif %}

),

adds_after_clicks as (

    select
        event_id,
        session_id,
        impression_event_id,
        event_date
    from {{ ref('int_recommendation_conversions') }}
    where product_action = 'add'
    {%- if window %}
        and {{ in_days('event_date', rebuild_start, scan_end) }}
    {%- endif %}

),

session_first_partitions as (

    select
        session_id,
        min(event_date) as session_date
    from candidate_impressions
    group by session_id

),

{%- if window %}

sessions_started_before_rebuild as (

    select distinct session_id
    from {{ ref('stg_impressions') }}
    where {{ in_days('event_date', history_start(rebuild_start), rebuild_start) }}
        and session_id in (select session_id from candidate_impressions)

),

session_activity as (

    select session_id, event_date from candidate_impressions
    union all
    select session_id, event_date from recommended_clicks
    union all
    select session_id, event_date from adds_after_clicks

),
{%- endif %}

sessions_to_build as (

    select
        session_first_partitions.session_id,
        session_first_partitions.session_date
    from session_first_partitions
    {%- if window %}
    left join sessions_started_before_rebuild
        on sessions_started_before_rebuild.session_id = session_first_partitions.session_id
    where sessions_started_before_rebuild.session_id is null
        and {{ rebuilt_sessions_condition(
            'session_first_partitions.session_id',
            'session_first_partitions.session_date',
            'session_activity',
            window,
        ) }}
    {%- endif %}

),

session_impressions as (

    select
        candidate_impressions.event_id,
        candidate_impressions.session_id,
        sessions_to_build.session_date,
        candidate_impressions.variant,
        candidate_impressions.model_version
    from candidate_impressions
    inner join sessions_to_build
        on sessions_to_build.session_id = candidate_impressions.session_id
    where candidate_impressions.event_date
        <= cast({{ dbt.dateadd('day', lookback, 'sessions_to_build.session_date') }} as date)

),

clicked_cards as (

    select distinct
        session_impressions.session_id,
        session_impressions.session_date,
        session_impressions.variant,
        session_impressions.model_version,
        recommended_clicks.impression_event_id,
        recommended_clicks.position
    from recommended_clicks
    inner join session_impressions
        on session_impressions.event_id = recommended_clicks.impression_event_id
    where recommended_clicks.event_date
        <= cast({{ dbt.dateadd('day', lookback, 'session_impressions.session_date') }} as date)

),

session_adds as (

    select
        session_impressions.session_id,
        session_impressions.session_date,
        session_impressions.variant,
        session_impressions.model_version
    from adds_after_clicks
    inner join session_impressions
        on session_impressions.event_id = adds_after_clicks.impression_event_id
    where adds_after_clicks.event_date
        <= cast({{ dbt.dateadd('day', lookback, 'session_impressions.session_date') }} as date)

),

counts as (

    select
        session_id, session_date, variant, model_version,
        1 as impressions, 0 as clicks, 0 as add_to_carts
    from session_impressions
    union all
    select
        session_id, session_date, variant, model_version,
        0, 1, 0
    from clicked_cards
    union all
    select
        session_id, session_date, variant, model_version,
        0, 0, 1
    from session_adds

)

select
    cast(session_id as varchar) as session_id,
    cast(session_date as date) as session_date,
    cast(variant as varchar) as variant,
    cast(model_version as varchar) as model_version,
    cast(sum(impressions) as integer) as impressions,
    cast(sum(clicks) as integer) as clicks,
    cast(sum(add_to_carts) as integer) as add_to_carts
from counts
group by session_id, session_date, variant, model_version
{{ order_by_partition('session_date') }}
