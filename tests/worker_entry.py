"""A worker process for the multi-process tests: the real worker code, with a recording transport.

    python -m tests.worker_entry NOW RECORD_FILE [--kill-after N] [--nudge-batch B] [--outbox-batch B]

DATABASE_URL and SAFEGUARDING_DATA_KEY come from the environment. Prints the counts as JSON."""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime

from bot.worker import Worker, WorkerConfig
from storage.db import Store

from .worker_support import Recording


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("now")
    ap.add_argument("record")
    ap.add_argument("--kill-after", type=int)
    ap.add_argument("--nudge-batch", type=int, default=50)
    ap.add_argument("--outbox-batch", type=int, default=20)
    args = ap.parse_args()
    store = Store(os.environ["DATABASE_URL"], os.environ["SAFEGUARDING_DATA_KEY"], upgrade=False)
    worker = Worker(store, transports=[Recording(args.record, args.kill_after)],
                    config=WorkerConfig(nudge_batch=args.nudge_batch, outbox_batch=args.outbox_batch, jitter=0))
    counts = worker.run_once(datetime.fromisoformat(args.now))
    print(json.dumps(counts.as_dict()))


if __name__ == "__main__":
    main()
