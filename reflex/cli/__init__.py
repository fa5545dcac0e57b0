"""The ``reflex`` command line. Sub-commands import their heavy parts lazily."""
