"""`make test`'s schedule (pytest-xdist, `--dist loadfile`): the slow modules are the first
work the workers get, so the quick ones fill in around them instead of after them; and no
module's state reaches another's whatever the order."""
from __future__ import annotations

import re
from types import SimpleNamespace

from xdist.scheduler import LoadFileScheduling, loadscope

from tests.conftest import SLOW_MODULES, schedule_rank
from tests.helpers import ROOT


class Worker:
    """What the scheduler sends work to: records the indexes of the tests it is sent."""

    def __init__(self, name: str) -> None:
        self.gateway = SimpleNamespace(id=name)
        self.shutting_down = False
        self.sent: list[int] = []

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        pass


def test_the_slow_modules_go_out_first_whatever_their_test_count(request, monkeypatch):
    """Regression: xdist orders loadfile work by test count unless told not to
    (--no-loadscope-reorder), so the one-test README-by-hand run (3 minutes) went out last
    and ran alone at the end of every `make test`."""
    # Modules in file-name order, the slow ones with few tests, the quick ones with many;
    # then ordered as conftest orders them.
    modules = sorted([*SLOW_MODULES, *(f"test_quick_{m:02d}" for m in range(20))])
    tests = {module: 1 + i % 3 if module in SLOW_MODULES else 30 for i, module in enumerate(modules)}
    collection = [f"tests/{module}.py::test_{i}" for module in sorted(modules, key=schedule_rank) for i in range(tests[module])]
    count = int(re.search(r"-n (\d+)", (ROOT / "pytest.ini").read_text()).group(1))  # make test's workers
    monkeypatch.setattr(loadscope, "parse_tx_spec_config", lambda config: ["popen"] * count)
    scheduler = LoadFileScheduling(request.config)  # with make test's options (pytest.ini)
    workers = [Worker(f"gw{i}") for i in range(count)]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    first_modules = [collection[worker.sent[0]].split("::")[0] for worker in workers]
    assert first_modules == [f"tests/{module}.py" for module in SLOW_MODULES[:count]], first_modules


def test_no_test_resets_the_moto_backends_the_shared_local_aws_lives_in():
    """Regression: with the slow modules first, the shared local AWS (conftest's local_aws)
    was up before test_faults_data ran `mock_aws()`, which resets every moto backend of the
    process: 14 later tests of that worker found no stacks. Modules that need AWS of their
    own start a LocalAws in a region of their own instead."""
    offenders = [path.name for path in sorted((ROOT / "tests").glob("*.py"))
                 if path.name != "test_scheduling.py" and re.search(r"\bmock_aws\b|\.reset\(\)|moto-api/reset", path.read_text())]
    assert offenders == []
