"""Data sources in the catalog, their URLs filled with secrets, and the provider chain.

Real files, a real keyring backend file (keyrings.alt), real environment variables.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from conftest import DATASETS, POLICY, write_catalog

from jupyter_guard.catalog import Source
from jupyter_guard.credentials import (
    CredentialChain,
    CredentialSettings,
    EnvProvider,
    FileProvider,
    KeyringProvider,
)
from jupyter_guard.errors import CatalogError, CredentialError
from jupyter_guard.governor import load_governance
from jupyter_guard.policy import build_policy
from jupyter_guard.sources import resolve_source

# keyrings.alt's EncryptedKeyring derives its key with PBKDF2 defaults that pycryptodome warns about
pytestmark = pytest.mark.filterwarnings("ignore:PBKDF2 without:DeprecationWarning")

ENCRYPTED = "keyrings.alt.file.EncryptedKeyring"
PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"

SOURCES = """\
sources:
  - name: warehouse
    description: Clinical warehouse
    url: postgresql+psycopg://{user}:{password}@127.0.0.1:5432/clinic
    credential: warehouse
    user: analyst
    label: confidential
    steward: Dana Steward <dana@example.org>
  - name: registry
    url: postgresql+psycopg://{user}:{password}@{host}:{port}/{database}
    credential: registry-json
    label: restricted
    steward: {name: Rex Registry, email: rex@example.org}
    purposes: [treatment-research]
  - name: notes
    url: sqlite:////srv/data/notes.db
    label: internal
    steward: Ops Team <ops@example.org>
"""


def catalog_with(tmp_path: Path, sources: str, policy: str = POLICY) -> Path:
    d = write_catalog(tmp_path / "catalog", DATASETS, policy)
    (d / "sources.yaml").write_text(textwrap.dedent(sources))
    return d


def problems_of(directory: Path, root: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_governance(directory, root)
    return [str(p) for p in info.value.problems]


# ------------------------------------------------------------------ the catalog section


def test_sources_load_with_their_label_steward_and_purposes(tmp_path):
    gov = load_governance(catalog_with(tmp_path, SOURCES), tmp_path)
    sources = gov.catalog.sources
    assert sorted(sources) == ["notes", "registry", "warehouse"]
    wh = sources["warehouse"]
    assert isinstance(wh, Source) and wh.label.name == "confidential" and wh.user == "analyst"
    assert wh.credential == "warehouse" and str(wh.steward) == "Dana Steward <dana@example.org>"
    assert wh.line == 2 and wh.file.endswith("sources.yaml")
    assert sources["registry"].purposes == ("treatment-research",)
    assert sources["notes"].credential is None
    assert gov.catalog.summary()["sources"] == 3
    ds = wh.as_dataset()  # what the policy sees
    assert ds.name == "warehouse" and ds.label.name == "confidential" and ds.locations == ()
    assert "password" not in json.dumps(wh.to_dict()).replace("{password}", "")


def test_every_problem_of_a_source_is_reported_with_file_and_line(tmp_path):
    bad = """\
    sources:
      - name: a
        url: postgresql://{user}:{password}@db/x
        user: u
        label: internal
        steward: S <s@example.org>
      - name: b
        url: not-a-url
        label: internal
        steward: S <s@example.org>
      - name: c
        url: postgresql://{user}@db/{database}
        label: secret-ish
        steward: S <s@example.org>
      - name: d
        url: postgresql://x@db/y
        label: internal
      - name: g
        url: sqlite:////tmp/a.db
        label: internal
        steward: S <s@example.org>
      - name: e
        url: postgresql://u:hunter2@db/y
        label: internal
        steward: S <s@example.org>
        colour: red
      - name: f
        url: sqlite:///{path!r}
        credential: f
        label: internal
        steward: S <s@example.org>
      - name: g
        url: sqlite:////tmp/g.db
        label: internal
        steward: S <s@example.org>
    """
    d = catalog_with(tmp_path, bad)
    f = d / "sources.yaml"
    problems = problems_of(d, tmp_path)
    expected = [
        f"{f}:3: unknown placeholder {{password}} in url: a url with {{password}} needs credential:",
        f"{f}:8: url 'not-a-url' has no scheme://",
        f"{f}:12: unknown placeholder {{user}} in url",
        f"{f}:12: unknown placeholder {{database}} in url",
        f"{f}:13: unknown label 'secret-ish' (labels: public, internal, confidential, restricted)",
        f"{f}:15: source 'd' has no steward",
        f"{f}:32: source 'g' is defined twice (first at {f}:18)",
        f"{f}:26: unknown source field 'colour'",
        f"{f}:23: url has a password written in it",
        f"{f}:28: placeholder {{path!r}} is not a plain name",
    ]
    for want in expected:
        assert any(p.startswith(want) for p in problems), (want, problems)
    assert not any("hunter2" in p for p in problems)  # never a written password in a message


def test_sources_must_be_a_list_and_unknown_sections_are_still_errors(tmp_path):
    d = catalog_with(tmp_path, "sources: {warehouse: {}}\nsourcez: []\n")
    problems = problems_of(d, tmp_path)
    assert f"{d / 'sources.yaml'}:1: sources must be a list" in problems
    assert any(p.startswith(f"{d / 'sources.yaml'}:2: unknown section 'sourcez'") for p in problems)


def test_the_default_policy_decides_credential_by_the_sources_label(tmp_path):
    d = write_catalog(tmp_path / "catalog", DATASETS, policy="roles: {}\n")  # no rules: the default policy
    (d / "policy.yaml").unlink()
    (d / "sources.yaml").write_text(SOURCES)
    gov = load_governance(d, tmp_path)
    rita = gov.policy.principal("rita")
    wh, reg = gov.catalog.sources["warehouse"], gov.catalog.sources["registry"]
    allowed = gov.policy.decide(rita, wh.as_dataset(), "credential", target="source:warehouse")
    assert allowed.permitted and allowed.rule == "confidential-credential" and allowed.dataset == "warehouse"
    no_purpose = gov.policy.decide(rita, reg.as_dataset(), "credential")
    assert not no_purpose.permitted and "needs a declared purpose" in no_purpose.message()
    assert "Rex Registry <rex@example.org>" in no_purpose.message()
    assert gov.policy.decide(rita, reg.as_dataset(), "credential", purpose="treatment-research").permitted
    assert build_policy([], gov.catalog, []).rules  # sources do not disturb the policy build


# ------------------------------------------------------------------ resolving a URL


def source(url: str, credential: str | None = "db", user: str | None = "analyst") -> Source:
    from jupyter_guard.catalog import Label

    return Source(name="db", url=url, label=Label("internal", 1), credential=credential, user=user, file="x.yaml", line=3)


def test_a_plain_secret_fills_password_url_quoted(tmp_path):
    chain = CredentialChain([EnvProvider(environ={"JUPYTER_GUARD_SECRET_DB": "p@ss:w/rd%"})])
    r = resolve_source(source("postgresql+psycopg://{user}:{password}@127.0.0.1:5432/clinic"), chain)
    assert r.url == "postgresql+psycopg://analyst:p%40ss%3Aw%2Frd%25@127.0.0.1:5432/clinic"
    assert r.secrets == ("p@ss:w/rd%", "p%40ss%3Aw%2Frd%25") and r.provider == "env"
    assert "p@ss" not in repr(r) and "p%40" not in repr(r)
    import sqlalchemy

    assert sqlalchemy.make_url(r.url).password == "p@ss:w/rd%"  # SQLAlchemy reads it back exactly


def test_a_json_secret_fills_user_password_and_other_keys():
    secret = json.dumps({"user": "svc", "password": "pw-123456", "host": "db.internal", "port": 5433, "database": "reg"})
    chain = CredentialChain([EnvProvider(environ={"JUPYTER_GUARD_SECRET_DB": secret})])
    r = resolve_source(source("postgresql://{user}:{password}@{host}:{port}/{database}", user="ignored"), chain)
    assert r.url == "postgresql://svc:pw-123456@db.internal:5433/reg"
    assert "pw-123456" in r.secrets and "db.internal" in r.secrets
    assert "svc" not in r.secrets and "5433" not in r.secrets  # user names and short values are not masked
    with pytest.raises(CredentialError, match=r"data source 'db': secret 'db' \(from the env provider\) gives no value for \{schema\}"):
        resolve_source(source("postgresql://{user}:{password}@{host}/{schema}"), chain)


def test_a_source_without_a_secret_and_sqlite_paths():
    r = resolve_source(source("sqlite:////srv/data/notes.db", credential=None), CredentialChain([]))
    assert r.url == "sqlite:////srv/data/notes.db" and r.secrets == () and r.provider is None


# ------------------------------------------------------------------ the provider chain


@pytest.fixture
def keyring_env(tmp_path, monkeypatch):
    """An encrypted keyring file whose password comes from an environment variable."""
    monkeypatch.setenv("GUARD_KEYRING_PASSWORD", "correct horse battery")
    return CredentialSettings(
        providers=("file", "env", "keyring"),
        directory=str(tmp_path / "mounted"),
        keyring_backend=ENCRYPTED,
        keyring_file=str(tmp_path / "keyring" / "secrets.cfg"),
        keyring_password_env="GUARD_KEYRING_PASSWORD",
    )


def test_chain_asks_in_order_and_says_who_answered(tmp_path, monkeypatch, keyring_env):
    chain = CredentialChain.from_settings(keyring_env)
    chain.provider("keyring").set("warehouse", "from-keyring")
    assert chain.lookup("warehouse", source="warehouse") == ("from-keyring", "keyring")
    monkeypatch.setenv("JUPYTER_GUARD_SECRET_WAREHOUSE", "from-env")
    assert chain.lookup("warehouse") == ("from-env", "env")
    FileProvider(keyring_env.directory).set("warehouse", "from-file")
    assert chain.lookup("warehouse") == ("from-file", "file")
    reordered = CredentialChain.from_settings(
        CredentialSettings(**{**keyring_env.__dict__, "providers": ("keyring", "file", "env")})
    )
    assert reordered.lookup("warehouse") == ("from-keyring", "keyring")
    with open(keyring_env.keyring_file, encoding="utf-8") as f:
        assert "from-keyring" not in f.read()  # encrypted at rest
    assert chain.holders()["warehouse"] == [p.name for p in chain.providers]


def test_nothing_found_names_the_source_and_every_provider(keyring_env):
    chain = CredentialChain.from_settings(keyring_env)
    with pytest.raises(CredentialError) as info:
        chain.lookup("warehouse", source="warehouse")
    msg = str(info.value)
    assert "data source 'warehouse'" in msg
    assert keyring_env.directory in msg and "JUPYTER_GUARD_SECRET_WAREHOUSE" in msg and ENCRYPTED in msg
    assert "jupyter guard credentials set warehouse" in msg
    assert not os.path.exists(keyring_env.keyring_file)  # a lookup never creates a keyring file


def test_off_providers_are_said_and_the_os_keyring_is_never_used():
    chain = CredentialChain.from_settings(CredentialSettings())
    assert [p.kind for p in chain.providers] == ["env"]
    assert chain.off == ["file (no FileSecrets.directory)", "keyring (no KeyringSecrets.backend)"]
    with pytest.raises(CredentialError, match=r"switched off: file \(no FileSecrets.directory\), keyring"):
        chain.lookup("x", source="x")
    with pytest.raises(CredentialError, match="no keyring credential provider is configured"):
        chain.provider("keyring")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (CredentialSettings(providers=("file", "vault")), "unknown credential provider 'vault'"),
        (CredentialSettings(providers=("env", "env")), "listed twice"),
        (CredentialSettings(keyring_backend="keyrings.nope.Backend"), "cannot load keyring backend"),
        (CredentialSettings(env_prefix=""), "prefix must not be empty"),
    ],
)
def test_configuration_mistakes_are_errors_at_once(settings, message):
    with pytest.raises(CredentialError, match=message):
        CredentialChain.from_settings(settings)


def test_a_wrong_password_fails_at_once_naming_provider_and_source_with_no_fallback(monkeypatch, keyring_env):
    chain = CredentialChain.from_settings(keyring_env)
    chain.provider("keyring").set("warehouse", "from-keyring")
    monkeypatch.setenv("JUPYTER_GUARD_SECRET_OTHER", "x")
    monkeypatch.setenv("GUARD_KEYRING_PASSWORD", "wrong")
    order = ("keyring", "env")  # a less safe provider after it that *does* hold the name
    monkeypatch.setenv("JUPYTER_GUARD_SECRET_WAREHOUSE", "from-env")
    chain = CredentialChain.from_settings(CredentialSettings(**{**keyring_env.__dict__, "providers": order}))
    with pytest.raises(CredentialError) as info:
        chain.lookup("warehouse", source="warehouse")
    msg = str(info.value)
    assert "data source 'warehouse'" in msg and ENCRYPTED in msg and "wrong password" in msg
    assert "not asked" in msg
    monkeypatch.delenv("GUARD_KEYRING_PASSWORD")
    with pytest.raises(CredentialError, match="GUARD_KEYRING_PASSWORD .* is not set"):
        chain.lookup("warehouse", source="warehouse")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "directory"])
def test_a_corrupt_or_unreadable_keyring_file_fails_at_once_with_no_fallback(monkeypatch, keyring_env, damage):
    chain = CredentialChain.from_settings(CredentialSettings(**{**keyring_env.__dict__, "providers": ("keyring", "env")}))
    chain.provider("keyring").set("warehouse", "from-keyring")
    monkeypatch.setenv("JUPYTER_GUARD_SECRET_WAREHOUSE", "from-env")
    path = Path(keyring_env.keyring_file)
    text = path.read_text()
    if damage == "garbage":
        path.write_text("this is no keyring at all: from-keyring\n")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        path.unlink()
        path.mkdir()
    with pytest.raises(CredentialError) as info:
        chain.lookup("warehouse", source="warehouse")
    msg = str(info.value)
    assert "data source 'warehouse'" in msg and ENCRYPTED in msg and str(path) in msg
    assert "from-keyring" not in msg and "from-env" not in msg


def test_a_corrupt_plaintext_keyring_file_is_an_error_not_an_empty_keyring(tmp_path):
    path = tmp_path / "plain.cfg"
    chain = CredentialChain.from_settings(
        CredentialSettings(providers=("keyring",), keyring_backend=PLAINTEXT, keyring_file=str(path))
    )
    chain.provider("keyring").set("warehouse", "pw")
    path.write_text("[unterminated\nwarehouse = pw\n")
    with pytest.raises(CredentialError, match="corrupt") as info:
        chain.lookup("warehouse", source="warehouse")
    assert "= pw" not in str(info.value)  # the parser's quote of the line is never passed on


def test_the_keyring_password_can_come_from_a_mounted_file(tmp_path):
    pw = tmp_path / "keyring-password"
    pw.write_text("from a secret volume\n")
    settings = CredentialSettings(
        providers=("keyring",), keyring_backend=ENCRYPTED, keyring_file=str(tmp_path / "k.cfg"),
        keyring_password_file=str(pw),
    )
    CredentialChain.from_settings(settings).provider("keyring").set("warehouse", "v1")
    assert KeyringProvider(ENCRYPTED, file_path=str(tmp_path / "k.cfg"), password="from a secret volume").get("warehouse") == "v1"
    pw.write_text("another")
    with pytest.raises(CredentialError, match="wrong password"):
        CredentialChain.from_settings(settings).lookup("warehouse", source="warehouse")


def test_rotation_is_used_by_the_next_lookup_with_no_restart(monkeypatch, keyring_env):
    chain = CredentialChain.from_settings(keyring_env)  # built once, as the server does
    keyring = chain.provider("keyring")
    keyring.set("warehouse", "v1")
    assert chain.lookup("warehouse") == ("v1", "keyring")
    keyring.set("warehouse", "v2")
    assert chain.lookup("warehouse") == ("v2", "keyring")
    files = FileProvider(keyring_env.directory)
    files.set("warehouse", "f1")
    assert chain.lookup("warehouse") == ("f1", "file")
    files.set("warehouse", "f2")
    assert chain.lookup("warehouse") == ("f2", "file")
    files.delete("warehouse")
    assert chain.lookup("warehouse") == ("v2", "keyring")


def test_an_empty_secret_is_an_error():
    chain = CredentialChain([EnvProvider(environ={"JUPYTER_GUARD_SECRET_DB": ""})])
    with pytest.raises(CredentialError, match="is empty"):
        chain.lookup("db", source="db")


def test_secret_variables_are_the_prefixed_ones_and_the_keyring_password():
    settings = CredentialSettings(keyring_password_env="KPW")
    env = {"JUPYTER_GUARD_SECRET_DB": "x", "KPW": "y", "PATH": "/bin", "JUPYTER_GUARD_URL": "u"}
    assert sorted(CredentialChain.from_settings(settings, environ=env).secret_variables(env)) == [
        "JUPYTER_GUARD_SECRET_DB", "KPW"]


def test_a_password_with_spaces_and_symbols_survives_the_url():
    """SQLAlchemy decodes URL passwords with unquote: a space must travel as %20, never '+'."""
    import sqlalchemy

    from jupyter_guard.sources import _quote

    password = "pa ss+w/o:r@d%"
    url = sqlalchemy.make_url(f"postgresql://u:{_quote(password)}@h/db")
    assert url.password == password
