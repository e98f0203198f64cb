"""Recorded failure types: public paths when written, old private paths still replay."""

import pytest

import pyworkflow
from pyworkflow import FatalError, RetryableError, StepFailedError
from pyworkflow._core._failures import LEGACY_NAMES, describe, rebuild


def test_our_errors_are_recorded_under_their_public_path() -> None:
    assert describe(FatalError("no")) == ("pyworkflow.FatalError", "no")
    assert describe(pyworkflow.StorageError("disk")) == ("pyworkflow.StorageError", "disk")
    assert describe(ValueError("v")) == ("ValueError", "v")


@pytest.mark.parametrize("cls", [FatalError, RetryableError, pyworkflow.SerializationError])
def test_names_written_before_the_layout_move_rebuild_the_public_class(cls: type) -> None:
    old = f"pyworkflow._exceptions.{cls.__name__}"
    assert LEGACY_NAMES[old] == f"pyworkflow.{cls.__name__}"
    exc = rebuild("charge", old, "declined")
    assert type(exc) is cls
    assert exc.args == ("declined",)


def test_every_exported_error_has_a_legacy_alias() -> None:
    errors = [n for n in pyworkflow.__all__ if n.endswith("Error")]
    assert {f"pyworkflow._exceptions.{n}" for n in errors} <= set(LEGACY_NAMES)


def test_an_unknown_private_path_falls_back_to_step_failed_error() -> None:
    exc = rebuild("charge", "pyworkflow._nowhere.GoneError", "x")
    assert isinstance(exc, StepFailedError)
    assert exc.error_type == "pyworkflow._nowhere.GoneError"
