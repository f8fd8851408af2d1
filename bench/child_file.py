"""Benchmark: one child's file with 1,000 chronology entries, opened and rendered.

    python bench/child_file.py [--url sqlite:///... | postgresql://postgres@127.0.0.1:5432/test]
                               [--entries 1000] [--concerns 20] [--runs 5]

Builds a school (tests/flow_support.build_world) and one child with ``--concerns`` concerns
whose chronologies add up to ``--entries`` entries (real encrypted bodies through the hash
chain, of the kinds a file holds), plus a sibling's concerns. Then it times, ``--runs`` times:

- ``child_file``: the access check, the ``chronology.opened`` audit row and its commit, the
  queries, decrypting every entry, names of who did what, siblings and transfers;
- ``child_file`` + the printable HTML (the "renders" figure; target under 100 ms);
- the PDF (fpdf2), for information.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bot import cpfile_render  # noqa: E402
from flows.chronology import child_file  # noqa: E402
from storage import chain  # noqa: E402
from storage.crypto import generate_key  # noqa: E402
from storage.db import Store, normalise_url  # noqa: E402
from storage.models import Concern  # noqa: E402
from tests.flow_support import build_world  # noqa: E402

KINDS = [("note", {"text": "Spoke with the class teacher about attendance and lateness this week."}),
         ("discussion", {"text": "Discussed with the deputy DSL; agreed to monitor lunchtimes.",
                         "participants": "Dana Shah, Dev Patel"}),
         ("action", {"text": "Phoned the parent to arrange a meeting on Thursday."}),
         ("follow_up", {"note": "No change reported by the class teacher."}),
         ("decision", {"decision": "monitor", "reasons": "Pattern of lateness with hunger: monitor daily, review in two weeks.",
                       "participants": "Dana Shah (DSL)"})]


def log(msg: str = "") -> None:
    print(msg, flush=True)


def build(store: Store, entries: int, concerns: int) -> int:
    w = build_world(store)
    t0 = datetime(2024, 9, 2, 9, 0, tzinfo=timezone.utc)
    per = entries // concerns
    with store.session() as s:
        for i in range(concerns):
            created = t0 + timedelta(days=20 * i)
            for child in (w.child, w.sibling) if i % 5 == 0 else (w.child,):
                c = Concern(school_id=w.school, reference=f"SG-B-{i:03d}-{child}", child_id=child, referrer_id=w.teacher,
                            taxonomy_version="2026.1", categories=["neglect"], created_at=created,
                            last_activity_at=created, status="decided", decision_kind="monitor",
                            account="Arrived hungry and without a coat; said there was no breakfast at home.",
                            child_words="There wasn't anything to eat", child_views="Wants to stay for breakfast club")
                s.add(c)
                s.flush()
                if child != w.child:
                    continue
                chain.append_entry(s, store.cipher, concern_id=c.id, child_id=child, kind="raised", actor_id=w.teacher,
                                   at=created, body={"account": c.account, "child_words": c.child_words})
                for j in range(per - 1):
                    kind, body = KINDS[j % len(KINDS)]
                    facts = {"type": "checkin", "answer": "no_change"} if kind == "follow_up" else (
                        {"decision": "monitor"} if kind == "decision" else {})
                    chain.append_entry(s, store.cipher, concern_id=c.id, child_id=child, kind=kind, actor_id=w.dsl,
                                       at=created + timedelta(hours=j + 1), body=body, facts=facts)
    return w


def timed(label: str, runs: int, fn) -> float:
    fn()  # warm-up: imports, fonts, statement caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    log(f"{label:<46} median {med * 1000:7.1f} ms  (runs: {', '.join(f'{t * 1000:.1f}' for t in times)})")
    return med


def run(url: str, args) -> float:
    store = Store(url, generate_key(), upgrade=True)
    try:
        w = build(store, args.entries, args.concerns)
        f = child_file(store, w.dsl, w.child, via="bench")
        log(f"{url.split(':', 1)[0]}: child with {len(f.concerns)} concerns and "
            f"{sum(1 for e in f.entries if e.kind != 'file_opened')} chronology entries")
        timed("child_file (open, audit, decrypt)", args.runs, lambda: child_file(store, w.dsl, w.child, via="bench"))
        render = timed("child_file + printable HTML (renders)", args.runs,
                       lambda: cpfile_render.child_file_html(child_file(store, w.dsl, w.child, via="bench")))
        f = child_file(store, w.dsl, w.child, via="bench")
        timed("PDF of the file (fpdf2)", max(1, args.runs // 2), lambda: cpfile_render.child_file_pdf(f))
        return render
    finally:
        store.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=None, help="default: a temporary SQLite file")
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument("--concerns", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if args.url is None or args.url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as d:
            render = run(args.url or f"sqlite:///{d}/bench.sqlite3", args)
    else:
        base = normalise_url(args.url)
        schema = "bench_" + uuid.uuid4().hex[:10]
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in base else "?"
        try:
            render = run(f"{base}{sep}options=-csearch_path%3D{schema}", args)
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    log(f"RESULT child file with {args.entries} entries renders in {render * 1000:.0f} ms "
        f"({'PASS' if render < 0.1 else 'FAIL'}: target under 100 ms)")
    return 0 if render < 0.1 else 1


if __name__ == "__main__":
    sys.exit(main())
