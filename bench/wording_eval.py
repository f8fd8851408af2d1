"""Recall and false alarms of the clear-language check (flows/wording.py) on its examples.

    python bench/wording_eval.py [--half development|held_out|both] [--misses]

Recall: the share of vague sentences that get at least one hint. False-alarm rate: the share
of clear sentences that get any hint, counting the hints of the rules for under-13s that a
sentence gets when the child's age is not known (checked with the age an example gives, else
unknown: the strictest setting). The held-out half (tests/data/wording/held_out.toml)
is never used to tune the rules: run this to measure it, not to fit it. `--misses` lists
the sentences the check gets wrong (for the development half only, unless asked by name).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.wording import check  # noqa: E402

EXAMPLES = ROOT / "tests" / "data" / "wording"
HALVES = ("development", "held_out")


@dataclass(frozen=True)
class Example:
    text: str
    vague: bool
    kind: str
    age: int | None


def load(half: str) -> list[Example]:
    data = tomllib.loads((EXAMPLES / f"{half}.toml").read_text(encoding="utf-8"))
    out = []
    for p in data.get("pair", []):
        out.append(Example(p["vague"], True, p["kind"], p.get("age")))
        out.append(Example(p["clear"], False, p["kind"], p.get("age")))
    out += [Example(c["text"], False, "tricky", None) for c in data.get("clear", [])]
    return out


@dataclass(frozen=True)
class Figures:
    vague: int
    caught: int
    clear: int
    flagged: int
    by_kind: dict[str, tuple[int, int]]  # kind -> (caught, vague)
    misses: list[Example]
    false_alarms: list[Example]
    age_conditional: int  # false alarms made only of "If the child is under N:" hints (age unknown)

    @property
    def recall(self) -> float:
        return self.caught / self.vague if self.vague else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.flagged / self.clear if self.clear else 0.0


def measure(examples: list[Example]) -> Figures:
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses, alarms, conditional = [], [], 0
    for ex in examples:
        hints = check(ex.text, child_age=ex.age)
        if ex.vague:
            kinds[ex.kind][1] += 1
            kinds[ex.kind][0] += bool(hints)
            if not hints:
                misses.append(ex)
        elif hints:
            alarms.append(ex)
            conditional += all(h.prompt.startswith("If the child is under ") for h in hints)
    vague = sum(ex.vague for ex in examples)
    return Figures(vague=vague, caught=vague - len(misses), clear=len(examples) - vague, flagged=len(alarms),
                   by_kind={k: (v[0], v[1]) for k, v in sorted(kinds.items())}, misses=misses,
                   false_alarms=alarms, age_conditional=conditional)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--half", choices=(*HALVES, "both"), default="both")
    ap.add_argument("--misses", action="store_true", help="list wrong answers (development half unless --half)")
    args = ap.parse_args(argv)
    halves = HALVES if args.half == "both" else (args.half,)
    for half in halves:
        f = measure(load(half))
        print(f"{half}: recall {f.caught}/{f.vague} = {f.recall:.1%}; "
              f"false alarms {f.flagged}/{f.clear} = {f.false_alarm_rate:.1%} "
              f"({f.age_conditional} of them only under-13 hints, the child's age unknown)")
        print("  by kind: " + ", ".join(f"{k} {c}/{n}" for k, (c, n) in f.by_kind.items()))
        if args.misses and (half == "development" or args.half == half):
            for ex in f.misses:
                print(f"  missed [{ex.kind}]: {ex.text}")
            for ex in f.false_alarms:
                hints = "; ".join(h.phrase for h in check(ex.text, child_age=ex.age))
                print(f"  false alarm [{ex.kind}]: {ex.text}  <- {hints}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
