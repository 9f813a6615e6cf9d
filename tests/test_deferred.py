"""fangpin.deferred: a module left unimported until first used, then the module itself for everyone."""
from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from fangpin import deferred
from fangpin.config import PROJECT_ROOT

MODULE = '''
import time
RUNS = globals().get("RUNS", 0) + 1
time.sleep(0.2)  # a slow import: readers in other threads arrive while it runs
ANSWER = 42
'''


@pytest.fixture
def slow_module(tmp_path, monkeypatch):
    """A module on sys.path, not yet imported, that takes 0.2 s to import."""
    name = f"fangpin_slow_module_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_deferred_module_is_imported_at_the_first_attribute_read_and_once(slow_module):
    assert deferred.import_on_use((slow_module,)) == [slow_module]
    stand_in = __import__(slow_module)  # an import statement finds the stand-in and reads its __spec__: no import
    assert "ANSWER" not in vars(stand_in)
    answers = []
    readers = [threading.Thread(target=lambda: answers.append(stand_in.ANSWER)) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert answers == [42] * 8
    assert stand_in.RUNS == 1  # imported once, though eight threads asked at once
    module = sys.modules[slow_module]
    assert module is not stand_in and module.ANSWER == 42 and module.RUNS == 1
    assert __import__(slow_module, fromlist=["ANSWER"]).ANSWER == 42
    with pytest.raises(AttributeError):
        stand_in.no_such_attribute


def test_an_imported_or_missing_module_is_left_alone():
    assert deferred.import_on_use(("json", "no_such_package.sub", "no_such_module")) == []
    assert not isinstance(sys.modules["json"], deferred._ImportedOnUse)


def test_great_expectations_loads_without_scipy_stats_and_altair_until_they_are_used():
    """In a fresh interpreter: the suites' context is built without them, and the expectation that imports them
    still finds them when it uses them."""
    code = (
        "import sys\n"
        "from fangpin import quality\n"
        "quality._shared_batch_definition()\n"
        "print(any(m.startswith(('scipy.stats.', 'altair.')) for m in sys.modules))\n"
        "from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than as kl\n"
        "print(round(kl.stats.entropy([0.5, 0.5]), 4), kl.alt.Chart.__name__)\n"
    )
    shown = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert shown == ["False", "0.6931", "Chart"]
