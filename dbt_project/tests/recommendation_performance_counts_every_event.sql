{#- Nothing lost or counted twice between the staged events and recommendation_performance:
    per day, its impressions are stg_impressions' of that day, its clicks and repeat clicks the
    attributed clicks of those impressions, its unattributed clicks the others landed that day,
    and its adds and purchases after a click int_recommendation_conversions' of those
    impressions. Fails on each day and count that disagree. With a window, the days a run
    rebuilds. Several parents: meta.dagster.ref attaches it to recommendation_performance. -#}
{{ config(meta={'dagster': {'ref': {'name': 'recommendation_performance'}}}) }}
{%- set window = requested_window() %}

{#- The days a run rebuilds, or all of them. -#}
{%- set scope = {} %}
{%- for column in ['partition_date', 'event_date', 'impression_date'] %}
    {%- do scope.update({column: (
        ' and ' ~ in_days(column, lookback_start(window), window.end)) if window else ''}) %}
{%- endfor %}

with mart as (

    select
        partition_date,
        sum(impressions) as impressions,
        sum(clicks + repeat_clicks) as attributed_clicks,
        sum(unattributed_clicks) as unattributed_clicks,
        sum(add_to_carts_after_click + purchases_after_click) as conversions
    from {{ ref('recommendation_performance') }}
    where 1 = 1 {{ scope['partition_date'] }}
    group by partition_date

),

staged as (

    select event_date as partition_date, 'impressions' as measure, count(*) as staged_count
    from {{ ref('stg_impressions') }}
    where 1 = 1 {{ scope['event_date'] }}
    group by event_date
    union all
    select impression_date, 'attributed_clicks', count(*)
    from {{ ref('int_recommendation_clicks') }}
    where is_attributed {{ scope['impression_date'] }}
    group by impression_date
    union all
    select event_date, 'unattributed_clicks', count(*)
    from {{ ref('int_recommendation_clicks') }}
    where not is_attributed {{ scope['event_date'] }}
    group by event_date
    union all
    select impression_date, 'conversions', count(*)
    from {{ ref('int_recommendation_conversions') }}
    where 1 = 1 {{ scope['impression_date'] }}
    group by impression_date

),

mart_counts as (

    select partition_date, 'impressions' as measure, impressions as mart_count from mart
    union all
    select partition_date, 'attributed_clicks', attributed_clicks from mart
    union all
    select partition_date, 'unattributed_clicks', unattributed_clicks from mart
    union all
    select partition_date, 'conversions', conversions from mart

),

compared as (

    select
        coalesce(mart_counts.partition_date, staged.partition_date) as partition_date,
        coalesce(mart_counts.measure, staged.measure) as measure,
        coalesce(mart_counts.mart_count, 0) as mart_count,
        coalesce(staged.staged_count, 0) as staged_count
    from mart_counts
    full outer join staged
        on staged.partition_date = mart_counts.partition_date
        and staged.measure = mart_counts.measure

)

select
    partition_date,
    measure,
    mart_count,
    staged_count
from compared
where mart_count <> staged_count
