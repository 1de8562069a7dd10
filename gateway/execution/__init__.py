"""Running GraphQL operations: documents prepared and cached (``documents``), the executor
(``executor``), the policy gate at restricted fields (``enforcement``), the response cache of
open data (``response_cache``) and what an operation answers (``outcome``)."""
