"""The open half of the gateway: what the policy calls open data, published where its users look.

The catalogue (``policies/catalog.toml``, loaded by ``policies.catalog``) names the datasets;
this package turns them into what harvesters, spreadsheets and people read: the tables a
resource holds (``tables``), their data dictionary (``dictionary``), a CKAN-compatible API,
DCAT and Schema.org metadata, bulk downloads and the catalogue's pages. Every row comes from
the graph through the anonymous principal's plan, so a published table can hold nothing the
policy does not call open.
"""
