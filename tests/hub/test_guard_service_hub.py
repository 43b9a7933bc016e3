"""The guard service under a real JupyterHub with real OS users (issue 12).

One Hub for the module: the service is a Hub-managed service running as its own OS account
(jg-guard) with the narrowest roles of docs/hub-deployment.md; researchers jg-rita and jg-omar
(group research) and steward jg-sam (data-stewards) have single-user servers that are its
clients (command-line arguments, as the guide says). The audit store is SQLite in the service's
0700 directory, so "a researcher cannot read the store" is a file permission the OS enforces
(the CI machines' PostgreSQL trusts every local connection, so it could not show that; the
PostgreSQL store itself is tested in tests/audit/test_postgres_store.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pwd
import random
import shutil
import signal
import sqlite3
import string
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hub_rig import GUARD, OMAR, RITA, SAM, HubRig, check_preconditions, ensure_user, execute, free_port, http, kernel

PATIENTS = textwrap.dedent("""\
    id,name,ssn,email
    1,Ann Lee,123-45-6789,ann.lee@example.com
    2,Bo Chan,234-56-7891,bo.chan@example.net
""")
TTL = 5  # c.GuardService.identity_ttl in this test: the bound a group change must meet
PORT = free_port()
GUARD_URL = f"http://127.0.0.1:{PORT}/services/jupyter-guard/"
NORA = "jg-nora"  # a fourth user whose server the admin's hook starts WITHOUT the guard


def _vault(tmp: Path, guard) -> Path:
    """The brokered layout of docs/admin-guide.md: files 0600 of jg-guard in a 0711 directory."""
    import pandas as pd

    vault = tmp / "vault"
    vault.mkdir()
    frame = pd.read_csv(io.StringIO(PATIENTS))
    frame.to_parquet(vault / "patients.parquet", index=False)
    frame.to_csv(vault / "patients.csv", index=False)
    rng = random.Random(7)  # a wide file: a projection of one column must not read the rest
    n = 20_000
    pd.DataFrame({"id": range(n), "ssn": ["123-45-6789"] * n,
                  "blob": ["".join(rng.choices(string.ascii_letters, k=400)) for _ in range(n)]}).to_parquet(
        vault / "wide.parquet", index=False, compression=None)
    with sqlite3.connect(vault / "clinic.db") as db:
        db.execute("create table patients (ssn text)")
        db.execute("insert into patients values ('123-45-6789')")
    for path in vault.iterdir():
        os.chown(path, guard.pw_uid, guard.pw_gid)
        path.chmod(0o600)
    os.chown(vault, guard.pw_uid, guard.pw_gid)
    vault.chmod(0o711)
    return vault


def _tree(tmp: Path):
    """Data and catalog readable by everyone; the vault's files and the service's directory only by jg-guard."""
    guard = pwd.getpwnam(GUARD)
    (tmp / "data").mkdir(parents=True)
    patients = tmp / "data" / "patients.csv"
    patients.write_text(PATIENTS)
    vault = _vault(tmp, guard)
    catalog = tmp / "catalog"
    catalog.mkdir()
    (catalog / "datasets.yaml").write_text(textwrap.dedent(f"""\
        datasets:
          - name: patients
            label: restricted
            access: direct  # read in the kernel, redacted there with the service's pseudonym key
            steward: Sam Steward <sam@example.org>
            locations: [{patients}]
            columns:
              ssn: {{entity: US_SSN, rule: mask}}
              email: {{entity: EMAIL_ADDRESS, rule: hash}}
          - name: vault
            label: restricted  # brokered under the service: the policy's default for the top label
            steward: Sam Steward <sam@example.org>
            locations: [{vault}/*]
            columns:
              ssn: {{entity: US_SSN, rule: mask}}
              email: {{entity: EMAIL_ADDRESS, rule: hash}}
          - name: vault_patients
            label: restricted
            steward: Sam Steward <sam@example.org>
            locations: [{{table: vault_db.main.patients}}]
            columns:
              ssn: {{entity: US_SSN, rule: mask}}
        sources:
          - name: vault_db  # restricted: brokered under the service, which alone can open the file
            label: restricted
            steward: Sam Steward <sam@example.org>
            url: sqlite:///{vault}/clinic.db
        """))
    (catalog / "policy.yaml").write_text(textwrap.dedent("""\
        roles:
          steward: {groups: [data-stewards]}
          researcher: {groups: [research]}
        defaults: {unlabeled: allow, no_rule: deny}
        rules:
          - {name: stewards, roles: [steward], effect: allow, check_purpose: false}
          - {name: restricted-read, labels: [restricted], actions: [read, discover], roles: [researcher], effect: redact}
          - {name: restricted-connect, labels: [restricted], actions: [credential], roles: [researcher], effect: allow}
        """))
    service = tmp / "service"
    service.mkdir()
    config = service / "service_config.py"
    config.write_text(textwrap.dedent(f"""\
        c.GuardSettings.catalog_dir = {str(catalog)!r}
        c.GuardSettings.catalog_reload_interval = 0
        c.GuardSettings.audit_dir = {str(service / 'audit')!r}
        c.GuardService.identity_ttl = {TTL}
        c.GuardService.server_check_interval = 1
        c.GuardService.server_grace = 3
        """))
    for path in (tmp, tmp / "data", catalog):
        path.chmod(0o755)
    for path in (patients, catalog / "datasets.yaml", catalog / "policy.yaml"):
        path.chmod(0o644)
    for path in (service, config):
        os.chown(path, guard.pw_uid, guard.pw_gid)
    service.chmod(0o700)
    config.chmod(0o600)
    return patients, catalog, service, config, vault


@pytest.fixture(scope="module")
def deployment():
    tmp = Path(tempfile.mkdtemp(prefix="jg-guard-hub-"))
    check_preconditions()
    for name in (RITA, OMAR, SAM, NORA):
        ensure_user(name)
    ensure_user(GUARD, login=False)  # the service's account owns its directory below
    rig = None
    try:
        patients, catalog, service, config, vault = _tree(tmp)
        rig = HubRig(
            users=[RITA, OMAR, SAM, NORA],
            services=[{
                "name": "jupyter-guard", "url": f"http://127.0.0.1:{PORT}", "user": GUARD, "cwd": str(service),
                "command": [str(Path(sys.executable).parent / "jupyter-guard"), "service", "--config", str(config)],  # as the guide
            }],
            roles=[
                {"name": "jupyter-guard", "services": ["jupyter-guard"],
                 "scopes": ["read:users:name", "read:users:groups", "list:users", "read:servers"]},
                {"name": "user", "scopes": ["self", "access:services!service=jupyter-guard"]},
            ],
            spawner_args=["--ServerApp.jpserver_extensions={'jupyter_guard': True}",
                          f"--GuardApp.service_url={GUARD_URL}", f"--GuardApp.catalog_dir={catalog}",
                          "--GuardApp.catalog_reload_interval=0", "--GuardApp.service_timeout=3"],
            extra_config=f"""
                c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server",
                                                 "access:services!service=jupyter-guard"]
                def _unguarded(spawner):  # the one server an admin's mistake starts without the guard
                    if spawner.user.name == {NORA!r}:
                        spawner.args = ["--ServerApp.jpserver_extensions={{'jupyter_guard': False}}"]
                c.Spawner.pre_spawn_hook = _unguarded
                """,
        )
        rig.start()
        _wait_for_service(rig)
        yield {"hub": rig, "patients": patients, "service": service, "config": config, "vault": vault}
    finally:
        if rig is not None:
            rig.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _wait_for_service(rig):
    import urllib.request

    for _ in range(200):
        try:
            with urllib.request.urlopen(GUARD_URL + "api/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"the guard service did not come up:\n{rig.hub_log()[-5000:]}")


@pytest.fixture(scope="module")
def servers(deployment):
    hub = deployment["hub"]
    urls = hub.start_servers([RITA, OMAR, SAM])
    return {u: (url, hub.token(u)) for u, url in zip([RITA, OMAR, SAM], urls)}


def read_cell(patients: Path) -> str:
    return f"import pandas as pd\ndf = pd.read_csv({str(patients)!r})\nprint('SSN', df.ssn.tolist(), 'EMAIL', df.email.tolist())"


def run(coro):
    return asyncio.run(coro)


async def steward_records(servers, **params) -> list[dict]:
    from urllib.parse import urlencode

    url, token = servers[SAM]
    code, page = await http("GET", f"{url}jupyter-guard/api/audit?" + urlencode({"order": "asc", "limit": "500", **params}),
                            token)
    assert code == 200, page
    return page["records"]


def test_each_read_lands_centrally_under_its_user_and_the_steward_sees_both(deployment, servers):
    outs = {}
    for user in (RITA, OMAR):
        url, token = servers[user]
        text, error = run(execute(url, token, read_cell(deployment["patients"])))
        assert error is None, text
        assert "123-45-6789" not in text and "ann.lee@example.com" not in text
        outs[user] = text[text.index("EMAIL"):]
    # one pseudonym key for the deployment: the same e-mail, the same pseudonym for both users
    assert outs[RITA] == outs[OMAR] and "PSN_" in outs[RITA]

    decisions = run(steward_records(servers, event_type="decision", dataset="patients"))
    by_user = {r["user"]: r for r in decisions}
    assert {RITA, OMAR} <= set(by_user), decisions
    assert all(by_user[u]["decision"] == "redact" for u in (RITA, OMAR))
    started = run(steward_records(servers, event_type="server_started"))
    assert {RITA, OMAR, SAM} <= {r["user"] for r in started if r["details"].get("guard_loaded")}
    # a researcher's server asks the same route: the service refuses her, whatever her server thinks
    url, token = servers[RITA]
    code, body = run(http("GET", f"{url}jupyter-guard/api/audit?limit=5", token))
    assert code == 403, body


def test_a_researcher_cannot_read_the_key_or_the_store_nor_rewrite_her_history(deployment, servers):
    hub, service = deployment["hub"], deployment["service"]
    audit = service / "audit"
    for target in (audit / "audit.key", audit / "audit.sqlite", audit / "pseudonym.key", deployment["config"]):
        r = hub.run_as(RITA, ["cat", str(target)])
        assert r.returncode != 0 and "Permission denied" in r.stderr, (target, r.stdout[:200], r.stderr)
    r = hub.run_as(RITA, [sys.executable, "-m", "jupyter_guard.cli", "audit", "verify", "--config",
                          str(deployment["config"])])
    assert r.returncode != 0 and "ermission denied" in (r.stderr + r.stdout), (r.stdout, r.stderr)
    # through the service she can only add records as herself, never delete or edit
    url = GUARD_URL + "api/records"
    code, rec = run(http("POST", url, servers[RITA][1], {"event_type": "note", "user": SAM, "action": "x"}))
    assert code == 201 and rec["user"] == RITA and rec["details"]["claimed_user"] == SAM
    code, _ = run(http("DELETE", url, servers[RITA][1]))
    assert code == 405
    # and the whole chain still verifies, as the steward sees it
    code, result = run(http("GET", f"{servers[SAM][0]}jupyter-guard/api/audit/verify", servers[SAM][1]))
    assert code == 200 and result["ok"], result
    with sqlite3.connect(audit / "audit.sqlite") as db:  # as root: every record carries a Hub name
        users = {u for (u,) in db.execute("select distinct user from audit_log") if u}
    assert users <= {RITA, OMAR, SAM, NORA}, users


def test_a_group_change_reaches_a_running_kernel_within_the_bound(deployment, servers):
    hub = deployment["hub"]
    url, token = servers[OMAR]

    async def scenario():
        async with kernel(url, token, "groups.ipynb") as k:
            before = await k.execute(read_cell(deployment["patients"]))
            assert before.error is None, before.text
            hub.set_groups(OMAR, [])
            changed = time.monotonic()
            try:
                while True:  # the same running kernel, its next reads
                    res = await k.execute(read_cell(deployment["patients"]))
                    if res.error is not None:
                        break
                    assert time.monotonic() - changed < TTL + 10, "the group change did not reach decisions"
                    await asyncio.sleep(1)
                assert res.error["ename"] == "GuardDenied", res.text
                assert time.monotonic() - changed <= TTL + 10
            finally:
                hub.set_groups(OMAR, ["research"])

    run(scenario())


def test_the_service_unreachable_makes_reads_fail_closed(deployment, servers):
    hub = deployment["hub"]
    url, token = servers[RITA]
    pid = _service_pid()

    async def scenario():
        async with kernel(url, token, "down.ipynb") as k:
            os.kill(pid, signal.SIGSTOP)  # frozen, not exited: the Hub would restart an exited service
            try:
                res = await k.execute(read_cell(deployment["patients"]))
            finally:
                os.kill(pid, signal.SIGCONT)
            assert res.error is not None and res.error["ename"] == "GuardDenied", res.text
            assert "guard service" in res.text and "123-45-6789" not in res.text
            again = await k.execute(read_cell(deployment["patients"]))  # back: reads work again
            assert again.error is None, again.text

    run(scenario())
    assert hub.hub_log()


def _service_pid() -> int:
    uid = pwd.getpwnam(GUARD).pw_uid
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid and b"service\x00--config" in Path(
                        f"/proc/{entry}/cmdline").read_bytes():
                    return int(entry)
            except OSError:
                continue
    raise AssertionError("no guard service process of jg-guard")


def test_a_server_without_the_guard_is_recorded_for_stewards(deployment, servers):
    hub = deployment["hub"]
    hub.start_server(NORA)
    deadline = time.monotonic() + 30
    while True:
        flagged = [r for r in run(steward_records(servers, event_type="server_started", user=NORA))
                   if r["decision"] == "unguarded"]
        if flagged or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert flagged, "the service did not record the server that runs without the guard"
    assert flagged[0]["details"]["guard_loaded"] is False
    hub.stop_server(NORA)


def test_user_config_cannot_switch_the_guard_off(deployment, servers):
    hub = deployment["hub"]
    home = Path(pwd.getpwnam(OMAR).pw_dir)
    r = hub.run_as(OMAR, ["sh", "-c", "mkdir -p ~/.jupyter && printf '%s' "
                          "'{\"ServerApp\": {\"jpserver_extensions\": {\"jupyter_guard\": false}}}' "
                          "> ~/.jupyter/jupyter_server_config.json"])
    assert r.returncode == 0, r.stderr
    assert json.loads((home / ".jupyter" / "jupyter_server_config.json").read_text())
    hub.stop_server(OMAR)
    url = hub.start_server(OMAR)
    token = servers[OMAR][1]
    code, status = run(http("GET", f"{url}jupyter-guard/api/status", token))
    assert code == 200, status
    text, error = run(execute(url, token, read_cell(deployment["patients"])))
    assert error is None and "123-45-6789" not in text and "PSN_" in text, text


def test_a_server_killed_mid_burst_leaves_no_read_without_a_durable_record(deployment, servers):
    hub = deployment["hub"]
    url, token = servers[RITA]
    marks = Path(pwd.getpwnam(RITA).pw_dir) / "returned.log"
    # the kernel decides once per execution (answers are cached within one), so one read per cell
    setup = textwrap.dedent(f"""\
        import pandas as pd
        def read_once(i):
            df = pd.read_csv({str(deployment['patients'])!r})
            with open({str(marks)!r}, "a") as f:  # written only once data came back
                f.write(f"{{i}}\\n")
        """)

    async def scenario():
        async with kernel(url, token, "burst.ipynb") as k:
            res = await k.execute(setup)
            assert res.error is None, res.text
            killer = threading.Timer(3.0, lambda: os.kill(hub.server_pid(RITA), signal.SIGKILL))
            killer.start()
            with contextlib.suppress(Exception):  # the channel dies with the server
                for i in range(100000):
                    await k.execute(f"read_once({i})", timeout=10)
            killer.join()

    run(scenario())  # the session's clean-up answers 503 through the proxy: the server is gone
    time.sleep(2)  # the orphaned kernel's last read fails: its server is gone
    returned = len(marks.read_text().split())
    assert returned >= 5, returned
    audit = deployment["service"] / "audit" / "audit.sqlite"
    with sqlite3.connect(audit) as db:
        (recorded,) = db.execute("select count(*) from audit_log where event_type = 'decision' and user = ? "
                                 "and notebook like '%burst.ipynb'", (RITA,)).fetchone()
    assert recorded >= returned, (recorded, returned)


# -- brokered reads (issue 13) ------------------------------------------------------------------

BYPASSES = """\
import subprocess, sqlite3, duckdb, pyarrow.csv
V = {vault!r}
def attempt(name, fn):
    try:
        fn()
        print(name, 'READ')
    except Exception as e:
        print(name, 'refused:', type(e).__name__, str(e)[:160].replace(chr(10), ' '))
def cat():
    r = subprocess.run(['cat', V + '/patients.csv'], capture_output=True, text=True)
    if r.returncode:
        raise PermissionError(r.stderr.strip())
    print(r.stdout)
attempt('open', lambda: open(V + '/patients.csv').read())
attempt('cat', cat)
attempt('duckdb', lambda: duckdb.sql(f"select * from '{{V}}/patients.csv'").fetchall())
attempt('sqlite3', lambda: sqlite3.connect(V + '/clinic.db').execute('select * from patients').fetchall())
attempt('arrow-raw', lambda: pyarrow.csv.read_csv(V + '/patients.csv'))
"""


def _service_pid() -> int:
    from hub_rig import cmdline, pids_of_uid

    pids = [p for p in pids_of_uid(pwd.getpwnam(GUARD).pw_uid) if "service" in " ".join(cmdline(p))]
    assert pids, "no guard service process"
    return min(pids)


def _rchar(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar")


def test_brokered_data_is_read_redacted_by_the_service_and_every_bypass_meets_the_os(deployment, servers):
    url, token = servers[OMAR]  # jg-rita's server was killed by the test before
    vault = str(deployment["vault"])
    code = textwrap.dedent(f"""\
        import pandas as pd, polars as pl, pyarrow.parquet as pq, jupyter_guard
        a = pd.read_parquet({vault!r} + '/patients.parquet')
        b = pd.read_csv({vault!r} + '/patients.csv')
        c = pl.read_parquet({vault!r} + '/patients.parquet')
        d = pq.read_table({vault!r} + '/patients.parquet')
        e = jupyter_guard.read({vault!r} + '/patients.parquet', columns=['email'])
        direct = pd.read_csv({str(deployment['patients'])!r})  # the in-kernel path, same values
        q = pd.read_sql('select ssn from patients', jupyter_guard.connect('vault_db'))
        print('SQL', q.ssn.tolist())
        print('PANDAS', a.ssn.tolist(), b.ssn.tolist())
        print('POLARS', c['ssn'].to_list(), 'ARROW', d.column('ssn').to_pylist())
        print('SAME-PSN', a.email.tolist() == direct.email.tolist() == e.email.tolist() == c['email'].to_list())
        print('EMAILS', a.email.tolist())
        """)
    text, error = run(execute(url, token, code))
    assert error is None, text
    assert "PANDAS ['***-**-6789', '***-**-7891'] ['***-**-6789', '***-**-7891']" in text
    assert "POLARS ['***-**-6789', '***-**-7891'] ARROW ['***-**-6789', '***-**-7891']" in text
    assert "SAME-PSN True" in text and "PSN_" in text
    assert "SQL ['***-**-6789']" in text  # run by the service on a database file the kernel cannot open
    for raw in ("123-45-6789", "ann.lee@example.com"):
        assert raw not in text
    # the hooks bypassed (the extension unloaded, as the review did): the OS refuses every reader
    text, error = run(execute(url, token, "%unload_ext jupyter_guard.kernel\n" + BYPASSES.format(vault=vault)))
    assert error is None, text
    for name in ("open", "cat", "duckdb", "sqlite3", "arrow-raw"):
        line = next(ln for ln in text.splitlines() if ln.startswith(name + " "))
        assert "refused" in line and ("ermission denied" in line or "unable to open" in line), line
    assert "READ" not in text and "123-45-6789" not in text


def test_a_brokered_projection_reads_only_the_columns_asked_for(deployment, servers):
    url, token = servers[OMAR]  # jg-rita's server was killed by the test before
    wide = str(deployment["vault"] / "wide.parquet")
    pid = _service_pid()
    size = os.path.getsize(wide)

    def bytes_read(code: str) -> int:
        before = _rchar(pid)
        text, error = run(execute(url, token, "import pandas as pd\n" + code))
        assert error is None, text
        return _rchar(pid) - before

    full = bytes_read(f"df = pd.read_parquet({wide!r}); print(df.shape)")
    one = bytes_read(f"df = pd.read_parquet({wide!r}, columns=['id']); print(df.shape)")
    assert full >= size * 0.9, (full, size)  # the whole file went through the service
    assert one < size * 0.2, (one, size)  # the blob column (most of the file) was never read
