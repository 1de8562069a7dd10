"""Rate limits: a token bucket per principal (``buckets``), the limits of each audience
(``config``) and the middleware that takes from the buckets (``middleware``)."""
