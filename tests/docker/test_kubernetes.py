"""docker/k8s: each overlay renders with ``kubectl kustomize``, every object it renders is
valid against the Kubernetes 1.32 schema (``kubernetes-validate``, strict: an unknown or
misspelt field fails), and the manifests hold what the deployment promises — unprivileged
pods, the probes, a grace period above the whole shutdown, the audit key kept apart from
the database credentials, egress only to PostgreSQL, Redis, Traffy and DNS.

Offline: no cluster is needed. Skipped, with the reason, where kubectl is absent; under CI
that is a failure instead (like the browser tests, tests/conftest.py).
"""

from __future__ import annotations

import base64
import copy
import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.audit.writer import AuditWriter
from gateway.cli.main import parser as cli_parser
from gateway.settings import Settings, variable

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "docker" / "k8s"
OVERLAYS = ("demo", "production")
# A release kubernetes-validate bundles the schemas of (strict: additionalProperties false).
KUBERNETES_VERSION = "1.32.0"
# Objects of custom resource definitions, which kubernetes-validate has no schema for: each
# is checked by its own rule below.
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}
# The kustomizations use `labels` (kustomize 4.1, in kubectl 1.22) and components (3.7);
# Debian 12's kubernetes-client, 1.20, is older. Run here with kubectl 1.32 (kustomize 5.5).
KUBECTL_MINOR_AT_LEAST = 22

KUBECTL = shutil.which("kubectl")

Doc = dict[str, Any]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must render the manifests")
    pytest.skip(reason)


def _kubectl_minor(kubectl: str) -> int:
    shown = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return int(re.match(r"\d+", json.loads(shown.stdout)["clientVersion"]["minor"])[0])


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Doc]]:
    """Every object of each overlay, as ``kubectl kustomize`` renders it."""
    if KUBECTL is None:
        _unavailable("no kubectl on this machine (https://kubernetes.io/docs/tasks/tools/)")
    assert KUBECTL is not None
    if (minor := _kubectl_minor(KUBECTL)) < KUBECTL_MINOR_AT_LEAST:
        _unavailable(
            f"kubectl 1.{minor} is too old: its kustomize lacks `labels` "
            f"(kubectl 1.{KUBECTL_MINOR_AT_LEAST} or later)"
        )
    out = {}
    for overlay in OVERLAYS:
        # The policy files are generated from policies/, outside the kustomization's root
        # (docker/k8s/base/kustomization.yaml says why): the documented way to render.
        done = subprocess.run(
            [KUBECTL, "kustomize", "--load-restrictor", "LoadRestrictionsNone"]
            + [str(K8S / "overlays" / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        out[overlay] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


def _one(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    """The one object of ``kind`` (named ``name``; a name ending in "-" is a generated
    object's, before kustomize's hash)."""
    [found] = [d for d in docs if d["kind"] == kind and _named(d["metadata"]["name"], name)]
    return found


def _named(actual: str, name: str | None) -> bool:
    if name is None:
        return True
    return actual.startswith(name) if name.endswith("-") else actual == name


def _settings(docs: list[Doc]) -> dict[str, str]:
    """The gateway's settings ConfigMap (its name carries kustomize's hash)."""
    return dict(_one(docs, "ConfigMap", "bma-gateway-settings-")["data"])


def _setting(docs: list[Doc], name: str) -> float:
    """A setting as the gateway reads it: the ConfigMap's value, else the declared default."""
    value = _settings(docs).get(variable(name, Settings.model_fields[name]))
    return float(value) if value else float(Settings.model_fields[name].default)


GATEWAY_PODS = (
    "bma-gateway",
    "bma-gateway-audit-init",
    "bma-gateway-audit-verify",
    "bma-gateway-audit-archive",
)


def _gateway_pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """The pods of the gateway's image running bma-gateway (not the demo's stand-ins)."""
    return ((name, pod) for name, pod in _pod_specs(docs) if name in GATEWAY_PODS)


def _pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]
        elif d["kind"] == "CronJob":
            yield d["metadata"]["name"], d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _gateway_container(docs: list[Doc]) -> Doc:
    [container] = _one(docs, "Deployment", "bma-gateway")["spec"]["template"]["spec"]["containers"]
    return container


def _dockerfile_uid() -> int:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    return int(re.search(r"useradd .*--uid (\d+)", dockerfile)[1])


# --------------------------------------------------------------------------- the schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_against_the_kubernetes_schema(rendered, overlay):
    invalid = []
    for doc in rendered[overlay]:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            invalid.append(f"{doc['kind']} {doc['metadata']['name']}: {error.message}")
    assert not invalid


def test_the_validator_refuses_a_misspelt_field(rendered):
    """The check above can fail: strict mode refuses what the API server would not know."""
    deployment = copy.deepcopy(_one(rendered["production"], "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # sic: "FileSystem"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_service_monitor_scrapes_a_port_the_service_has(rendered):
    """kubernetes-validate has no schema for Prometheus Operator's CRD: its own rules here.
    Production includes the component; the demo does not."""
    docs = rendered["production"]
    monitor = _one(docs, "ServiceMonitor")
    service = _one(docs, "Service", "bma-gateway")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    # /metrics answers only a token holding metrics:read (docs/operations.md#metrics).
    assert endpoint["authorization"]["type"] == "Bearer"
    assert endpoint["authorization"]["credentials"] == {
        "name": "bma-gateway-metrics-token",
        "key": "token",
    }
    # ... and Prometheus may reach that port.
    allowed = _one(docs, "NetworkPolicy", "bma-gateway-prometheus")["spec"]
    assert allowed["podSelector"]["matchLabels"].items() <= labels.items()
    assert [p["port"] for p in allowed["ingress"][0]["ports"]] == [endpoint["port"]]
    assert not [d for d in rendered["demo"] if d["kind"] == "ServiceMonitor"]


# --------------------------------------------------------------------------- the pods


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_on_a_read_only_root(rendered, overlay):
    """The gateway's pods run as the image's user; every pod (the demo's PostgreSQL, Redis
    and Traffy stand-in too) meets the "restricted" Pod Security Standard and more: a
    read-only root, no token, resources bounded."""
    uid = _dockerfile_uid()
    pods = dict(_pod_specs(rendered[overlay]))
    assert set(GATEWAY_PODS) <= set(pods)
    demo_stack = {"postgres", "redis", "traffy", "bma-demo-seed"}
    assert set(pods) - set(GATEWAY_PODS) == (demo_stack if overlay == "demo" else set())
    for name, pod in pods.items():
        assert pod["automountServiceAccountToken"] is False, name
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, name
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"]:
            if container["image"].startswith("bma-gateway:"):
                assert (context["runAsUser"], context["runAsGroup"]) == (uid, uid), name
                # The one writable path of the gateway's image is an emptyDir.
                [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
                assert "emptyDir" in volumes[tmp["name"]], name
            own = container["securityContext"]
            assert own["allowPrivilegeEscalation"] is False, name
            assert own["readOnlyRootFilesystem"] is True, name
            assert own["capabilities"] == {"drop": ["ALL"]}, name
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys(), name
            for mount in container.get("volumeMounts", []):
                writable = not mount.get("readOnly")
                assert (
                    not writable
                    or "emptyDir" in volumes[mount["name"]]
                    or (
                        name == "bma-gateway-audit-archive"  # its archives volume
                    )
                ), (name, mount)
    assert _one(rendered[overlay], "ServiceAccount")["automountServiceAccountToken"] is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_probes_ask_the_gateways_own_port(rendered, overlay):
    docs = rendered[overlay]
    container = _gateway_container(docs)
    [port] = container["ports"]
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")
    assert port["containerPort"] == int(_settings(docs)["BMA_PORT"]) == 8000
    assert f"EXPOSE {port['containerPort']}" in dockerfile
    assert _settings(docs)["BMA_HOST"] == "0.0.0.0"
    assert _settings(docs)["BMA_WORKERS"] == "1"  # the drain works in one process only
    probes = {
        probe: (container[probe]["httpGet"]["path"], container[probe]["httpGet"]["port"])
        for probe in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes == {
        "readinessProbe": ("/readyz", port["name"]),
        "livenessProbe": ("/healthz", port["name"]),
        "startupProbe": ("/healthz", port["name"]),
    }
    # A probe of /readyz waits for sources that are down for up to the upstream timeout.
    assert container["readinessProbe"]["timeoutSeconds"] > _setting(docs, "upstream_timeout")
    # The startup probe outlasts start-up's wait for the sources.
    startup = container["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget > _setting(docs, "startup_wait_seconds")
    service = _one(docs, "Service", "bma-gateway")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_grace_period_covers_the_whole_shutdown(rendered, overlay):
    """preStop, then SIGTERM: the gateway's drain, in-flight requests, the audit queue's
    commit (AuditWriter.stop's time, and a last batch of twice the audit timeout)."""
    docs = rendered[overlay]
    pod = _one(docs, "Deployment", "bma-gateway")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    drain = _setting(docs, "drain_seconds")
    assert pre_stop == drain == 5
    audit_commit = inspect.signature(AuditWriter.stop).parameters["drain_seconds"].default
    shutdown = (
        pre_stop
        + drain
        + _setting(docs, "shutdown_grace_seconds")
        + audit_commit
        + 2 * _setting(docs, "audit_timeout")
    )
    assert shutdown == 80
    assert pod["terminationGracePeriodSeconds"] > shutdown


# --------------------------------------------------------------------------- settings and secrets


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_is_a_setting_the_gateway_reads(rendered, overlay):
    docs = rendered[overlay]
    declared = {variable(n, f) for n, f in Settings.model_fields.items()}
    named = set(_settings(docs))
    for secret in (d for d in docs if d["kind"] == "Secret"):
        if secret["metadata"]["name"].endswith("-database"):
            named |= set(secret.get("stringData", {})) | set(secret.get("data", {}))
    for _, pod in _gateway_pod_specs(docs):
        for container in pod["containers"]:
            named |= {e["name"] for e in container.get("env", []) if e["name"] != "HOME"}
    assert named - declared == set()


def test_the_demo_settings_are_accepted_as_the_gateway_reads_them(rendered, tmp_path):
    """The demo's ConfigMap and Secrets, with their files where the pod mounts them (under
    tmp_path), read by Settings.from_env as `serve` does."""
    docs = rendered["demo"]
    pod = _one(docs, "Deployment", "bma-gateway")["spec"]["template"]["spec"]
    for volume in pod["volumes"]:
        source = volume.get("secret", {}).get("secretName") or volume.get("configMap", {}).get(
            "name"
        )
        if source is None:  # the emptyDir
            continue
        [doc] = [d for d in docs if d["metadata"]["name"] == source]
        folder = tmp_path / _mount_of(docs, volume["name"]).removeprefix("/etc/bma-gateway/")
        folder.mkdir(parents=True)
        for key, text in _decoded(doc).items():
            (folder / key).write_text(text, encoding="utf-8")
    env = {k: v.replace("/etc/bma-gateway", str(tmp_path)) for k, v in _settings(docs).items()}
    env |= _decoded(_one(docs, "Secret", "bma-gateway-database"))
    settings = Settings.from_env(env)
    assert settings.drain_seconds == 5 and settings.shutdown_grace_seconds == 30
    assert settings.audit_key_file == tmp_path / "audit" / "audit.key"
    assert settings.traffy_base_url == "http://traffy:8080"
    assert settings.redis_url == "redis://redis:6379/0"


def _decoded(doc: Doc) -> dict[str, str]:
    """A ConfigMap's or a Secret's data, as text."""
    if doc["kind"] == "ConfigMap":
        return dict(doc["data"])
    data = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
    return data | doc.get("stringData", {})


def test_the_policy_files_are_the_repositorys_own(rendered):
    for overlay in OVERLAYS:
        policy = _one(rendered[overlay], "ConfigMap", "bma-gateway-policy-")["data"]
        for name in ("policy.toml", "catalog.toml"):
            assert policy[name] == (ROOT / "policies" / name).read_text(encoding="utf-8")
        settings = _settings(rendered[overlay])
        mount = _mount_of(rendered[overlay], "policy")
        assert settings["BMA_POLICY_FILE"] == f"{mount}/policy.toml"
        assert settings["BMA_CATALOG_FILE"] == f"{mount}/catalog.toml"


def _mount_of(docs: list[Doc], volume: str) -> str:
    [mount] = [m for m in _gateway_container(docs)["volumeMounts"] if m["name"] == volume]
    return str(mount["mountPath"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_audit_key_never_shares_a_secret_with_database_credentials(rendered, overlay):
    docs = rendered[overlay]
    pod = _one(docs, "Deployment", "bma-gateway")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    audit_secret = volumes["audit-key"]["secret"]["secretName"]
    settings = _settings(docs)
    assert settings["BMA_AUDIT_KEY_FILE"] == f"{_mount_of(docs, 'audit-key')}/audit.key"
    assert settings["BMA_ISSUER_KEY_FILE"] == f"{_mount_of(docs, 'issuer-key')}/issuer-key.pem"
    env_secrets = {
        source["secretRef"]["name"]
        for _, spec in _gateway_pod_specs(docs)
        for container in spec["containers"]
        for source in container.get("envFrom", [])
        if "secretRef" in source
    }
    assert env_secrets == {"bma-gateway-database", "bma-gateway-owner-database"}
    assert audit_secret not in env_secrets
    secrets = {d["metadata"]["name"]: _decoded(d) for d in docs if d["kind"] == "Secret"}
    if overlay == "production":  # no secret values: created out of band
        assert secrets == {}
        return
    assert list(secrets[audit_secret]) == ["audit.key"]
    assert re.fullmatch(r"[0-9a-f]{64}\s*", secrets[audit_secret]["audit.key"])
    for name in env_secrets:
        assert all(v.startswith(("postgresql://", "redis://")) for v in secrets[name].values())
    # The migrations Job logs in as the owner, the gateway never does.
    owner = secrets["bma-gateway-owner-database"]["BMA_GATEWAY_DATABASE_URL"]
    gateway = secrets["bma-gateway-database"]["BMA_GATEWAY_DATABASE_URL"]
    assert owner.startswith("postgresql://postgres:")
    assert gateway.startswith("postgresql://bma_gateway_app:")


# --------------------------------------------------------------------------- the audit jobs

ARCHIVES = "/var/lib/bma-gateway/archives"


def _commands(container: Doc) -> list[list[str]]:
    """The bma-gateway command lines a container runs (its image's entry point is
    bma-gateway; a `sh -c` script may run several)."""
    if container.get("command") != ["sh", "-c"]:
        return [container["args"]]
    # `--until "$(date … +FORMAT)"`: a time in that format, as the shell would pass it.
    script = re.sub(
        r'"\$\(date [^)]*\+(\S+)\)"',
        lambda when: datetime.now(UTC).strftime(when[1]),
        container["args"][0],
    )
    return [shlex.split(part)[1:] for part in script.split(";") if "bma-gateway" in part]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_audit_jobs_run_real_commands_with_the_right_login(rendered, overlay):
    """Each job's commands parse with the CLI's own parser, and log in as they must: the
    owner creates and archives, the gateway's login verifies."""
    docs = rendered[overlay]
    expected = {
        "bma-gateway-audit-init": (
            [["audit", "init"], ["keys", "list"], ["documents", "list"]],
            "bma-gateway-owner-database",
        ),
        "bma-gateway-audit-verify": (
            [["audit", "verify", "--archives", ARCHIVES]],
            "bma-gateway-database",
        ),
        "bma-gateway-audit-archive": (
            [
                ["audit", "archive", "--until", "WHEN", "--output-dir", ARCHIVES],
                ["audit", "verify", "--archives", ARCHIVES],
            ],
            "bma-gateway-owner-database",
        ),
    }
    for name, pod in _gateway_pod_specs(docs):
        if name == "bma-gateway":
            assert _gateway_container(docs)["args"] == ["serve"]
            continue
        [container] = pod["containers"]
        commands, login = expected[name]
        run = _commands(container)
        for argv in run:
            cli_parser().parse_args(argv)  # exits (SystemExit) on an unknown command or flag
        assert [[a if not a[:4].isdigit() else "WHEN" for a in argv] for argv in run] == commands

        assert [s["secretRef"]["name"] for s in container["envFrom"]] == [login], name
    archive = _one(docs, "CronJob", "bma-gateway-audit-archive")["spec"]
    verify = _one(docs, "CronJob", "bma-gateway-audit-verify")["spec"]
    assert archive["concurrencyPolicy"] == verify["concurrencyPolicy"] == "Forbid"


# --------------------------------------------------------------------------- network and scaling


def _ports(rules: list[Doc]) -> set[tuple[int | str, str]]:
    return {(p["port"], p["protocol"]) for rule in rules for p in rule.get("ports", [])}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_network_policy_lets_in_the_ingress_controller_and_out_the_sources(rendered, overlay):
    docs = rendered[overlay]
    policy = _one(docs, "NetworkPolicy", "bma-gateway")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["ingress"]
    [source] = ingress["from"]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert _ports([ingress]) == {("http", "TCP")}
    dns = {(53, "UDP"), (53, "TCP")}
    sources = {(5432, "TCP"), (6379, "TCP"), (443, "TCP")}  # PostgreSQL, Redis, Traffy
    demo_traffy = {(8080, "TCP")} if overlay == "demo" else set()
    assert _ports(policy["egress"]) == dns | sources | demo_traffy
    [to_dns] = [rule for rule in policy["egress"] if _ports([rule]) == dns]
    assert to_dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    jobs = _one(docs, "NetworkPolicy", "bma-gateway-audit-jobs")["spec"]
    assert jobs["ingress"] == []
    assert _ports(jobs["egress"]) == dns | {(5432, "TCP")}


@pytest.mark.parametrize(
    ("overlay", "replicas", "budget"),
    [("demo", (1, 2), {"maxUnavailable": 1}), ("production", (3, 10), {"minAvailable": 2})],
)
def test_the_autoscaler_and_the_disruption_budget(rendered, overlay, replicas, budget):
    docs = rendered[overlay]
    hpa = _one(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "bma-gateway",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == replicas
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]
    deployment = _one(docs, "Deployment", "bma-gateway")
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert _gateway_container(docs)["resources"]["requests"]["cpu"]  # what Utilization is of
    pdb = _one(docs, "PodDisruptionBudget")["spec"]
    assert {k: pdb[k] for k in ("minAvailable", "maxUnavailable") if k in pdb} == budget
    assert pdb["selector"] == deployment["spec"]["selector"]
    assert pdb.get("minAvailable", 0) < replicas[0]  # a node can always be drained
