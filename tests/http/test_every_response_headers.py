"""docs/errors.md promises that every response carries ``X-Request-Id`` and
``Server-Timing``: refusals answered before any route (405, 404, 429) as much as GraphQL."""

from __future__ import annotations

import re

from support import settings_for, start_gateway

TIMING = re.compile(r"app;dur=\d+\.\d{2}")


def test_every_response_carries_a_request_id_and_server_timing(db, traffy_url):
    settings = settings_for(
        db, traffy_url, rate_limits='{"anonymous": {"rate": 0.001, "burst": 4}}'
    )
    server, gateway = start_gateway(settings)
    try:
        client = gateway.client
        answers = {
            "graphql": client.post("/graphql", json={"query": "{ __typename }"}),
            "405": client.put("/graphql"),
            "404": client.get("/no-such-path"),
            "healthz": client.get("/healthz"),
        }
        answers["429"] = next(
            r
            for r in (client.post("/graphql", json={"query": "{ __typename }"}) for _ in range(5))
            if r.status_code == 429
        )
        assert [answers[k].status_code for k in ("graphql", "405", "404", "healthz")] == [
            200, 405, 404, 200
        ]  # fmt: skip
        for name, response in answers.items():
            assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", "")), name
            assert TIMING.fullmatch(response.headers.get("server-timing", "")), (
                name,
                response.headers,
            )
        assert answers["405"].json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        assert answers["429"].json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
    finally:
        gateway.client.close()
        server.stop()
