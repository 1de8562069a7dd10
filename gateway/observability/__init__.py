"""What the gateway tells its operators: Prometheus metrics (``metrics``), JSON log lines
(``logs``), optional OpenTelemetry spans (``tracing``), and the observer it injects into the
connectors (``upstream``)."""
