"""Schemathesis against a served jobpulse: no 5xx, and every answer matches the OpenAPI spec."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.core.result import Ok

from tests.e2e.conftest import Server

#: Examples per operation: enough to find a 5xx, bounded so that `make test` stays quick.
EXAMPLES = 30


def test_api_conforms_to_its_schema(empty_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{empty_server.url}/openapi.json")
    headers = {"Authorization": f"Bearer {empty_server.admin_key}"}
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the OpenAPI document has invalid operations"
    assert len(operations) >= 12
    for operation in operations:
        if operation.path.endswith("/stream"):
            continue  # never ends by design: tests/api/test_stream.py reads it as a client does

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def conforms(case: Any) -> None:
            # Every other check stays on; this one cannot know the business rules (a
            # schema-valid body may still be refused: metadata over 64 KiB, both timeout_s
            # and deadline_at, a callback_url that is not http(s)).
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        try:
            conforms()
        except Exception as exc:
            pytest.fail(f"{operation.label}: {exc}")
