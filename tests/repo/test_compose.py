"""docker-compose.yaml and deploy/: valid Compose, a complete CeleryExecutor stack, no secrets.

The Compose specification's JSON schema is not part of this repository. It is read from
``$COMPOSE_SPEC_SCHEMA``, else ``../shared/schemas/compose-spec.json`` beside the checkout; the
schema test is skipped (saying so) when neither exists.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yaml"
ENV_EXAMPLE = REPO / "deploy" / ".env.example"
# The deployment's settings: read by docker-compose.yaml (env_file) and by scripts/cluster.sh.
DEPLOY_ENV = REPO / "deploy" / "airflow.env"
DOCKERFILE = REPO / "deploy" / "Dockerfile"

REQUIRED_SERVICES = {
    "postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-init",
}
ONE_SHOT_SERVICES = {"airflow-init", "airflow-cli"}
# AWS's public Deep Learning Containers registry account, and the placeholder ids AWS documents
# (123456789012, moto's default account) or that mean "no account" (all zeros): not secrets.
ALLOWED_ACCOUNT_IDS = {"763104351884", "123456789012", "000000000000"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}")


def schema_path() -> Path:
    """$COMPOSE_SPEC_SCHEMA, else `shared/schemas/compose-spec.json` beside the checkout or any folder
    above it (a clean clone may sit deeper than the working checkout), else the workplace's copy."""
    if os.environ.get("COMPOSE_SPEC_SCHEMA"):
        return Path(os.environ["COMPOSE_SPEC_SCHEMA"])
    relative = Path("shared") / "schemas" / "compose-spec.json"
    candidates = [parent / relative for parent in REPO.parents] + [Path("/work") / relative]
    return next((c for c in candidates if c.is_file()), REPO.parent / relative)


@pytest.fixture(scope="module")
def compose() -> dict:
    # PyYAML resolves anchors and `<<` merge keys as Compose does.
    return yaml.safe_load(COMPOSE_FILE.read_text())


def interpolate_defaults(value: str) -> str:
    """``${VAR:-default}`` -> default (what Compose uses when VAR is unset); ``${VAR}`` -> ''."""
    return INTERPOLATION.sub(lambda m: m.group(2) if m.group(2) is not None and "?" not in m.group(0) else "", value)


def airflow_services(compose: dict) -> dict:
    return {name: svc for name, svc in compose["services"].items() if name.startswith("airflow-") or name == "flower"}


def volume_entries(service: dict) -> list[tuple[str, str]]:
    """(type, source) for each volume of a service: type is ``bind`` or ``volume``."""
    out = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            out.append((entry.get("type", "volume"), str(entry.get("source", ""))))
            continue
        source = interpolate_defaults(entry).split(":", 1)[0]
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        out.append((kind, source))
    return out


def test_compose_file_is_valid_against_the_compose_spec(compose):
    jsonschema = pytest.importorskip("jsonschema")
    path = schema_path()
    if not path.is_file():
        pytest.skip(f"Compose spec schema not found at {path} (set COMPOSE_SPEC_SCHEMA to its path)")
    schema = json.loads(path.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_all_components_of_a_celery_deployment_are_defined(compose):
    assert REQUIRED_SERVICES <= set(compose["services"])
    commands = {name: svc.get("command") for name, svc in compose["services"].items()}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-triggerer"] == "triggerer"
    assert commands["airflow-worker"] == "celery worker"


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped), as Compose reads them."""
    out = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        assert not value.startswith(("'", '"')), f"{path.name}:{number}: no quotes (cluster.sh reads values as is)"
        out[key] = value
    return out


def effective_env(service: dict) -> dict[str, str]:
    """A service's environment as Compose builds it: its required env files, then `environment`."""
    env: dict[str, str] = {}
    for item in service.get("env_file", []):
        path, required = (item, True) if isinstance(item, str) else (item["path"], item.get("required", True))
        if required:
            env.update(read_env_file(REPO / path))
    env.update({k: str(v) for k, v in (service.get("environment") or {}).items()})
    return env


def test_airflow_settings(compose):
    for name, service in airflow_services(compose).items():
        env = effective_env(service)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:@redis:6379/0", name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        assert env["AIRFLOW__CORE__HOSTNAME_CALLABLE"] == "streamguard.cluster.hostname", name
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("AuthManager"), name
        # The JWT secret comes from the environment (.env), is required, and is the same everywhere.
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW__API_AUTH__JWT_SECRET:?"), name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        files = [item if isinstance(item, str) else item["path"] for item in service["env_file"]]
        assert files == ["deploy/airflow.env", ".env"], name  # the shared settings first, secrets override


def test_worker_is_scalable(compose):
    worker = compose["services"]["airflow-worker"]
    assert "container_name" not in worker
    assert worker.get("deploy", {}).get("replicas", 1) >= 1
    # A fixed host port would stop a second replica from starting.
    assert "ports" not in worker


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT_SERVICES:
            assert "restart" not in service, f"{name} runs once and must not be restarted"
            continue
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name
        test = service.get("healthcheck", {}).get("test")
        assert test and test != ["NONE"], f"{name} has no healthcheck"
    api = compose["services"]["airflow-apiserver"]["healthcheck"]["test"]
    assert "http://localhost:8080/api/v2/version" in api
    assert "http://localhost:8974/health" in compose["services"]["airflow-scheduler"]["healthcheck"]["test"]


def test_dependencies_exist_and_wait_for_init(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, list) else list(depends)
        for target in targets:
            assert target in services, f"{name} depends on undefined service {target!r}"
            assert target != name
    airflow_components = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
                          "airflow-worker")
    for name in airflow_components:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"


def test_init_migrates_the_database(compose):
    init = compose["services"]["airflow-init"]
    command = init["command"] if isinstance(init["command"], str) else "\n".join(init["command"])
    # The image's entrypoint runs `airflow db migrate` when _AIRFLOW_DB_MIGRATE is true.
    assert init["environment"].get("_AIRFLOW_DB_MIGRATE") == "true" or "airflow db migrate" in command
    assert init["environment"].get("_AIRFLOW_WWW_USER_CREATE") == "true"


def test_volumes_are_declared_and_bind_sources_exist(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for kind, source in volume_entries(service):
            if kind == "volume":
                assert source in declared, f"{name} uses undeclared volume {source!r}"
                used.add(source)
            else:
                assert (REPO / source).resolve().exists(), f"{name} mounts missing path {source!r}"
    assert {"postgres-db-volume", "streamguard-artifacts"} <= used
    assert declared == used, f"declared but unused: {declared - used}"
    mounts = {interpolate_defaults(v).split(":")[1] for v in compose["services"]["airflow-apiserver"]["volumes"]}
    for target in ("/opt/airflow/dags", "/opt/airflow/plugins", "/opt/streamguard/streamguard",
                   "/opt/streamguard/training_entry", "/opt/airflow/streamguard"):
        assert target in mounts


def test_dockerfile_matches_the_pinned_airflow_and_installs_streamguard():
    text = DOCKERFILE.read_text()
    pinned = re.search(r"^apache-airflow==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert f"ARG AIRFLOW_IMAGE=apache/airflow:{pinned}-python3.11" in text
    assert "-r requirements.txt -c constraints.txt" in text
    assert "pip install --no-cache-dir --no-deps -e ." in text
    for copied in ("requirements.txt", "constraints.txt", "pyproject.toml", "streamguard", "training_entry"):
        assert (REPO / copied).exists(), copied


def test_env_example_documents_the_settings():
    names = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#   ")
    }
    for required in ("STREAMGUARD_BACKEND", "STREAMGUARD_ARTIFACT_ROOT", "STREAMGUARD_REGISTRY_URI",
                     "AWS_DEFAULT_REGION", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW__API_AUTH__JWT_SECRET",
                     # the Airflow Variable `streamguard_sagemaker_role_arn`, read by streamguard.settings
                     "AIRFLOW_VAR_STREAMGUARD_SAGEMAKER_ROLE_ARN"):
        assert required in names, required
    text = ENV_EXAMPLE.read_text()
    assert "<your-account-id>" in text
    assert not re.search(r"aws_(access_key_id|secret_access_key|session_token)", text, re.I)


def scanned_files() -> list[Path]:
    """The repository's own text files (tracked or new, not ignored); the deployment files without git."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True, timeout=60,
        ).stdout.splitlines()
        files = [REPO / name for name in listing]
    except (OSError, subprocess.SubprocessError):
        files = [COMPOSE_FILE, *sorted((REPO / "deploy").rglob("*"))]
    return [f for f in files if f.is_file() and f.stat().st_size < 2_000_000]


KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
SECRET_KEY = re.compile(r"aws_secret_access_key\s*[=:]\s*[\"']?[A-Za-z0-9/+]{40}\b", re.I)
ACCOUNT_IN_ARN = re.compile(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:(\d{12}):")
ACCOUNT_IN_ECR = re.compile(r"(?<!\d)(\d{12})\.dkr\.ecr\.")
TWELVE_DIGITS = re.compile(r"(?<![\d.])(\d{12})(?![\d.])")


def test_no_aws_credentials_or_account_ids_in_the_repository():
    problems = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(REPO)
        for match in KEY_ID.finditer(text):
            if "EXAMPLE" not in match.group(0):  # AWS's documented example key id is not a secret
                problems.append(f"{rel}: access key id {match.group(0)[:8]}...")
        if SECRET_KEY.search(text):
            problems.append(f"{rel}: secret access key")
        for pattern in (ACCOUNT_IN_ARN, ACCOUNT_IN_ECR):
            for match in pattern.finditer(text):
                if match.group(1) not in ALLOWED_ACCOUNT_IDS:
                    problems.append(f"{rel}: account id {match.group(1)}")
    # The deployment files carry no 12-digit number at all except the public DLC account.
    for path in [COMPOSE_FILE, ENV_EXAMPLE, DOCKERFILE]:
        for match in TWELVE_DIGITS.finditer(path.read_text()):
            if match.group(1) != "763104351884":
                problems.append(f"{path.relative_to(REPO)}: 12-digit number {match.group(1)}")
    assert not problems, "\n".join(problems)


def test_secret_scan_catches_planted_values():
    planted = "arn:aws:iam::" + "4" * 12 + ":role/x " + "AKIA" + "Q" * 16
    assert KEY_ID.search(planted) and ACCOUNT_IN_ARN.search(planted).group(1) == "4" * 12
    assert ACCOUNT_IN_ECR.search("7" * 12 + ".dkr.ecr.eu-west-1.amazonaws.com/x").group(1) == "7" * 12


# ------------------------------------------------------------- one source of settings with cluster.sh
def cluster_env(tmp_path: Path) -> dict[str, str]:
    """What `scripts/cluster.sh env` resolves (no server needed), with the file's default ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMGUARD_CLUSTER"))}
    env["STREAMGUARD_CLUSTER_DIR"] = str(tmp_path / "cluster")
    proc = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "env"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


def parse_url(url: str) -> dict:
    m = re.fullmatch(r"(?P<scheme>[a-z0-9+]+)://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?(?P<host>[^/:@]+)"
                     r"(?::(?P<port>\d+))?/(?P<path>.*)", url)
    assert m, f"not a URL with a host: {url!r}"
    return m.groupdict()


def test_compose_reads_the_deployment_env_file(compose):
    shared = read_env_file(DEPLOY_ENV)
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for name, service in airflow_services(compose).items():
        overridden = set(shared) & set(service.get("environment") or {})
        assert not overridden, f"{name} overrides deploy/airflow.env settings {sorted(overridden)}"
    postgres = effective_env(compose["services"]["postgres"])
    for key in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert postgres[key] == shared[key]


def test_cluster_sh_and_compose_run_the_same_settings(compose, tmp_path):
    """Every shared setting is the same in both; connection URLs differ only in host and port."""
    shared = read_env_file(DEPLOY_ENV)
    cluster = cluster_env(tmp_path)
    compose_env = effective_env(compose["services"]["airflow-scheduler"])
    for key, value in shared.items():
        assert cluster.get(key) == value, f"cluster.sh: {key}={cluster.get(key)!r}, deploy/airflow.env: {value!r}"
        if not key.startswith("STREAMGUARD_CLUSTER_"):
            assert compose_env.get(key) == value, key
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW__CELERY__BROKER_URL"):
        ours, theirs = parse_url(cluster[key]), parse_url(compose_env[key])
        assert ours["host"] == "127.0.0.1" and theirs["host"] in ("postgres", "redis"), key
        for part in ("scheme", "user", "password", "path"):
            assert (ours[part] or "") == (theirs[part] or ""), f"{key}: {part} differs"
    db = parse_url(cluster["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert (db["user"], db["password"], db["path"]) == (shared["POSTGRES_USER"], shared["POSTGRES_PASSWORD"],
                                                        shared["POSTGRES_DB"])
    assert db["port"] == shared["STREAMGUARD_CLUSTER_PG_PORT"]
    assert parse_url(cluster["AIRFLOW__CELERY__BROKER_URL"])["path"] == shared["STREAMGUARD_REDIS_DB"]
    assert cluster["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith(":%s/execution/"
                                                                      % shared["STREAMGUARD_CLUSTER_API_PORT"])
    assert compose_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].endswith("/execution/")
    # The one deliberate difference: compose uses FAB's auth manager (the Airflow image ships it),
    # cluster.sh Airflow's own; both issue JWTs at POST /auth/token.
    assert cluster["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    assert compose_env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".FabAuthManager")
    # Secrets never come from the shared file.
    assert not {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"} & set(shared)


def test_cluster_sh_env_overrides_only_its_own_values(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "STREAMGUARD_CLUSTER"))}
    env.update(STREAMGUARD_CLUSTER_DIR=str(tmp_path), STREAMGUARD_CLUSTER_PG_PORT="61234",
               AIRFLOW__CORE__EXECUTOR="LocalExecutor")
    out = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "env"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert "STREAMGUARD_CLUSTER_PG_PORT=61234" in out and ":61234/" in out
    assert "AIRFLOW__CORE__EXECUTOR=CeleryExecutor" in out  # the file's setting wins over a stray shell value
