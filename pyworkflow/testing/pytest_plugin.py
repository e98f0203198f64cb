"""pytest plugin: a real Kafka broker for your integration tests.

Load it in your top-level ``conftest.py`` (or with ``pytest -p pyworkflow.testing.pytest_plugin``)::

    pytest_plugins = ["pyworkflow.testing.pytest_plugin"]

    async def test_orders_on_kafka(kafka_bootstrap: str, kafka_topic_prefix: str) -> None:
        storage = KafkaStorageBackend(kafka_bootstrap, topic_prefix=kafka_topic_prefix)
        ...

Fixtures:

* ``kafka_bootstrap`` (session): ``"host:port"`` of a running broker;
* ``kafka_broker`` (session): the ``LocalKafka`` when the plugin started one (``restart()``,
  ``kill()`` then ``start()``), else ``None``;
* ``kafka_topic_prefix``: a unique topic-name prefix per test.

Tests using the first two are marked ``kafka`` (``-m "not kafka"`` deselects them). The broker is
started on first use, once per session: ``$KAFKA_BOOTSTRAP_SERVERS`` if set, else an
``apache/kafka`` container when a Docker engine answers (``pip install testcontainers``), else a
local ``java`` broker (Java 17; Maven once, to fetch its jars).
``$PYWORKFLOW_KAFKA_BACKEND=local|testcontainers`` forces one. Without a broker those tests are
skipped with the reason, or fail when ``CI=true``.
"""

from ._pytest_plugin import _kafka_session as _kafka_session
from ._pytest_plugin import kafka_bootstrap as kafka_bootstrap
from ._pytest_plugin import kafka_broker as kafka_broker
from ._pytest_plugin import kafka_topic_prefix as kafka_topic_prefix
from ._pytest_plugin import pytest_collection_modifyitems as pytest_collection_modifyitems
from ._pytest_plugin import pytest_configure as pytest_configure
from ._pytest_plugin import pytest_terminal_summary as pytest_terminal_summary

__all__ = [
    "kafka_bootstrap",
    "kafka_broker",
    "kafka_topic_prefix",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_terminal_summary",
]
