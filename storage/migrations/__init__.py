"""Alembic's script directory for ``storage``: ``env.py`` and the revisions in ``versions/``.

A package so setuptools ships it with ``storage``; nothing imports it. ``storage.migrate`` runs it.
"""
