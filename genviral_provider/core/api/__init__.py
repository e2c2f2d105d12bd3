"""Transport: everything that knows how one request to the Genviral Partner API is made and answered.

Owns the connection settings, the API's paths and query parameters, the response envelope, the retry policy,
and the synchronous (requests) and asynchronous (httpx) clients. May import only :mod:`genviral_provider.core.log`,
:mod:`genviral_provider.core.rows` and :mod:`genviral_provider.exceptions`: never reading, freshness or output.
"""
