"""Benchmark: one nudge sweep against a large history, on PostgreSQL.

    python bench/nudge_sweep.py [--url postgresql://postgres@127.0.0.1:5432/test] [--runs 3]
                                [--sizes 20000:100000,1000000:5000000] [--due 1000]

For each size (concerns:nudges) it creates a schema of its own, builds the real tables with
the migrations, loads the rows server-side with generate_series (secondary indexes dropped
during the load and rebuilt after, as a bulk load would), runs ANALYZE, then times one sweep
— `bot.worker.sweep_nudges`: the claim query (``FOR UPDATE SKIP LOCKED`` on the due-time
index), locking the concerns, firing the due nudges into outbox messages and their next
nudges, and the commit — ``--runs`` times (restoring the due rows between runs). It prints
EXPLAIN (ANALYZE, BUFFERS) of the claim query, which must be an index scan on
ix_nudge_state_due, and drops the schema at the end.

Of the nudges, ``--due`` are pending and due now (inactivity nudges on concerns silent for a
month: each becomes one outbox message and one re-armed nudge); the rest are history (fired
or cancelled, due in the past) and pending nudges due in the future.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from bot.worker import claim_due_nudges, sweep_nudges  # noqa: E402
from storage.crypto import generate_key  # noqa: E402
from storage.db import Store, normalise_url  # noqa: E402

NOW = datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc)  # a Tuesday, in working hours


def log(msg: str) -> None:
    print(msg, flush=True)


def load(store: Store, schema: str, concerns: int, nudges: int, due: int) -> None:
    t0 = time.perf_counter()
    with store.engine.begin() as c:
        c.execute(text("SET LOCAL session_replication_role = replica"))  # no FK triggers during the bulk load
        c.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        c.execute(text("INSERT INTO trust (slug, name, policy) VALUES ('bench', 'Bench Trust', '{}')"))
        c.execute(text("""INSERT INTO school (trust_id, slug, name, nation, timezone, reference_prefix, policy, closures)
                          SELECT 1, 'school-' || g, 'School ' || g, 'england', 'Europe/London', 'SG', '{}', '[]'
                          FROM generate_series(1, 100) g"""))
        c.execute(text("""INSERT INTO person (trust_id, school_id, email, active, created_at)
                          SELECT 1, 1 + (g % 100), 'p' || g || '@bench.test', true, now()
                          FROM generate_series(1, 1000) g"""))
        c.execute(text("""INSERT INTO roleassignment (person_id, school_id, role)
                          SELECT g, 1 + (g % 100), CASE WHEN g <= 100 THEN 'dsl' ELSE 'staff' END
                          FROM generate_series(1, 1000) g"""))
        idx = [r for r in c.execute(text(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :s AND tablename IN ('concern', 'nudge') "
            "AND indexname NOT LIKE '%pkey'"), {"s": schema})]
        constraints = {}
        for name, _ in idx:
            constraint = c.execute(text("SELECT conname, conrelid::regclass::text FROM pg_constraint "
                                        "WHERE conname = :n AND connamespace = CAST(:s AS regnamespace)"),
                                   {"n": name, "s": schema}).first()
            if constraint:
                constraints[name] = constraint[1]
                c.execute(text(f'ALTER TABLE {constraint[1]} DROP CONSTRAINT "{name}"'))
            else:
                c.execute(text(f'DROP INDEX "{name}"'))
        month_ago = NOW - timedelta(days=30)
        c.execute(text("""
            INSERT INTO concern (school_id, reference, referrer_id, status, urgent, immediate_danger, about_adult,
                                 needs_child_match, taxonomy_version, categories, routed_to, handler_id,
                                 acknowledged_at, created_at, last_activity_at)
            SELECT 1 + (g % 100), 'SG-B-' || g, 101 + (g % 900),
                   CASE WHEN g % 4 = 0 THEN 'acknowledged' ELSE 'closed' END, false, false, false, false, 'bench',
                   '["physical_abuse"]', json_build_array(1 + (g % 100)), 1 + (g % 100),
                   :ago - make_interval(mins => g % 5000), :ago - make_interval(mins => g % 5000),
                   :ago - make_interval(mins => g % 5000)
            FROM generate_series(1, :n) g"""), {"n": concerns, "ago": month_ago.replace(tzinfo=None)})
        # Due now: inactivity nudges on open concerns (every 4th concern is open).
        c.execute(text("""
            INSERT INTO nudge (kind, concern_id, due_at, urgent, state, step, payload, dedupe_key, created_at)
            SELECT 'inactivity', 4 * g, :now - make_interval(secs => g), false, 'pending', 0, '{}',
                   'bench-due:' || g, :ago
            FROM generate_series(1, :due) g"""), {"due": due, "now": NOW.replace(tzinfo=None),
                                                  "ago": month_ago.replace(tzinfo=None)})
        # History: 80% fired or cancelled in the past, 20% pending in the future.
        c.execute(text("""
            INSERT INTO nudge (kind, concern_id, recipient_id, due_at, urgent, state, step, payload, dedupe_key,
                               created_at, fired_at)
            SELECT (ARRAY['ack', 'referrer_follow_up', 'review_checkin', 'social_care', 'inactivity'])[1 + g % 5],
                   1 + (g % :concerns), NULL,
                   CASE WHEN g % 5 = 0 THEN :now + make_interval(mins => 1 + g % 500000)
                        ELSE :now - make_interval(mins => 1 + g % 500000) END,
                   false,
                   CASE WHEN g % 5 = 0 THEN 'pending' WHEN g % 5 IN (1, 2) THEN 'done' ELSE 'cancelled' END,
                   g % 3, '{}', 'bench:' || g, :now - make_interval(days => 400),
                   CASE WHEN g % 5 IN (1, 2) THEN :now - make_interval(mins => g % 500000) END
            FROM generate_series(1, :n) g"""), {"n": nudges - due, "concerns": concerns,
                                                "now": NOW.replace(tzinfo=None)})
        for name, ddl in idx:  # rebuilt in one pass each, unique constraints as constraints again
            c.execute(text(ddl))
            if name in constraints:
                c.execute(text(f'ALTER TABLE {constraints[name]} ADD CONSTRAINT "{name}" UNIQUE USING INDEX "{name}"'))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE concern"))
        c.execute(text("VACUUM ANALYZE nudge"))
        c.execute(text("VACUUM ANALYZE outboxmessage"))
    log(f"  loaded {concerns:,} concerns and {nudges:,} nudges ({due:,} due) in {time.perf_counter() - t0:.0f} s")


def reset(store: Store) -> None:
    """Put the due rows back as they were before the sweep."""
    with store.engine.begin() as c:
        c.execute(text("DELETE FROM outboxmessage"))
        c.execute(text("DELETE FROM auditevent"))
        c.execute(text("DELETE FROM nudge WHERE dedupe_key LIKE 'inactivity:%'"))
        c.execute(text("UPDATE nudge SET state = 'pending', fired_at = NULL WHERE dedupe_key LIKE 'bench-due:%'"))
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("VACUUM ANALYZE nudge"))
        c.execute(text("VACUUM ANALYZE outboxmessage"))


def explain_claim(store: Store, due: int) -> str:
    from sqlmodel import Session

    with Session(store.engine) as s:
        captured = {}

        class Capture(Exception):
            pass

        from sqlalchemy import event

        def grab(conn, cursor, statement, parameters, context, executemany):
            captured["sql"], captured["params"] = statement, parameters
            raise Capture()

        event.listen(store.engine, "before_cursor_execute", grab)
        try:
            claim_due_nudges(s, NOW, due)
        except Capture:
            pass
        finally:
            event.remove(store.engine, "before_cursor_execute", grab)
            s.rollback()
    with store.engine.begin() as c:
        plan = c.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + captured["sql"], captured["params"]).scalars().all()
        c.rollback()
    return "\n".join(plan)


def bench_size(base: str, concerns: int, nudges: int, due: int, runs: int) -> dict:
    schema = "bench_" + uuid.uuid4().hex[:10]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    store = Store(f"{base}{sep}options=-csearch_path%3D{schema}", generate_key(), upgrade=True)
    try:
        log(f"\n== {concerns:,} concerns, {nudges:,} nudges ({due:,} due), schema {schema}")
        load(store, schema, concerns, nudges, due)
        plan = explain_claim(store, due)
        log("  EXPLAIN (ANALYZE, BUFFERS) of the claim query:")
        log("\n".join("    " + line for line in plan.splitlines()))
        if "ix_nudge_state_due" not in plan:
            raise SystemExit("the claim query does not use ix_nudge_state_due")
        times, claim_times, cpu_times = [], [], []
        for i in range(runs):
            if i:
                reset(store)
            with store.session() as s:  # the claim query alone, from Python, rolled back (nothing kept)
                t1 = time.perf_counter()
                assert len(claim_due_nudges(s, NOW, due)) == due
                claim_times.append((time.perf_counter() - t1) * 1000)
                s.rollback()
            t0, c0 = time.perf_counter(), time.process_time()
            processed, fired = sweep_nudges(store, NOW, due)
            elapsed = (time.perf_counter() - t0) * 1000
            cpu_times.append((time.process_time() - c0) * 1000)  # this process only, not the server's
            assert processed == due and fired.fired == due and fired.messages == due, (processed, fired)
            times.append(elapsed)
            log(f"  sweep {i + 1}: {processed} nudges claimed and fired into {fired.messages} outbox messages "
                f"in {elapsed:.0f} ms, {cpu_times[-1]:.0f} ms of it on this process's CPU "
                f"(the claim query alone: {claim_times[-1]:.1f} ms)")
        with store.engine.connect() as c:
            sizes = c.execute(text("SELECT pg_size_pretty(pg_total_relation_size('nudge')), "
                                   "pg_size_pretty(pg_relation_size('ix_nudge_state_due'))")).one()
        log(f"  nudge table {sizes[0]} with indexes; ix_nudge_state_due {sizes[1]}")
        return {"concerns": concerns, "nudges": nudges, "due": due, "median_ms": statistics.median(times),
                "times": times, "claim_ms": statistics.median(claim_times), "cpu_ms": statistics.median(cpu_times),
                "plan": plan}
    finally:
        store.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--sizes", default="20000:100000,1000000:5000000", help="concerns:nudges,...")
    ap.add_argument("--due", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    base = normalise_url(args.url)
    results = []
    for size in args.sizes.split(","):
        concerns, nudges = (int(x) for x in size.split(":"))
        results.append(bench_size(base, concerns, nudges, args.due, args.runs))
    log(f"\nload average while running: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    log("\n| concerns | nudges | due | claim query (median) | whole sweep: median | fastest | worker CPU (median) | each run |")
    log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        log(f"| {r['concerns']:,} | {r['nudges']:,} | {r['due']:,} | {r['claim_ms']:.1f} ms | {r['median_ms']:.0f} ms | "
            f"{min(r['times']):.0f} ms | {r['cpu_ms']:.0f} ms | " + ", ".join(f"{t:.0f}" for t in r["times"]) + " ms |")
    worst = max(r["median_ms"] for r in results)
    log(f"\ngoal: under 200 ms per sweep of {args.due:,} due nudges: {'met' if worst < 200 else 'NOT met'}")


if __name__ == "__main__":
    main()
