"""docs/operations.md says which path the load balancer checks; docker/haproxy.cfg decides.
Readiness (``/readyz``: 503 while draining, or with no source left) is the right one: a
liveness check (``/healthz``) would keep a draining replica in the rotation."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_operations_guide_names_the_path_haproxy_checks():
    config = (ROOT / "docker" / "haproxy.cfg").read_text(encoding="utf-8")
    [checked] = re.findall(r"http-check send meth GET uri (\S+)", config)
    assert checked == "/readyz"
    guide = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    mentions = [line for line in guide.splitlines() if "HAProxy" in line and "/" in line]
    claims = [line for line in mentions if re.search(r"check\w*[^|]*`/(healthz|readyz)`", line)]
    assert claims, mentions
    for line in claims:
        assert "/healthz" not in line.split("HAProxy", 1)[1].split("|")[0], line
    rows = {
        path: row
        for row in guide.splitlines()
        for path in ("/healthz", "/readyz")
        if row.startswith(f"| `GET {path}`")
    }
    assert "HAProxy" in rows["/readyz"] and "HAProxy" not in rows["/healthz"]
