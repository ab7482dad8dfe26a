"""The code the bundle's jobs run.

One module per job step; each has ``build_parser()`` and ``main(argv)``, and ``main`` is
the entry point a ``python_wheel_task`` calls (see ``[project.scripts]`` in
pyproject.toml). What is predicted, from which table, by which model is ``model.py``;
the local runner (development only) runs the jobs on this machine.
"""

__version__ = "0.1.0"
