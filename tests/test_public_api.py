"""The public surface: every exported name exists, nothing private leaks."""

import types

import pyworkflow
import pyworkflow.actors
import pyworkflow.storage
import pyworkflow.testing
from pyworkflow import dashboard

SEED_NAMES = {
    "workflow",
    "step",
    "sleep",
    "start",
    "resume",
    "configure",
    "reset_config",
    "get_workflow_run",
    "get_workflow_events",
    "cancel_workflow",
    "shield",
    "CancellationError",
    "RunStatus",
    "EventType",
    "hook",
    "define_hook",
    "resume_hook",
    "FatalError",
    "RetryableError",
    "list_runs",
}


def test_seed_api_is_exported() -> None:
    assert set(pyworkflow.__all__) >= SEED_NAMES
    assert "InMemoryStorageBackend" in pyworkflow.storage.__all__
    assert pyworkflow.actors.__all__ == ["Client", "Supervisor", "Worker"]
    assert {"TransientStorageError", "WorkflowFailedError", "WorkflowCancelledError"} <= set(
        pyworkflow.__all__
    )


def test_exported_members() -> None:
    modules = (pyworkflow, pyworkflow.actors, pyworkflow.storage, pyworkflow.testing, dashboard)
    for module in modules:
        assert module.__all__ == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert not name.startswith("_"), name
            member = getattr(module, name)
            if isinstance(member, types.UnionType):  # Event: the union of event classes
                assert all(c.__module__.startswith("pyworkflow") for c in member.__args__)
                continue
            owner = getattr(member, "__module__", module.__name__)
            assert owner == module.__name__, (name, owner)  # the public path, never _x


def test_kafka_backend_reports_its_public_path() -> None:
    assert pyworkflow.storage.KafkaStorageBackend.__module__ == "pyworkflow.storage"


def test_no_private_names_leak() -> None:
    public = {n for n in dir(pyworkflow) if not n.startswith("_")}
    # Subpackages are public too; everything else must be in __all__.
    assert public - set(pyworkflow.__all__) <= {"actors", "dashboard", "storage", "testing"}


def test_run_status_values() -> None:
    assert [s.value for s in pyworkflow.RunStatus] == [
        "pending",
        "running",
        "suspended",
        "completed",
        "failed",
        "cancelled",
        "continued_as_new",
    ]


def test_event_type_names_are_the_seeds() -> None:
    values = {t.value for t in pyworkflow.EventType}
    assert {
        "workflow_started",
        "step_started",
        "step_completed",
        "step_failed",
        "step_retrying",
        "sleep_started",
        "sleep_completed",
        "hook_created",
        "hook_received",
        "hook_expired",
        "cancellation_requested",
        "workflow_suspended",
        "workflow_resumed",
        "workflow_completed",
        "workflow_failed",
        "workflow_cancelled",
        # added since the seed: issue 13's continue-as-new and step context
        "workflow_continued_as_new",
        "step_context_set",
        # issue 13's child workflows
        "child_workflow_started",
        "child_workflow_completed",
        "child_workflow_failed",
        "child_workflow_cancelled",
    } == values
