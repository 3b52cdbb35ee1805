import time

import redis

from ingest.keys import feed_lease_key
from ingest.lease import Lease, LeaseKeeper


def lease(client: redis.Redis, token: str, ttl: float = 1.0) -> Lease:
    return Lease(client, key=feed_lease_key("LEASETEST"), token=token, ttl=ttl)


def test_only_one_holder_at_a_time(redis_client: redis.Redis) -> None:
    first, second = lease(redis_client, "a"), lease(redis_client, "b")
    assert first.acquire()
    assert not second.acquire()
    assert not second.renew()
    assert not second.release()
    assert first.holder() == "a"
    assert first.release()
    assert second.acquire()
    second.release()


def test_an_unrenewed_lease_expires_and_can_be_taken(redis_client: redis.Redis) -> None:
    first, second = lease(redis_client, "a", ttl=0.3), lease(redis_client, "b")
    assert first.acquire()
    time.sleep(0.4)
    assert second.acquire()
    assert not first.renew()
    second.release()


def test_the_keeper_holds_a_lease_past_its_ttl_and_notices_a_takeover(redis_client: redis.Redis) -> None:
    held = lease(redis_client, "a", ttl=0.6)
    assert held.acquire()
    keeper = LeaseKeeper(held)
    keeper.start()
    time.sleep(1.0)
    assert keeper.held()
    assert held.holder() == "a"
    redis_client.set(held.key, "intruder")
    time.sleep(0.5)
    assert not keeper.held()
    keeper.stop()
    redis_client.delete(held.key)
