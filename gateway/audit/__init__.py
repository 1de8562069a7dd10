"""The audit of restricted reads: the trail one operation leaves (``trail``), the writer that
commits it in batches (``writer``), and the hash-chained, append-only store (``store``)."""
