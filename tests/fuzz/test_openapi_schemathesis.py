"""Every operation of `/openapi.json`, fuzzed by schemathesis with an all-scopes token: no 5xx, and
every response (success or error) matches the status codes and bodies the operation declares.

Two passes: schema-valid requests whose `*_id` path parameters point at the seeded rows (id 1 of
each table), so bodies reach the services rather than stopping at a 404; then schema-violating
requests (wrong types, missing fields, out-of-range ids), which must all be refused with the error body.

SQLite only: the route layer, validation and error mapping are backend-independent, and the
PostgreSQL path of every operation is covered by the rest of the suite. Deterministic
(derandomized, no example database) so a CI failure reproduces; `SIYU_FUZZ_EXAMPLES` (see
`make fuzz`) runs more examples per operation.

The operations are walked inside the test rather than through `schema.parametrize()`: that needs
the app (and its schema) at collection time, which every pytest worker would pay for even when it
runs no fuzz test, and the lazy `schemathesis.pytest.from_fixture` loader fails on pytest 9."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err, Ok
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.fuzz.conftest import FuzzWorld, fuzz_examples

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


@pytest.fixture(scope="module")
def api_schema(fuzz_world: FuzzWorld) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_world.app)


def _pinned_ids(operation: schemathesis.APIOperation, mode: GenerationMode, world: FuzzWorld) -> dict[str, Any] | None:
    """Path ids fixed for this pass: the seeded rows for valid requests; and never the fuzzer's own token."""
    pinned: dict[str, Any] = {}
    if mode == GenerationMode.POSITIVE:
        for parameter in operation.path_parameters:
            if parameter.name.endswith("_id") and parameter.definition.get("schema", {}).get("type") == "integer":
                pinned[parameter.name] = 1
    if operation.path.endswith("/tokens/{token_id}"):
        pinned["token_id"] = world.decoy_token_id
    return pinned or None


def _fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, world: FuzzWorld, examples: int) -> None:
    """Send `examples` generated requests to one operation; raises on the first failed check."""
    token = world.token

    # No shrinking: it would multiply the requests of a failing run, and the report already
    # carries a curl line that reproduces the failing request.
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=_pinned_ids(operation, mode, world)))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_operation_answers_within_its_schema(
    api_schema: schemathesis.BaseSchema, fuzz_world: FuzzWorld, mode: GenerationMode
) -> None:
    # given every operation of the published schema (each one readable by schemathesis)
    results = list(api_schema.get_all_operations())
    assert [str(r.err()) for r in results if isinstance(r, Err)] == []
    operations = [r.ok() for r in results if isinstance(r, Ok)]
    assert len(operations) > 300
    # when each gets a few generated requests
    failures: list[str] = []
    for operation in operations:
        try:
            _fuzz(operation, mode, fuzz_world, fuzz_examples(2))
        except Unsatisfiable:
            pass  # nothing about the operation can be made invalid (no parameters, no body)
        except (Exception, BaseExceptionGroup) as exc:  # collected, all reported below
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    # then no operation answered 5xx or outside its declared responses
    assert failures == [], "\n\n".join(failures)


# --- inputs the fuzzer found that once answered 500, kept as plain regression tests ---


@pytest.mark.parametrize(
    ("baseline_rate", "effect", "relative"),
    [(0.5, 1e-20, False), (1e-300, 1e-300, True), (0.5, 1e-160, False)],
)
def test_sample_size_for_an_undetectably_small_effect_is_refused_naming_the_field(
    fuzz_world: FuzzWorld, baseline_rate: float, effect: float, relative: bool
) -> None:
    # an effect below float resolution once divided by zero (a 500 under numpy's warning)
    with TestClient(fuzz_world.app) as client:
        answer = client.post(
            "/api/v1/experiments/sample-size",
            headers={"Authorization": f"Bearer {fuzz_world.token}"},
            json={"baseline_rate": baseline_rate, "minimum_detectable_effect": effect, "relative": relative},
        )
    assert answer.status_code == 422
    assert answer.json()["error"]["details"] == {"field": "minimum_detectable_effect"}
