"""The deployment files, checked against the code without Docker.

docker-compose.yml, every deploy/*.Dockerfile, the Railway configs and
.dockerignore are parsed; what they name (modules, queues, variables, ports,
routes) is looked up in the code and in shared.settings.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml

from shared import contracts
from tests.support import deploy
from tests.support.deploy import DEPLOY, FFMPEG_SERVICES, ROOT, SERVICES, WORKERS
from tests.support.env import process_env

OURS = ("bucket", "migrate", "ingest", *WORKERS, "sweeper")
LONG_RUNNING = ("ingest", *WORKERS)
INGEST_CMD = ["gunicorn", "--config", "deploy/gunicorn.conf.py", "services.ingest.app:app"]
# What each compose service runs, to find the variables it reads.
ENTRIES = {
    "bucket": deploy.command_entries("callreel.cli", "cmd_bucket"),
    "migrate": deploy.command_entries("callreel.cli", "cmd_migrate"),
    "sweeper": deploy.command_entries("callreel.cli", "cmd_sweep"),
    "ingest": ["services.ingest.app"],
    **{name: [f"services.{image}.actors"] for name, image in WORKERS.items()},
}


@pytest.fixture(scope="module")
def stack() -> dict:
    return deploy.compose()


def image_of(name: str, stack: dict) -> str:
    dockerfile = stack["services"][name]["build"]["dockerfile"]
    return re.fullmatch(r"deploy/(\w+)\.Dockerfile", dockerfile).group(1)


def command_of(name: str, stack: dict) -> list[str]:
    """The command a compose service runs: its own, else its image's CMD ($$ is compose's escaped $)."""
    command = stack["services"][name].get("command")
    if command is None:
        return deploy.dockerfile_of(image_of(name, stack)).cmd
    return [part.replace("$$", "$") for part in command]


def default_of(value: str | None) -> str | None:
    """The value a compose environment entry gives when nothing overrides it."""
    if value is None:
        return None
    match = re.fullmatch(r"\$\{(\w+)(:?-)(.*)\}", str(value))
    return match.group(3) if match else str(value)


def port_of_url(url: str) -> int:
    return urlsplit(url).port


def healthcheck_url(service: dict) -> str:
    test = service["healthcheck"]["test"]
    return re.search(r"https?://[^'\"]+", " ".join(test)).group(0)


# -- the files exist and say what each service is --------------------------------------


def test_every_service_is_in_the_stack(stack):
    services = stack["services"]
    assert {"rabbitmq", "postgres", "minio", *OURS} <= set(services)
    for name in OURS:
        build = services[name]["build"]
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"
    assert {image_of(name, stack) for name in ("ingest", *WORKERS)} == set(SERVICES)
    # The ingest image serves both the webhook and its download worker.
    assert image_of("ingest-worker", stack) == "ingest"
    assert "management" in services["rabbitmq"]["image"]
    assert "15672:15672" in services["rabbitmq"]["ports"]


@pytest.mark.parametrize("service", SERVICES)
def test_dockerfile_is_multi_stage_slim_non_root_and_installs_only_its_group(service):
    dockerfile = deploy.dockerfile_of(service)
    assert len(dockerfile.stages) >= 2, "build tools stay in a build stage"
    assert {stage.base for stage in dockerfile.stages} == {"python:3.11-slim-trixie"}
    build, final = dockerfile.stages[0], dockerfile.final
    installs = [args for stage in dockerfile.stages for args in stage.all("RUN") if "pip install" in args]
    assert installs, "nothing is pip-installed"
    for args in installs:
        extras = re.findall(r"\.\[([^\]]*)\]", args)
        assert extras == [service], f"{service}: installs {args!r}, expected only .[{service}]"
        assert "--constraint constraints.txt" in args, f"{service}: installs without the lock (constraints.txt)"
    assert not any("pip install" in args for args in final.all("RUN")), "the final stage only copies the venv"
    assert any(f"--from={build.name}" in args for args in final.all("COPY"))
    # Non-root: a user is made and switched to before CMD.
    users = final.all("USER")
    assert users and users[-1] not in ("root", "0"), f"{service} runs as root"
    assert any("useradd" in args and users[-1] in args.split() for args in final.all("RUN"))
    # Only its own service's code goes in: importing another service would fail in the image.
    copied = " ".join(args for stage in dockerfile.stages for args in stage.all("COPY"))
    for other in set(SERVICES) - {service}:
        assert f"services/{other}" not in copied
    assert f"services/{service}/" in copied


@pytest.mark.parametrize("service", SERVICES)
def test_everything_a_dockerfile_copies_exists_and_passes_dockerignore(service):
    dockerfile = deploy.dockerfile_of(service)
    for stage in dockerfile.stages:
        for args in stage.all("COPY"):
            if args.startswith("--from"):
                continue
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"{service}: COPY {source}: no such file"
                assert deploy.dockerignore_allows(source.rstrip("/")), f"{service}: .dockerignore drops {source}"


def test_dockerignore_keeps_local_state_out():
    for path in (".venv/bin/python", ".git/config", ".env", "tests/conftest.py", ".callreel/callreel.db",
                 "shared/__pycache__/x.pyc", "callreel.egg-info/PKG-INFO"):
        assert not deploy.dockerignore_allows(path), f"{path} would be sent to the Docker build"
    for path in ("shared/settings.py", "services/audio/actors.py", "pyproject.toml", "README.md"):
        assert deploy.dockerignore_allows(path)


def uses_ffmpeg(service: str) -> bool:
    """The code of a service runs FFmpeg when it reads FFMPEG_BINARY or FFPROBE_BINARY."""
    entry = "services.ingest.app" if service == "ingest" else f"services.{service}.actors"
    names = [entry] + (["services.ingest.actors"] if service == "ingest" else [])
    return bool({"FFMPEG_BINARY", "FFPROBE_BINARY"} & deploy.variables_read(names))


@pytest.mark.parametrize("service", SERVICES)
def test_ffmpeg_only_in_the_images_whose_code_runs_it(service):
    dockerfile = deploy.dockerfile_of(service)
    apt = " ".join(args for stage in dockerfile.stages for args in stage.all("RUN") if "apt-get install" in args)
    installed = bool(re.search(r"\bffmpeg\b", apt))
    assert installed == (service in FFMPEG_SERVICES), f"{service}: FFmpeg installed={installed}"
    assert uses_ffmpeg(service) == (service in FFMPEG_SERVICES), f"{service}: the code and the image disagree"
    if installed:
        assert apt in " ".join(dockerfile.final.all("RUN")), "FFmpeg goes in the final stage"


# -- commands: each starts its own module on its own queue ----------------------------------------

ACTORS_SCRIPT = """
import json, sys, importlib, dramatiq
importlib.import_module(sys.argv[1])
broker = dramatiq.get_broker()
print(json.dumps({name: broker.get_actor(name).queue_name for name in broker.get_declared_actors()}))
"""


def declared_actors(module: str, tmp_path) -> dict[str, str]:
    """Actor name → queue of every actor ``module`` declares, imported in a clean process."""
    env = process_env(inherit=False, BROKER_URL="memory://", CALLREEL_DATA_DIR=tmp_path, TMP_DIR=tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", ACTORS_SCRIPT, module], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, f"importing {module} failed:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(WORKERS))
def test_worker_command_runs_its_own_module_on_its_own_queue(name, stack, tmp_path):
    image = WORKERS[name]
    argv = deploy.start_argv(command_of(name, stack), {})
    queue = {c.queue_name for c in contracts.CONTRACTS if c.queue_name == image}.pop()
    # shared.dramatiq_cli is dramatiq's own command line with callreel's logging installed first (LOG_FORMAT=json).
    assert argv[:6] == ["python", "-m", "shared.dramatiq_cli", f"services.{image}.actors", "--queues", queue], argv
    assert argv[6:] == ["--processes", "1", "--threads", "2"]
    actors = declared_actors(f"services.{image}.actors", tmp_path)
    expected = {c.actor_name for c in contracts.CONTRACTS if c.queue_name == queue}
    assert set(actors) == expected, f"{name} declares {sorted(actors)}; the contracts of queue {queue} are {sorted(expected)}"
    assert set(actors.values()) == {queue}


@pytest.mark.parametrize("name", OURS)
def test_every_module_a_command_imports_is_copied_into_its_image(name, stack):
    dockerfile = deploy.dockerfile_of(image_of(name, stack))
    copied = [
        shlex.split(args)[:-1] for args in dockerfile.stages[0].all("COPY") if not args.startswith("--from")
    ]
    sources = [source.rstrip("/") for group in copied for source in group]
    for entry in ENTRIES[name]:
        for module, path in deploy.module_closure(entry).items():
            relative = str(path.relative_to(ROOT))
            assert any(relative == s or relative.startswith(s + "/") for s in sources), (
                f"{name} imports {module} ({relative}), which {dockerfile.path.name} does not copy"
            )


@pytest.mark.parametrize("name", list(WORKERS))
def test_worker_processes_and_threads_come_from_the_settings_variables(name, stack):
    line = deploy.shell_command(command_of(name, stack))
    defaults = deploy.setting_defaults()
    for option, variable in (("--processes", "WORKER_PROCESSES"), ("--threads", "WORKER_THREADS")):
        assert f"{option} ${{{variable}:-{defaults[variable]}}}" in line, f"{name}: {option} must follow {variable}"
    argv = deploy.start_argv(command_of(name, stack), {"WORKER_PROCESSES": "3", "WORKER_THREADS": "5"})
    assert argv[argv.index("--processes") + 1] == "3" and argv[argv.index("--threads") + 1] == "5"
    assert line.startswith("exec "), "exec: dramatiq becomes PID 1 and receives SIGTERM itself"


def test_ingest_command_is_gunicorn_configured_from_settings(settings_env):
    assert deploy.dockerfile_of("ingest").cmd == INGEST_CMD
    config = DEPLOY / "gunicorn.conf.py"
    assert config.is_file(), "deploy/gunicorn.conf.py (the ingest service's gunicorn config) is missing"
    settings_env(
        GUNICORN_WORKERS="3", GUNICORN_THREADS="7", PORT="8123",
        TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://example.test",
    )
    import runpy

    values = runpy.run_path(str(config))
    assert values["workers"] == 3 and values["threads"] == 7
    binds = values["bind"] if isinstance(values["bind"], list) else [values["bind"]]
    assert all(b.endswith(":8123") for b in binds)
    # Metrics: the master starts the workers' shared folder and serves it on METRICS_PORT
    # (shared.metrics.gunicorn_when_ready / gunicorn_child_exit; scraped in test_start_commands.py).
    assert callable(values.get("when_ready")) and callable(values.get("child_exit"))
    assert "gunicorn_when_ready" in config.read_text() and "gunicorn_child_exit" in config.read_text()


# -- environment: what the code reads is what the stack provides ---------------------------------------


@pytest.mark.parametrize("name", OURS)
def test_every_variable_a_service_reads_is_provided(name, stack):
    extra = [DEPLOY / "gunicorn.conf.py"] if name == "ingest" and (DEPLOY / "gunicorn.conf.py").exists() else []
    reads = deploy.variables_read(ENTRIES[name], extra)
    assert reads, f"found no settings read by {ENTRIES[name]}"
    provided = set(stack["services"][name].get("environment") or {})
    missing = sorted(reads - provided)
    assert not missing, f"{name} reads {missing} but docker-compose.yml does not pass them"


@pytest.mark.parametrize("name", OURS)
def test_variables_keep_their_production_names(name, stack):
    declared = set(deploy.setting_defaults())
    for key, value in (stack["services"][name].get("environment") or {}).items():
        assert key in declared, f"{name}: {key} is not a callreel setting (shared/settings.py)"
        for referenced in re.findall(r"\$\{(\w+)", str(value or "")):
            assert referenced == key, f"{name}: {key} is read from ${referenced}; the name must stay {key}"


def test_services_are_wired_to_the_stack(stack):
    services = stack["services"]
    env = {k: default_of(v) for k, v in services["ingest"]["environment"].items()}
    pg = services["postgres"]["environment"]
    db = urlsplit(env["DATABASE_URL"])
    assert (db.hostname, db.username, db.password, db.path.lstrip("/")) == (
        "postgres", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"], pg["POSTGRES_DB"]
    )
    mq = services["rabbitmq"]["environment"]
    for url in (env["BROKER_URL"], env["RABBITMQ_MANAGEMENT_URL"]):
        parts = urlsplit(url)
        assert (parts.hostname, parts.username, parts.password) == ("rabbitmq", mq["RABBITMQ_DEFAULT_USER"], mq["RABBITMQ_DEFAULT_PASS"])
    assert urlsplit(env["BROKER_URL"]).path.lstrip("/") == mq["RABBITMQ_DEFAULT_VHOST"]
    assert urlsplit(env["RABBITMQ_MANAGEMENT_URL"]).port == 15672
    minio = services["minio"]["environment"]
    assert urlsplit(env["S3_ENDPOINT_URL"]).hostname == "minio"
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"])
    # The defaults make settings that load: the stack starts with no .env at all.
    from shared.settings import load_settings

    for name in OURS:
        values = {k: default_of(v) for k, v in services[name]["environment"].items() if v is not None}
        load_settings(values)


def test_the_stack_starts_in_order(stack):
    services = stack["services"]
    assert services["migrate"]["command"] == ["callreel", "migrate"]
    assert services["bucket"]["command"] == ["callreel", "bucket"]
    for one_shot in ("migrate", "bucket"):
        assert services[one_shot]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["bucket"]["depends_on"]["minio"]["condition"] == "service_healthy"
    for name in LONG_RUNNING:
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        assert needs["bucket"]["condition"] == "service_completed_successfully"
        assert needs["rabbitmq"]["condition"] == "service_healthy"
    for name in ("rabbitmq", "postgres", "minio", *LONG_RUNNING):
        assert services[name]["healthcheck"]["test"], f"{name} has no health check"


def test_ports_are_consistent(stack):
    services = stack["services"]
    defaults = deploy.setting_defaults()
    ingest = services["ingest"]
    port = int(default_of(ingest["environment"]["PORT"]))
    assert port == defaults["PORT"]
    assert f"{port}:{port}" in ingest["ports"]
    assert port_of_url(healthcheck_url(ingest)) == port and healthcheck_url(ingest).endswith("/healthz")
    metrics_port = defaults["METRICS_PORT"]
    for name in LONG_RUNNING:
        service = services[name]
        assert int(default_of(service["environment"]["METRICS_PORT"])) == metrics_port
        # Loopback by default (issue 25); a container must listen where Prometheus can reach it.
        assert default_of(service["environment"]["METRICS_HOST"]) == "0.0.0.0"
        assert str(metrics_port) in service["expose"]
        if name != "ingest":
            assert healthcheck_url(service) == f"http://127.0.0.1:{metrics_port}/metrics"
        # Scaling a stage needs no host port per replica.
        assert name == "ingest" or not service.get("ports")
    for service in SERVICES:
        exposed = " ".join(deploy.dockerfile_of(service).final.all("EXPOSE")).split()
        assert str(metrics_port) in exposed
        assert "METRICS_HOST=::" in deploy.dockerfile_of(service).final.all("ENV")
        assert (str(port) in exposed) == (service == "ingest")
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (sd,) = prometheus["scrape_configs"][0]["dns_sd_configs"]
    assert sd["port"] == metrics_port and set(sd["names"]) == set(LONG_RUNNING)


# -- Railway ------------------------------------------------------------------------------------------


def grace_seconds(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([sm])", value).groups()
    return int(number) * (60 if unit == "m" else 1)


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_railway_config_builds_its_dockerfile_and_starts_its_command(name, stack):
    config = deploy.railway(name)
    build, run = config["build"], config["deploy"]
    assert build["builder"] == "DOCKERFILE"
    assert build["dockerfilePath"] == stack["services"][name]["build"]["dockerfile"]
    assert shlex.split(run["startCommand"]) == command_of(name, stack)
    assert run["restartPolicyType"] == "ON_FAILURE" and run["restartPolicyMaxRetries"] >= 1
    # SIGTERM → SIGKILL gap: the same on Railway as in compose.
    assert run["drainingSeconds"] == grace_seconds(stack["services"][name]["stop_grace_period"])
    image = image_of(name, stack)
    assert f"services/{image}/**" in build["watchPatterns"]
    assert not any(f"services/{other}" in p for p in build["watchPatterns"] for other in set(SERVICES) - {image})


def test_sweeper_runs_every_so_often_from_the_ingest_image(stack):
    sweeper = stack["services"]["sweeper"]
    assert image_of("sweeper", stack) == "ingest"
    assert sweeper["command"][:2] == ["callreel", "sweep"] and float(sweeper["command"][sweeper["command"].index("--every") + 1]) > 0
    for needed in ("migrate", "rabbitmq"):
        assert needed in sweeper["depends_on"]
    config = deploy.railway("sweeper")
    assert config["build"]["dockerfilePath"] == "deploy/ingest.Dockerfile"
    # On Railway a cron run sweeps once and exits; the schedule brings it back.
    assert shlex.split(config["deploy"]["startCommand"]) == ["callreel", "sweep"]
    assert len(config["deploy"]["cronSchedule"].split()) == 5
    assert config["deploy"]["restartPolicyType"] == "NEVER"


def test_railway_ingest_checks_health_and_migrates(settings_env):
    config = deploy.railway("ingest")["deploy"]
    assert config["preDeployCommand"] == ["callreel migrate"]
    settings_env(TWILIO_ACCOUNT_SID="AC" + "0" * 32, TWILIO_AUTH_TOKEN="t", PUBLIC_BASE_URL="https://example.test")
    from services.ingest.app import create_app

    app = create_app()
    assert app._router.find(config["healthcheckPath"]) is not None, "the health check path is not a route"
    for name in WORKERS:
        assert "healthcheckPath" not in deploy.railway(name)["deploy"], "workers serve no HTTP on PORT"


def test_make_up_and_down_wrap_compose():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^up:.*\n\tdocker compose up -d --build$", makefile, re.M)
    assert re.search(r"^down:.*\n\tdocker compose down$", makefile, re.M)
