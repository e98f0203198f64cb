"""Helpers for testing workflows: virtual time, and a real local Kafka broker.

``LocalKafka`` runs a single-node Apache Kafka broker (KRaft) from Maven Central jars as a
``java`` child process on free loopback ports, with no Docker; it lives in the package (not in
the repository's tools) so that users' own integration tests can start one too. From a shell:
``python -m pyworkflow.testing kafka fetch`` (download the jars once) and
``python -m pyworkflow.testing kafka run`` (a broker until Ctrl-C).

``pyworkflow.testing.pytest_plugin`` is a pytest plugin with session fixtures on a real broker
(``kafka_bootstrap``, ``kafka_broker``, ``kafka_topic_prefix``); load it with
``pytest_plugins = ["pyworkflow.testing.pytest_plugin"]``. Importing this package never loads it.
"""

from .. import _public
from .._execution._clock import AnyioClock as AnyioClock
from .._execution._clock import ManualClock as ManualClock
from ._kafka_local import JarFetchError as JarFetchError
from ._kafka_local import KafkaLocalError as KafkaLocalError
from ._kafka_local import KafkaStartError as KafkaStartError
from ._kafka_local import LocalKafka as LocalKafka

__all__ = [
    "AnyioClock",
    "JarFetchError",
    "KafkaLocalError",
    "KafkaStartError",
    "LocalKafka",
    "ManualClock",
]

_public.publish(globals(), __all__)
