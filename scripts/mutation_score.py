"""The mutation score per module from `mutmut results --all true` on stdin (scripts/mutation.sh):
killed (a test failed, or the mutant hung past its timeout) over killed plus survived."""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict

KILLED = ("killed", "timeout", "segfault", "caught by type check")


def main() -> None:
    counts: dict[str, Counter] = defaultdict(Counter)
    for line in sys.stdin:
        name, _, status = line.strip().rpartition(": ")
        if name:
            # mutmut names a mutant <module>.x_<function>__mutmut_<n> (methods: x\u01c1Class\u01c1method)
            counts[re.split(r"\.x[_\u01c1]", name)[0]][status] += 1
    counts["all"] = sum(counts.values(), Counter())
    for module, seen in counts.items():
        killed = sum(seen[status] for status in KILLED)
        judged = killed + seen["survived"]
        rest = sum(seen.values()) - judged - seen["no tests"]
        print(f"mutation: {module}: {killed}/{judged} killed ({100 * killed / max(judged, 1):.1f} %), "
              f"{seen['survived']} survived, {seen['no tests']} reached by no selected test, {rest} not run yet "
              "or suspicious")


if __name__ == "__main__":
    main()
