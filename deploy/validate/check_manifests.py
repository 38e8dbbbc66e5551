#!/usr/bin/env python3
"""Validates rendered Helm output (deploy/validate.sh).

- Every object of a built-in kind is validated, strictly (no unknown fields), against the
  Kubernetes JSON schemas of each version asked for (kubernetes-validate, offline).
- Custom resources (KEDA, Prometheus Operator) have no schema there: each must parse with
  apiVersion, kind and metadata.name, and carry the fields its controller needs.
- Cross-references hold: scale targets, Service selectors, Ingress backends and the
  TriggerAuthentication name rendered objects, and no Deployment is scaled twice.
- Every container runs as the non-root user with a read-only root filesystem, no capabilities and
  the runtime's seccomp profile, with probes on /health.

Usage: check_manifests.py --kube-version 1.29.0 [--kube-version …] FILE…
"""

import argparse
import sys

import kubernetes_validate
import yaml

CUSTOM = {
    ("keda.sh/v1alpha1", "ScaledObject"): ["spec.scaleTargetRef.name", "spec.triggers"],
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ["spec.secretTargetRef"],
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ["spec.selector", "spec.endpoints"],
    ("monitoring.coreos.com/v1", "PodMonitor"): ["spec.selector", "spec.podMetricsEndpoints"],
    ("monitoring.coreos.com/v1", "PrometheusRule"): ["spec.groups"],
}


def get(obj, dotted):
    for part in dotted.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def load(paths):
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                docs.append((f"{path}#{i}", doc))
    return docs


def check(docs, versions):
    errors = []
    by_kind = {}
    for where, doc in docs:
        if not isinstance(doc, dict):
            errors.append(f"{where}: not a mapping")
            continue
        api, kind, name = doc.get("apiVersion"), doc.get("kind"), get(doc, "metadata.name")
        if not (api and kind and name):
            errors.append(f"{where}: apiVersion, kind and metadata.name are required")
            continue
        label = f"{where} {kind}/{name}"
        by_kind.setdefault(kind, {})[name] = doc
        if (api, kind) in CUSTOM:
            for field in CUSTOM[(api, kind)]:
                if not get(doc, field):
                    errors.append(f"{label}: {field} is missing or empty")
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                errors.append(f"{label}: no schema for {api} {kind} in Kubernetes {version}")
            except kubernetes_validate.ValidationError as e:
                path = "/".join(str(p) for p in e.path)
                errors.append(f"{label}: Kubernetes {version}: {path}: {e.message}")
    return errors, by_kind


def cross_check(by_kind):
    errors = []
    deployments = by_kind.get("Deployment", {})
    services = by_kind.get("Service", {})
    scaled = {}
    for kind, path in (("HorizontalPodAutoscaler", "spec.scaleTargetRef.name"),
                       ("ScaledObject", "spec.scaleTargetRef.name")):
        for name, doc in by_kind.get(kind, {}).items():
            target = get(doc, path)
            if target not in deployments:
                errors.append(f"{kind}/{name}: scale target {target} is not a rendered Deployment")
            elif target in scaled:
                errors.append(f"{kind}/{name}: {target} is already scaled by {scaled[target]}")
            else:
                scaled[target] = f"{kind}/{name}"
                if get(deployments[target], "spec.replicas") is not None:
                    errors.append(f"Deployment/{target}: sets replicas although {kind}/{name} "
                                  "scales it")
    auths = by_kind.get("TriggerAuthentication", {})
    for name, doc in by_kind.get("ScaledObject", {}).items():
        for trigger in get(doc, "spec.triggers") or []:
            ref = get(trigger, "authenticationRef.name")
            if ref and ref not in auths:
                errors.append(f"ScaledObject/{name}: authenticationRef {ref} is not rendered")
            meta = trigger.get("metadata") or {}
            if trigger.get("type") == "rabbitmq" and not (meta.get("queueName") and
                                                          meta.get("value")):
                errors.append(f"ScaledObject/{name}: rabbitmq trigger needs queueName and value")
    for name, svc in services.items():
        selector = get(svc, "spec.selector") or {}
        ports = {p.get("targetPort") for p in get(svc, "spec.ports") or []}
        matches = [d for d in deployments.values()
                   if selector and all(get(d, "spec.template.metadata.labels").get(k) == v
                                       for k, v in selector.items())]
        if not matches:
            errors.append(f"Service/{name}: its selector matches no rendered Deployment")
        for d in matches:
            names = {p.get("name") for c in get(d, "spec.template.spec.containers")
                     for p in c.get("ports", [])}
            for port in ports:
                if isinstance(port, str) and port not in names:
                    errors.append(f"Service/{name}: targetPort {port} is no container port")
    for name, ing in by_kind.get("Ingress", {}).items():
        for rule in get(ing, "spec.rules") or []:
            for p in get(rule, "http.paths") or []:
                backend = get(p, "backend.service.name")
                port = get(p, "backend.service.port.name")
                if backend not in services:
                    errors.append(f"Ingress/{name}: backend {backend} is not a rendered Service")
                elif port and port not in {x.get("name") for x in get(services[backend],
                                                                       "spec.ports")}:
                    errors.append(f"Ingress/{name}: {backend} has no port named {port}")
    pods = [(f"Deployment/{n}", get(d, "spec.template.spec")) for n, d in deployments.items()]
    pods += [(f"Job/{n}", get(d, "spec.template.spec")) for n, d in by_kind.get("Job", {}).items()]
    for label, spec in pods:
        psc = spec.get("securityContext") or {}
        for c in spec.get("containers", []):
            sc = c.get("securityContext") or {}
            where = f"{label} container {c.get('name')}"
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                errors.append(f"{where}: runAsNonRoot is not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                errors.append(f"{where}: the root filesystem is not read-only")
            if "ALL" not in (get(sc, "capabilities.drop") or []):
                errors.append(f"{where}: capabilities are not all dropped")
            if sc.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: privilege escalation is allowed")
            seccomp = get(sc, "seccompProfile.type") or get(psc, "seccompProfile.type")
            if seccomp != "RuntimeDefault":
                errors.append(f"{where}: the seccomp profile is not RuntimeDefault")
            if not c.get("resources"):
                errors.append(f"{where}: no resources")
            if label.startswith("Deployment/"):
                for probe in ("livenessProbe", "readinessProbe"):
                    path = get(c, f"{probe}.httpGet.path") or ""
                    if not path.startswith("/health"):
                        errors.append(f"{where}: {probe} is not on a /health endpoint")
    return errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kube-version", action="append", required=True)
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()
    failed = False
    for path in args.files:
        docs = load([path])
        errors, by_kind = check(docs, args.kube_version)
        errors += cross_check(by_kind)
        kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(by_kind.items()))
        print(f"check_manifests: {path}: {len(docs)} objects ({kinds}); Kubernetes "
              f"{', '.join(args.kube_version)}: {'ok' if not errors else 'FAILED'}")
        for e in errors:
            print(f"FAIL: {e}", file=sys.stderr)
        failed = failed or bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
