"""Brokered reads through a real guard service (token mode, no Hub): a real jupyter_server is
its client and a real kernel reads restricted data, which the service reads and redacts.

The service brokers restricted data by the policy's default (defaults.brokered_labels); the
OS-permission side (the kernel cannot open the file) needs other OS users: tests/hub.
"""

from __future__ import annotations

import asyncio
import signal
import textwrap

import pytest
from conftest import DATASETS, POLICY, write_catalog
from kernel_client import running_kernel
from service.service_helpers import guard_service, service_log

from jupyter_guard.service.identity import add_token

ROWS = 60_000
DIRECT = """\
  - name: patients_direct
    label: restricted
    access: direct
    steward: Dana Steward <dana@example.org>
    locations: [data/direct/patients.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
      email: {entity: EMAIL_ADDRESS, rule: hash}
      notes: {entity: FREE_TEXT, rule: scan}
    purposes: [treatment-research]
  - name: big
    label: restricted
    steward: Dana Steward <dana@example.org>
    locations: [data/big.csv]
    columns:
      ssn: {entity: US_SSN, rule: mask}
"""
PATIENTS = textwrap.dedent("""\
    id,name,ssn,email,notes
    1,Ann Lee,123-45-6789,ann.lee@example.com,Call back at 212-555-0187
    2,Bo Chan,234-56-7891,bo.chan@example.net,Prefers mail to bo.chan@example.net
""")


@pytest.fixture
def catalog_dir(tmp_path):
    return write_catalog(tmp_path / "catalog", DATASETS + DIRECT, POLICY)


@pytest.fixture
def tokens(tmp_path):
    path = tmp_path / "service" / "tokens.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return {"file": str(path), "rita": add_token(str(path), "rita"), "dana": add_token(str(path), "dana")}


def _data(root):
    (root / "data" / "direct").mkdir(parents=True, exist_ok=True)
    (root / "data" / "patients.csv").write_text(PATIENTS)
    (root / "data" / "direct" / "patients.csv").write_text(PATIENTS)
    lines = ["id,ssn,city"] + [f"{i},{100 + i % 800:03d}-{10 + i % 89:02d}-{1000 + i % 8999:04d},Springfield"
                               for i in range(ROWS)]
    (root / "data" / "big.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def service(request, tmp_path, catalog_dir, jp_root_dir, tokens):
    kernel_keys = getattr(request, "param", True)  # c.GuardService.kernel_keys
    _data(jp_root_dir)
    config = f"""
        c.GuardService.auth = "token"
        c.GuardService.tokens_file = {tokens['file']!r}
        c.GuardService.root_dir = {str(jp_root_dir)!r}
        c.GuardService.kernel_keys = {kernel_keys!r}
        c.GuardService.log_level = "INFO"
        c.GuardSettings.catalog_dir = {str(catalog_dir)!r}
        c.GuardSettings.audit_dir = {str(tmp_path / 'service' / 'audit')!r}
        c.GuardSettings.roles = {{"researcher": {{"users": ["rita"]}}}}
    """
    with guard_service(tmp_path / "service", config) as (url, proc):
        yield url, proc, kernel_keys, tmp_path / "service"


@pytest.fixture
def guard_config(guard_config, service, tokens):
    gc = guard_config["GuardApp"]
    del gc["audit_dir"]
    gc.update(service_url=service[0], service_token=tokens["rita"])
    return guard_config


@pytest.mark.parametrize("service", [True, False], indirect=True, ids=["kernel-keys", "keys-stay-in-the-service"])
async def test_the_service_reads_restricted_data_and_keeps_its_keys_if_told(service, jp_fetch, jp_ws_fetch):
    url, _, kernel_keys, workdir = service
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research")
        res = await k.execute("import pandas as pd\nb = pd.read_csv('data/patients.csv')\n"
                              "print(b.ssn.tolist(), b.email[0].startswith('PSN_'), '212-555-0187' in b.notes[0])")
        assert res.reply["content"]["status"] == "ok", res.text
        assert "['***-**-6789', '***-**-7891'] True False" in res.text
        (read,) = res.reply["metadata"]["jupyter_guard"]["reads"]
        assert read["access"] == "brokered" and read["dataset"] == "patients" and read["rows"] == 2
        # the same data read in the kernel (access: direct) needs the pseudonym key there
        res = await k.execute("d = pd.read_csv('data/direct/patients.csv')\npd.testing.assert_frame_equal(b, d)\nprint('same')")
        if kernel_keys:
            assert "same" in res.text and res.error is None, res.text
        else:
            assert res.error and res.error["ename"] == "GuardDenied", res.text
            assert "kernel_keys setting is False" in res.error["evalue"] and "brokered" in res.error["evalue"]
            assert "123-45-6789" not in res.text
    assert "brokered read of patients for rita: 2 rows" in service_log(workdir)


async def test_a_service_killed_mid_stream_gives_a_clear_error_and_no_partial_frame(service, jp_fetch, jp_ws_fetch):
    url, proc, _, workdir = service
    async with running_kernel(jp_fetch, jp_ws_fetch) as (_, k):
        await k.execute("%guard purpose treatment-research\nimport os\nos.environ['JUPYTER_GUARD_BATCH_ROWS'] = '200'")
        cell = asyncio.ensure_future(k.execute("import pandas as pd\nbig = pd.read_csv('data/big.csv')\nprint(len(big))",
                                               timeout=60))
        for _ in range(600):
            if "brokered read of big for rita: streaming" in service_log(workdir):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"the read never started:\n{service_log(workdir)}")
        proc.send_signal(signal.SIGKILL)
        res = await cell
        assert res.error and res.error["ename"] in ("GuardDenied", "IncompleteRead"), res.text
        assert "stopped sending this brokered read before it was complete" in res.error["evalue"], res.error
        assert "nothing was returned" in res.error["evalue"]
        res = await k.execute("print('big' in globals())")
        assert res.text.strip() == "False"
