#!/usr/bin/env bash
# Runs Stampede in `all` mode on this machine: needs only PostgreSQL (started here if it is
# installed but stopped; installed from Debian's packages if missing). Web on :3000, streaming
# on :4000. Any variable from docs/configuration.md may be set before calling this.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ -z "${DATABASE_URL:-}" ]; then
    deploy/local/backing-services.sh postgres
    psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'stampede'" \
        | grep -q 1 || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE stampede"
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/stampede"
fi
# Video, audio and GIF uploads need ffmpeg; without it Stampede takes images only.
deploy/local/need.sh ffmpeg || echo "ffmpeg is missing: video and audio uploads will be refused" >&2
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
exec cargo run --release --bin stampede -- all
