"""Reading the deployment files without Docker: Dockerfiles, docker-compose.yml, Railway configs, .dockerignore.

Also answers "which environment variables does this service read?" from the
code itself: the modules an entry point imports (followed statically, lazy
imports included), and every ``Settings`` field or property they touch.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PACKAGES = ("shared", "services", "callreel")

# Each deployable process: the image it runs, and the module its command loads.
SERVICES = ("ingest", "audio", "generation", "compositor")
WORKERS = {"ingest-worker": "ingest", "audio": "audio", "generation": "generation", "compositor": "compositor"}
FFMPEG_SERVICES = {"audio", "compositor"}


# -- Dockerfiles -------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    path: Path
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def exec_form(self, keyword: str) -> list[str]:
        """The JSON (exec) form of the final stage's CMD or ENTRYPOINT."""
        (args,) = self.final.all(keyword)[-1:] or [None]
        if args is None:
            return []
        value = json.loads(args)
        assert isinstance(value, list), f"{self.path.name}: {keyword} must use the exec (JSON) form"
        return value

    @property
    def cmd(self) -> list[str]:
        return self.exec_form("CMD")

    def env(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for args in self.final.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                found[key] = value
        return found


def parse_dockerfile(path: Path) -> Dockerfile:
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    stages: list[Stage] = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        else:
            assert stages, f"{path.name}: {keyword} before FROM"
            stages[-1].instructions.append((keyword, args))
    return Dockerfile(path, stages)


def dockerfile_of(service: str) -> Dockerfile:
    return parse_dockerfile(DEPLOY / f"{service}.Dockerfile")


def shell_command(cmd: list[str]) -> str:
    """The command line a ``["/bin/sh", "-c", "exec …"]`` CMD runs (or the exec form joined)."""
    if cmd[:2] == ["/bin/sh", "-c"]:
        return cmd[2]
    return shlex.join(cmd)


def start_argv(cmd: list[str], env: dict[str, str]) -> list[str]:
    """The argv a CMD ends up executing with ``env``, ``${VAR:-default}`` expanded as sh does."""
    line = shell_command(cmd)

    def expand(match: re.Match) -> str:
        name, default = match.group(1), match.group(3) or ""
        return env.get(name) or default

    expanded = re.sub(r"\$\{(\w+)(:-([^}]*))?\}", expand, line)
    argv = shlex.split(expanded)
    return argv[1:] if argv and argv[0] == "exec" else argv


# -- docker-compose.yml and friends ----------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def railway(name: str) -> dict:
    return json.loads((DEPLOY / "railway" / f"{name}.json").read_text())


def dockerignore_allows(relative: str) -> bool:
    """Whether ``relative`` reaches the build context under .dockerignore (last match wins)."""
    allowed = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        candidates = [relative] + [str(Path(*Path(relative).parts[:i])) for i in range(1, len(Path(relative).parts))]
        regex = re.compile(
            "^" + re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*").replace(r"\?", "[^/]") + "$"
        )
        if any(regex.match(c) for c in candidates):
            allowed = negate
    return allowed


# -- which settings a service reads ---------------------------------------------------------


def _settings_names() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Field name → env variable, and property name → the fields it reads."""
    from shared.settings import Settings, declared

    fields = {f.name: f.metadata["env"] for f in declared()}
    tree = ast.parse((ROOT / "shared" / "settings.py").read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == Settings.__name__]
    properties: dict[str, set[str]] = {}
    for node in cls.body:
        if isinstance(node, ast.FunctionDef) and any(
            isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
        ):
            properties[node.name] = {
                a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute) and a.attr in fields
            }
    return fields, properties


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports_in(tree: ast.AST, module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def command_entries(module: str, function: str) -> list[str]:
    """What running ``function`` of ``module`` imports: the module's top-level imports and the function's own.

    For a CLI whose other commands import more (``callreel serve`` loads every
    service) when only one command runs in an image (``callreel migrate``).
    """
    path = module_file(module)
    tree = ast.parse(path.read_text())
    (fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    top = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], type_ignores=[])
    found: set[str] = set()
    for part in (top, fn):
        found |= _imports_in(part, module, path)
    return sorted(found)


def _imports(path: Path, module: str) -> set[str]:
    return _imports_in(ast.parse(path.read_text()), module, path)


def module_closure(entry: str) -> dict[str, Path]:
    """Every module of ours ``entry`` imports, directly or not, at import time or lazily."""
    seen: dict[str, Path] = {}
    todo = [entry]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        path = module_file(module)
        if path is None:
            continue
        seen[module] = path
        parts = module.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
        todo.extend(_imports(path, module))
    return seen


def _is_settings(node: ast.AST) -> bool:
    """``settings``, ``self._settings``, ``get_settings()``: an expression holding the Settings."""
    if isinstance(node, ast.Call):
        node = node.func
        return (getattr(node, "id", None) or getattr(node, "attr", "")).endswith("settings")
    name = getattr(node, "id", None) or getattr(node, "attr", None) or ""
    return "settings" in name


def settings_read_by(files: list[Path]) -> set[str]:
    """Environment variables whose settings the code in ``files`` reads."""
    fields, properties = _settings_names()
    env_names = set(fields.values())
    read: set[str] = set()
    for path in files:
        if path == ROOT / "shared" / "settings.py":
            continue  # declarations and cross-checks, not uses
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and _is_settings(node.value):
                if node.attr in fields:
                    read.add(fields[node.attr])
                elif node.attr in properties:
                    read.update(fields[f] for f in properties[node.attr])
            elif isinstance(node, ast.Constant) and node.value in env_names:
                read.add(node.value)  # settings.require(["TWILIO_AUTH_TOKEN", …])
    return read


def variables_read(entries: list[str], extra_files: list[Path] = ()) -> set[str]:
    files: list[Path] = list(extra_files)
    for entry in entries:
        files += module_closure(entry).values()
    for extra in extra_files:
        for imported in _imports(extra, extra.stem):
            files += module_closure(imported).values()
    return settings_read_by(sorted(set(files)))


def setting_defaults() -> dict[str, object]:
    from shared.settings import declared

    return {f.metadata["env"]: f.default for f in declared()}

