"""The code the bundle's jobs run.

One module per job step; each has ``build_parser()`` and ``main(argv)``, and ``main`` is
the entry point a ``python_wheel_task`` calls (see ``[project.scripts]`` in
pyproject.toml). ``local`` runs the jobs, as the bundle defines them, on local Spark and
an MLflow SQLite registry.
"""

__version__ = "0.1.0"
