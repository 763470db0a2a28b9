{#-
    Incremental strategy `replace_window_and_keys` (config incremental_strategy, unique_key and
    meta.partition_column): a run deletes every row of its window's partitions and every row
    whose unique_key is among the new rows, then inserts the new rows. The session models use
    it with unique_key session_id and partition_column session_date, so that a run replaces
    its window's partitions whole and, of the lookback days before them, only the sessions it
    rebuilt (those that received an event in the window), not every session of those days.

    The rows replaced by key are looked for from the window's lookback start on only, so that a
    run does not read the whole table: a rebuilt session's partition is in [window start -
    lookback_days, window end), and a session's partition never moves later (raw partitions
    only grow), so its old rows lie there too. (The one exception, a session id that lands again
    after more than history_lookback_days partitions of silence, makes a second session, and its
    earlier one is left as it is: see int_session_events.sql.)

    Plain delete and insert: the same SQL on DuckDB and Snowflake.
-#}

{% macro get_incremental_replace_window_and_keys_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- set partition_column = (config.get('meta') or {}).get('partition_column') -%}
    {%- if not (unique_key is string and partition_column) -%}
        {{ exceptions.raise_compiler_error(
            "replace_window_and_keys needs one unique_key column and meta.partition_column; got "
            ~ "unique_key=" ~ unique_key ~ ", partition_column=" ~ partition_column
        ) }}
    {%- endif -%}
    {%- set window = incremental_window() -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    delete from {{ target }}
    {%- if window %}
    where {{ partition_column }} >= {{ date_literal(lookback_start(window)) }}
        and (
            {{ unique_key }} in (select {{ unique_key }} from {{ source }})
            or ({{ in_days(partition_column, window.start, window.end) }})
        );
    {%- else %}
    where {{ unique_key }} in (select {{ unique_key }} from {{ source }});
    {%- endif %}

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
{% endmacro %}


{% macro rebuilt_sessions_condition(session_id, session_date, events, window) -%}
    {#- True for the sessions a run for the window rebuilds: those whose first event landed in
        the window, and those of the lookback days before it that received an event in it
        (`events` holds session_id and event_date of the events to look in). -#}
    (
        {{ in_days(session_date, window.start, window.end) }}
        or (
            {{ in_days(session_date, lookback_start(window), window.start) }}
            and {{ session_id }} in (
                select session_id
                from {{ events }}
                where {{ in_days('event_date', window.start, window.end) }}
            )
        )
    )
{%- endmacro %}
