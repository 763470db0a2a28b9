{% test unique_combination_of_columns(model, combination_of_columns) %}
{#- Fails on every combination of the columns' values held by more than one row. -#}
{%- set columns = combination_of_columns | join(', ') %}
select {{ columns }}, count(*) as row_count
from {{ model }}
group by {{ columns }}
having count(*) > 1
{% endtest %}
