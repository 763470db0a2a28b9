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
    - json_field_text, json_field_text_array: no JSON access macro in dbt;
    - array_length, array_items_join (with array_item_value, array_item_position): dbt has
      array_construct, array_append and array_concat, nothing to measure or unnest an array;
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


{% macro json_field_text_array(json_column, field) -%}
    {#- A top-level field of a JSON document holding a list of strings, as an array of strings
        (DuckDB VARCHAR[], Snowflake ARRAY). -#}
    {{ return(adapter.dispatch('json_field_text_array')(json_column, field)) }}
{%- endmacro %}

{% macro duckdb__json_field_text_array(json_column, field) -%}
    cast(json_extract({{ json_column }}, '$.{{ field }}') as varchar[])
{%- endmacro %}

{% macro snowflake__json_field_text_array(json_column, field) -%}
    {{ json_column }}:{{ field }}::array
{%- endmacro %}


{% macro array_length(array_expression) -%}
    {#- The number of elements of an array. -#}
    {{ return(adapter.dispatch('array_length')(array_expression)) }}
{%- endmacro %}

{% macro duckdb__array_length(array_expression) -%}
    len({{ array_expression }})
{%- endmacro %}

{% macro snowflake__array_length(array_expression) -%}
    array_size({{ array_expression }})
{%- endmacro %}


{% macro array_items_join(array_expression, alias) -%}
    {#- Joins each row of the relation just before it in a `from` clause to the elements of its
        array, one row per element (none for an empty array), named `alias`: read an element
        with array_item_value(alias) and its 1-based position with array_item_position(alias).
        Put it right after the relation whose array it unnests, before any other join
        (Snowflake's lateral flatten follows a comma). -#}
    {{ return(adapter.dispatch('array_items_join')(array_expression, alias)) }}
{%- endmacro %}

{% macro duckdb__array_items_join(array_expression, alias) -%}
    cross join unnest({{ array_expression }}) with ordinality as {{ alias }}(item_value, item_position)
{%- endmacro %}

{% macro snowflake__array_items_join(array_expression, alias) -%}
    , lateral flatten(input => {{ array_expression }}) as {{ alias }}
{%- endmacro %}


{% macro array_item_value(alias) -%}
    {#- The element of array_items_join's row, as text. -#}
    {{ return(adapter.dispatch('array_item_value')(alias)) }}
{%- endmacro %}

{% macro duckdb__array_item_value(alias) -%}
    cast({{ alias }}.item_value as varchar)
{%- endmacro %}

{% macro snowflake__array_item_value(alias) -%}
    {{ alias }}.value::varchar
{%- endmacro %}


{% macro array_item_position(alias) -%}
    {#- The 1-based position of array_items_join's element in its array, as an integer. -#}
    {{ return(adapter.dispatch('array_item_position')(alias)) }}
{%- endmacro %}

{% macro duckdb__array_item_position(alias) -%}
    cast({{ alias }}.item_position as integer)
{%- endmacro %}

{% macro snowflake__array_item_position(alias) -%}
    cast({{ alias }}.index + 1 as integer)
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
