"""`siyu bench cluster` at tiny on PostgreSQL + Redis: 1 and 2 workers send every delivery once, 1 and 2
API processes take every event; without a broker URL it skips with a message."""

from __future__ import annotations

import pytest

from bench import run_bench
from bench.cluster_bench import DELIVERIES, EVENTS
from tests.conftest import PG_URL
from tests.ops.procs import BROKER_URL


@pytest.mark.broker
@pytest.mark.skipif(not (PG_URL and BROKER_URL), reason="needs SIYU_TEST_DATABASE_URL and SIYU_TEST_BROKER_URL")
def test_cluster_bench_at_tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIYU_TEST_BROKER_URL", str(BROKER_URL))
    result = run_bench("cluster", size="tiny", database_url=PG_URL)
    assert (result["bench"], result["size"], result["database"]) == ("cluster", "tiny", "postgresql")
    assert [row["name"] for row in result["results"]] == [
        "deliveries_1_workers",
        "deliveries_2_workers",
        "events_1_apis",
        "events_2_apis",
    ]
    assert [row["ratio"] for row in result["results"]][::2] == [1.0, 1.0]
    assert (result["events_per_run"], result["deliveries_per_run"], result["duplicates"]) == (
        EVENTS["tiny"],
        DELIVERIES["tiny"],
        0,
    )
    # every planned delivery was sent (the brand's suppressed share — consent, caps, holdout — is not)
    assert 0 < result["sent"] <= 2 * DELIVERIES["tiny"]
    assert set(result["ratio_per_added_worker"]) == {"2"}


def test_cluster_bench_without_a_broker_skips_with_a_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SIYU_BROKER_URL", raising=False)
    monkeypatch.delenv("SIYU_TEST_BROKER_URL", raising=False)
    result = run_bench("cluster", size="tiny", database_url="postgresql://nobody@127.0.0.1:1/none")
    assert result == {
        "bench": "cluster",
        "size": "tiny",
        "skipped": "needs a Redis URL in SIYU_BROKER_URL or SIYU_TEST_BROKER_URL",
        "results": [],
    }
    assert "skipped: needs a Redis URL" in capsys.readouterr().err
