"""Benchmark: the trust report over 100,000 concerns, on PostgreSQL.

    python bench/trust_report.py [--url postgresql://postgres@127.0.0.1:5432/test] [--concerns 100000] [--runs 3]

Creates a schema of its own, builds the real tables with the migrations, loads a trust of
100 schools server-side with generate_series (``--concerns`` concerns over three school
years, each with its chronology: raised, decision, referrals with social care steps,
check-ins — about 3 entries per concern), runs VACUUM ANALYZE, then times
`flows.analytics.build_report` (every query, the Python aggregation and suppression):

- the whole trust, every concern;
- the trust for one school year (the date index);
- one school for one school year (the school + date index).

Then it prints EXPLAIN (ANALYZE, BUFFERS) of the report's queries for each, and drops the
schema. The whole-trust concern query reads every row, so PostgreSQL rightly scans the table;
the chronology queries use ix_chronology_kind_concern, and the narrower reports use
ix_concern_created_at / ix_concern_school_created.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402

from flows import analytics  # noqa: E402
from storage.crypto import generate_key  # noqa: E402
from storage.db import Store, normalise_url  # noqa: E402

NOW = datetime(2026, 8, 31, 12, 0, tzinfo=timezone.utc)
YEAR = (datetime(2025, 9, 1, tzinfo=timezone.utc), datetime(2026, 9, 1, tzinfo=timezone.utc))


def log(msg: str = "") -> None:
    print(msg, flush=True)


def load(store: Store, n: int) -> None:
    t0 = time.perf_counter()
    with store.engine.begin() as c:
        c.execute(text("SET LOCAL session_replication_role = replica"))
        c.execute(text("INSERT INTO trust (slug, name, policy) VALUES ('bench', 'Bench Trust', '{}')"))
        c.execute(text("""INSERT INTO school (trust_id, slug, name, nation, timezone, reference_prefix, policy, closures)
                          SELECT 1, 'school-' || g, 'School ' || g, 'england', 'Europe/London', 'SG', '{}', '[]'
                          FROM generate_series(1, 100) g"""))
        c.execute(text("""INSERT INTO person (trust_id, school_id, email, active, created_at)
                          SELECT 1, 1 + (g % 100), 'p' || g || '@bench.test', true, now()
                          FROM generate_series(1, 1000) g"""))
        c.execute(text("""INSERT INTO child (school_id, mis_id, name, active, created_at)
                          SELECT 1 + (g % 100), 'UPN' || g, 'sg1:bench', true, now()
                          FROM generate_series(1, :kids) g"""), {"kids": max(1, n * 6 // 10)})
        # Concerns spread evenly over three school years (Sept 2023 to Aug 2026).
        c.execute(text("""
            INSERT INTO concern (school_id, reference, child_id, referrer_id, status, urgent, immediate_danger,
                                 about_adult, needs_child_match, taxonomy_version, categories, routed_to,
                                 handler_id, acknowledged_at, decided_at, decision_kind, review_date,
                                 created_at, last_activity_at)
            SELECT 1 + (g % 100), 'SG-B-' || g, 1 + ((g * 7919) % :kids) - ((1 + ((g * 7919) % :kids)) % 100) + (g % 100),
                   101 + (g % 900),
                   CASE WHEN g % 4 = 0 THEN 'decided' WHEN g % 17 = 0 THEN 'raised' ELSE 'closed' END,
                   g % 50 = 0, g % 50 = 0, false, false, '2026.1',
                   (ARRAY['["neglect"]', '["physical_abuse"]', '["emotional_abuse","neglect"]', '["bullying"]',
                          '["online_safety"]', '["mental_health"]', '["self_harm"]', '["domestic_abuse"]',
                          '["child_on_child"]', '["absent_from_education"]'])[1 + g % 10]::json,
                   json_build_array(1 + (g % 100)), 1 + (g % 100),
                   CASE WHEN g % 17 = 0 THEN NULL ELSE ts + ((g % 48) || ' hours')::interval END,
                   CASE WHEN g % 17 = 0 OR g % 5 = 1 THEN NULL ELSE ts + ((g % 120) || ' hours')::interval END,
                   CASE WHEN g % 17 = 0 OR g % 5 = 1 THEN NULL
                        ELSE (ARRAY['no_further_action','monitor','signpost_internal','early_help_referral',
                                    'social_care_referral','monitor','early_help_assessment','signpost_external',
                                    'police','monitor'])[1 + (g / 7) % 10] END,
                   CASE WHEN g % 4 = 0 THEN (ts + interval '20 days')::date END,
                   ts, ts
            FROM (SELECT g, timestamp '2023-09-01 08:00' + (g * (1095.0 * 86400 / :n)) * interval '1 second' AS ts
                  FROM generate_series(1, :n) g) s"""), {"n": n, "kids": max(100, n * 6 // 10)})
        # Chronology: raised for all, a decision where decided, referral + two social care
        # steps for social care referrals, a check-in for half of them.
        c.execute(text("""
            INSERT INTO chronologyentry (seq, concern_id, child_id, kind, actor_id, at, body, facts, prev_hash,
                                         content_hash, hash)
            SELECT row_number() OVER (), concern_id, child_id, kind, actor_id, at, 'sg1:bench', facts, 'x', 'x', 'x'
            FROM (
              SELECT id AS concern_id, child_id, 'raised' AS kind, referrer_id AS actor_id, created_at AS at,
                     '{}'::json AS facts FROM concern
              UNION ALL
              SELECT id, child_id, 'decision', handler_id, decided_at, json_build_object('decision', decision_kind)
              FROM concern WHERE decided_at IS NOT NULL
              UNION ALL
              SELECT id, child_id, 'referral', handler_id, decided_at,
                     json_build_object('decision', 'social_care_referral', 'referred_at',
                                       to_char(decided_at, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))
              FROM concern WHERE decision_kind = 'social_care_referral'
              UNION ALL
              SELECT id, child_id, 'referral', handler_id, decided_at,
                     json_build_object('step', step, 'at',
                                       to_char(decided_at + (d || ' days')::interval, 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'))
              FROM concern, (VALUES ('sc_acknowledgement', 6), ('sc_decision', 1)) AS st(step, d)
              WHERE decision_kind = 'social_care_referral'
              UNION ALL
              SELECT id, child_id, 'follow_up', referrer_id, created_at + interval '15 days',
                     json_build_object('type', 'checkin', 'answer',
                                       (ARRAY['improved','no_change','worse','dont_know'])[1 + id % 4])
              FROM concern WHERE id % 2 = 0
            ) e"""))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE"))
        counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("concern", "chronologyentry")}
    log(f"loaded {counts['concern']:,} concerns and {counts['chronologyentry']:,} chronology entries "
        f"in {time.perf_counter() - t0:.1f}s")


def timed(label: str, runs: int, fn) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    log(f"{label:<44} median {med * 1000:7.0f} ms  (runs: {', '.join(f'{t * 1000:.0f}' for t in times)}; "
        f"{result['concerns']:,} concerns)")
    return med


def explain(store: Store, label: str, conds: list) -> None:
    log(f"\n-- EXPLAIN (ANALYZE, BUFFERS): {label}")
    for name, q in analytics.report_queries(conds, "postgresql").items():
        sql = str(q.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
        with store.engine.connect() as c:
            plan = [r[0] for r in c.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql))]
        log(f"[{name}]")
        for line in plan:
            if "Buffers" in line or "Planning" in line:
                continue
            log("  " + line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--concerns", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = normalise_url(args.url)
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    store = Store(f"{base}{sep}options=-csearch_path%3D{schema}", generate_key(), upgrade=True)
    try:
        load(store, args.concerns)
        whole = timed("trust report, all concerns (3 school years)", args.runs,
                      lambda: analytics.build_report(store, now=NOW))
        timed("trust report, one school year", args.runs,
              lambda: analytics.build_report(store, start=YEAR[0], end=YEAR[1], now=NOW))
        timed("one school, one school year", args.runs,
              lambda: analytics.build_report(store, school="school-7", start=YEAR[0], end=YEAR[1], now=NOW))
        timed("headline (App Home) for one school", args.runs,
              lambda: {"concerns": analytics.headline(store, 7, now=NOW)["open"]})
        explain(store, "trust report, all concerns", [])
        explain(store, "trust report, one school year", analytics._filters(None, *YEAR))
        explain(store, "one school, one school year", analytics._filters([7], *YEAR))
        log(f"\nRESULT trust report over {args.concerns:,} concerns: {whole * 1000:.0f} ms "
            f"({'PASS' if whole < 2 else 'FAIL'}: target under 2 s)")
        return 0 if whole < 2 else 1
    finally:
        store.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
