"""Operation limits: how much one request may ask, checked before anything runs.

Each audience has its own limits (``config``). A request over one of them is refused with
HTTP 400, a stable ``extensions.code`` (``gateway.errors.LimitExceeded``), the
``extensions.limit`` it hit and, where it is known, ``extensions.actual``. The checks run in
order of cost, each before the work it protects:

1. ``scan`` — one pass over the document's tokens, before parsing (and the variables' nesting);
2. ``shape`` — on the parsed document, before validation: depth through fragments, root
   fields, introspection;
3. ``cost`` — the static cost: a lower bound before validation, the exact cost of the
   operation that runs (with the request's variables) before planning and execution.
"""
