"""AAM's built-in plugins.

Each module here is named by an entry point in the ``aam`` group (see ``pyproject.toml``) and
implements hooks from :mod:`aam_core.hookspecs` — exactly as a third-party package would. Nothing
here is imported by the core.
"""
