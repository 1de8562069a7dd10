"""One server of the benchmark, in its own process: ``python -m bench.serve KIND PORT``.

KIND is ``gateway``, ``gateway-unaudited`` (the gateway with its audit writer replaced by
one that writes nothing: the baseline of the audit cost), ``baseline``, ``csv-baseline``
(the hand-written CSV download of bench/downloads.py) or ``traffy``; the
upstream URLs come from the gateway's own ``BMA_*`` environment variables.
"""

from __future__ import annotations

import asyncio
import os
import sys

import uvicorn

from gateway.demo.traffy_standin import TicketStore, create_traffy_app
from gateway.http.app import connectors_from, create_app
from gateway.http.serving import HTTP, LOOP
from gateway.settings import Settings


def main(kind: str, port: int) -> None:
    if kind == "traffy":
        store = asyncio.run(TicketStore.load(os.environ["BMA_TRAFFY_DATABASE_URL"]))
        app = create_traffy_app(store)
    elif kind == "csv-baseline":
        from bench.downloads import create_csv_baseline_app

        app = create_csv_baseline_app(os.environ["BMA_TRAFFY_DATABASE_URL"])
    else:
        settings = Settings.from_env()
        if kind == "gateway":
            app = create_app(settings)
        elif kind == "gateway-unaudited":
            from bench.common import NullAudit

            app = create_app(settings, audit=NullAudit())
        else:
            from bench.baseline import create_baseline_app

            app = create_baseline_app(connectors_from(settings), settings.tax_database_url)
    # The gateway's event loop and HTTP parser (gateway.http.serving); BENCH_SERVER=LOOP/HTTP
    # (e.g. asyncio/h11) overrides them for an A/B run.
    loop, _, http = os.environ.get("BENCH_SERVER", f"{LOOP}/{HTTP}").partition("/")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=loop,
        http=http,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
