"""Everything that runs inside jupyter_server: the extension app, REST handlers, the export
and download gates, the kernel-channel observer and the kernel bindings.

The governance core (catalog, policy, governor, audit, redaction, credentials) lives beside
this package and imports no web framework; this package is the thin layer that translates
HTTP, websocket and jupyter_server hook points into calls on it.
"""
