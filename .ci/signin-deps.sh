#!/usr/bin/env bash
# What the sign-in tests need (tests/signin_fixtures.py), installed when missing:
#   - Debian's slapd + ldap-utils (the LDAP directory the tests start on 127.0.0.1),
#     libldap2-dev + libsasl2-dev (python-ldap, under django-auth-ldap, compiles against them),
#   - node + npm (Debian's nodejs/npm, only if there is no node at all), and
#   - the test OpenID Provider's npm packages: `npm ci` in tests/oidc (pinned by package-lock.json).
# Idempotent and quiet when everything is there; `make test` runs it (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "signin-deps: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null || missing+=(ldap-utils)
[ -e /usr/include/ldap.h ] || missing+=(libldap2-dev)
[ -e /usr/include/sasl/sasl.h ] || missing+=(libsasl2-dev)
# python-ldap's C extension: a compiler and the headers of the Python that builds the venv.
command -v cc >/dev/null || missing+=(gcc)
"${PYTHON:-python3}" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(
    os.path.join(sysconfig.get_paths()["include"], "Python.h")))' || missing+=(python3-dev)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq >&2
    # slapd's package would start a system directory; its policy-rc.d refusal is harmless here.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >&2
fi

if [ ! -d tests/oidc/node_modules/oidc-provider ]; then
    say "npm ci in tests/oidc"
    (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
