"""Which catalog tables a SQL read touches, and which result columns derive from ruled ones.

Tables are found by parsing the SQL with sqlglot (imported on first use) and taking every
``Table`` node, CTE names excepted. A table is named ``database.schema.table`` as the catalog
names table locations; parts the SQL leaves out come from the connection:

==========================================  =====================  ====================
connection                                  database part          default schema part
==========================================  =====================  ====================
``sqlite3.Connection``                      the file's stem        ``main``
                                            (``clinic`` for        (an attached
                                            ``/data/clinic.db``;   database's alias maps
                                            ``memory`` in memory)  to *its* file's stem)
``connect("warehouse")`` engine/connection  the source's name      the dialect's default
                                            (``warehouse``; also   schema, as below
                                            for the database's
                                            own name in the SQL)
SQLAlchemy engine / connection / URL string ``url.database``       the dialect's default
                                            (sqlite: file stem)    schema; else ``main``
                                                                   (sqlite), ``public``
                                                                   (postgresql), ``dbo``
                                                                   (mssql), the database
                                                                   (mysql/mariadb)
anything else                               ``unknown``            ``unknown``
==========================================  =====================  ====================

SQL that does not parse, or parses only as an opaque command, cannot be checked: the read
is refused (fail closed). SQL that reads no table at all (``SELECT 1``) needs no decision.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import GuardDenied
from .engines import source_of

#: SQLAlchemy dialect / URL scheme -> sqlglot dialect
SQLGLOT_DIALECTS = {
    "sqlite": "sqlite", "postgresql": "postgres", "postgres": "postgres", "mysql": "mysql",
    "mariadb": "mysql", "mssql": "tsql", "oracle": "oracle", "snowflake": "snowflake",
    "bigquery": "bigquery", "duckdb": "duckdb", "trino": "trino", "redshift": "redshift",
}
DEFAULT_SCHEMAS = {"sqlite": "main", "postgresql": "public", "postgres": "public", "mssql": "dbo"}
_BARE_NAME = re.compile(r"\s*[\w$\"`\[\]]+(\.[\w$\"`\[\]]+){0,2}\s*")
UNKNOWN = "unknown"


@dataclass
class Connection:
    database: str = UNKNOWN
    schema: str = UNKNOWN
    dialect: str | None = None
    attached: dict[str, str] = field(default_factory=dict)  # sqlite: schema alias -> file stem
    same: set[str] = field(default_factory=set)  # catalog names in SQL that mean this database


@dataclass
class SqlRead:
    targets: list[str]
    statements: list[Any] = field(default_factory=list)  # sqlglot expressions, for column lineage


def _stem(file: str | None) -> str:
    return os.path.splitext(os.path.basename(file or ""))[0] or "memory"


def describe_connection(con: Any) -> Connection:
    """Database, default schema and dialect of a DB-API / SQLAlchemy connection or URL."""
    import sqlite3

    from .engines import BrokeredSource

    if isinstance(con, BrokeredSource):  # connect("name") of a brokered source: its tables are name.<schema>.<t>
        info = _connection(con.dialect, None, None)
        info.database = con.name
        return info
    if isinstance(con, sqlite3.Connection):
        try:
            rows = con.execute("PRAGMA database_list").fetchall()  # (seq, name, file)
        except sqlite3.Error:
            return Connection(schema="main", dialect="sqlite")
        attached = {str(name).lower(): _stem(file) for _, name, file in rows}
        return Connection(attached.get("main", "memory"), "main", "sqlite", attached)
    if isinstance(con, str):
        return _from_url(con)
    url = getattr(con, "url", None) or getattr(getattr(con, "engine", None), "url", None)
    if url is not None:
        backend = getattr(url, "get_backend_name", lambda: str(url).split(":", 1)[0].split("+", 1)[0])()
        database = getattr(url, "database", None)
        dialect = getattr(con, "dialect", None) or getattr(getattr(con, "engine", None), "dialect", None)
        schema = getattr(dialect, "default_schema_name", None)
        source = source_of(con)
        if source is not None:  # an engine made by connect("warehouse"): warehouse.<schema>.<table>
            info = _connection(backend, database, schema)
            # "realdb.public.t" in the SQL is the same table as "t": name it by the source too
            info.same = {n.lower() for n in (info.database, database) if n and n != UNKNOWN}
            info.database = source
            return info
        return _connection(backend, database, schema)
    return Connection()


def _from_url(url: str) -> Connection:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    backend = parts.scheme.split("+", 1)[0].lower()
    database = parts.path.removeprefix("/")
    return _connection(backend, database or None, None)


def _connection(backend: str, database: str | None, schema: str | None) -> Connection:
    backend = (backend or "").lower()
    if backend == "sqlite":
        database = _stem(database)
    schema = schema or DEFAULT_SCHEMAS.get(backend) or (database if backend in ("mysql", "mariadb") else None)
    return Connection(database or UNKNOWN, schema or UNKNOWN, SQLGLOT_DIALECTS.get(backend))


def _qualify(con: Connection, catalog: str, db: str, name: str) -> str:
    db_l = db.lower()
    if catalog and catalog.lower() in con.same:
        catalog = ""
    if not catalog and db_l in con.attached:  # sqlite: "alias.table" names an attached file's table
        return f"{con.attached[db_l]}.main.{name}"
    return f"{catalog or con.database}.{db or con.schema}.{name}"


def _refuse(what: str) -> GuardDenied:
    return GuardDenied(
        f"jupyter_guard cannot tell which tables this SQL reads ({what}), so it cannot check the read; "
        "governed data is refused when its tables cannot be known. Write a plain SELECT "
        "(sqlglot must be able to parse it), or ask the data steward for an extract."
    )


def _sqlglot():
    try:
        import sqlglot
        from sqlglot import exp
    except ImportError:
        raise GuardDenied(
            "jupyter_guard needs the 'sqlglot' package to check SQL reads, and it is not installed in "
            "this kernel's environment; SQL reads are refused. Ask your admin to install it."
        ) from None
    return sqlglot, exp


def table_name(name: str, con: Connection, schema: str | None = None) -> str:
    """``read_sql_table(name, con, schema=...)``: a table named directly."""
    parts = [p.strip().strip('"`[]') for p in str(name).split(".")]
    if schema and len(parts) == 1:
        parts = [schema, *parts]
    parts = [""] * (3 - len(parts)) + parts[-3:]
    return _qualify(con, *parts)


def sql_tables(sql: Any, con: Connection) -> SqlRead:
    """The fully qualified tables a query reads. Raises GuardDenied when that cannot be known."""
    if not isinstance(sql, str):
        try:
            sql = str(sql)  # SQLAlchemy Select / TextClause render their SQL
        except Exception as e:
            raise _refuse(f"a {type(sql).__name__} that does not render as SQL: {e}") from None
    sqlglot, exp = _sqlglot()
    read = SqlRead([])
    if _BARE_NAME.fullmatch(sql) and not sql.strip().lower().startswith(("select", "values")):
        # pandas.read_sql("people", engine) reads the whole table of that name
        read.targets.append(table_name(sql.strip(), con))
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its "falling back to a Command" warning would land in the cell
    try:
        statements = sqlglot.parse(sql, read=con.dialect)
    except Exception as e:  # sqlglot.errors.ParseError, TokenError, ...
        if read.targets:
            return read
        raise _refuse(f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
    finally:
        quiet.setLevel(level)
    for stmt in statements:
        if stmt is None:
            continue
        if isinstance(stmt, exp.Command):
            raise _refuse(f"{stmt.name or 'a command'} statements are not analysed")
        read.statements.append(stmt)
        ctes = {cte.alias_or_name.lower() for cte in stmt.find_all(exp.CTE)}
        for table in stmt.find_all(exp.Table):
            name = table.name
            if not name:
                continue  # a table-valued function (generate_series(...)): no catalog table
            if not table.catalog and not table.db and name.lower() in ctes:
                continue
            target = _qualify(con, table.catalog, table.db, name)
            if target not in read.targets:
                read.targets.append(target)
    return read


def derived_columns(read: SqlRead, ruled: set[str]) -> tuple[dict[str, str], list[str]]:
    """Result columns that carry values of ruled columns under another name.

    Returns ({output name (lower case): ruled source column}, problems). Lineage follows
    aliases through subqueries and CTEs (``SELECT ssn AS s``, ``substr(ssn, 1, 3) AS x``);
    what cannot be followed by name — an unaliased expression over a ruled column, set
    operations, CTE column lists — is a problem: the read is refused rather than returned
    unredacted. Over-approximates on purpose (a same-named column elsewhere is also redacted).
    """
    _, exp = _sqlglot()
    known = {c.lower(): c.lower() for c in ruled}
    derived: dict[str, str] = {}
    problems: list[str] = []

    def sources(node) -> set[str]:
        cols = {c.name.lower() for c in node.find_all(exp.Column)}
        if isinstance(node, exp.Column):
            cols.add(node.name.lower())
        return {known[c] for c in cols if c in known}

    changed = True
    while changed:
        changed = False
        for stmt in read.statements:
            for alias in stmt.find_all(exp.Alias):
                out = alias.alias.lower()
                src = sources(alias.this)
                if out and src and out not in known:
                    known[out] = min(src)
                    derived[out] = known[out]
                    changed = True
    set_ops = tuple(t for t in (getattr(exp, n, None) for n in ("Union", "Intersect", "Except")) if t)
    for stmt in read.statements:
        if any(stmt.find_all(*set_ops)):
            problems.append("UNION / INTERSECT / EXCEPT over a redacted table (columns change names by position)")
        for ta in stmt.find_all(exp.TableAlias):
            if ta.args.get("columns"):
                problems.append(f"a column list on {ta.name or 'a table alias'} renames columns by position")
        if isinstance(stmt, exp.Select):
            for proj in stmt.expressions:
                if isinstance(proj, (exp.Alias, exp.Column, exp.Star)):
                    continue
                if sources(proj):
                    problems.append(f"the expression {proj.sql()[:80]!r} uses a redacted column and has no alias")
    return derived, problems
