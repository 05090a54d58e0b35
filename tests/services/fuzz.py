"""Schemathesis without its pytest plugin: draw cases for every operation of a service's
OpenAPI spec and check that no answer is a 5xx."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def assert_no_server_errors(schema, *, header_sets: Iterable[Mapping[str, str] | None],
                            examples_per_operation: int = 6) -> int:
    """Exercise every operation with generated requests, once per header set (e.g. no
    auth, a valid token); returns how many requests were sent."""
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the schema has no operations"
    header_sets = list(header_sets)
    sent = [0]

    @given(data=st.data())
    @settings(max_examples=examples_per_operation * len(operations), deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(data) -> None:  # noqa: ANN001
        operation = data.draw(st.sampled_from(operations), label="operation")
        case = data.draw(operation.as_strategy(), label="case")
        for headers in header_sets:
            response = case.call(headers=dict(headers) if headers else None)
            sent[0] += 1
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:300]}")

    run()
    return sent[0]
