{% test relationships(model, column_name, to, field, partition_column=none, to_partition_column=none) %}
{#-
    dbt's relationships test, with an optional partition: given `partition_column` (a column of
    the tested model naming the partition its parent row lies in) every key must have a parent
    row with the same key in that partition of `to` (`to_partition_column`, by default the same
    name). The parent is then read only in the partitions the tested rows name, so a partition
    run (whose tested rows are its window's, macros/test_scope.sql) no longer reads the parent's
    whole history. Without `partition_column` it is dbt's own test.
-#}
{%- if partition_column is none %}
    {{ adapter.dispatch('test_relationships', 'dbt')(model, column_name, to, field) }}
{%- else %}
{%- set to_partition_column = to_partition_column or partition_column %}

with child as (
    select
        {{ column_name }} as from_field,
        {{ partition_column }} as from_partition
    from {{ model }}
    where {{ column_name }} is not null
),

parent as (
    select
        {{ field }} as to_field,
        {{ to_partition_column }} as to_partition
    from {{ to }}
    where {{ to_partition_column }} in (select distinct from_partition from child)
)

select
    child.from_field,
    child.from_partition
from child
left join parent
    on child.from_field = parent.to_field
    and child.from_partition = parent.to_partition
where parent.to_field is null
{%- endif %}
{% endtest %}
