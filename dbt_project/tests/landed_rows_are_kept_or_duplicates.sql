{#- Every raw row of a partition but the impressions (landed_impressions_are_kept checks
    those) is either the copy stg_events keeps or a row of stg_event_duplicates. Fails on a
    partition where the counts disagree (a raw partition reloaded without re-running dbt on it,
    say). With a window in --vars only its days. Three parents: meta.dagster.ref attaches it to
    stg_event_duplicates as an asset check. -#}
{{ config(meta={'dagster': {'ref': {'name': 'stg_event_duplicates'}}}) }}
{%- set window = requested_window() %}

with raw_rows as (

    select
        event_date,
        count(*) as raw_rows
    from {{ source('raw', 'events') }}
    where not ({{ is_impression() }})
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}
    group by event_date

),

kept_rows as (

    select
        event_date,
        count(*) as kept_rows
    from {{ ref('stg_events') }}
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}
    group by event_date

),

duplicate_rows as (

    select
        event_date,
        count(*) as duplicate_rows
    from {{ ref('stg_event_duplicates') }}
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}
    group by event_date

),

partition_dates as (

    select event_date from raw_rows
    union
    select event_date from kept_rows
    union
    select event_date from duplicate_rows

)

select
    partition_dates.event_date,
    coalesce(raw_rows.raw_rows, 0) as raw_rows,
    coalesce(kept_rows.kept_rows, 0) as kept_rows,
    coalesce(duplicate_rows.duplicate_rows, 0) as duplicate_rows
from partition_dates
left join raw_rows on raw_rows.event_date = partition_dates.event_date
left join kept_rows on kept_rows.event_date = partition_dates.event_date
left join duplicate_rows on duplicate_rows.event_date = partition_dates.event_date
where coalesce(raw_rows.raw_rows, 0)
    <> coalesce(kept_rows.kept_rows, 0) + coalesce(duplicate_rows.duplicate_rows, 0)
