#!/usr/bin/env python3
"""Checks roomtape's deployment files by parsing them: no container engine or cluster needed.

deploy/validate.sh installs the tools, renders the inputs and runs

    validate.py --compose RENDERED --kubernetes RENDERED   # every check, one line each
    validate.py --metric-names                             # the roomtape_* metrics the
                                                           # dashboard and alerts use

What the files are checked against is the repository itself: .env.example (the documented
variables), the binaries' configuration and metrics code, the Cargo manifests, the queue
topology, and RabbitMQ's metric names captured in deploy/observability/.
"""

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import kubernetes_validate
import promql_parser as promql
import yaml

ROOT = Path(__file__).resolve().parent.parent
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana-dashboard.json"
ALERTS = OBSERVABILITY / "alerts.yaml"
RABBITMQ_FIXTURE = OBSERVABILITY / "rabbitmq-metric-names.txt"
ROOMTAPE_FIXTURE = OBSERVABILITY / "roomtape-metric-names.txt"
# The endpoint deploy/observability documents for scraping RabbitMQ (per-queue series).
RABBITMQ_ENDPOINT = "/metrics/per-object"
SECRETS_EXAMPLE = ROOT / "deploy" / "kubernetes" / "secrets.env.example"
# Created by the operator from secrets.env.example, never rendered (docs/operations.md).
EXTERNAL_SECRET = "roomtape-secrets"
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")

# Each long-running binary and the variable that sets its listening address.
BIND_VARIABLES = {
    "roomtape-ingestor": "INGESTOR_BIND",
    "roomtape-processor": "PROCESSOR_BIND",
    "roomtape-api": "API_BIND",
}
STORAGE_ENDPOINT = (
    r"S3_ENDPOINT|CLOUDFLARE_R2_ENDPOINT_URL|STORJ_ENDPOINT|STORAGE_[A-Z0-9]+_ENDPOINT"
)
# What each process cannot start without (each entry: one variable matching it must be set).
NEEDS = {
    "roomtape-ingestor": ["AMQP_URL", "LIVEKIT_API_KEY|LIVEKIT_KEYS"],
    "roomtape-processor": [
        "AMQP_URL",
        "DATABASE_URL",
        "LIVEKIT_URL|LIVEKIT_HOST",
        "LIVEKIT_API_KEY|LIVEKIT_KEYS",
        STORAGE_ENDPOINT,
    ],
    "roomtape-api": ["AMQP_URL", "DATABASE_URL", "API_TOKENS", STORAGE_ENDPOINT],
}
# The gauges the processor refreshes from the database (recordings by status, stuck ones, live
# rooms and their participants), being added beside this; until processor/src registers them,
# they are taken as promised. A Rust integration test checks every name against /metrics.
PROMISED_PROCESSOR_GAUGES = {
    "roomtape_recordings": {"status"},
    "roomtape_recordings_stuck": {"status"},
    "roomtape_rooms_live": set(),
    "roomtape_room_participants": set(),
}
# Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "node"}
# Grafana's variables, with values that keep a query parseable.
GRAFANA_VARIABLES = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "vhost": "x"}

VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


class Check:
    """One line of the summary: ok, or FAIL with every problem found, each naming file and field."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[str] = []
        self.notes: list[str] = []

    def fail(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def expect(self, condition: bool, where: str, message: str) -> bool:
        if not condition:
            self.fail(where, message)
        return condition


# --- What the repository says ------------------------------------------------------------------


def without_tests(text: str) -> str:
    return text.split("#[cfg(test)]", 1)[0]


def without_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//"))


def config_sources() -> list[Path]:
    """The shared sections, the notification endpoints' (`NOTIFY_*`), and each binary's own
    settings (in its crate)."""
    config = ROOT / "shared" / "src" / "config"
    return (
        [p for p in sorted(config.glob("*.rs")) if p.name != "tests.rs"]
        + [ROOT / "shared" / "src" / "notify" / "settings.rs"]
        + [ROOT / crate / "src" / "config.rs" for crate in ("api", "ingestor", "processor")]
    )


def documented_variables() -> set[str]:
    return set(VARIABLE.findall(read(ROOT / ".env.example")))


def is_contract(name: str, documented: set[str]) -> bool:
    """Documented, or a STORAGE_<NAME>_ profile's variable (its suffixes are S3_'s)."""
    suffixes = "|".join(v[len("S3_") :] for v in documented if v.startswith("S3_"))
    return (
        name in documented or re.fullmatch(rf"STORAGE_[A-Z0-9]+_(?:{suffixes})", name) is not None
    )


def bind_defaults() -> dict[str, int]:
    pattern = re.compile(r'"(\w+_BIND)",\s*SocketAddr::from\(\(\[[\d,\s]+\],\s*(\d+)\)\)')
    found = {}
    for path in config_sources():
        found.update({var: int(port) for var, port in pattern.findall(read(path))})
    return found


def shipped_binaries() -> list[str]:
    """[[bin]] names of the workspace's crates, less the benchmark's load generator and the
    fault suite's runner."""
    workspace = tomllib.loads(read(ROOT / "Cargo.toml"))["workspace"]["members"]
    names = []
    for member in workspace:
        if member in ("bench", "tests"):
            continue
        manifest = tomllib.loads(read(ROOT / member / "Cargo.toml"))
        names += [b["name"] for b in manifest.get("bin", [])]
    return names


def events_queue() -> str:
    topology = read(ROOT / "shared" / "src" / "queue" / "topology.rs")
    return re.search(r'pub const EVENTS_QUEUE: &str = "([^"]+)"', topology).group(1)


def bind_port(binary: str, env: dict[str, str], defaults: dict[str, int]) -> int:
    var = BIND_VARIABLES[binary]
    return int(env[var].rsplit(":", 1)[1]) if var in env else defaults[var]


def check_needs(check: Check, where: str, binary: str, env: set[str], documented: set[str]):
    for need in NEEDS.get(binary, []):
        check.expect(any(re.fullmatch(need, v) for v in env), where, f"{binary} needs {need}")
    for name in sorted(env):
        check.expect(
            is_contract(name, documented),
            where,
            f"{name} is not a roomtape variable (.env.example documents none such)",
        )


# --- .env.example --------------------------------------------------------------------------------


def check_env_example(check: Check) -> str:
    documented = documented_variables()
    read_names = set()
    for path in config_sources():
        code = without_comments(without_tests(read(path)))
        for literal in re.findall(r'"([A-Z][A-Z0-9_]*)"', code):
            read_names.add((literal, relative(path)))
    for literal, where in sorted(read_names):
        # Storage profiles are read as prefix + suffix: "S3_" + "ENDPOINT".
        known = (
            literal in documented
            or any(v.startswith(literal) for v in documented if literal.endswith("_"))
            or any(v.endswith("_" + literal) for v in documented)
        )
        check.expect(known, where, f"{literal} is read but .env.example does not document it")
    return f"{len(documented)} variables documented, every one the configuration code reads"


# --- docker-compose.yml ------------------------------------------------------------------------


def service_ports(service: dict) -> list[int]:
    targets = []
    for port in service.get("ports", []):
        targets.append(
            int(port["target"]) if isinstance(port, dict) else int(str(port).rsplit(":", 1)[1])
        )
    return targets


def volume_sources(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each mount."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), volume["target"]))
        else:
            source, target = str(volume).split(":")[:2]
            mounts.append((source, target))
    return mounts


def find_service(services: dict, image_prefix: str) -> tuple[str, dict] | tuple[None, None]:
    for name, service in services.items():
        if str(service.get("image", "")).startswith(image_prefix) and "entrypoint" not in service:
            return name, service
    return None, None


COMPOSE = "docker-compose.yml"


def check_compose(check: Check, rendered: Path) -> str:
    config = yaml.safe_load(read(rendered))
    services = config["services"]
    roomtape = check_compose_roomtape(check, services)
    infrastructure = check_compose_infrastructure(check, services, set(config.get("volumes") or {}))
    if infrastructure:
        check_compose_credentials(check, services, roomtape, infrastructure)
        check_compose_order(check, services, roomtape, infrastructure)
    return f"{len(services)} services; {len(roomtape)} run roomtape with contract variables only"


def check_compose_roomtape(check: Check, services: dict) -> dict[str, tuple[str, list[str]]]:
    """The services running a roomtape binary (name -> binary, arguments): their variables,
    health checks and ports."""
    documented, defaults = documented_variables(), bind_defaults()
    roomtape = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command and command[0] in shipped_binaries():
            roomtape[name] = (command[0], command[1:])
    runs = [(binary, args) for binary, args in roomtape.values()]
    processors = [
        args for binary, args in runs if binary == "roomtape-processor" and args in ([], ["run"])
    ]
    check.expect(len(processors) >= 2, COMPOSE, f"two processors expected, found {len(processors)}")
    for binary in ("roomtape-ingestor", "roomtape-api"):
        check.expect((binary, []) in runs, COMPOSE, f"no service runs {binary}")
    check.expect(
        runs.count(("roomtape-processor", ["migrate"])) == 1,
        COMPOSE,
        "one service should run roomtape-processor migrate",
    )

    for name, (binary, args) in roomtape.items():
        service, at = services[name], f"{COMPOSE}: services.{name}"
        if binary == "roomtape-processor" and args in ([], ["run"]):
            target = (service.get("build") or {}).get("target")
            check.expect(
                target == PROCESSOR_STAGE,
                f"{at}.build.target",
                f"{target}, not the Dockerfile's {PROCESSOR_STAGE} stage (ffmpeg)",
            )
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        check_needs(check, f"{at}.environment", binary, set(env), documented)
        check.expect(
            service.get("image", "").startswith("roomtape"), f"{at}.image", "not the roomtape image"
        )
        if binary in BIND_VARIABLES and not args:
            port = bind_port(binary, env, defaults)
            test = " ".join(service.get("healthcheck", {}).get("test", []))
            check.expect(
                re.search(rf"http://127\.0\.0\.1:{port}/(readyz|healthz)\b", test) is not None,
                f"{at}.healthcheck.test",
                f"does not probe /readyz or /healthz on port {port}",
            )
            for target in service_ports(service):
                check.expect(
                    target == port,
                    f"{at}.ports",
                    f"target {target}, but {binary} listens on {port}",
                )
    return roomtape


def check_compose_infrastructure(check: Check, services: dict, volumes: set[str]) -> dict | None:
    """RabbitMQ, PostgreSQL and MinIO: present, their data on volumes, RabbitMQ's plugins.
    Each kind -> (service name, service)."""
    found = {
        kind: find_service(services, image)
        for kind, image in (
            ("rabbitmq", "rabbitmq:"),
            ("postgres", "postgres:"),
            ("minio", "minio/minio:"),
        )
    }
    for kind, (name, _) in found.items():
        check.expect(name is not None, COMPOSE, f"no {kind} service")
    if any(name is None for name, _ in found.values()):
        return None
    rabbitmq, broker = found["rabbitmq"]
    check.expect(
        bool(broker.get("hostname")),
        f"{COMPOSE}: services.{rabbitmq}.hostname",
        "needed: RabbitMQ keeps its data under rabbit@<hostname>",
    )
    plugins = [s for s, t in volume_sources(broker) if t == "/etc/rabbitmq/enabled_plugins"]
    enabled = read(Path(plugins[0])) if plugins else ""
    for plugin in ("rabbitmq_management", "rabbitmq_prometheus"):
        check.expect(
            plugin in enabled, f"{COMPOSE}: services.{rabbitmq}.volumes", f"{plugin} not enabled"
        )
    data_paths = {
        "rabbitmq": "/var/lib/rabbitmq",
        "postgres": "/var/lib/postgresql/data",
        "minio": "/data",
    }
    for kind, (name, service) in found.items():
        check.expect(
            any(s in volumes and t == data_paths[kind] for s, t in volume_sources(service)),
            f"{COMPOSE}: services.{name}.volumes",
            f"{data_paths[kind]} is not on a named volume",
        )
    return found


def check_compose_credentials(check: Check, services: dict, roomtape: dict, infrastructure: dict):
    """The roomtape services' URLs and keys name the infrastructure services and their credentials."""
    (rabbitmq, broker), (postgres, database), (minio, storage) = (
        infrastructure[kind] for kind in ("rabbitmq", "postgres", "minio")
    )
    broker_env, database_env, storage_env = (
        s.get("environment") or {} for s in (broker, database, storage)
    )
    for name in roomtape:
        env, at = services[name].get("environment") or {}, f"{COMPOSE}: services.{name}.environment"
        if "AMQP_URL" in env:
            url = urlsplit(env["AMQP_URL"])
            check.expect(
                (url.hostname, url.port or 5672, url.username, url.password, unquote(url.path[1:]))
                == (
                    rabbitmq,
                    5672,
                    broker_env.get("RABBITMQ_DEFAULT_USER"),
                    broker_env.get("RABBITMQ_DEFAULT_PASS"),
                    broker_env.get("RABBITMQ_DEFAULT_VHOST"),
                ),
                f"{at}.AMQP_URL",
                f"does not match services.{rabbitmq}'s host, user, password and vhost",
            )
        if "DATABASE_URL" in env:
            url = urlsplit(env["DATABASE_URL"])
            check.expect(
                (url.hostname, url.port or 5432, url.username, url.password, url.path[1:])
                == (
                    postgres,
                    5432,
                    database_env.get("POSTGRES_USER"),
                    database_env.get("POSTGRES_PASSWORD"),
                    database_env.get("POSTGRES_DB"),
                ),
                f"{at}.DATABASE_URL",
                f"does not match services.{postgres}'s host, user, password and database",
            )
        if "S3_ENDPOINT" in env:
            check.expect(
                urlsplit(env["S3_ENDPOINT"]).hostname == minio
                and (env.get("S3_ACCESS_KEY_ID"), env.get("S3_SECRET_ACCESS_KEY"))
                == (storage_env.get("MINIO_ROOT_USER"), storage_env.get("MINIO_ROOT_PASSWORD")),
                f"{at}.S3_*",
                f"does not name services.{minio} with its credentials",
            )


def check_compose_order(check: Check, services: dict, roomtape: dict, infrastructure: dict):
    """Start-up order: what a service needs is healthy (or done) before it starts."""
    rabbitmq, postgres = infrastructure["rabbitmq"][0], infrastructure["postgres"][0]
    migrate = [n for n, (_, args) in roomtape.items() if args == ["migrate"]]
    bucket = [
        n
        for n, s in services.items()
        if re.search(r"mc mb .*S3_BUCKET", " ".join(s.get("command") or []))
    ]
    check.expect(len(bucket) == 1, COMPOSE, "one service should create S3_BUCKET (mc mb)")
    healthy = {rabbitmq: "service_healthy", postgres: "service_healthy"}
    for name, (binary, args) in roomtape.items():
        needs = {
            "roomtape-ingestor": [rabbitmq],
            "roomtape-api": [rabbitmq, postgres] + migrate,
            "roomtape-processor": [rabbitmq, postgres] + migrate + bucket,
        }.get(binary, [])
        if args == ["migrate"]:
            needs = [postgres]
        depends = services[name].get("depends_on") or {}
        for need in needs:
            condition = healthy.get(need, "service_completed_successfully")
            check.expect(
                depends.get(need, {}).get("condition") == condition,
                f"{COMPOSE}: services.{name}.depends_on",
                f"should wait for {need}: {condition}",
            )
    for name, service in services.items():
        for need, how in (service.get("depends_on") or {}).items():
            if how.get("condition") == "service_healthy":
                check.expect(
                    "healthcheck" in services.get(need, {}),
                    f"{COMPOSE}: services.{need}",
                    f"{name} waits for it to be healthy but it has no healthcheck",
                )


# --- Dockerfile ----------------------------------------------------------------------------------


def check_dockerfile(check: Check) -> str:
    text = read(ROOT / "Dockerfile")
    where = "Dockerfile"
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    final = text[[m.start() for m in re.finditer(r"^FROM\s", text, re.M)][-1] :]
    built = re.findall(r"--bin\s+([\w-]+)", text)
    for binary in shipped_binaries():
        check.expect(binary in built, where, f"{binary} is not built (--bin)")
        check.expect(
            re.search(rf"/target/release/{re.escape(binary)}\b", final) is not None,
            f"{where}: final stage",
            f"{binary} is not copied into the runtime image",
        )
    user = re.findall(r"^USER\s+(\S+)", final, re.M)
    check.expect(
        bool(user) and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0",
        f"{where}: final stage USER",
        "should be a numeric non-root user",
    )
    check.expect(
        re.search(r"^COPY\s+--from=\S+\s+\S*busybox\s+/usr/local/bin/busybox", final, re.M)
        is not None,
        f"{where}: final stage",
        "the health checks' busybox probe is not copied in",
    )
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)", final, re.M) for p in line.split()}
    check.expect(
        exposed == set(bind_defaults().values()),
        f"{where}: EXPOSE",
        f"{sorted(exposed)} but the binds default to {sorted(bind_defaults().values())}",
    )
    check.expect(
        any(name for _, name in stages if name.lower() in ("chef", "planner")),
        where,
        "no dependency-caching stage (cargo-chef)",
    )
    check_processor_stage(check, text)
    return (
        f"{len(stages)} stages; {', '.join(shipped_binaries())} built and shipped; "
        f"the {PROCESSOR_STAGE} stage with ffmpeg"
    )


# The Dockerfile's stage the processors run: the binaries plus ffmpeg, which takes thumbnails.
PROCESSOR_STAGE = "processor"


def check_processor_stage(check: Check, text: str):
    where = f"Dockerfile: stage {PROCESSOR_STAGE}"
    # The stage's text: from its FROM to the next FROM or the end.
    stage_pattern = rf"^FROM\s+\S+\s+AS\s+{PROCESSOR_STAGE}\s*$(.*?)(?=^FROM\s|\Z)"
    found = re.search(stage_pattern, text, re.M | re.S | re.I)
    if not check.expect(found is not None, "Dockerfile", f"no {PROCESSOR_STAGE} stage"):
        return
    stage = found.group(1)
    check.expect(
        re.search(r"apt-get install[^\n]*(?:\\\n[^\n]*)*\bffmpeg\b", stage) is not None,
        where,
        "does not install ffmpeg (thumbnails of recordings started elsewhere need it)",
    )
    check.expect(
        re.search(r"/target/release/roomtape-processor\b", stage) is not None,
        where,
        "roomtape-processor is not copied in",
    )
    user = re.findall(r"^USER\s+(\S+)", stage, re.M)
    check.expect(
        bool(user) and user[-1].split(":")[0].isdigit() and user[-1].split(":")[0] != "0",
        f"{where} USER",
        "should be a numeric non-root user",
    )


# --- Kubernetes ------------------------------------------------------------------------------------

CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"),
}


def env_file_keys(path: Path) -> set[str]:
    return {m for m in re.findall(r"^([A-Z][A-Z0-9_]*)=", read(path), re.M)}


def matches(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_kubernetes_schemas(check: Check, objects: list[dict]) -> str:
    core = [o for o in objects if (o["apiVersion"], o["kind"]) not in CUSTOM_KINDS]
    for version in KUBERNETES_VERSIONS:
        for obj in core:
            at = (
                f"deploy/kubernetes: {obj['kind']}/{obj['metadata']['name']} (Kubernetes {version})"
            )
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                check.fail(at, f"{path or '(top)'}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError:
                check.fail(at, "no schema for this kind")
    return f"{len(core)} objects valid (strict) for Kubernetes {' and '.join(KUBERNETES_VERSIONS)}"


def check_kubernetes_references(check: Check, objects: list[dict]) -> str:
    documented, defaults = documented_variables(), bind_defaults()
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)

    def named(kind: str, name: str) -> dict | None:
        return next((o for o in by_kind.get(kind, []) if o["metadata"]["name"] == name), None)

    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in by_kind.get("ConfigMap", [])}
    secrets = {
        o["metadata"]["name"]: set(o.get("data", {}) | o.get("stringData", {}))
        for o in by_kind.get("Secret", [])
    }
    secrets.setdefault(EXTERNAL_SECRET, env_file_keys(SECRETS_EXAMPLE))

    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    deployments = {}  # binary -> Deployment
    for obj in workloads:
        kind_name = f"deploy/kubernetes: {obj['kind']}/{obj['metadata']['name']}"
        pod = obj["spec"]["template"]["spec"]
        check.expect(
            pod.get("securityContext", {}).get("runAsNonRoot") is True,
            kind_name,
            "runAsNonRoot is not set",
        )
        for container in pod["containers"]:
            at = f"{kind_name}: container {container['name']}"
            binary, args = container["command"][0], container["command"][1:]
            env = set()
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    check.expect(
                        ref in configmaps, f"{at}.envFrom", f"ConfigMap {ref} is not in the render"
                    )
                    env |= set(configmaps.get(ref, {}))
                if "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    check.expect(
                        ref in secrets,
                        f"{at}.envFrom",
                        f"Secret {ref} is neither rendered nor {EXTERNAL_SECRET}",
                    )
                    env |= secrets.get(ref, set())
            env |= {e["name"] for e in container.get("env", [])}
            check_needs(check, f"{at}.env", binary, env, documented)
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    check.expect(
                        resource in container.get("resources", {}).get(kind, {}),
                        f"{at}.resources.{kind}",
                        f"no {resource}",
                    )
            if obj["kind"] == "Job":
                check.expect(
                    [binary] + args == ["roomtape-processor", "migrate"],
                    f"{at}.command",
                    "the migration Job should run roomtape-processor migrate",
                )
                continue
            deployments[binary] = obj
            if binary == "roomtape-processor":
                check.expect(
                    "roomtape-processor" in container.get("image", ""),
                    f"{at}.image",
                    f"{container.get('image')}, not the processor's image (ffmpeg)",
                )
            bind_env = {k: v for name in configmaps for k, v in configmaps[name].items()}
            port = bind_port(binary, bind_env, defaults)
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            check.expect(
                port in ports.values(), f"{at}.ports", f"{binary} listens on {port}, not declared"
            )
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = container.get(probe, {}).get("httpGet", {})
                target = ports.get(get.get("port"), get.get("port"))
                check.expect(
                    get.get("path") == path and target == port,
                    f"{at}.{probe}",
                    f"should GET {path} on {port}, gets {get.get('path')} on {target}",
                )

    for binary in BIND_VARIABLES:
        check.expect(binary in deployments, "deploy/kubernetes", f"no Deployment runs {binary}")

    def pod_of(selector: dict) -> list[dict]:
        return [
            d
            for d in deployments.values()
            if matches(selector, d["spec"]["template"]["metadata"]["labels"])
        ]

    for service in by_kind.get("Service", []):
        at = f"deploy/kubernetes: Service/{service['metadata']['name']}"
        targets = pod_of(service["spec"].get("selector", {}))
        if check.expect(
            len(targets) == 1, f"{at}.spec.selector", f"matches {len(targets)} Deployments, not 1"
        ):
            container = targets[0]["spec"]["template"]["spec"]["containers"][0]
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                check.expect(
                    target in ports or target in ports.values(),
                    f"{at}.spec.ports",
                    f"targetPort {target} is no port of Deployment/{targets[0]['metadata']['name']}",
                )
    for binary, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        budgets = [
            p
            for p in by_kind.get("PodDisruptionBudget", [])
            if matches(p["spec"]["selector"]["matchLabels"], labels)
        ]
        check.expect(
            len(budgets) == 1,
            f"deploy/kubernetes: Deployment/{deployment['metadata']['name']}",
            f"{len(budgets)} PodDisruptionBudgets select it, not 1",
        )
        check.expect(
            any(matches(s["spec"].get("selector", {}), labels) for s in by_kind.get("Service", [])),
            f"deploy/kubernetes: Deployment/{deployment['metadata']['name']}",
            "no Service selects it",
        )

    def scale_target(ref: dict, at: str, binary: str) -> None:
        deployment = deployments.get(binary)
        if check.expect(
            ref.get("kind", "Deployment") == "Deployment"
            and deployment is not None
            and ref.get("name") == deployment["metadata"]["name"],
            f"{at}.scaleTargetRef",
            f"should be the {binary} Deployment",
        ):
            check.expect(
                "replicas" not in deployment["spec"],
                f"deploy/kubernetes: Deployment/{ref['name']}.spec.replicas",
                "set, but an autoscaler owns the count (each apply would reset it)",
            )

    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    check.expect(
        len(hpas) == 1, "deploy/kubernetes", "one HorizontalPodAutoscaler (the ingestor's) expected"
    )
    for hpa in hpas:
        at = f"deploy/kubernetes: HorizontalPodAutoscaler/{hpa['metadata']['name']}"
        scale_target(hpa["spec"]["scaleTargetRef"], at, "roomtape-ingestor")
        check.expect(
            any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"].get("metrics", [])),
            f"{at}.spec.metrics",
            "no CPU metric",
        )

    scaled = by_kind.get("ScaledObject", [])
    check.expect(
        len(scaled) == 1, "deploy/kubernetes", "one KEDA ScaledObject (the processors') expected"
    )
    for obj in scaled:
        at, spec = f"deploy/kubernetes: ScaledObject/{obj['metadata']['name']}", obj["spec"]
        scale_target(spec.get("scaleTargetRef", {}), at, "roomtape-processor")
        check.expect(
            1 <= spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100),
            f"{at}.spec",
            "minReplicaCount must be at least 1 and at most maxReplicaCount",
        )
        for i, trigger in enumerate(spec.get("triggers", [])):
            meta, there = trigger.get("metadata", {}), f"{at}.spec.triggers[{i}]"
            check.expect(trigger.get("type") == "rabbitmq", f"{there}.type", "should be rabbitmq")
            check.expect(
                meta.get("queueName") == events_queue(),
                f"{there}.metadata.queueName",
                f"should be {events_queue()} (shared/src/queue/topology.rs)",
            )
            check.expect(
                meta.get("mode") in ("QueueLength", "MessageRate")
                and str(meta.get("value", "")).isdigit(),
                f"{there}.metadata",
                "mode QueueLength or MessageRate with a numeric value",
            )
            auth = named(
                "TriggerAuthentication", trigger.get("authenticationRef", {}).get("name", "")
            )
            if check.expect(
                auth is not None, f"{there}.authenticationRef", "no such TriggerAuthentication"
            ):
                hosts = [
                    r for r in auth["spec"].get("secretTargetRef", []) if r["parameter"] == "host"
                ]
                check.expect(
                    len(hosts) == 1 and hosts[0]["key"] in secrets.get(hosts[0]["name"], set()),
                    f"deploy/kubernetes: TriggerAuthentication/{auth['metadata']['name']}",
                    "host should come from a known Secret key (AMQP_URL)",
                )

    clusters = by_kind.get("RabbitmqCluster", [])
    if check.expect(len(clusters) == 1, "deploy/kubernetes", "one RabbitmqCluster expected"):
        cluster, at = (
            clusters[0],
            f"deploy/kubernetes: RabbitmqCluster/{clusters[0]['metadata']['name']}",
        )
        check.expect(cluster["spec"].get("replicas") == 3, f"{at}.spec.replicas", "should be 3")
        check.expect(
            "persistence" in cluster["spec"] and "resources" in cluster["spec"],
            f"{at}.spec",
            "persistence and resources expected",
        )
        amqp = re.search(r"^AMQP_URL=(.+)$", read(SECRETS_EXAMPLE), re.M)
        host = urlsplit(amqp.group(1)).hostname if amqp else ""
        check.expect(
            host.split(".")[0] == cluster["metadata"]["name"],
            relative(SECRETS_EXAMPLE),
            f"AMQP_URL's host {host} is not the RabbitmqCluster's Service {cluster['metadata']['name']}",
        )
    check.expect(
        len(by_kind.get("Job", [])) == 1, "deploy/kubernetes", "one migration Job expected"
    )
    return (
        f"{len(deployments)} Deployments, their Services, probes, PDBs, HPA, ScaledObject on "
        f"{events_queue()}, RabbitmqCluster and Job agree"
    )


# --- Dashboards and alerts ---------------------------------------------------------------------


def roomtape_metrics(check: Check) -> dict[str, set[str]]:
    """Exposition name -> label names, from the binaries' metrics code."""
    found: dict[str, set[str]] = {}
    for crate in ("ingestor", "processor", "api", "shared"):
        for path in sorted((ROOT / crate / "src").rglob("*.rs")):
            text = without_tests(read(path))
            registrations = re.findall(r'(\w+):\s*registered\(\s*\w+,\s*"(\w+)"', text)
            if not registrations:
                continue
            kinds = {}
            for field, type_ in re.findall(
                r"^\s*(?:pub\s+)?(\w+):\s*([^\n]*(?:Counter|Gauge|Histogram)[^\n]*)$", text, re.M
            ):
                kinds[field] = re.findall(r"Counter|Gauge|Histogram", type_)[-1]
            labels = set(re.findall(r'\(\s*"([a-z_][a-z0-9_]*)",', text))
            for field, name in registrations:
                base, kind = f"roomtape_{name}", kinds.get(field)
                suffixes = {
                    "Counter": ["_total"],
                    "Gauge": [""],
                    "Histogram": ["_bucket", "_sum", "_count"],
                }
                if kind is None:
                    check.notes.append(
                        f"{relative(path)}: type of {field} unknown, {base} taken with any suffix"
                    )
                for suffix in suffixes.get(kind, ["", "_total", "_bucket", "_sum", "_count"]):
                    found[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    promised = {n: l for n, l in PROMISED_PROCESSOR_GAUGES.items() if n not in found}
    if promised:
        check.notes.append(
            f"taken as promised, not in processor/src yet: {', '.join(sorted(promised))}"
        )
    return found | promised


def rabbitmq_metrics() -> dict[str, set[str]]:
    found, section = {}, None
    for line in read(RABBITMQ_FIXTURE).splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif line and not line.startswith("#") and section == RABBITMQ_ENDPOINT:
            name, _, labels = line.partition(" ")
            found[name] = set(filter(None, labels.split(",")))
    return found


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard panel, dashboard variable and alert rule."""
    found = []
    dashboard = json.loads(read(DASHBOARD))

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            found.append((f"{relative(DASHBOARD)}: panel {panel['title']!r}", target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        values = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query or "")
        if variable.get("type") == "query" and values:
            found.append((f"{relative(DASHBOARD)}: variable {variable['name']}", values.group(1)))
    for group in yaml.safe_load(read(ALERTS))["groups"]:
        for rule in group["rules"]:
            found.append(
                (f"{relative(ALERTS)}: {rule.get('alert') or rule.get('record')}", rule["expr"])
            )
    return found


def used_metrics(
    check: Check,
) -> tuple[list[tuple[str, str, set[str]]], list[tuple[str, set[str], set[str]]]]:
    """Every selector (where, metric, labels it matches on) and every aggregation (where, labels
    it groups by, metrics inside it) of every query."""
    selectors, groupings = [], []
    for where, expr in queries():
        text = re.sub(
            r"\$\{?(\w+)\}?", lambda m: GRAFANA_VARIABLES.get(m.group(1), m.group(1)), expr
        )
        try:
            tree = promql.parse(text)
        except ValueError as error:
            check.fail(where, f"PromQL does not parse: {error}")
            continue
        open_aggregations: list[tuple[set[str], set[str]]] = []

        def enter(node):
            if isinstance(node, promql.AggregateExpr):
                open_aggregations.append(
                    (set(node.modifier.labels) if node.modifier else set(), set())
                )
            if isinstance(node, promql.VectorSelector):
                if not check.expect(bool(node.name), where, f"selector {node} names no metric"):
                    return
                selectors.append((where, node.name, {m.name for m in node.matchers.matchers}))
                for _, inside in open_aggregations:
                    inside.add(node.name)

        def leave(node):
            if isinstance(node, promql.AggregateExpr):
                labels, inside = open_aggregations.pop()
                groupings.append((where, labels, inside))

        promql.walk(tree, enter, leave)
    return selectors, groupings


def check_metrics(check: Check) -> str:
    known = roomtape_metrics(check) | rabbitmq_metrics()
    selectors, groupings = used_metrics(check)
    for where, name, labels in selectors:
        if check.expect(
            name in known,
            where,
            f"{name} exists neither in the binaries' metrics code nor in RabbitMQ's "
            f"{RABBITMQ_ENDPOINT} ({relative(RABBITMQ_FIXTURE)})",
        ):
            for label in sorted(labels - known[name] - TARGET_LABELS):
                check.fail(
                    where,
                    f"{name} has no label {label} (it has {', '.join(sorted(known[name])) or 'none'})",
                )
    for where, labels, inside in groupings:
        if not inside <= set(known):
            continue  # reported above
        available = set().union(*(known.get(name, set()) for name in inside)) | TARGET_LABELS
        for label in sorted(labels - available):
            check.fail(where, f"grouped by {label}, which none of {', '.join(sorted(inside))} has")
    used = {name for _, name, _ in selectors}
    roomtape = sorted(n for n in used if n.startswith("roomtape_"))
    rabbitmq = sorted(n for n in used if n.startswith("rabbitmq_"))
    for name in sorted(used - set(roomtape) - set(rabbitmq)):
        check.fail("deploy/observability", f"{name}: neither a roomtape_ nor a rabbitmq_ metric")
    fixture = read(ROOMTAPE_FIXTURE).split() if ROOMTAPE_FIXTURE.exists() else []
    check.expect(
        fixture == roomtape,
        relative(ROOMTAPE_FIXTURE),
        "out of date: deploy/validate.sh --metric-names > deploy/observability/roomtape-metric-names.txt",
    )
    return f"{len(roomtape)} roomtape_ and {len(rabbitmq)} rabbitmq_ metrics exist, with every label used"


def check_alert_rules(check: Check) -> str:
    groups = yaml.safe_load(read(ALERTS))["groups"]
    operations = read(ROOT / "docs" / "operations.md")
    names = []
    for group in groups:
        for rule in group["rules"]:
            at = f"{relative(ALERTS)}: {rule.get('alert')}"
            names.append(rule.get("alert"))
            check.expect(
                re.fullmatch(r"Roomtape[A-Z]\w+", rule.get("alert") or "") is not None,
                at,
                "alert should be named Roomtape<What>",
            )
            check.expect(
                re.fullmatch(r"\d+[smh]", str(rule.get("for", ""))) is not None,
                f"{at}.for",
                "no duration",
            )
            check.expect(
                rule.get("labels", {}).get("severity") in ("critical", "warning", "info"),
                f"{at}.labels.severity",
                "critical, warning or info",
            )
            check.expect(
                bool(rule.get("annotations", {}).get("summary")),
                f"{at}.annotations.summary",
                "missing",
            )
            check.expect(
                rule.get("alert") in operations, at, "docs/operations.md says nothing about it"
            )
    check.expect(len(names) == len(set(names)), relative(ALERTS), "alert names repeat")
    dashboard = json.loads(read(DASHBOARD))
    ids = [p["id"] for p in dashboard["panels"]]
    check.expect(len(ids) == len(set(ids)), relative(DASHBOARD), "panel ids repeat")
    check.expect(
        any(v["type"] == "datasource" for v in dashboard["templating"]["list"]),
        relative(DASHBOARD),
        "no datasource variable: the dashboard would be tied to one Prometheus",
    )
    return f"{len(names)} alerts, each with a duration, severity, summary and a section in docs/operations.md"


# --- Main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--compose", type=Path, help="docker-compose config's output")
    parser.add_argument(
        "--kubernetes", type=Path, help="kubectl kustomize deploy/kubernetes's output"
    )
    parser.add_argument(
        "--metric-names",
        action="store_true",
        help="print every roomtape_* metric the dashboard and alerts use, one a line",
    )
    args = parser.parse_args()
    if args.metric_names:
        selectors, _ = used_metrics(Check("metric-names"))
        print("\n".join(sorted({name for _, name, _ in selectors if name.startswith("roomtape_")})))
        return 0
    if not (args.compose and args.kubernetes):
        parser.error("--compose and --kubernetes are required (deploy/validate.sh passes them)")

    objects = [o for o in yaml.safe_load_all(read(args.kubernetes)) if o]
    checks = [
        ("env-example", lambda c: check_env_example(c)),
        ("compose", lambda c: check_compose(c, args.compose)),
        ("dockerfile", check_dockerfile),
        ("kubernetes-schemas", lambda c: check_kubernetes_schemas(c, objects)),
        ("kubernetes-references", lambda c: check_kubernetes_references(c, objects)),
        ("metrics", check_metrics),
        ("alerts-and-dashboard", check_alert_rules),
    ]
    failed = 0
    for name, run in checks:
        check = Check(name)
        try:
            summary = run(check)
        except OSError as error:
            check.fail(str(error.filename), error.strerror)
            summary = ""
        except (KeyError, TypeError, AttributeError, IndexError) as error:
            # A field missing or of the wrong shape where the check expected one.
            check.fail("(structure)", f"{type(error).__name__}: {error}")
            summary = ""
        if check.problems:
            failed += 1
            print(f"FAIL {name}")
            for problem in check.problems:
                print(f"       {problem}")
        else:
            print(f"ok   {name}: {summary}")
        for note in check.notes:
            print(f"       note: {note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
