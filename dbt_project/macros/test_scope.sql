{#-
    A partition run's data tests read only the partitions the run may have rewritten, not the
    whole history: with a window [min_date, max_date) every test on a partitioned model or
    source reads the rows whose partition column is in [min_date - lookback_days, max_date)
    (the lookback days are those whose sessions the run rebuilds). A run without a window (a
    full build, `dbt test` by hand) still tests every row. Without this a day's tests scanned
    the whole warehouse, so each day's run grew with the history behind it.

    Every partitioned model and source names its partition column in meta.partition_column. A
    test's own `where` config still applies, and-ed with the window.

    dbt renders a generic test's `model` argument through get_where_subquery; this project's
    default__ version takes precedence over dbt's.
-#}

{% macro default__get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {#- While parsing, dbt renders tests without this project's macros: no window then. -#}
    {%- set window = requested_window() if execute else none -%}
    {%- set partition_column = tested_partition_column() if window else none -%}
    {%- if partition_column -%}
        {%- do conditions.append(
            in_days(partition_column, lookback_start(window), window.end)
        ) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ conditions | join(' and ') }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}


{% macro tested_partition_column() -%}
    {#- The partition column of the model or source the running test is attached to, or none. -#}
    {%- set tested = model.get('attached_node') -%}
    {%- if not tested -%}
        {%- set sources = [] -%}
        {%- for node_id in model.depends_on.nodes if node_id.startswith('source.') -%}
            {%- do sources.append(node_id) -%}
        {%- endfor -%}
        {%- set tested = sources[0] if sources | length == 1 else none -%}
    {%- endif -%}
    {%- set node = graph.nodes.get(tested) or graph.sources.get(tested) if tested else none -%}
    {%- if node -%}
        {{ return((node.config.get('meta') or {}).get('partition_column')) }}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
