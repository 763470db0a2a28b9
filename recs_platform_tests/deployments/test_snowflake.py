"""deployments/snowflake: every statement parsed with sqlglot's Snowflake dialect, the raw tables
against the loader's schema, the roles and grants, the stage and the pipe against what Firehose
writes.

sqlglot 30.22 (constraints.txt) parses these statements only as `exp.Command`, i.e. as raw text
with no structure to check (COMMAND_ONLY below; a new kind of Command fallback fails the test):
  CREATE ROLE, CREATE USER, CREATE PIPE (its COPY INTO is parsed separately below), SHOW PIPES,
  GRANT ROLE ... TO ROLE / TO USER, GRANT ... ON PIPE, GRANT ... ON ALL / FUTURE ... IN SCHEMA.
Everything else parses into real expressions: USE ROLE; CREATE WAREHOUSE, DATABASE, SCHEMA,
TABLE, STORAGE INTEGRATION, FILE FORMAT, STAGE; DESCRIBE INTEGRATION; and GRANT on a warehouse,
database, schema, table, integration, stage or file format. Role names in Command statements are
checked with regular expressions over their text.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

import pytest
import sqlglot
from cfnlint.decode import cfn_yaml
from sqlglot import exp

from recs_platform.warehouse.schema import (
    EVENTS_TABLE,
    RAW_EVENT_COLUMNS,
    REJECTED_EVENT_COLUMNS,
    REJECTED_TABLE,
    create_table_sql,
)
from recs_platform_tests.fakes import FIREHOSE_FILE_EXTENSION

REPO = Path(__file__).resolve().parents[2]
SQL_DIR = REPO / "deployments" / "snowflake"
PLACEHOLDERS = {
    "AWS_ACCOUNT_ID": "111122223333",
    "LANDING_BUCKET": "recs-landing-test",
    "LANDING_PREFIX": "shop/",
}
ROLES = {"recs_loader", "recs_transformer", "recs_reader", "recs_pipeline"}
SYSTEM_ROLES = {"SYSADMIN", "SECURITYADMIN", "ACCOUNTADMIN"}
COMMAND_ONLY = [
    re.compile(pattern, re.IGNORECASE | re.DOTALL)
    for pattern in (
        r"CREATE ROLE IF NOT EXISTS \w+",
        r"CREATE USER IF NOT EXISTS \w+",
        r"CREATE PIPE IF NOT EXISTS [\w.]+",
        r"SHOW PIPES\b",
        r"GRANT ROLE \w+ TO (ROLE|USER) \w+",
        r"GRANT [\w, ]+ ON PIPE [\w.]+ TO ROLE \w+",
        r"GRANT [\w, ]+ ON (ALL|FUTURE) \w+ IN SCHEMA [\w.]+ TO ROLE \w+",
    )
]


def render(text: str) -> str:
    for name, value in PLACEHOLDERS.items():
        text = text.replace("{{" + name + "}}", value)
    return text


def sql_files() -> list[Path]:
    return sorted(SQL_DIR.glob("*.sql"))


@functools.cache
def statements() -> tuple[exp.Expression, ...]:
    logging.getLogger("sqlglot").setLevel(logging.ERROR)  # the Command fallbacks say so
    parsed: list[exp.Expression] = []
    for path in sql_files():
        parsed += [s for s in sqlglot.parse(render(path.read_text()), read="snowflake") if s]
    return tuple(parsed)


def command_text(statement: exp.Command) -> str:
    rest = statement.expression
    rest = rest.sql() if isinstance(rest, exp.Expression) else (rest or "")
    text = f"{statement.this} {rest}"
    return " ".join(re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL).split())


def creates(kind: str) -> dict[str, exp.Create]:
    found = {}
    for s in statements():
        if isinstance(s, exp.Create) and s.kind == kind:
            name = s.this.this if isinstance(s.this, exp.Schema) else s.this
            found[name.sql(dialect="snowflake").lower()] = s
    return found


def properties(create: exp.Create) -> dict[str, str]:
    found = {}
    for prop in create.args["properties"].expressions:
        if type(prop) is exp.Property:
            found[prop.name.upper()] = prop.args["value"].sql(dialect="snowflake")
        else:
            name, _, value = prop.sql(dialect="snowflake").partition("=")
            found[name.upper()] = value
    return found


def grants() -> list[tuple[set[str], str, str, str]]:
    """(privileges, securable kind, securable, role) of every GRANT sqlglot parses."""
    rows = []
    for s in statements():
        if isinstance(s, exp.Grant):
            privileges = {p.this.name.upper() for p in s.args["privileges"]}
            kind, securable = s.args["kind"].upper(), s.args["securable"].sql().lower()
            for principal in s.args["principals"]:
                rows.append((privileges, kind, securable, principal.name))
    return rows


def test_the_files_run_in_order_and_have_only_known_placeholders() -> None:
    names = [path.name for path in sql_files()]
    assert [name[:3] for name in names] == ["01_", "02_", "03_", "04_", "05_"], names
    for path in sql_files():
        used = set(re.findall(r"\{\{(\w+)\}\}", path.read_text()))
        assert used <= set(PLACEHOLDERS), (path.name, used)
        assert not re.search(r"\{\{\w+\}\}", render(path.read_text())), path.name


def test_every_statement_parses_and_only_known_ones_fall_back_to_command() -> None:
    parsed = statements()
    assert len(parsed) > 40
    commands = [s for s in parsed if isinstance(s, exp.Command)]
    for command in commands:
        text = command_text(command)
        assert any(p.match(text) for p in COMMAND_ONLY), f"unexpected Command: {text[:200]}"
    real = [s for s in parsed if not isinstance(s, exp.Command)]
    assert len(real) > len(commands)
    kinds = {s.kind for s in real if isinstance(s, exp.Create)}
    assert kinds >= {
        "WAREHOUSE",
        "DATABASE",
        "SCHEMA",
        "TABLE",
        "STORAGE INTEGRATION",
        "FILE FORMAT",
        "STAGE",
    }
    assert sum(isinstance(s, exp.Grant) for s in real) >= 15


def test_the_database_schemas_and_tables() -> None:
    assert set(creates("DATABASE")) == {"recs"}
    assert set(creates("SCHEMA")) == {"recs.raw", "recs.analytics"}
    assert set(creates("TABLE")) == {
        "recs.raw.events",
        "recs.raw.rejected_events",
        "recs.raw.events_landing",
    }
    assert properties(creates("WAREHOUSE")["recs_wh"])["AUTO_SUSPEND"] == "60"


def _columns(create: exp.Create) -> list[tuple[str, str, list[str]]]:
    return [
        (
            column.name,
            column.args["kind"].sql(dialect="snowflake"),
            [c.sql(dialect="snowflake") for c in column.constraints],
        )
        for column in create.this.expressions
    ]


@pytest.mark.parametrize(
    ("table", "columns"),
    [(EVENTS_TABLE, RAW_EVENT_COLUMNS), (REJECTED_TABLE, REJECTED_EVENT_COLUMNS)],
)
def test_the_raw_tables_are_the_loaders_schema(table: str, columns: tuple) -> None:
    """Same names, order, types and NOT NULLs as the loader's CREATE TABLE (schema.py)."""
    loader = sqlglot.parse_one(create_table_sql(table, columns, "snowflake"), read="snowflake")
    ddl = creates("TABLE")[f"recs.raw.{table}"]
    assert _columns(ddl) == _columns(loader)
    if table == EVENTS_TABLE:
        assert dict((name, kind) for name, kind, _ in _columns(ddl))["payload"] == "VARIANT"
        assert ddl.args["properties"].find(exp.ClusterProperty).sql() == "CLUSTER BY (event_date)"


def _role_grants_in_commands() -> list[tuple[str, str, str]]:
    """(granted role, TO ROLE|USER, grantee) of GRANT ROLE statements (Commands)."""
    found = []
    for s in statements():
        if isinstance(s, exp.Command):
            match = re.fullmatch(r"GRANT ROLE (\w+) TO (ROLE|USER) (\w+)", command_text(s), re.I)
            if match:
                found.append(match.groups())
    return found


def test_the_roles_exist_and_every_grant_names_one() -> None:
    commands = [command_text(s) for s in statements() if isinstance(s, exp.Command)]
    created = set(re.findall(r"^CREATE ROLE IF NOT EXISTS (\w+)", "\n".join(commands), re.M))
    assert created == ROLES
    grantees = {role for *_, role in grants()}
    grantees |= {m.group(1) for text in commands for m in [re.search(r"TO ROLE (\w+)$", text)] if m}
    assert grantees <= ROLES | SYSTEM_ROLES, grantees - ROLES - SYSTEM_ROLES
    assert ROLES - {"recs_pipeline"} <= grantees  # each functional role is granted something
    # Dagster's user runs as recs_pipeline, which holds the loader's and the transformer's grants.
    role_grants = set(_role_grants_in_commands())
    assert ("recs_loader", "ROLE", "recs_pipeline") in role_grants
    assert ("recs_transformer", "ROLE", "recs_pipeline") in role_grants
    assert ("recs_pipeline", "USER", "recs_dagster") in role_grants
    (user,) = [t for t in commands if t.upper().startswith("CREATE USER")]
    assert "DEFAULT_ROLE = recs_pipeline" in user and "PASSWORD" not in user.upper()


def test_least_privilege_between_the_roles() -> None:
    rows = grants()

    def privileges(role: str, securable: str) -> set[str]:
        return set().union(*[p for p, _, s, r in rows if r == role and s == securable])

    assert privileges("recs_loader", "recs.raw.events") == {"SELECT", "INSERT", "DELETE"}
    assert privileges("recs_loader", "recs.raw.rejected_events") == {"SELECT", "INSERT", "DELETE"}
    assert "CREATE TABLE" in privileges("recs_loader", "recs.raw")
    assert privileges("recs_transformer", "recs.raw.events") == {"SELECT"}
    assert {"CREATE TABLE", "CREATE VIEW"} <= privileges("recs_transformer", "recs.analytics")
    # The reader sees analytics only, and changes nothing.
    reader = [(p, s) for p, _, s, r in rows if r == "recs_reader"]
    assert not [s for _, s in reader if s.startswith("recs.raw")]
    assert set().union(*[p for p, _ in reader]) == {"USAGE"}
    reader_commands = [
        command_text(s)
        for s in statements()
        if isinstance(s, exp.Command) and command_text(s).endswith("TO ROLE recs_reader")
    ]
    assert reader_commands and all(
        re.match(r"GRANT SELECT ON (ALL|FUTURE) (TABLES|VIEWS) IN SCHEMA recs\.analytics ", text)
        for text in reader_commands
    ), reader_commands
    # No role but the loader writes raw; nobody holds ALL or OWNERSHIP.
    for p, _, s, r in rows:
        assert not p & {"ALL", "OWNERSHIP"}, (p, s, r)
        if s.startswith("recs.raw.") and p & {"INSERT", "DELETE", "UPDATE", "TRUNCATE"}:
            assert r == "recs_loader", (p, s, r)


def test_the_stage_and_pipe_read_what_firehose_writes() -> None:
    bucket, prefix = PLACEHOLDERS["LANDING_BUCKET"], PLACEHOLDERS["LANDING_PREFIX"]
    events_url = f"'s3://{bucket}/{prefix}events/'"
    integration = properties(creates("STORAGE INTEGRATION")["recs_landing_s3"])
    assert integration["STORAGE_ALLOWED_LOCATIONS"] == f"({events_url})"
    assert integration["STORAGE_PROVIDER"] == "'S3'"
    # The role the SAM stack creates for Snowflake, by its default name.
    template = cfn_yaml.load(str(REPO / "deployments" / "lambda" / "template.yaml"))
    role_name = template["Parameters"]["SnowflakeStorageRoleName"]["Default"]
    account = PLACEHOLDERS["AWS_ACCOUNT_ID"]
    assert integration["STORAGE_AWS_ROLE_ARN"] == f"'arn:aws:iam::{account}:role/{role_name}'"

    stage = properties(creates("STAGE")["recs.raw.landing"])
    assert stage["URL"] == events_url
    assert stage["STORAGE_INTEGRATION"] == "recs_landing_s3"
    file_format = properties(creates("FILE FORMAT")["recs.raw.landing_jsonl_gz"])
    assert (file_format["TYPE"], file_format["COMPRESSION"]) == ("JSON", "GZIP")

    (pipe,) = [
        command_text(s)
        for s in statements()
        if isinstance(s, exp.Command) and command_text(s).upper().startswith("CREATE PIPE")
    ]
    assert re.search(r"\bAUTO_INGEST = TRUE\b", pipe)
    copy = sqlglot.parse_one(pipe[pipe.index(" AS COPY INTO ") + 4 :], read="snowflake")
    assert isinstance(copy, exp.Copy)
    target = copy.this.this.sql().lower()
    assert target == "recs.raw.events_landing"
    landing_columns = {name for name, _, _ in _columns(creates("TABLE")[target])}
    assert {c.name for c in copy.this.expressions} <= landing_columns
    assert "@recs.raw.landing" in copy.sql(dialect="snowflake")
    options = {p.this.name.upper(): p for p in copy.args["params"]}
    assert options["ON_ERROR"].args["expression"].name.upper() == "CONTINUE"
    pattern = options["PATTERN"].args["expression"].name
    firehose_object = f"date=2026-11-03/recs-events-1-2026-11-03-12-00-00-{'0' * 36}"
    assert re.fullmatch(pattern, firehose_object + FIREHOSE_FILE_EXTENSION)
    assert not re.fullmatch(pattern, firehose_object + ".jsonl.gz.tmp")
