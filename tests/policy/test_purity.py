"""The policy engine stays pure: no clock reads, no I/O, no environment (STYLE.md).

import-linter (run by scripts/test.sh) forbids the modules; this catches what an import
contract cannot see, such as ``datetime.now()`` on an allowed module.
"""

from __future__ import annotations

import re
from pathlib import Path

import fedbroker.policy

FORBIDDEN = re.compile(
    r"\.now\(|\.utcnow\(|\.today\(|\btime\.time\(|\bopen\(|\bprint\(|\binput\(|os\.environ"
)


def test_policy_package_reads_no_clock_and_does_no_io() -> None:
    package = Path(fedbroker.policy.__file__).parent
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(package.glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if FORBIDDEN.search(line)
    ]
    assert offenders == []
