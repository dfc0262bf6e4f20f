"""The contract says how ``predict`` is authenticated, and the README says how to get there.

Parses ``docs/predict-openapi.yaml``: a bearer security scheme (a Google-signed ID token,
audience the function URL) applied to every operation, and documented 401 and 403 responses
on every operation; the README's LMS section names each way to obtain the token and the
Terraform variable that grants the call.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "predict-openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def _operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in spec["paths"].items()
            for method, op in item.items()]


def test_bearer_id_token_scheme_is_declared(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    scheme = schemes["googleIdToken"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    text = scheme["description"]
    assert "ID token" in text and "audience" in text and "predict_invokers" in text
    assert "fetch_id_token" in text


def test_every_operation_requires_the_token(spec: dict[str, Any]) -> None:
    assert spec["security"] == [{"googleIdToken": []}]
    for path, method, op in _operations(spec):
        # an operation may only narrow the global requirement, never drop it
        assert op.get("security", spec["security"]) == [{"googleIdToken": []}], (path, method)


def test_every_operation_documents_401_and_403(spec: dict[str, Any]) -> None:
    responses = spec["components"]["responses"]
    assert "WWW-Authenticate" in responses["Unauthorized"]["headers"]
    for name in ("Unauthorized", "Forbidden"):
        assert "text/html" in responses[name]["content"], name  # Google's page, not our JSON
    for path, _method, op in _operations(spec):
        assert op["responses"]["401"] == {"$ref": "#/components/responses/Unauthorized"}, path
        assert op["responses"]["403"] == {"$ref": "#/components/responses/Forbidden"}, path
    table = spec["info"]["description"]
    assert re.search(r"\| 401 \|", table) and re.search(r"\| 403 \|", table)


def test_readme_explains_how_an_lms_gets_the_token() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Calling predict from an LMS", 1)[1].split("\n## ", 1)[0]
    for needle in ("fetch_id_token", "attached service account", "Workload Identity Federation",
                   "key file", "predict_invokers", "roles/run.invoker", "audience"):
        assert needle in section, needle
    # the Terraform variable the README tells the reader to edit exists
    variables = (REPO / "terraform" / "irt" / "variables.tf").read_text(encoding="utf-8")
    assert 'variable "predict_invokers"' in variables
