{% test unique_within_days(model, column_name, partition_column, days=none) %}
{#- Fails on every value held by two rows whose partitions are at most `days` apart (the same
    partition included): unique within any days + 1 consecutive partitions. `days` defaults to
    history_lookback_days, the horizon within which stg_events keeps an event once. -#}
{%- set days = history_lookback_days() if days is none else days %}

with repeated_values as (

    select {{ column_name }}
    from {{ model }}
    where {{ column_name }} is not null
    group by {{ column_name }}
    having count(*) > 1

),

partitions_of_values as (

    select
        {{ column_name }},
        {{ partition_column }},
        lag({{ partition_column }}) over (
            partition by {{ column_name }} order by {{ partition_column }}
        ) as previous_partition
    from {{ model }}
    where {{ column_name }} in (select {{ column_name }} from repeated_values)

)

select
    {{ column_name }},
    {{ partition_column }},
    previous_partition
from partitions_of_values
where previous_partition >= cast({{ dbt.dateadd('day', -days, partition_column) }} as date)
{% endtest %}
