#!/usr/bin/env bash
# Makes sure Debian packages a local script needs are installed: `deploy/local/need.sh wrk jq`.
# Each argument is a command that is also the name of its package. Installs what is missing with
# apt-get (as root, or through sudo); fails with a message naming the package otherwise.
set -euo pipefail
missing=()
for tool in "$@"; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
command -v apt-get >/dev/null || { echo "missing: ${missing[*]} (install them; there is no apt-get here)" >&2; exit 2; }
echo "installing ${missing[*]} from Debian's packages" >&2
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { echo "could not install ${missing[*]}: apt-get install ${missing[*]}" >&2; exit 2; }
