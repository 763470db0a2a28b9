{% test matches_payload(model, column_name, payload_column='payload', field=none, partition_column='event_date') %}
{#- Fails on every row whose parsed column differs from the same field of its raw JSON payload.
    With a partition window in --vars only the window's partitions are read. -#}
{%- set window = requested_window() %}
select {{ column_name }}
from {{ model }}
where {{ json_field_text(payload_column, field or column_name) }}
    is distinct from cast({{ column_name }} as varchar)
{%- if window %}
    and {{ in_days(partition_column, window.start, window.end) }}
{%- endif %}
{% endtest %}
