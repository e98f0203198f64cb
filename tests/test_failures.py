"""Recorded failures: public paths when written, old private paths still replay, and errors
come back with their args and attributes."""

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

import pyworkflow
from pyworkflow import FatalError, RetryableError, StepFailedError
from pyworkflow._core._events import StepFailed
from pyworkflow._core._failures import LEGACY_NAMES, describe, details, rebuild
from pyworkflow.storage import FileStorageBackend

from .values_child import run_child


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


# -- errors rebuilt with their args and attributes (issue 12) ----------------------------------
class PaymentDeclined(Exception):
    def __init__(self, code: str, amount: float) -> None:
        super().__init__(f"payment declined: {code}")
        self.code = code
        self.amount = amount


def _replayed(exc: BaseException) -> Exception:
    error_type, message = describe(exc)
    fields = details(exc)
    return rebuild(
        "charge",
        error_type,
        message,
        args=fields["error_args"],
        attrs=fields.get("error_attrs"),
        notes=fields.get("error_notes"),
    )


def test_a_custom_error_comes_back_with_its_attributes_without_its_init() -> None:
    again = _replayed(PaymentDeclined("insufficient_funds", 9.99))
    assert type(again) is PaymentDeclined
    assert (again.code, again.amount) == ("insufficient_funds", 9.99)  # type: ignore[attr-defined]
    assert again.args == ("payment declined: insufficient_funds",)
    assert not hasattr(again, "__notes__")


def test_builtin_errors_keep_their_args() -> None:
    assert str(_replayed(KeyError("sku-1"))) == "'sku-1'"
    assert _replayed(KeyError("sku-1")).args == ("sku-1",)
    missing = _replayed(FileNotFoundError(2, "No such file"))
    assert type(missing) is FileNotFoundError
    assert (missing.errno, missing.strerror) == (2, "No such file")


def test_values_that_are_not_json_are_named_in_the_record_and_the_rebuilt_error() -> None:
    exc = PaymentDeclined("declined", 1.0)
    exc.amount = Decimal("1.50")  # type: ignore[assignment]
    exc.when = (1, 2)  # type: ignore[attr-defined]  (a tuple would come back as a list)
    fields = details(ValueError(Decimal("2"), float("nan"), [1, 2**70]))
    assert fields["error_args"] == ["2", "nan", "[1, 1180591620717411303424]"]
    assert len(fields["error_notes"]) == 3
    assert "args[1]" in fields["error_notes"][1] and "args[2][1]" in fields["error_notes"][2]

    again = _replayed(exc)
    assert again.code == "declined"  # type: ignore[attr-defined]
    assert not hasattr(again, "amount") and not hasattr(again, "when")
    notes = again.__notes__
    assert any("'amount'" in n and "Decimal" in n for n in notes), notes
    assert any("'when'" in n and "tuple" in n for n in notes), notes


def test_an_old_record_without_args_rebuilds_from_its_message() -> None:
    exc = rebuild("find", "KeyError", "'sku-1'")
    assert type(exc) is KeyError and exc.args == ("'sku-1'",)


async def test_recorded_errors_replay_faithfully_in_another_process(
    tmp_path: Path, anyio_backend: str
) -> None:
    """One process records the failures and sleeps; another replays the except branches."""
    run_id = await run_child(anyio_backend, tmp_path, "start", "values.errors")
    out = msgspec.json.decode(await run_child(anyio_backend, tmp_path, "resume", run_id))
    assert out["status"] == "completed", out
    result = out["result"]
    assert result["replayed"] == result["live"] == {
        "code": "insufficient_funds",
        "message": "payment declined: insufficient_funds",
        "key": "'sku-1'",
        "key_arg": "sku-1",
    }
    assert result["replayed_notes"] == [
        "pyworkflow did not record attribute 'amount': a Decimal, not a JSON value"
    ]
    events = await FileStorageBackend(tmp_path).read(run_id)
    (declined,) = [e for e in events if isinstance(e, StepFailed) and e.final][:1]
    assert declined.error_args == ["payment declined: insufficient_funds"]
    assert declined.error_attrs == {"code": "insufficient_funds"}
