{#-
    The partition window of a run: min_date (inclusive) and max_date (exclusive), ISO dates.
    Dagster passes it in the environment, RECS_PARTITION_MIN_DATE and RECS_PARTITION_MAX_DATE;
    by hand, --vars '{"min_date": "2026-11-03", "max_date": "2026-11-04"}' does the same (when
    either var is given the environment is not read). Without either a run covers every partition.

    Why the environment: dbt re-parses the whole project when --vars differ from the parsed
    project's, which every partition run did (seconds of each run). The environment variables
    are read only while the run executes (`execute`), never while parsing, so dbt records no
    use of them and a changed window keeps the partial parse.
-#}

{% macro requested_window() %}
    {%- set min_date = var('min_date', none) -%}
    {%- set max_date = var('max_date', none) -%}
    {%- if min_date is none and max_date is none and execute -%}
        {%- set min_date = env_var('RECS_PARTITION_MIN_DATE', '') or none -%}
        {%- set max_date = env_var('RECS_PARTITION_MAX_DATE', '') or none -%}
    {%- endif -%}
    {%- if min_date is none and max_date is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if min_date is none or max_date is none -%}
        {{ exceptions.raise_compiler_error(
            "Pass both min_date (inclusive) and max_date (exclusive), e.g. --vars "
            ~ "'{\"min_date\": \"2026-11-03\", \"max_date\": \"2026-11-04\"}' or "
            ~ "RECS_PARTITION_MIN_DATE and RECS_PARTITION_MAX_DATE; got min_date="
            ~ min_date ~ ", max_date=" ~ max_date
        ) }}
    {%- endif -%}
    {%- set start = _parse_iso_date('min_date', min_date) -%}
    {%- set end = _parse_iso_date('max_date', max_date) -%}
    {%- if end <= start -%}
        {{ exceptions.raise_compiler_error(
            "Empty partition window: max_date (" ~ end ~ ") must be after min_date (" ~ start
            ~ "); max_date is exclusive, so one day is min_date=D, max_date=D+1"
        ) }}
    {%- endif -%}
    {{ return({'start': start, 'end': end}) }}
{% endmacro %}


{% macro incremental_window() %}
    {#- The window this model rebuilds: the requested one on an incremental run, none (everything)
        when the table is built from scratch (first run or --full-refresh). -#}
    {%- set window = requested_window() -%}
    {%- if window is not none and is_incremental() -%}
        {{ return(window) }}
    {%- endif -%}
    {{ return(none) }}
{% endmacro %}


{% macro lookback_days() %}
    {#- How many partitions after its first one a session may still receive events. -#}
    {%- set value = var('lookback_days') | string -%}
    {%- if not modules.re.fullmatch('[0-9]+', value) -%}
        {{ exceptions.raise_compiler_error(
            "lookback_days must be a whole number of days (0 or more), got " ~ value
        ) }}
    {%- endif -%}
    {{ return(value | int) }}
{% endmacro %}


{% macro history_lookback_days() %}
    {#- How many partitions before what it rebuilds a run reads to link its rows to earlier
        ones: the previous copy of an event (stg_events, stg_event_duplicates), an earlier event
        of a session (int_session_events), the previous day of a sku (item_stats). Never fewer
        than lookback_days, so that an event kept twice (its copies further apart than this)
        can never be attached twice to one session. -#}
    {%- set value = var('history_lookback_days') | string -%}
    {%- if not modules.re.fullmatch('[0-9]+', value) -%}
        {{ exceptions.raise_compiler_error(
            "history_lookback_days must be a whole number of days, got " ~ value
        ) }}
    {%- endif -%}
    {%- if value | int < lookback_days() -%}
        {{ exceptions.raise_compiler_error(
            "history_lookback_days (" ~ value ~ ") must be at least lookback_days ("
            ~ lookback_days() ~ ")"
        ) }}
    {%- endif -%}
    {{ return(value | int) }}
{% endmacro %}


{% macro history_start(day) %}
    {#- The first partition a run reads history from, for a run that rebuilds from `day` on. -#}
    {{ return(shift_days(day, -history_lookback_days())) }}
{% endmacro %}


{% macro lookback_start(window) %}
    {#- The first partition a run of `window` may rewrite: its sessions' partitions begin up to
        lookback_days before the window, since the window's events can still reach them. -#}
    {{ return(shift_days(window.start, -lookback_days())) }}
{% endmacro %}


{% macro order_by_partition(partition_column) -%}
    {#- Ends a model's select on a run that covers more than one day (a first build, a full
        refresh, a backfill): its rows in partition order, so that each block of the table
        (DuckDB row group, Snowflake micro-partition) holds a few days and a later run reading
        a day skips the others by their min/max. Without it a backfill's hash-ordered rows
        spread every day over nearly every block, and each later day's run read the whole
        table. A one-day run
        writes one or two days, at the table's end: no sort. -#}
    {%- set window = incremental_window() -%}
    {%- if window is none or (window.end - window.start).days > 1 %}
order by {{ partition_column }}
    {%- endif -%}
{%- endmacro %}


{% macro shift_days(day, days) %}
    {{ return(day + modules.datetime.timedelta(days=days)) }}
{% endmacro %}


{% macro date_literal(day) -%}
    cast('{{ day.isoformat() }}' as date)
{%- endmacro %}


{% macro in_days(column, start, end) -%}
    {#- column in [start, end): a half-open range of days, as partition windows are. -#}
    {{ column }} >= {{ date_literal(start) }} and {{ column }} < {{ date_literal(end) }}
{%- endmacro %}


{% macro _parse_iso_date(name, value) %}
    {%- set text = value | string -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error(
            name ~ " must be an ISO date like 2026-11-03, got " ~ text
        ) }}
    {%- endif -%}
    {{ return(modules.datetime.date.fromisoformat(text)) }}
{% endmacro %}
