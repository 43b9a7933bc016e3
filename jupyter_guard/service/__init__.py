"""The guard service (``jupyter guard service``) and its clients' side of the protocol.

Under JupyterHub, enforcement that must hold against a user lives here, in a process of its
own OS identity: the audit store and key, the pseudonym key, the credentials, and the
decisions. Single-user servers with ``c.GuardApp.service_url`` set are its clients
(:mod:`jupyter_guard.service.client`).
"""
