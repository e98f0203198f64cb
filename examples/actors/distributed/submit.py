"""Submit orders to the workers through Kafka, approve the large ones, wait for them all.

    python submit.py --storage "kafka://127.0.0.1:9092?prefix=shop" --runs 100

Prints one line per finished order and a summary; exits 1 if any run did not complete.
"""

from __future__ import annotations

import argparse
import os
import sys
from urllib.parse import parse_qs, urlparse

import anyio
from app import order

from pyworkflow.actors import Client
from pyworkflow.storage import KafkaStorageBackend


def _storage(url: str) -> KafkaStorageBackend:
    parsed = urlparse(url)
    if parsed.scheme != "kafka":
        sys.exit(f"--storage {url!r}: expected kafka://HOST:PORT?prefix=NAME")
    prefix = parse_qs(parsed.query).get("prefix", ["pyworkflow"])[0]
    return KafkaStorageBackend(parsed.netloc, topic_prefix=prefix)


async def _approve(storage: KafkaStorageBackend, client: Client, run_ids: list[str]) -> None:
    """Deliver the approval of every run that waits for one, as it shows up."""
    approved: set[str] = set()
    while True:
        for record in await storage.list_hooks():
            waiting = record.run_id in run_ids and record.status.value == "pending"
            if waiting and record.token not in approved:
                approved.add(record.token)
                await client.resume_hook(record.token, {"by": "dana"})
        await anyio.sleep(0.5)


async def main(url: str, runs: int) -> int:
    storage = _storage(url)
    async with storage, Client(storage) as client:
        run_ids = [
            await client.start(order, f"order-{i}", 150.0 if i % 4 == 0 else 20.0)
            for i in range(runs)
        ]
        print(f"submitted {runs} orders", flush=True)
        finished = 0
        async with anyio.create_task_group() as tg:
            tg.start_soon(_approve, storage, client, run_ids)
            for i, run_id in enumerate(run_ids):
                result = await client.result(run_id, timeout=600)
                finished += bool(result.get("shipped"))
                print(f"order-{i}: shipped (approved by {result['approved_by']})", flush=True)
            tg.cancel_scope.cancel()
    print(f"{finished}/{runs} finished", flush=True)
    return 0 if finished == runs else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", default=os.environ.get("PYWORKFLOW_STORAGE", ""))
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    sys.exit(anyio.run(main, args.storage, args.runs, backend="trio"))
