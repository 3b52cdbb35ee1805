"""The lag window: percentiles of the last seconds of writes, nothing older."""

from ingest.lag import MAX_SAMPLES, LagWindow


def test_it_gives_the_median_and_99th_percentile_of_the_window() -> None:
    window = LagWindow(seconds=10, every=0)
    window.add(range(1, 101), now=0.0)
    assert window.percentiles(now=0.0) == (50.0, 99.0)


def test_it_forgets_writes_older_than_the_window() -> None:
    window = LagWindow(seconds=10, every=0)
    window.add([5_000] * 100, now=0.0)
    window.add([100] * 100, now=8.0)
    assert window.percentiles(now=9.0) == (100.0, 5_000.0)
    assert window.percentiles(now=10.5) == (100.0, 100.0)
    assert window.percentiles(now=30.0) == (None, None)


def test_it_recomputes_at_most_every_so_often() -> None:
    window = LagWindow(seconds=10, every=1.0)
    window.add([10], now=0.0)
    assert window.percentiles(now=0.0) == (10.0, 10.0)
    window.add([1_000] * 10, now=0.5)
    assert window.percentiles(now=0.5) == (10.0, 10.0)
    assert window.percentiles(now=1.0) == (1_000.0, 1_000.0)


def test_it_samples_a_large_window_evenly() -> None:
    window = LagWindow(seconds=10, every=0)
    window.add(range(4 * MAX_SAMPLES), now=0.0)
    p50, p99 = window.percentiles(now=0.0)
    assert p50 is not None
    assert p99 is not None
    assert abs(p50 - 2 * MAX_SAMPLES) < 10
    assert abs(p99 - 0.99 * 4 * MAX_SAMPLES) < 10
