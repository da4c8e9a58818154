"""Conformance under concurrency: threads sharing a store, and replicas sharing a database.

Writers are released together by a barrier so that their transactions overlap; each scenario
runs several rounds because one overlap proves little. Every outcome is checked through the
protocol afterwards: the directory must look as if the writes had happened one at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import pytest

from fedbroker.directory.model import Entity, Kind
from fedbroker.directory.store import Store
from fedbroker.errors import EntityAlreadyExistsError
from tests.directory.builders import (
    OpenStore,
    at,
    new_account,
    new_entity,
    policy_document,
    run_together,
)

ROUNDS = 10


@pytest.fixture(params=["one store", "two replicas"])
def two_stores(request: pytest.FixtureRequest, store: Store, open_store: OpenStore) -> list[Store]:
    """The same store used from two threads, or two stores on one database (two replicas)."""
    if request.param == "one store":
        return [store, store]
    return [store, open_store()]


def test_one_of_two_racing_creates_wins(two_stores: list[Store]) -> None:
    store = two_stores[0]
    account = new_account(store)
    for round_ in range(ROUNDS):
        name = f"user-{round_}"

        def create(replica: Store, spelling: str) -> Callable[[], Entity]:
            return lambda: new_entity(replica, account, Kind.USER, spelling)

        before = store.directory_version()
        outcomes = run_together([create(two_stores[0], name), create(two_stores[1], name.upper())])

        winners = [o for o in outcomes if isinstance(o, Entity)]
        losers = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1
        assert isinstance(losers[0], EntityAlreadyExistsError), repr(losers[0])
        for replica in two_stores:
            assert replica.get_entity(account.id, Kind.USER, name) == winners[0]
        assert store.directory_version() == before + 1
    assert len(store.list_entities(account.id, Kind.USER)) == ROUNDS


def test_each_concurrent_write_bumps_the_directory_version_once(
    store: Store, open_store: OpenStore
) -> None:
    replicas = [store, store, open_store(), open_store()]
    account = new_account(store)
    writes_per_writer = 10
    before = store.directory_version()

    def writer(number: int) -> Callable[[], None]:
        replica = replicas[number % len(replicas)]

        def task() -> None:
            for index in range(writes_per_writer):
                new_entity(replica, account, Kind.USER, f"w{number}-u{index}")

        return task

    writers = 8
    outcomes = run_together([writer(n) for n in range(writers)])

    assert outcomes == [None] * writers
    expected = writers * writes_per_writer
    for replica in replicas:
        assert replica.directory_version() == before + expected
    assert len(store.list_entities(account.id, Kind.USER)) == expected


def test_racing_idempotent_writes_all_succeed(two_stores: list[Store]) -> None:
    store = two_stores[0]
    account = new_account(store)
    user = new_entity(store, account, Kind.USER, "alice")
    for round_ in range(ROUNDS):
        group = new_entity(store, account, Kind.GROUP, f"group-{round_}")
        policy = new_entity(store, account, Kind.POLICY, f"policy-{round_}")
        inline_name = f"inline-{round_}"
        documents = [policy_document(f"arn:aws:s3:::writer-{n}") for n in range(len(two_stores))]
        tasks: list[Callable[[], None]] = []
        for replica, document in zip(two_stores, documents, strict=True):
            tasks += [
                partial(replica.add_member, group, user),
                partial(replica.attach, user, policy),
                partial(replica.put_inline, user, inline_name, document),
            ]
        outcomes = run_together(tasks)

        assert outcomes == [None] * len(tasks)
        assert store.members_of(group) == [user]
        assert store.attached_to(policy) == [user]
        assert store.get_inline(user, inline_name).document in documents
    assert len(store.groups_of(user)) == ROUNDS
    assert len(store.attached(user)) == ROUNDS
    assert len(store.list_inline(user)) == ROUNDS


def test_one_of_racing_replays_is_accepted(two_stores: list[Store]) -> None:
    for round_ in range(ROUNDS):
        key = f"{round_:064d}"

        def remember(replica: Store, key: str = key, now: int = round_ % 5) -> Callable[[], bool]:
            return lambda: replica.remember_assertion(key, at(10), at(now))

        outcomes = run_together([remember(s) for s in two_stores])
        assert sorted(outcomes, key=str) == [False, True], outcomes


def test_a_replica_sees_a_write_through_the_change_hint(
    store: Store, open_store: OpenStore
) -> None:
    """The hint lets a DirectoryView notice another replica's write without polling: it moves
    after a directory write committed elsewhere, and stays put while nothing is written."""
    import time

    from fedbroker.directory.view import DirectoryView

    other = open_store()
    account = new_account(other)
    view = DirectoryView(store)
    view.refresh(at(0))
    with pytest.raises(Exception, match="cannot be found"):
        view.get_entity(account.id, Kind.ROLE, "late")
    hint = store.change_hint()  # type: ignore[attr-defined]
    assert hint is not None
    assert store.change_hint() == hint  # type: ignore[attr-defined]  # nothing written since
    new_entity(other, account, Kind.ROLE, "late")
    # A notification travels asynchronously (PostgreSQL): wait for it to arrive, not for time.
    deadline = time.monotonic() + 10
    while store.change_hint() == hint and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    view.refresh(at(0))  # the same instant: no interval has passed, the hint alone says so
    assert view.get_entity(account.id, Kind.ROLE, "late").name == "late"
