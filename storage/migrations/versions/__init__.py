"""The revisions, one file each, ``NNNN_what.py``; a package only so it is installed with storage.

Alembic loads these files by path (it skips this one); see ``storage.migrate`` for how to add one.
"""
