"""Real sign-in servers for the tests, on 127.0.0.1: an OpenID Provider (the npm package
``oidc-provider`` under node, ``tests/oidc/provider.mjs``) and an LDAP directory (Debian's
``slapd`` with its own configuration and database in a temporary folder).

``make test`` installs both (``.ci/signin-deps.sh``). Locally, a test needing one skips only
when its binary is missing; under CI (``CI`` set) it fails instead, so CI always runs them.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.gateway_fixtures import free_port

ROOT = Path(__file__).resolve().parent.parent
OIDC_DIR = ROOT / "tests" / "oidc"
CLIENT_ID = "switchboard"
CLIENT_SECRET = "test-client-secret-0123456789"
TEST_CALLBACK = "http://testserver/accounts/oidc/callback/"

ACCOUNTS = {
    "ann": {
        "password": "ann-pass",
        "email": "ann@example.org",
        "name": "Ann Example",
        "groups": ["research"],
    },
    "boss": {
        "password": "boss-pass",
        "email": "boss@example.org",
        "name": "The Boss",
        "groups": ["switchboard-admins", "research"],
    },
    "carol": {"password": "carol-pass", "email": "carol@example.org", "groups": []},
}


def require_binary(path: str | None, what: str) -> str:
    """The binary's path; a missing one skips the test locally and fails it under CI."""
    if path and Path(path).exists():
        return path
    message = f"{what} is not installed (make signin-deps installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def _npm_install() -> None:
    """``npm ci`` in tests/oidc when its node_modules is missing (once, under a file lock)."""
    npm = require_binary(shutil.which("npm"), "npm")
    with (OIDC_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=OIDC_DIR,
                check=True,
            )


class _FormFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action = ""

    def handle_starttag(self, tag, attrs) -> None:
        if tag == "form" and not self.action:
            self.action = dict(attrs).get("action") or ""


@dataclass
class OidcProvider:
    issuer: str
    accounts_file: Path

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET

    def set_accounts(self, accounts: dict) -> None:
        self.accounts_file.write_text(json.dumps(accounts))

    def set_groups(self, login: str, groups: list[str]) -> None:
        accounts = json.loads(self.accounts_file.read_text())
        accounts[login]["groups"] = groups
        self.set_accounts(accounts)

    def tamper(self, mode: str) -> None:
        """The next ID tokens: "expired", "audience", "signature", "rotate" or "" (genuine)."""
        httpx.post(self.issuer + "/test/tamper", json={"mode": mode}).raise_for_status()

    def log_in(self, authorize_url: str, login: str, password: str) -> str:
        """A browser on the provider's pages: the authorization URL, the login form, and back.
        Returns the URL the provider sends the browser back to (the app's redirect URI)."""
        with httpx.Client(timeout=10) as browser:
            url = authorize_url
            for _ in range(10):
                response = browser.get(url)
                if response.status_code in (302, 303):
                    url = urljoin(url, response.headers["location"])
                    if not url.startswith(self.issuer):
                        return url
                    continue
                form = _FormFinder()
                form.feed(response.text)
                assert form.action, f"no login form at {url}: {response.text[:500]}"
                response = browser.post(
                    urljoin(url, form.action), data={"login": login, "password": password}
                )
                if response.status_code == 401:
                    raise PermissionError("the provider refused the login")
                url = urljoin(url, response.headers["location"])
                if not url.startswith(self.issuer):
                    return url
            raise AssertionError("the provider never sent the browser back")


@contextmanager
def running_oidc_provider(
    folder: Path, redirect_uris: list[str], post_logout_uris: list[str] = ()
) -> Iterator[OidcProvider]:
    node = require_binary(shutil.which("node"), "node")
    _npm_install()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    provider = OidcProvider(
        issuer=f"http://127.0.0.1:{port}", accounts_file=folder / "accounts.json"
    )
    provider.set_accounts(ACCOUNTS)
    env = os.environ | {
        "OIDC_PORT": str(port),
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": ",".join(redirect_uris),
        "OIDC_POST_LOGOUT_URIS": ",".join(post_logout_uris),
        "OIDC_ACCOUNTS_FILE": str(provider.accounts_file),
        "NODE_NO_WARNINGS": "1",
    }
    log_path = folder / "provider.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [node, "provider.mjs"], cwd=OIDC_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        discovery = provider.issuer + "/.well-known/openid-configuration"
        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"oidc-provider exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(discovery, timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"oidc-provider did not start: {log_path.read_text()[-2000:]}")
        yield provider
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory) -> Iterator[OidcProvider]:
    """One provider for the Django test client's tests (redirect URI on ``testserver``)."""
    with running_oidc_provider(
        tmp_path_factory.mktemp("oidc"), [TEST_CALLBACK], ["http://testserver/accounts/login/"]
    ) as provider:
        yield provider


@pytest.fixture
def oidc(oidc_provider, settings) -> Iterator[OidcProvider]:
    """Switchboard configured for the test provider; its accounts and tokens as at the start."""
    settings.OIDC_ISSUER = oidc_provider.issuer
    settings.OIDC_CLIENT_ID = CLIENT_ID
    settings.OIDC_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_SCOPES = "openid email profile groups"
    settings.OIDC_ADMIN_GROUPS = ["switchboard-admins"]
    settings.OIDC_ALLOWED_GROUPS = []
    oidc_provider.set_accounts(ACCOUNTS)
    oidc_provider.tamper("")
    yield oidc_provider
    oidc_provider.tamper("")


# -- LDAP ---------------------------------------------------------------------------------------

LDAP_BASE = "dc=example,dc=org"
LDAP_ADMIN_DN = f"cn=admin,{LDAP_BASE}"
LDAP_ADMIN_PASSWORD = "directory-admin-secret"
LDAP_PEOPLE = f"ou=people,{LDAP_BASE}"
LDAP_GROUPS = f"ou=groups,{LDAP_BASE}"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
argsfile {folder}/slapd.args
database mdb
maxsize 10485760
suffix "{base}"
rootdn "{admin}"
rootpw {password}
directory {folder}/db
access to attrs=userPassword by self auth by anonymous auth by * none
access to * by * read
"""


def _person_ldif(uid: str, password: str, mail: str) -> str:
    return (
        f"dn: uid={uid},{LDAP_PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\n"
        f"sn: {uid.title()}\ngivenName: {uid.title()}\nmail: {mail}\nuserPassword: {password}\n"
    )


def _group_ldif(name: str, members: list[str]) -> str:
    lines = [f"dn: cn={name},{LDAP_GROUPS}", "objectClass: groupOfNames", f"cn: {name}"]
    lines += [f"member: uid={uid},{LDAP_PEOPLE}" for uid in members]
    return "\n".join(lines) + "\n"


DIRECTORY_LDIF = "\n".join(
    [
        f"dn: {LDAP_BASE}\nobjectClass: dcObject\nobjectClass: organization\n"
        "o: Example\ndc: example\n",
        f"dn: {LDAP_PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {LDAP_GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        _person_ldif("dora", "dora-pass", "dora@example.org"),
        _person_ldif("erik", "erik-pass", "erik@example.org"),
        _group_ldif("engineering", ["dora", "erik"]),
        _group_ldif("ops-admins", ["erik"]),
    ]
)


@dataclass
class LdapServer:
    uri: str

    def connection(self):
        import ldap

        connection = ldap.initialize(self.uri)
        connection.simple_bind_s(LDAP_ADMIN_DN, LDAP_ADMIN_PASSWORD)
        return connection


@pytest.fixture(scope="session")
def slapd(tmp_path_factory) -> Iterator[LdapServer]:
    """Debian's slapd on a free port with the small directory above (users dora and erik,
    groups engineering and ops-admins); stopped at the end of the session."""
    binary = require_binary(shutil.which("slapd") or "/usr/sbin/slapd", "slapd")
    slapadd = require_binary(shutil.which("slapadd") or "/usr/sbin/slapadd", "slapadd")
    folder = tmp_path_factory.mktemp("slapd")
    (folder / "db").mkdir()
    conf = folder / "slapd.conf"
    conf.write_text(
        SLAPD_CONF.format(
            folder=folder, base=LDAP_BASE, admin=LDAP_ADMIN_DN, password=LDAP_ADMIN_PASSWORD
        )
    )
    (folder / "directory.ldif").write_text(DIRECTORY_LDIF)
    subprocess.run(
        [slapadd, "-f", str(conf), "-l", str(folder / "directory.ldif")],
        check=True,
        capture_output=True,
    )
    port = free_port()
    uri = f"ldap://127.0.0.1:{port}"
    log = (folder / "slapd.log").open("w")
    # -d keeps slapd in the foreground (so the test owns the process); as root, run it as root.
    process = subprocess.Popen(
        [binary, "-f", str(conf), "-h", uri + "/", "-d", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = LdapServer(uri=uri)
    try:
        import ldap

        for _ in range(200):
            if process.poll() is not None:
                raise RuntimeError(f"slapd exited: {(folder / 'slapd.log').read_text()[-2000:]}")
            try:
                server.connection().unbind_s()
                break
            except ldap.SERVER_DOWN:
                time.sleep(0.05)
        else:
            raise RuntimeError("slapd did not start")
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
