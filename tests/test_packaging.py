"""mnistlab installs as a package: a wheel with the library, the dashboard's files and a `mnistlab` command.

One module-scoped build: the wheel is built from a copy of the sources (so no build/ folder is
left in the checkout) without network (``--no-deps --no-build-isolation``) and installed into a
fresh virtual environment that borrows the dependencies already installed here
(``--system-site-packages``). Every command then runs from a folder outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.packaging

SOURCES = ["pyproject.toml", "README.md", "streamlit_app.py", ".streamlit", "mnistlab", "pages"]


def _run(args, cwd, env=None, timeout=240):
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel path, venv bin folder, a clean environment, a working folder outside the repository)."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", dist, source], cwd=tmp)
    wheel = next(dist.glob("mnistlab-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], cwd=tmp)
    bin_dir = venv / "bin"
    _run([sys.executable, "-m", "pip", "--python", bin_dir / "python", "install", "--quiet", "--no-deps",
          "--no-index", "--no-build-isolation", wheel], cwd=tmp)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MNISTLAB_STORE", "VIRTUAL_ENV")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", XDG_DATA_HOME=str(tmp / "xdg"),
               HOME=str(tmp / "home"), COLUMNS="1000")
    return wheel, bin_dir, env, elsewhere


def test_wheel_holds_the_library_the_dashboard_and_its_theme(installed):
    wheel, *_ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    library = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mnistlab").rglob("*.py")}
    assert library <= names, f"modules missing from the wheel (a new subpackage?): {sorted(library - names)}"
    pages = {f"mnistlab_app/pages/{p.name}" for p in (ROOT / "pages").glob("*.py")}
    assert pages <= names and "mnistlab_app/streamlit_app.py" in names
    assert "mnistlab_app/.streamlit/config.toml" in names
    assert not any(name.startswith(("tests/", "pages/", "benchmarks/")) for name in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mnistlab = mnistlab.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_command_works_outside_the_repository(installed):
    _, bin_dir, env, elsewhere = installed
    help_text = _run([bin_dir / "mnistlab", "--help"], cwd=elsewhere, env=env).stdout
    assert help_text.startswith("usage: mnistlab ")
    for command in ("train", "runs", "show", "report", "export", "import", "delete", "doctor", "archs", "serve"):
        assert command in help_text
    listing = json.loads(_run([bin_dir / "mnistlab", "runs", "--json"], cwd=elsewhere, env=env).stdout)
    assert listing == {"runs": [], "broken": []}


def test_installed_library_uses_a_per_user_store_and_ships_the_app(installed):
    _, bin_dir, env, elsewhere = installed
    code = ("import json, sys, mnistlab, mnistlab.cli as cli\n"
            "from mnistlab.runs.store import RunStore\n"
            "print(json.dumps({'library': mnistlab.__file__, 'store': str(RunStore().root),\n"
            "                  'app': str(cli.app_folder()), 'streamlit': 'streamlit' in sys.modules}))\n")
    found = json.loads(_run([bin_dir / "python", "-c", code], cwd=elsewhere, env=env).stdout)
    assert str(bin_dir.parent) in found["library"], "the venv's copy is imported, not the checkout"
    assert found["store"] == str(Path(env["XDG_DATA_HOME"]).resolve() / "mnistlab" / "runs")
    app = Path(found["app"])
    assert str(bin_dir.parent) in str(app) and (app / "pages" / "train.py").is_file()
    assert not found["streamlit"], "the library must not import streamlit"
    overridden = _run([bin_dir / "python", "-c", "from mnistlab.runs.store import RunStore; print(RunStore().root)"],
                      cwd=elsewhere, env={**env, "MNISTLAB_STORE": str(elsewhere / "mine")}).stdout.strip()
    assert overridden == str((elsewhere / "mine").resolve())


def test_installed_dashboard_renders_its_pages(installed):
    """The shipped app runs (its `from pages import common` resolves inside the package)."""
    _, bin_dir, env, elsewhere = installed
    code = ("import mnistlab.cli as cli\n"
            "from streamlit.testing.v1 import AppTest\n"
            "app = AppTest.from_file(str(cli.app_folder() / 'streamlit_app.py'), default_timeout=120)\n"
            "app.run()\n"
            "assert not app.exception, [e.value for e in app.exception]\n"
            "assert app.title[0].value == 'Train', [t.value for t in app.title]\n"
            "app.switch_page('pages/filters.py').run()\n"
            "assert not app.exception, [e.value for e in app.exception]\n"
            "print('ok')\n")
    env = {**env, "MNISTLAB_DATA": "sample", "MNISTLAB_OFFLINE": "1"}
    assert _run([bin_dir / "python", "-c", code], cwd=elsewhere, env=env).stdout.strip().endswith("ok")


def test_serve_binds_to_this_machine_unless_read_only(installed):
    _, bin_dir, env, elsewhere = installed
    code = ("import json, mnistlab.cli as cli\n"
            "for argv in (['serve'], ['serve', '--read-only', '--port', '9000']):\n"
            "    command, env, text = cli.serve_command(cli._parser().parse_args(argv))\n"
            "    print(json.dumps({'command': command, 'text': text, 'ro': env.get('MNISTLAB_READ_ONLY')}))\n")
    local, shared = (json.loads(line) for line in
                     _run([bin_dir / "python", "-c", code], cwd=elsewhere, env=env).stdout.splitlines())
    assert local["command"][local["command"].index("--server.address") + 1] == "127.0.0.1"
    assert "this machine only" in local["text"] and local["ro"] is None
    assert "--theme.primaryColor" in local["command"]  # the app's .streamlit/config.toml travels along
    assert shared["command"][shared["command"].index("--server.address") + 1] == "0.0.0.0"
    assert shared["ro"] == "1" and "9000" in shared["command"]
