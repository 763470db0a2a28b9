{% test expression_is_true(model, expression, column_name=none) %}
{#- Fails on every row where the expression is false (a null result passes). -#}
select *
from {{ model }}
where not ({{ expression }})
{% endtest %}
