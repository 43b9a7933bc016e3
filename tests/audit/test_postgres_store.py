"""PostgresAuditStore against a real PostgreSQL server: chain, tampering, query parity with
SQLite, concurrent writer processes, a writer killed mid-burst, secrets, readers, the server.

The server is the one of ``JUPYTER_GUARD_TEST_PG`` (a libpq DSN of a superuser connection;
default the loopback server), as in tests/kernel/test_connect.py. This module makes its own
database and drops it at the end; when the server is unreachable the tests FAIL.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from jupyter_guard.audit import AuditEvent, AuditLog, AuditQuery, SQLiteAuditStore
from jupyter_guard.audit.postgres import PostgresAuditStore
from jupyter_guard.errors import AuditUnavailable

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
PG_DSN = os.environ.get("JUPYTER_GUARD_TEST_PG") or DEFAULT_DSN
KEY = bytes(range(32))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _dsn(**over) -> str:
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    params.update(over)
    return psycopg.conninfo.make_conninfo(**params)


@pytest.fixture(scope="module")
def pg_db():
    """A fresh database for this module (dropped afterwards); yields its DSN."""
    try:
        admin = psycopg.connect(PG_DSN, autocommit=True, connect_timeout=10)
    except psycopg.Error as e:
        shown = {k: ("***" if k == "password" else v) for k, v in psycopg.conninfo.conninfo_to_dict(PG_DSN).items()}
        pytest.fail(f"the PostgreSQL server for the tests is not reachable with JUPYTER_GUARD_TEST_PG={shown} "
                    f"({type(e).__name__}: {str(e).strip()}). Start it or point the variable at another server.")
    db = f"jg_audit_{secrets.token_hex(4)}"
    try:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        yield _dsn(dbname=db)
    finally:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        admin.close()


@pytest.fixture
def table():
    return f"audit_{secrets.token_hex(4)}"


@pytest.fixture
def db(pg_db):
    con = psycopg.connect(pg_db, autocommit=True)
    yield con
    con.close()


def event(i: int) -> AuditEvent:
    return AuditEvent(
        event_type=("decision", "read", "export")[i % 3],
        user=("rita", "olaf", "dana", None)[i % 4],
        action=("read", "export", None)[i % 3],
        target=f"/data/f{i}.csv",
        dataset=("patients", "clinics", None)[i % 3] if i % 7 else "hr",
        label=("restricted", "public", None)[i % 3] if i % 7 else "confidential",
        decision=("allow", "deny", "redact")[i % 3] if i % 5 else "deny",
        notebook=f"nb{i % 4}.ipynb" if i % 6 else None,
        reasons=("rule-a",) if i % 2 else (),
        details={"i": i, "cols": ["ssn"]} if i % 3 else {},
    )


def open_log(dsn: str, table: str, **kw) -> AuditLog:
    return AuditLog(PostgresAuditStore(dsn=dsn, table=table), KEY, **kw)


# -- chain -----------------------------------------------------------------------------------


def test_append_then_verify_and_reopen(pg_db, table):
    with open_log(pg_db, table) as log:
        records = [log.append(event(i)) for i in range(60)]
        assert [r.seq for r in records] == list(range(1, 61))
        assert log.store.default_anchor_path() is None
        result = log.verify()
        assert result.ok and result.checked == 60, result
        assert log.store.count() == 60 and log.store.tail() == (60, records[-1].mac)
    with open_log(pg_db, table) as log:  # a second process/restart continues the same chain
        assert log.append(event(60)).seq == 61
        assert log.verify().ok
        got = log.query(AuditQuery(limit=None))
        assert [r.to_dict() for r in got[:60]] == [r.to_dict() for r in records]


def test_an_edited_row_is_named_by_verify(pg_db, table, db):
    with open_log(pg_db, table) as log:
        for i in range(30):
            log.append(event(i))
    original = db.execute(sql.SQL('SELECT "user" FROM {} WHERE seq = 7').format(sql.Identifier(table))).fetchone()[0]
    db.execute(sql.SQL("UPDATE {} SET \"user\" = 'mallory' WHERE seq = 7").format(sql.Identifier(table)))
    with open_log(pg_db, table) as log:
        result = log.verify()
    assert not result.ok and result.first_bad_seq == 7 and "user column" in result.problem, result
    assert str(result).startswith("TAMPERED: record 7")
    db.execute(sql.SQL('UPDATE {} SET "user" = %s WHERE seq = 7').format(sql.Identifier(table)), (original,))
    with open_log(pg_db, table) as log:
        assert log.verify().ok  # undone
    db.execute(sql.SQL(
        "UPDATE {} SET payload = convert_to(replace(convert_from(payload, 'UTF8'), 'f12.csv', 'f99.csv'), 'UTF8') "
        "WHERE seq = 13").format(sql.Identifier(table)))
    with open_log(pg_db, table) as log:
        result = log.verify()
    assert not result.ok and result.first_bad_seq == 13 and "MAC does not match" in result.problem, result


def test_truncation_is_detected_without_an_anchor_file(pg_db, table, db):
    with open_log(pg_db, table) as log:
        for i in range(20):
            log.append(event(i))
    db.execute(sql.SQL("DELETE FROM {} WHERE seq > 17").format(sql.Identifier(table)))
    with open_log(pg_db, table) as log:
        result = log.verify()
        assert not result.ok and result.first_bad_seq == 18, result
        with pytest.raises(AuditUnavailable, match="ends at record 17 but its head row names record 20"):
            log.append(event(99))
    assert db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0] == 17


# -- query parity ----------------------------------------------------------------------------


def test_query_gives_what_sqlite_gives(pg_db, table, db, tmp_path):
    """The same sealed rows in both stores (copied byte for byte) answer every query alike."""
    with AuditLog(SQLiteAuditStore(path=str(tmp_path / "a.sqlite")), KEY) as lite:
        for i in range(300):
            lite.append(event(i))
        rows = list(lite.store.iter_rows(1))
        pg = PostgresAuditStore(dsn=pg_db, table=table)
        try:
            with db.cursor() as cur:
                cur.executemany(
                    sql.SQL('INSERT INTO {} (seq, "time", "event_type", "user", "action", "dataset", "label", '
                            '"decision", "notebook", payload, prev_mac, mac) VALUES '
                            "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(sql.Identifier(table)),
                    [(r.seq, *r.columns, bytes(r.payload), bytes(r.prev_mac), bytes(r.mac)) for r in rows])
            db.execute(sql.SQL("UPDATE {} SET seq = %s, mac = %s").format(sql.Identifier(table + "_head")),
                       (rows[-1].seq, bytes(rows[-1].mac)))
            pglog = AuditLog(pg, KEY)
            assert pglog.verify().ok
            times = [r.time for r in lite.query(AuditQuery(limit=None))]
            queries = [
                AuditQuery(),
                AuditQuery(limit=None),
                AuditQuery(limit=0),
                AuditQuery(user="rita"),
                AuditQuery(user="nobody"),
                AuditQuery(dataset="patients", label="restricted"),
                AuditQuery(label="confidential", limit=None),
                AuditQuery(decision="deny", notebook="nb0.ipynb"),
                AuditQuery(event_type="export", action="export"),
                AuditQuery(action="read", descending=True, limit=7),
                AuditQuery(since=times[100], until=times[250], limit=None),
                AuditQuery(since=times[100], user="olaf", descending=True),
                AuditQuery(until=times[10]),
                AuditQuery(since="2999-01-01"),
                AuditQuery(after_seq=120, limit=25),
                AuditQuery(after_seq=120, limit=25, descending=True),
                AuditQuery(after_seq=250, user="dana", decision="allow", limit=None),
                AuditQuery(dataset="clinics", descending=True, after_seq=200, limit=5),
            ]
            for q in queries:
                want = [r.to_dict() for r in lite.query(q)]
                got = [r.to_dict() for r in pglog.query(q)]
                assert got == want, q
            assert any(len(lite.query(q)) > 3 for q in queries[3:])  # the filters select something
            pglog.close()
        finally:
            pg.close()


def test_filtered_columns_are_indexed(pg_db, table, db):
    PostgresAuditStore(dsn=pg_db, table=table).close()
    defs = {r[0] for r in db.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))}
    for col in ("user", "dataset", "label", "decision", "notebook", "event_type", "action"):
        assert any(f'("{col}", seq)' in d or f"({col}, seq)" in d for d in defs), (col, defs)
    assert any('("time")' in d or "(\"time\")" in d or "(time)" in d for d in defs), defs


# -- several writer processes ----------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, threading
    from jupyter_guard.audit import AuditEvent, AuditLog
    from jupyter_guard.audit.postgres import PostgresAuditStore
    dsn, table, n, tag = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = AuditLog(PostgresAuditStore(dsn=dsn, table=table), bytes(range(32)))
    out = threading.Lock()
    def work(t):
        for i in range(n // 4 if n > 0 else 10**9):
            rec = log.append(AuditEvent(event_type="decision", user=tag, details={"t": t, "i": i}))
            with out:
                sys.stdout.write(f"{rec.seq}\\n"); sys.stdout.flush()  # acknowledged: durable
    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    print("ready", flush=True)
    for t in threads: t.start()
    for t in threads: t.join()
    log.close()
""")


def writer(dsn: str, table: str, n: int, tag: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-c", WRITER, dsn, table, str(n), tag], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_two_processes_append_concurrently_without_forking_the_chain(pg_db, table):
    PostgresAuditStore(dsn=pg_db, table=table).close()  # the tables exist before the race
    procs = [writer(pg_db, table, 1000, tag) for tag in ("p1", "p2")]
    acked = {}
    for p, tag in zip(procs, ("p1", "p2")):
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        acked[tag] = [int(x) for x in out.split()[1:]]
    assert len(acked["p1"]) == len(acked["p2"]) == 1000
    assert not set(acked["p1"]) & set(acked["p2"])
    assert sorted(acked["p1"] + acked["p2"]) == list(range(1, 2001))
    with open_log(pg_db, table) as log:
        result = log.verify()
        assert result.ok and result.checked == 2000, result
        records = log.query(AuditQuery(limit=None))
    assert [r.seq for r in records] == list(range(1, 2001))
    assert all(b.prev_mac == a.mac for a, b in zip(records, records[1:]))  # one chain, no fork
    by_tag = {tag: sorted(r.seq for r in records if r.event.user == tag) for tag in acked}
    assert by_tag == {tag: sorted(s) for tag, s in acked.items()}
    # both really ran at once: their records interleave
    users = [r.event.user for r in records]
    assert sum(a != b for a, b in zip(users, users[1:])) > 2


def test_a_writer_killed_mid_burst_loses_nothing_it_acknowledged(pg_db, table):
    PostgresAuditStore(dsn=pg_db, table=table).close()
    victim = writer(pg_db, table, 0, "victim")  # appends until killed
    other = writer(pg_db, table, 400, "other")
    assert victim.stdout.readline().strip() == "ready"
    acked = []
    deadline = time.monotonic() + 120
    while len(acked) < 300 and time.monotonic() < deadline:
        line = victim.stdout.readline()
        assert line, victim.stderr.read()
        acked.append(int(line))
    os.kill(victim.pid, signal.SIGKILL)
    rest, _ = victim.communicate(timeout=60)
    acked += [int(x) for x in rest.split()]
    assert victim.returncode == -signal.SIGKILL
    out, err = other.communicate(timeout=240)
    assert other.returncode == 0, err
    with open_log(pg_db, table) as log:
        result = log.verify()
        assert result.ok, result
        stored = {r.seq: r for r in log.query(AuditQuery(limit=None))}
        assert sorted(stored) == list(range(1, len(stored) + 1))
        assert len(acked) >= 300 and all(stored[s].event.user == "victim" for s in acked)
        assert log.append(event(0)).seq == len(stored) + 1  # no lock left behind by the dead writer
        assert log.verify().ok


# -- secrets, errors, readers ----------------------------------------------------------------


def test_the_password_never_shows(pg_db, table, tmp_path, caplog):
    password = f"pw-{secrets.token_hex(6)}"
    store = PostgresAuditStore(dsn=pg_db + f" password={password}", table=table)
    try:
        text = store.describe()
        dbname = psycopg.conninfo.conninfo_to_dict(pg_db)["dbname"]
        assert password not in text and dbname in text and table in text
        assert password not in repr(store.reader_spec()[0]) and password not in str(store)
    finally:
        store.close()
    # the server quotes the database name in its error: name the database after the password
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuditUnavailable) as err:
        PostgresAuditStore(dsn=_dsn(dbname=password, password=password), table=table)
    message = str(err.value)
    assert password not in message and "does not exist" in message, message
    host = psycopg.conninfo.conninfo_to_dict(PG_DSN).get("host") or "localhost"
    assert host in message and "opening" in message
    assert password not in caplog.text
    secret = tmp_path / "dsn"
    secret.write_text(pg_db + f" password={password}\n")
    store = PostgresAuditStore(dsn_file=str(secret), table=table)  # the mounted-secret way
    try:
        assert password not in store.describe() and store.count() == 0
    finally:
        store.close()
    with pytest.raises(AuditUnavailable) as err:
        PostgresAuditStore(dsn=f"host=127.0.0.1 password={password} port", table=table)  # not a DSN
    assert password not in str(err.value) and "not a valid" in str(err.value)
    odd = "s@cr:et/" + secrets.token_hex(4)  # in a URL DSN it is percent-quoted
    params = psycopg.conninfo.conninfo_to_dict(PG_DSN)
    url = (f"postgresql://{params.get('user', 'postgres')}:{quote(odd, safe='')}@{params.get('host', '127.0.0.1')}:"
           f"{params.get('port', 5432)}/{quote(odd, safe='')}")
    with pytest.raises(AuditUnavailable) as err:
        PostgresAuditStore(dsn=url, table=table)
    assert odd not in str(err.value) and quote(odd, safe="") not in str(err.value) and "does not exist" in str(err.value)


def test_an_unreachable_server_is_audit_unavailable_naming_it(table):
    with pytest.raises(AuditUnavailable, match=r"127\.0\.0\.1:1 .*opening.*cannot reach"):
        PostgresAuditStore(dsn="host=127.0.0.1 port=1 dbname=audit user=x", table=table, connect_timeout=3)


def test_reader_spec_reopens_read_only(pg_db, table):
    with open_log(pg_db, table) as log:
        for i in range(5):
            log.append(event(i))
        cls, kwargs = log.store.reader_spec()
    assert cls is PostgresAuditStore and kwargs["read_only"] is True and kwargs["table"] == table
    json.dumps(kwargs)  # plain values: they travel to a reader process
    reader = cls(**kwargs)
    try:
        with AuditLog(reader, KEY, anchor_path=False, group_commit=False) as ro:
            assert ro.verify().ok and len(ro.query(AuditQuery())) == 5
            with pytest.raises(AuditUnavailable, match="read-only"):
                ro.append(event(9))
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):  # the session itself refuses
                reader._read_conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
            reader._read_conn.rollback()
    finally:
        reader.close()
    with pytest.raises(AuditUnavailable, match="does not exist"):  # read-only never creates tables
        PostgresAuditStore(dsn=pg_db, table=table + "_none", read_only=True)


# -- in a real jupyter_server ----------------------------------------------------------------


@pytest.fixture
def pg_table(pg_db, table):
    return pg_db, table


@pytest.fixture
def jp_server_config(guard_config, pg_table):
    dsn, table = pg_table
    guard_config["GuardApp"]["audit_store_class"] = "jupyter_guard.audit.postgres.PostgresAuditStore"
    guard_config["PostgresAuditStore"] = {"dsn": dsn, "table": table}
    return guard_config


async def test_the_server_records_decisions_in_postgres(fetch_json, guard_app, pg_table, db, audit_dir):
    dsn, table = pg_table
    assert isinstance(guard_app.governor.audit.store, PostgresAuditStore)
    assert guard_app.steward_reader.in_processes  # stewards' reads reopen the store read-only
    body = {"target": "data/patients.csv", "action": "read", "notebook": "pg.ipynb", "msg_id": "m-1"}
    denied = await fetch_json("jupyter-guard", "api", "decide", method="POST", body=body, expect=403)
    seq = denied["audit_seq"]
    assert isinstance(seq, int)
    row = db.execute(sql.SQL('SELECT "user", "decision", "notebook" FROM {} WHERE seq = %s').format(
        sql.Identifier(table)), (seq,)).fetchone()
    assert row == ("rita", "deny", "pg.ipynb")
    page = await fetch_json("jupyter-guard", "api", "audit", token="tok-dana", params={"notebook": "pg.ipynb"})
    assert [r["seq"] for r in page["records"]] == [seq]
    assert page["records"][0]["dataset"] == "patients" and page["records"][0]["decision"] == "deny"
    verify = await fetch_json("jupyter-guard", "api", "audit", "verify", token="tok-dana")
    assert verify["ok"] is True and verify["checked"] >= 1
    assert (audit_dir / "audit.key").exists() and not (audit_dir / "audit.sqlite").exists()


def test_a_writer_role_without_update_or_delete_appends_but_cannot_rewrite(pg_db, table, db):
    """The deployment the admin guide recommends: the servers' role may only add records."""
    PostgresAuditStore(dsn=pg_db, table=table).close()  # created by the owner
    role = f"jg_writer_{secrets.token_hex(4)}"
    ident = sql.Identifier
    dbname = psycopg.conninfo.conninfo_to_dict(pg_db)["dbname"]
    db.execute(sql.SQL("CREATE ROLE {} LOGIN").format(ident(role)))
    try:
        db.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(ident(dbname), ident(role)))
        db.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident(role)))
        db.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(ident(table), ident(role)))
        db.execute(sql.SQL("GRANT SELECT, UPDATE ON {} TO {}").format(ident(table + "_head"), ident(role)))
        db.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident(table + "_meta"), ident(role)))
        writer_dsn = _dsn(dbname=dbname, user=role)
        with open_log(writer_dsn, table) as log:
            assert [log.append(event(i)).seq for i in range(5)] == [1, 2, 3, 4, 5]
            assert log.verify().ok
        with psycopg.connect(writer_dsn, autocommit=True) as con:
            for stmt in ("UPDATE {} SET \"user\" = 'x'", "DELETE FROM {}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    con.execute(sql.SQL(stmt).format(ident(table)))
    finally:
        db.execute(sql.SQL("DROP OWNED BY {}").format(ident(role)))
        db.execute(sql.SQL("DROP ROLE {}").format(ident(role)))


def test_connections_lost_while_idle_are_reopened(pg_db, table, db):
    """A database restart or failover kills idle connections: the next append and query
    reconnect instead of refusing a governed action."""
    with open_log(pg_db, table) as log:
        log.append(event(0))
        assert log.query(AuditQuery())
        store = log.store
        pids = [store._write_conn.info.backend_pid, store._read_conn.info.backend_pid]
        for pid in pids:
            assert db.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        deadline = time.monotonic() + 10
        while db.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (pids,)).fetchone()[0]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert log.append(event(1)).seq == 2
        assert [r.seq for r in log.query(AuditQuery())] == [1, 2]
        assert store._write_conn.info.backend_pid not in pids and store._read_conn.info.backend_pid not in pids
        assert log.verify().ok


def test_iter_rows_streams_from_a_server_side_cursor(pg_db, table, db):
    """A whole-chain walk fetches in pages from a named cursor: a million records never sit in
    the client's memory at once."""
    PostgresAuditStore(dsn=pg_db, table=table).close()
    db.execute(sql.SQL(
        "INSERT INTO {} SELECT s, 't', 'e', NULL, NULL, NULL, NULL, NULL, NULL, 'x'::bytea, 'p'::bytea, 'm'::bytea "
        "FROM generate_series(1, 20000) s").format(sql.Identifier(table)))
    store = PostgresAuditStore(dsn=pg_db, table=table, read_only=True)
    try:
        rows = store.iter_rows(1)
        assert next(rows).seq == 1
        activity = db.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query ILIKE 'FETCH%%'").fetchall()
        assert activity and "FORWARD 4096" in activity[0][0].upper(), activity
        assert sum(1 for _ in rows) == 19999
    finally:
        store.close()
