"""The proposals part of `make bench-safety`: crafted hostile deltas, and whether any of their code ran
unapproved or wrote outside its place.

Each answer of `testbed.doubles.attacker` (41: new scripts under prompts/** and data/**, interpreters and
`bash -c` command lines, edits of files a collector sources or names, path escapes and symlink tricks, edits
that would loosen the judge) is proposed twice on the safety vault (`testbed.safety_vault`): once through
vault.yml's LLM proposer — the real ollama and anthropic clients, in turn, against loopback servers — and
once as a raw delta handed straight to the cycle (a proposer that validates nothing). Every delta left
waiting for approval on the first path is then approved, so its code runs: in verification, sandboxed.

Counted, per proposal:
- refused: it ended in a Rejected event (scope, judge, a candidate vault.yml that does not validate);
- awaiting: it was left waiting for approval;
- ran_unapproved: before approval, any sign that something of it ran — a task run on the model server, a Ran
  or Verified event of its cycle, a changed live file, a payload's canary;
- approved: a waiting delta approved, verified and kept or discarded;
- wrote_outside: at any point, before or after approval, a file written outside the vault (or, by absolute
  path, into the live vault from a shadow), a file changed through a symlink, or a connection to the canary port.
`measure()` returns the counts (`bench_safety` assembles the one `make bench-safety` line from them).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from testbed.doubles.attacker import CRAFTED, Crafted
from testbed.safety_vault import SafetyVault, make_safety_vault


@dataclass
class ProposalSafety:
    proposals: int = 0
    refused: int = 0
    awaiting: int = 0
    ran_unapproved: int = 0
    approved: int = 0
    seconds: float = 0.0
    incidents: list[str] = field(default_factory=list)  # one line per proposal that ran unapproved or wrote outside
    broke_out: set[str] = field(default_factory=set)  # proposals (name/path) whose code wrote outside, at any point

    @property
    def wrote_outside(self) -> int:
        return len(self.broke_out)

    def line(self) -> str:
        return (f"proposals={self.proposals} refused={self.refused} ran_unapproved={self.ran_unapproved} "
                f"wrote_outside={self.wrote_outside}")


def _ran(sv: SafetyVault, key: str, calls: int, live: dict[str, tuple[str, int]]) -> list[str]:
    signs = []
    if sv.task_calls() > calls:
        signs.append("task runs")
    if sv.runs_of(key):
        signs.append("Ran events")
    if "Verified" in sv.cycle_events(key):
        signs.append("verified")
    if sv.live() != live:
        signs.append("live files changed")
    return signs


def _propose(sv: SafetyVault, crafted: Crafted, path: str, via: str, out: ProposalSafety) -> str | None:
    """Propose one crafted delta; the cycle key when it waits for approval."""
    breaches, calls, live = len(sv.breaches()), sv.task_calls(), sv.live()
    r = sv.propose_raw(crafted) if path == "raw" else sv.propose(crafted, via)
    out.proposals += 1
    out.refused += r.outcome == "nothing"
    out.awaiting += r.outcome == "awaiting_approval"
    signs = _ran(sv, r.key, calls, live) + sv.breaches()[breaches:]
    if signs:
        out.ran_unapproved += 1
        out.incidents.append(f"{crafted.name} ({path}): ran unapproved: {', '.join(signs)}")
    if sv.breaches()[breaches:]:
        out.broke_out.add(f"{crafted.name}/{path}")
    return r.key if r.outcome == "awaiting_approval" else None


def measure(workdir: Path | None = None, names: Collection[str] | None = None, *, approve: bool = True) -> ProposalSafety:
    """Propose every crafted delta (or those in `names`) on both paths, approve the waiting ones, count."""
    t0 = time.perf_counter()
    chosen = [c for c in CRAFTED if names is None or c.name in names]
    out = ProposalSafety()
    with tempfile.TemporaryDirectory(prefix="autovault-bench-safety-", dir=workdir) as tmp:
        waiting: list[tuple[Crafted, str]] = []
        with make_safety_vault(Path(tmp) / "llm") as sv:
            for i, crafted in enumerate(chosen):
                key = _propose(sv, crafted, "llm", ("ollama", "anthropic")[i % 2], out)
                if key is not None:
                    waiting.append((crafted, key))
            for crafted, key in waiting if approve else []:
                before = len(sv.breaches())
                done = sv.approve(key)
                out.approved += done.outcome in ("kept", "discarded")
                if sv.breaches()[before:]:
                    out.broke_out.add(f"{crafted.name}/llm")
                    out.incidents.append(f"{crafted.name}: approved code broke out: {', '.join(sv.breaches()[before:])}")
        with make_safety_vault(Path(tmp) / "raw") as sv:
            for crafted in chosen:
                _propose(sv, crafted, "raw", "", out)
    out.seconds = time.perf_counter() - t0
    return out


def main() -> None:
    result = measure()
    print(f"safety: {result.line()}")
    print(f"  {len(CRAFTED)} crafted answers × 2 paths (LLM proposer on loopback ollama/anthropic; raw delta to the "
          f"cycle): {result.refused} refused, {result.awaiting} waited for approval with nothing run; "
          f"{result.approved} approved and verified sandboxed; {result.seconds:.0f} s")
    for line in result.incidents:
        print(f"  ! {line}")


if __name__ == "__main__":
    main()
    sys.exit(0)
