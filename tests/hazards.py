"""The hazard log's evidence table: which tests prove each hazard's controls, and whether they passed.

A test names the hazards it proves with `@pytest.mark.hazard("HAZ-03")` (several ids allowed). At the
end of a whole-suite run (`make test` sets HAZARD_TABLE=1; a bare `pytest` with no paths, -k or -m
counts too) this writes `artifacts/hazards.md` (hazard → tests → pass/fail) and fails the run when a
hazard of docs/safety/hazard-log.md has no test that ran and passed. Hazards under the log's heading
"Open hazards (controls not yet built)" are listed in the table but not required. A partial run
neither writes the table nor fails on it. A marker naming an id the log does not have is an error.

`make test` runs the suite in two invocations (on two pytest-xdist workers, then the PostgreSQL
restart alone): the first, with HAZARD_TABLE=collect, keeps its evidence in `artifacts/.hazard-runs.json`;
the second, with HAZARD_TABLE=1, adds its own and judges the whole. Under xdist the hazard ids travel
from the workers in each report's `user_properties`.
"""

import json
import os
import re
from pathlib import Path

import pytest

LOG = Path(__file__).resolve().parent.parent / "docs" / "safety" / "hazard-log.md"
TABLE = Path(__file__).resolve().parent.parent / "artifacts" / "hazards.md"
EVIDENCE = TABLE.parent / ".hazard-runs.json"
OPEN_HEADING = "## Open hazards (controls not yet built)"
HAZARD_HEADING = re.compile(r"^### (HAZ-\d{2,3})\b[\s—:-]*(.*)$", re.M)


def read_log(path: Path = LOG) -> tuple[dict[str, str], dict[str, str]]:
    """(controlled, open) hazards of the log: id → title."""
    text = path.read_text(encoding="utf-8")
    controlled_part, _, open_part = text.partition(OPEN_HEADING)
    controlled = {m.group(1): m.group(2).strip() for m in HAZARD_HEADING.finditer(controlled_part)}
    still_open = {m.group(1): m.group(2).strip() for m in HAZARD_HEADING.finditer(open_part)}
    return controlled, still_open


class HazardTable:
    def __init__(self, config):
        self.config = config
        self.controlled, self.open = read_log()
        self.tests: dict[str, list[str]] = {}  # hazard id → node ids
        self.outcomes: dict[str, str] = {}  # node id → passed / failed / skipped

    def whole_run(self) -> bool:
        if os.environ.get("HAZARD_TABLE") in {"1", "collect"}:
            return True
        options = self.config.option
        return not self.config.invocation_params.args and not options.keyword and not options.markexpr

    @pytest.hookimpl
    def pytest_collection_modifyitems(self, items):
        known = self.controlled.keys() | self.open.keys()
        for item in items:
            for marker in item.iter_markers("hazard"):
                for hazard in marker.args:
                    if hazard not in known:
                        raise pytest.UsageError(f"{item.nodeid}: hazard {hazard!r} is not in {LOG.name}")
                    item.user_properties.append(("hazard", hazard))

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        for name, hazard in report.user_properties:
            if name == "hazard" and report.nodeid not in self.tests.setdefault(hazard, []):
                self.tests[hazard].append(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.when == "call" and report.passed:
            self.outcomes.setdefault(report.nodeid, "passed")
        elif report.skipped:
            self.outcomes.setdefault(report.nodeid, "skipped")

    def unproven(self) -> list[str]:
        return [
            hazard
            for hazard in self.controlled
            if not any(self.outcomes.get(test) == "passed" for test in self.tests.get(hazard, []))
        ]

    def markdown(self) -> str:
        lines = ["# Hazards and the tests that prove their controls", "", "| Hazard | Test | Result |", "|---|---|---|"]
        for hazard, title in self.controlled.items():
            tests = self.tests.get(hazard) or [None]
            for test in tests:
                result = self.outcomes.get(test, "not run") if test else "**NO TEST**"
                lines.append(f"| {hazard} {title} | {f'`{test}`' if test else '—'} | {result} |")
        lines += ["", "## Open hazards (controls not yet built; not required)", ""]
        lines += [f"- {hazard} {title}: tests {len(self.tests.get(hazard, []))}" for hazard, title in self.open.items()]
        return "\n".join(lines) + "\n"

    def merge_earlier_runs(self) -> None:
        """Add the evidence an earlier invocation of the same `make test` kept (HAZARD_TABLE=collect)."""
        if not EVIDENCE.exists():
            return
        earlier = json.loads(EVIDENCE.read_text(encoding="utf-8"))
        for hazard, tests in earlier["tests"].items():
            self.tests.setdefault(hazard, []).extend(t for t in tests if t not in self.tests[hazard])
        for test, outcome in earlier["outcomes"].items():
            self.outcomes.setdefault(test, outcome)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.whole_run() or hasattr(self.config, "workerinput"):  # an xdist worker: the controller judges
            return
        TABLE.parent.mkdir(exist_ok=True)
        if os.environ.get("HAZARD_TABLE") == "collect":
            EVIDENCE.write_text(json.dumps({"tests": self.tests, "outcomes": self.outcomes}), encoding="utf-8")
            return
        self.merge_earlier_runs()
        EVIDENCE.unlink(missing_ok=True)
        TABLE.write_text(self.markdown(), encoding="utf-8")
        missing = self.unproven()
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter:
            reporter.write_line(f"hazard table: {TABLE}")
        if missing:
            if reporter:
                reporter.write_line(f"hazards with no passing test: {', '.join(missing)}", red=True)
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_configure(config):
    config.pluginmanager.register(HazardTable(config), "kyphofollow-hazards")
