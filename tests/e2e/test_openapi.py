"""The shop API as documented at /api/openapi.json, fuzzed by schemathesis against a real server:
no request the document allows (or nearly allows) gets a 5xx, and every response has a status,
content type and body the document lists. Bounded: a few dozen examples per operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Server, start_server, stop_server, write_config

KEY = "openapi-publish-key-0123456789"
SECRET = "openapi-viewer-secret-0123456789-abcdef"
HOST_OPS = {
    "upsertCard", "showCard", "hideCard", "deleteCard", "listComments", "deleteComment", "moderate", "mintToken",
    "reportOrder", "getStats", "deleteRecording", "pinComment", "unpinComment",
}  # fmt: skip
EXAMPLES = 30  # per operation: ~11 operations, well under a minute on a busy machine


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("openapi")
    extra = (
        f'[streams.shop]\npublish_key = "{KEY}"\nchat_words = ["scam"]\n'
        f'[streams.vip]\npublish_key = "{KEY}"\nviewer_secret = "{SECRET}"\n'
    )
    server = start_server(["--config", str(write_config(tmp / "livecart.toml", extra))], tmp / "server.log")
    yield server
    assert stop_server(server) == 0
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]


FUZZED = (
    "listCards", "upsertCard", "showCard", "hideCard", "deleteCard", "postComment", "listComments",
    "deleteComment", "pinComment", "unpinComment", "moderate", "postLikes", "mintToken", "reportOrder", "getStats",
    "listRecordings", "getRecording", "deleteRecording", "getRecordingComments",
)  # fmt: skip
STREAMING = ("cardEvents", "commentEvents")  # SSE responses never end: described, not fuzzed
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_the_document_is_served_and_lists_the_shop_api(api_server: Server) -> None:
    doc = requests.get(f"{api_server.base}/api/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.")
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values() if isinstance(op, dict)}
    assert operations == {*FUZZED, *STREAMING}  # a new operation is fuzzed too, or says why not


# schemathesis's own pytest loader does not run on pytest 9 (it sets Function._nodeid), so the
# operations are driven through Hypothesis directly, one test per operation.
@pytest.mark.parametrize("operation_id", FUZZED)
def test_the_shop_api_answers_as_documented(operation_id: str, api_server: Server) -> None:
    schema = schemathesis.openapi.from_url(f"{api_server.base}/api/openapi.json")
    operation = schema.find_operation_by_id(operation_id)
    headers = {"Authorization": f"Bearer {KEY}"} if operation_id in HOST_OPS else {}

    @given(case=operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def fuzz(case: schemathesis.Case) -> None:
        # Mostly a stream that exists (a protected one for tokens), sometimes the generated name (404).
        if case.path_parameters and str(case.path_parameters.get("stream", ""))[:1] not in "xyzXYZ_-":
            case.path_parameters["stream"] = "vip" if operation_id == "mintToken" else "shop"
        case.call_and_validate(base_url=api_server.base, headers=headers, timeout=10, checks=CHECKS)

    fuzz()


def test_a_minted_token_opens_the_protected_stream(api_server: Server, tmp_path: Path) -> None:
    res = requests.post(
        f"{api_server.base}/api/streams/vip/tokens",
        json={"sub": "u-7", "name": "Ann", "ttl_s": 600},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )
    assert res.status_code == 201, res.text
    token = res.json()["token"]
    posted = requests.post(
        f"{api_server.base}/api/streams/vip/comments",
        json={"text": "hello from a minted token"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert posted.status_code == 201 and posted.json()["name"] == "Ann", posted.text
    refused = requests.post(
        f"{api_server.base}/api/streams/shop/tokens", json={"sub": "u-7"}, headers={"Authorization": f"Bearer {KEY}"},
        timeout=10,
    )  # fmt: skip
    assert refused.status_code == 409 and "open" in refused.text
