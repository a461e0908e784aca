"""The one table of API error codes (imgclf_serving/frontdoor/error_codes.py) and the docs made from it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from imgclf_serving.frontdoor import error_codes
from imgclf_serving.frontdoor.error_codes import GATEWAY_RESPONSES, ErrorCode, markdown_table

ROOT = Path(__file__).resolve().parents[2]
FRONTDOOR = ROOT / "imgclf_serving" / "frontdoor"


def _defined_codes() -> list[ErrorCode]:
    return [value for value in vars(error_codes).values() if isinstance(value, ErrorCode)]


def test_docs_serving_error_table_is_the_tables_rendering():
    assert markdown_table() in (ROOT / "docs" / "serving.md").read_text()


def test_docs_infrastructure_gateway_table_is_the_tables_rendering():
    from infra.gateway_responses import markdown_table as gateway_table

    doc = (ROOT / "docs" / "infrastructure.md").read_text()
    assert gateway_table() in doc
    assert "| `INTEGRATION_FAILURE` | 502 | `bad_gateway` |" in doc


def test_every_defined_code_has_a_documented_row_and_one_status():
    documented = {code for _, code, _, _ in error_codes.rows()}
    defined = _defined_codes()
    assert {e.code for e in defined} == documented
    assert len({e.code for e in defined}) == len(defined)  # a code is spelled once, with one status


def test_the_front_door_spells_no_code_or_status_of_its_own():
    """Every ApiError is built from a table entry: no literal status or code in app.py or errors.py."""
    for path in (FRONTDOOR / "app.py", FRONTDOOR / "errors.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ApiError":
                first = node.args[0]
                assert not isinstance(first, ast.Constant), f"{path.name}:{node.lineno} passes a literal status"
                assert not node.keywords, f"{path.name}:{node.lineno} passes a code of its own"


def test_only_the_default_families_keep_api_gateways_status():
    assert {kind for kind, r in GATEWAY_RESPONSES.items() if r.status is None} == {"DEFAULT_4XX", "DEFAULT_5XX"}


def test_the_readme_names_only_codes_of_the_table():
    named = set(re.findall(r"\b[45]\d\d `([a-z_]+)`", (ROOT / "README.md").read_text()))
    assert named and named <= {e.code for e in _defined_codes()}
