#!/usr/bin/env bash
# Makes what docker-compose.yml locks Temporal and the runbooks down with, in ./secrets:
#   temporal-ca.pem            the CA every mTLS certificate below is signed by
#   temporal/                  the Temporal server's certificate, and an admin client's (its own tools)
#   worker/, intake/, ui/      one client certificate each: the only clients Temporal accepts
#   intake/intake-signing.pem  the intake's Ed25519 key (signs alerts and PagerDuty events)
#   intake/signin-signing.pem  the sign-in service's Ed25519 key (signs operators' actions)
# and prints the policy's `trust:` section with the two public keys. Existing files are kept.
#
#   deploy/make-secrets.sh [DIR]      (default ./secrets; needs openssl, and the project's .venv or $PYTHON)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-$root/.venv/bin/python}
[ -x "$py" ] || py=python3
dir=${1:-secrets}
days=${CERT_DAYS:-825}
mkdir -p "$dir"/{temporal,worker,intake,ui}
chmod 700 "$dir"
cd "$dir"

if [ ! -f temporal-ca.key ]; then
  openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj "/CN=runbooks temporal CA" \
    -keyout temporal-ca.key -out temporal-ca.pem 2>/dev/null
fi

cert() { # cert DIR NAME CN [SAN]
  local out=$1/$2
  [ -f "$out.pem" ] && return
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$3" -keyout "$out.key" -out "$out.csr" 2>/dev/null
  local ext
  ext=$(mktemp)
  if [ -n "${4:-}" ]; then
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$4" >"$ext"
  else
    printf 'extendedKeyUsage=clientAuth\n' >"$ext"
  fi
  openssl x509 -req -in "$out.csr" -CA temporal-ca.pem -CAkey temporal-ca.key -CAcreateserial \
    -days "$days" -extfile "$ext" -out "$out.pem" 2>/dev/null
  rm -f "$out.csr" "$ext"
  chmod 600 "$out.key"
}

cert temporal server temporal "DNS:temporal,DNS:localhost"
cert temporal admin temporal-admin
cert worker client runbooks-worker
cert intake client runbooks-intake
cert ui client temporal-ui
for part in temporal worker intake ui; do cp -f temporal-ca.pem "$part/ca.pem"; done

key() { # key FILE: an Ed25519 signing key, made once
  [ -f "$1" ] || PYTHONPATH="$root" "$py" -m signing generate "$1" >/dev/null
  PYTHONPATH="$root" "$py" -m signing public "$1" | cut -d' ' -f1
}
intake=$(key intake/intake-signing.pem)
signin=$(key intake/signin-signing.pem)

cat <<EOF
# Add to your policy (policy/default.yaml): whose signatures the runbooks accept.
trust:
  operators: [$signin]   # the sign-in service's key ($dir/intake/signin-signing.pem)
  intake: [$intake]      # the intake's key ($dir/intake/intake-signing.pem)
EOF
