"""The console's templates and static files ship with the package, from where the code reads them."""

import fnmatch
import tomllib
from importlib import resources
from pathlib import Path

from setuptools import find_packages

from services.ingest.web import pages, templating

ROOT = Path(__file__).resolve().parents[4]
WEB = ROOT / "services" / "ingest" / "web"


def test_pyproject_ships_every_template_and_static_file():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = find_packages(str(ROOT), include=config["packages"]["find"]["include"])
    patterns = config["package-data"]["*"]
    for folder in ("templates", "static"):
        assert f"services.ingest.web.{folder}" in packages
        files = [path for path in (WEB / folder).iterdir() if path.is_file() and path.suffix != ".py"]
        assert files
        for path in files:
            assert any(fnmatch.fnmatch(path.name, pattern) for pattern in patterns), f"{path} is not package data"


def test_the_code_reads_them_from_its_own_package():
    assert templating.__package__ == pages.__package__ == "services.ingest.web"
    assert resources.files(templating.__package__).joinpath("templates", "base.html").is_file()
    for name in pages.STATIC:
        assert resources.files(pages.__package__).joinpath("static", name).is_file()
