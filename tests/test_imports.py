from tests.conftest import run_python


def test_library_modules_that_only_read_do_not_import_tensorflow():
    result = run_python(
        "import sys\n"
        "import mnistlab, mnistlab.data, mnistlab.store, mnistlab.evaluation, mnistlab.filters\n"
        "import mnistlab.charts, mnistlab.config, mnistlab.architectures, mnistlab.cli\n"
        "mnistlab.architectures.summarize('deep_cnn', 'digits')\n"
        "mnistlab.RunStore().list_runs()\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_library_never_imports_streamlit():
    result = run_python(
        "import sys, pkgutil, importlib, mnistlab\n"
        "for m in pkgutil.iter_modules(mnistlab.__path__):\n"
        "    if m.name != '__main__': importlib.import_module('mnistlab.' + m.name)\n"
        "print('streamlit' in sys.modules)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
