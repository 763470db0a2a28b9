{#- No impression lost: every impression row of raw.events is either the copy stg_impressions
    keeps or, by its rule, a duplicate (an earlier copy of its event landed in its partition or
    in the history_lookback_days partitions before it). Fails on each raw row that is neither
    (a raw partition reloaded without re-running dbt on it, say). With a window in --vars only
    its days. Two parents: meta.dagster.ref attaches it to stg_impressions as an asset check. -#}
{{ config(meta={'dagster': {'ref': {'name': 'stg_impressions'}}}) }}
{%- set window = requested_window() %}
{%- set history_lookback = history_lookback_days() %}

with landed_impressions as (

    select
        event_id,
        server_ts,
        event_date,
        source_file,
        line_number
    from {{ source('raw', 'events') }}
    where {{ is_impression() }}
    {%- if window %}
        and {{ in_days('event_date', history_start(window.start), window.end) }}
    {%- endif %}

),

tested_rows as (

    select
        event_id,
        server_ts,
        event_date,
        source_file,
        line_number
    from landed_impressions
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

kept_rows as (

    select
        event_date,
        source_file,
        line_number
    from {{ ref('stg_impressions') }}
    {%- if window %}
    where {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

)

select
    tested_rows.event_id,
    tested_rows.event_date,
    tested_rows.source_file,
    tested_rows.line_number
from tested_rows
left join kept_rows
    on kept_rows.event_date = tested_rows.event_date
    and kept_rows.source_file = tested_rows.source_file
    and kept_rows.line_number = tested_rows.line_number
where kept_rows.source_file is null
    and not exists (
        select 1
        from landed_impressions as earlier
        where earlier.event_id = tested_rows.event_id
            and earlier.event_date
                >= cast({{ dbt.dateadd('day', -history_lookback, 'tested_rows.event_date') }} as date)
            and (
                earlier.event_date < tested_rows.event_date
                or (
                    earlier.event_date = tested_rows.event_date
                    and (
                        earlier.server_ts < tested_rows.server_ts
                        or (
                            earlier.server_ts = tested_rows.server_ts
                            and (
                                earlier.source_file < tested_rows.source_file
                                or (
                                    earlier.source_file = tested_rows.source_file
                                    and earlier.line_number < tested_rows.line_number
                                )
                            )
                        )
                    )
                )
            )
    )
