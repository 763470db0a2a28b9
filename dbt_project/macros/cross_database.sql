{#-
    Where DuckDB (target local) and Snowflake (target prod) spell SQL differently, models call
    dbt's own cross-database macros (dbt.dateadd, dbt.datediff, ...) and, where dbt-core has no
    macro for the job, the ones below; adapter.dispatch picks the running adapter's spelling.
    dbt.dateadd returns a timestamp on DuckDB: a model that needs a date casts it back.

    Kept here because dbt has no equivalent:
    - epoch_ms_to_timestamp: dbt has no conversion from epoch milliseconds;
    - record_of: no macro builds a struct / object of named fields;
    - array_agg_ordered: dbt.listagg concatenates strings, it builds no array;
    - empty_array: dbt.array_construct() is an integer[] on DuckDB, which coalesce will not mix
      with an array of records; [] takes the other side's type;
    - json_field_text: no JSON access macro in dbt;
    - median_of: no median macro in dbt (both warehouses spell it median; one place to change);
    - ratio: plain SQL, a shorthand for a guarded division.
-#}

{% macro epoch_ms_to_timestamp(epoch_ms) -%}
    {{ return(adapter.dispatch('epoch_ms_to_timestamp')(epoch_ms)) }}
{%- endmacro %}

{% macro duckdb__epoch_ms_to_timestamp(epoch_ms) -%}
    epoch_ms(cast({{ epoch_ms }} as bigint))
{%- endmacro %}

{% macro snowflake__epoch_ms_to_timestamp(epoch_ms) -%}
    to_timestamp_ntz({{ epoch_ms }}, 3)
{%- endmacro %}


{% macro record_of(fields) -%}
    {#- One value holding named fields: fields is a list of (name, expression) pairs. -#}
    {{ return(adapter.dispatch('record_of')(fields)) }}
{%- endmacro %}

{% macro duckdb__record_of(fields) -%}
    struct_pack({% for name, expression in fields %}{{ name }} := {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro snowflake__record_of(fields) -%}
    object_construct({% for name, expression in fields %}'{{ name }}', {{ expression }}{{ ", " if not loop.last }}{% endfor %})
{%- endmacro %}


{% macro array_agg_ordered(expression, order_by) -%}
    {#- The group's values as an array in order_by order. Aggregate only the rows you want:
        DuckDB keeps nulls in a list and Snowflake drops them. -#}
    {{ return(adapter.dispatch('array_agg_ordered')(expression, order_by)) }}
{%- endmacro %}

{% macro duckdb__array_agg_ordered(expression, order_by) -%}
    list({{ expression }} order by {{ order_by }})
{%- endmacro %}

{% macro snowflake__array_agg_ordered(expression, order_by) -%}
    array_agg({{ expression }}) within group (order by {{ order_by }})
{%- endmacro %}


{% macro empty_array() -%}
    {{ return(adapter.dispatch('empty_array')()) }}
{%- endmacro %}

{% macro duckdb__empty_array() -%}
    []
{%- endmacro %}

{% macro snowflake__empty_array() -%}
    array_construct()
{%- endmacro %}


{% macro json_field_text(json_column, field) -%}
    {#- A top-level field of a JSON document as text (numbers as their digits), null if absent. -#}
    {{ return(adapter.dispatch('json_field_text')(json_column, field)) }}
{%- endmacro %}

{% macro duckdb__json_field_text(json_column, field) -%}
    json_extract_string({{ json_column }}, '$.{{ field }}')
{%- endmacro %}

{% macro snowflake__json_field_text(json_column, field) -%}
    {{ json_column }}:{{ field }}::varchar
{%- endmacro %}


{% macro median_of(expression) -%}
    {#- Interpolated median (the mean of the two middle values of an even count), as a double. -#}
    {{ return(adapter.dispatch('median_of')(expression)) }}
{%- endmacro %}

{% macro default__median_of(expression) -%}
    cast(median(cast({{ expression }} as double)) as double)
{%- endmacro %}


{% macro ratio(numerator, denominator) -%}
    {#- numerator / denominator as a double; null when the denominator is 0. -#}
    case when {{ denominator }} > 0 then cast({{ numerator }} as double) / {{ denominator }} end
{%- endmacro %}
