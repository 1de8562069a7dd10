"""The gateway over HTTP: the app assembled (``app``), GraphQL over HTTP (``graphql``),
GraphiQL and its shipped assets (``graphiql``, ``static/graphiql/``), request ids
(``request_id``), probes (``probes``), the lifecycle (``lifecycle``: start, drain, stop) and
background serving for the demo and tests (``serving``)."""
