import ast
from pathlib import Path

from tests.conftest import ROOT, run_python

#: The wings of the library, lowest first: a module may import its own wing and those below it.
WINGS = ["errors", "settings", "datasets", "models", "runs", "analysis", "sweeps", "sweeps_exec", "views", "cli"]


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_library_modules_that_only_read_do_not_import_tensorflow():
    result = run_python(
        "import sys\n"
        "import mnistlab, mnistlab.datasets.mnist, mnistlab.runs.store, mnistlab.analysis.evaluation\n"
        "import mnistlab.analysis.filters, mnistlab.views.charts, mnistlab.runs.config, mnistlab.cli\n"
        "import mnistlab.models.architectures, mnistlab.runs.bundles, mnistlab.views.report\n"
        "mnistlab.models.architectures.summarize('deep_cnn', 'digits')\n"
        "mnistlab.RunStore().list_runs()\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_library_never_imports_streamlit():
    result = run_python(
        "import sys, pkgutil, importlib, mnistlab\n"
        "for m in pkgutil.walk_packages(mnistlab.__path__, 'mnistlab.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_library_wings_import_only_their_own_wing_or_those_below():
    package = ROOT / "mnistlab"
    upward = []
    for path in sorted(package.rglob("*.py")):
        module = ".".join(("mnistlab", *path.relative_to(package).with_suffix("").parts))
        wing = _wing(module)
        if wing not in WINGS:
            continue
        tree = ast.parse(Path(path).read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and getattr(block.test, "id", "") == "TYPE_CHECKING" for n in ast.walk(block)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mnistlab."):
                target = _wing(node.module)
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("mnistlab.")]
                if not names:
                    continue
                target = _wing(names[0])
            else:
                continue
            if target in WINGS and WINGS.index(target) > WINGS.index(wing):
                upward.append(f"{module} imports {target}")
    assert upward == []
