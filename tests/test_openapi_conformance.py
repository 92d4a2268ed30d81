"""schemathesis drives the ingest and read endpoints from the OpenAPI document, in process.

schemathesis' pytest plugin (4.32.5) fails under pytest 9 (it reads Function._nodeid),
so each operation's strategy is run with hypothesis directly.
"""

import collections

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.e2e

# No 5xx, and every answer documented: its status, media type, headers and body.
# Not positive_data_acceptance: much that the document allows is refused by design
# (a Content-Encoding header on a body schemathesis did not compress, a made-up cursor).
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES = 25  # cases per operation: about 3 s in all on the 2-core machine


def test_answers_conform_to_the_document(app):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app).include(
        path_regex=r"^/(ingest|logs)")
    cases = collections.Counter()
    for result in schema.get_all_operations():
        run_operation(result.ok(), cases)
    print(f"schemathesis: {len(cases)} operations, {sum(cases.values())} cases: {dict(cases)}")
    assert len(cases) == 6  # POST /ingest and the five GET /logs...


def run_operation(operation, cases):
    """Run EXAMPLES generated cases of ``operation`` through CHECKS, counting them."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def conforms(case):
        cases[operation.label] += 1
        case.call_and_validate(checks=CHECKS)

    conforms()
