"""Which parked inputs the gateway may replay by itself: those parked for statement timeouts
alone (:meth:`channels.failures.Tally.timed_out`)."""

from __future__ import annotations

from channels.failures import STATEMENT_TIMEOUTS, Failure, Tally


def tally(*seen: Failure) -> Tally:
    counted = Tally()
    for failure in seen:
        counted = counted.add(failure)
    return counted


def test_an_input_spent_on_statement_timeouts_alone_is_parked_as_timed_out() -> None:
    spent = tally(Failure.OWN, *[Failure.STATEMENT_TIMEOUT] * STATEMENT_TIMEOUTS)
    assert spent.spent(5) and spent.timed_out(5)


def test_an_input_spent_on_faults_of_its_own_is_not_timed_out_whatever_its_timeouts() -> None:
    """Replayed by itself, one failing for its own content would fail the same way again."""
    own = tally(*[Failure.STATEMENT_TIMEOUT] * (STATEMENT_TIMEOUTS - 1), *[Failure.OWN] * 5)
    assert own.spent(5) and not own.timed_out(5)
    both = tally(*[Failure.STATEMENT_TIMEOUT] * STATEMENT_TIMEOUTS, *[Failure.OWN] * 5)
    assert both.spent(5) and not both.timed_out(5)


def test_passing_failures_never_make_an_input_timed_out() -> None:
    assert not tally(*[Failure.PASSING] * 100).timed_out(5)
