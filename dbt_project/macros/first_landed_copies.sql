{#-
    The deduplication rule of the staging models, shared by stg_events (page views and product
    events) and stg_impressions (carousel impressions): a landed row is a duplicate when an
    earlier copy of its event (by event_date, server_ts, source_file, line_number) landed in the
    same partition or in the history_lookback_days partitions before it; every other row is
    kept. So a copy delivered again within that many days of the event's previous copy is
    dropped, and one landing later than that is kept as a new event. Only that many partitions
    before the window are read, whatever the history: a row's previous copy, if it counts,
    landed in [its partition - history_lookback_days, its partition], so within [window start -
    history_lookback_days, window end). The rule is a row's own, never the run's, so any
    grouping of days into runs keeps the same rows.

    Renders the `with` clause of a model, ending with the CTE `first_copies`: the kept raw rows
    of raw.events that satisfy `row_condition` (a SQL predicate on raw.events' columns), with
    the contract's columns, event_date, source_file, line_number and `extra_columns`. The
    model continues with `, <next cte> as (... from first_copies)`. Events are deduplicated
    among the rows of the condition only: the impressions and the other events are two streams.
-#}

{% macro first_landed_copies(row_condition, extra_columns=[]) %}
{%- set window = incremental_window() %}
{%- set history_lookback = history_lookback_days() %}
{%- set columns = [
    'event_id', 'session_id', 'user_id', 'event_type', 'product_action', 'product_sku', 'url',
    'client_ts', 'server_ts', 'source', 'event_date', 'source_file', 'line_number',
] + extra_columns %}

with landed_rows as (

    select
        {%- for column in columns %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ source('raw', 'events') }}
    where {{ row_condition }}
    {%- if window %}
        and {{ in_days('event_date', window.start, window.end) }}
    {%- endif %}

),

{%- if window %}

earlier_landings as (

    {# The window's events that also landed in the lookback partitions before it, with the
       latest of those partitions. Only the window's ids are looked up: the set built is the
       window's, not every id of the lookback days. #}
    select
        event_id,
        max(event_date) as last_earlier_date
    from {{ source('raw', 'events') }}
    where {{ in_days('event_date', history_start(window.start), window.start) }}
        and {{ row_condition }}
        and event_id in (select event_id from landed_rows)
    group by event_id

),
{%- endif %}

repeated_events as (

    {# Events landed more than once in the window or also before it: only their copies need
       comparing (about 1 % of the rows); a window function over every row costs about 1 s a
       day. #}
    select event_id
    from landed_rows
    group by event_id
    having count(*) > 1
    {%- if window %}
    union
    select event_id
    from earlier_landings
    {%- endif %}

),

{%- set previous_copy_in_window %}
        lag(landed_rows.event_date) over (
            partition by landed_rows.event_id
            order by
                landed_rows.event_date,
                landed_rows.server_ts,
                landed_rows.source_file,
                landed_rows.line_number
        )
{%- endset %}

repeated_copies as (

    {# Each copy with the partition of its event's previous copy: the copy before it in the
       window, else the latest one landed in the lookback partitions before the window. #}
    select
        {%- for column in columns %}
        landed_rows.{{ column }},
        {%- endfor %}
        {%- if window %}
        coalesce({{ previous_copy_in_window }}, earlier_landings.last_earlier_date)
        {%- else %}
        {{ previous_copy_in_window }}
        {%- endif %} as previous_copy_date
    from landed_rows
    {%- if window %}
    left join earlier_landings
        on earlier_landings.event_id = landed_rows.event_id
    {%- endif %}
    where landed_rows.event_id in (select event_id from repeated_events)

),

first_copies as (

    select
        {%- for column in columns %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from landed_rows
    where event_id not in (select event_id from repeated_events)
    union all
    select
        {%- for column in columns %}
        {{ column }}{{ "," if not loop.last }}
        {%- endfor %}
    from repeated_copies
    where previous_copy_date is null
        or previous_copy_date
            < cast({{ dbt.dateadd('day', -history_lookback, 'event_date') }} as date)

)
{%- endmacro %}


{% macro is_impression(event_type='event_type') -%}
    {#- True for an impression row of raw.events; false for every other row, one whose
        event_type is null included (stg_events keeps it, for its tests to find). -#}
    coalesce({{ event_type }}, '') = 'impression'
{%- endmacro %}
