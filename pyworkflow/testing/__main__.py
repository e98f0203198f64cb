"""``python -m pyworkflow.testing kafka fetch|run``: the local Kafka broker for tests."""

import sys

from ._kafka_local import main

USAGE = "usage: python -m pyworkflow.testing kafka {fetch,run} [options]"


def _main(argv: list[str]) -> int:
    if argv[:1] != ["kafka"]:
        print(f"{USAGE}\n(got {' '.join(argv) or 'no arguments'})", file=sys.stderr)
        return 2
    return main(argv[1:])


sys.exit(_main(sys.argv[1:]))
