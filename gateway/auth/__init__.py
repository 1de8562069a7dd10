"""Authentication: who a request's credentials prove it is.

``middleware`` resolves the principal once per request; ``authenticator`` reads the
credential headers (an API key, a bearer JWT, a declared purpose); ``trust`` and ``jwks`` say
which issuers' tokens count and with which keys; ``claims`` turns a verified token into a
``Principal``; ``api_keys`` keeps app developers' keys; ``issuer`` is the gateway's own token
issuer (the demo's and the tests').
"""
