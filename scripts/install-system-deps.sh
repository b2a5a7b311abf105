#!/usr/bin/env bash
# Install the Debian packages pzvo needs, once, and make pgsphere loadable.
#   postgresql-15, postgresql-15-pgsphere: the database (private cluster under var/)
#   stilts: taplint, the TAP conformance referee the test suite runs
#   graphviz: `dot` draws provenance graphs (SVG, /prov and the graph page)
#   chromium, fonts-dejavu-core: the headless browser of the graph-page test, and the graph's font
#   nginx: the buffering front of `pzvo serve` (slow clients cost no request thread; docs/security.md)
# Idempotent: installed packages are skipped; the pgsphere fix (scripts/patch_pgsphere.py,
# see docs/operations.md) only rewrites the file when it still has the offending clauses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
packages=(postgresql-15 postgresql-15-pgsphere stilts python3-venv graphviz chromium fonts-dejavu-core nginx)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}; run 'make deps' as root or install them" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's postgresql-common creates and starts a default cluster on port 5432; pzvo runs its
  # own under var/, so the packaged one is stopped to keep the machine quiet.
  if command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main'; then
    pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
  # Debian's nginx starts a default site on port 80; `pzvo serve` runs its own nginx with a
  # configuration under var/, so the packaged one is stopped and kept from starting again.
  if [ -x /usr/sbin/nginx ]; then
    service nginx stop >/dev/null 2>&1 || true
    rm -f /etc/nginx/sites-enabled/default
  fi
fi
if [ "$(id -u)" -eq 0 ]; then
  python3 "$here/patch_pgsphere.py"
else
  python3 "$here/patch_pgsphere.py" --check 2>/dev/null || true
fi
