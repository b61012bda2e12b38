"""Who may import what: the services are reached only through their documented entry points.

The services talk over RabbitMQ, never by importing each other, so a module
under ``services/<a>/`` imports nothing from ``services/<b>/``. ``bench/`` and
``callreel/`` sit outside the services and may use, besides ``shared/``:

- ``services.<name>.actors``: a worker, as ``dramatiq services.<name>.actors`` starts it;
- ``services.ingest.app``: the webhook's WSGI app, as gunicorn serves it;
- ``services.<name>``: the package's own API, the names its ``__init__`` lists in ``__all__``.

The imports are read from the source (``ast``), ``importlib.import_module``
calls with a literal name included, so nothing is imported to check them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.parent.name for p in (ROOT / "services").glob("*/__init__.py"))
OUTSIDE = ("bench", "callreel")
ANY = "*"  # a part of an import_module name computed at run time (an f-string's field)


def module_name(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _literal(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else ANY for v in node.values)
    return None


def imports(source: str, module: tuple[str, ...], *, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Every module ``source`` imports (absolute dotted names) with its line; ``from m import n`` gives ``m.n``.

    ``m.n`` may name an attribute rather than a module: the callers judge it
    against the package's ``__all__``.
    """
    package = module if is_package else module[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            name = _literal(node.args[0])
            if called == "import_module" and name is not None:
                yield name, node.lineno


def package_api(service: str) -> set[str]:
    """The names ``services/<service>/__init__.py`` lists in ``__all__`` (empty without one)."""
    return module_api(ROOT / "services" / service / "__init__.py")


def module_api(path: Path) -> set[str]:
    """The names a module lists in ``__all__`` (empty without one)."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                return set(ast.literal_eval(node.value))
    return set()


def entry_point(name: str) -> bool:
    """Whether code outside the services may import ``name`` (a dotted name, ``*`` for a computed part)."""
    parts = name.split(".")
    if parts[0] != "services":
        return True
    if len(parts) < 2 or (parts[1] not in SERVICES and parts[1] != ANY):
        return False
    rest = parts[2:]
    if rest in (["actors"], []):
        return True
    if parts[1:3] == ["ingest", "app"] and len(parts) <= 4:  # the gunicorn module and its public API
        return len(parts) == 3 or parts[3] == "app" or parts[3] in module_api(ROOT / "services" / "ingest" / "app.py")
        return True
    if len(rest) == 2 and rest[0] == "actors":  # from services.x.actors import actor
        return True
    return len(rest) == 1 and parts[1] != ANY and rest[0] in package_api(parts[1])


def sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_bench_and_cli_import_services_only_through_their_entry_points():
    wrong = []
    for path in sources(*OUTSIDE):
        module = module_name(path)
        for name, line in imports(path.read_text(), module, is_package=path.name == "__init__.py"):
            if not entry_point(name):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "services reached past their entry points:\n" + "\n".join(wrong)


def test_services_never_import_each_other():
    wrong = []
    for service in SERVICES:
        for path in sources(f"services/{service}"):
            for name, line in imports(path.read_text(), module_name(path), is_package=path.name == "__init__.py"):
                parts = name.split(".")
                if parts[0] == "services" and len(parts) > 1 and parts[1] != service:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "services import each other (they talk over RabbitMQ):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("from services.compositor import render_command", True),
        ("from services.audio import split_command", True),
        ("from services.audio.actors import split_channels", True),
        ("import services.compositor.actors", True),
        ("from services.ingest.app import app", True),
        ("importlib.import_module(f'services.{name}.actors')", True),
        ("from shared.settings import load_settings", True),
        ("from services.compositor.layout import fit", False),
        ("from services.compositor import layout", False),  # a module, not in __all__
        ("import services.audio.split", False),
        ("importlib.import_module('services.audio.probe')", False),
        ("from services.ingest.webhook import on_recording", False),
    ],
)
def test_the_rule_itself(source, allowed):
    assert all(entry_point(name) for name, _ in imports(source, ("bench", "x"))) is allowed


def test_relative_imports_resolve_to_the_package_they_leave():
    found = {name for name, _ in imports("from ...generation import jobs\nfrom . import web", ("services", "ingest", "web", "pages"))}
    assert found == {"services.generation.jobs", "services.ingest.web.web"}


@pytest.mark.parametrize("service", ["audio", "compositor"])
def test_a_service_api_is_documented_and_boots_nothing(service):
    package = ROOT / "services" / service / "__init__.py"
    assert ast.get_docstring(ast.parse(package.read_text())), f"services/{service}/__init__.py has no docstring"
    assert package_api(service), f"services/{service}/__init__.py lists no __all__"
    # In a fresh interpreter: this one may hold a broker other tests set up.
    check = (
        f"import services.{service} as api, sys, dramatiq.broker as b\n"
        "assert all(hasattr(api, n) for n in api.__all__), 'a name in __all__ is missing'\n"
        "assert b.global_broker is None, 'a broker was set up'\n"
        "assert not [m for m in sys.modules if m.endswith('.actors') or m == 'shared.runtime'], 'a worker was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
