"""Run the bundle's jobs on this machine: local Spark, an MLflow SQLite registry and a
stand-in workspace.

``python -m mlops_local --help`` lists the commands. All local state (the registry, the
model artifacts, the tables of every catalog, the workspace objects the jobs manage) lives
in one folder, ``.mlops_local/`` in the project, which stands in for the workspace and
Unity Catalog: each target's catalog is the first part of its model and table names, as in
Unity Catalog.

This package is for development only: it is in the project's ``dev`` dependency group,
not in the job wheel (``[tool.hatch.build.targets.wheel]`` packages only the job package),
and it is the same in every project made from the template, so that a template update
replaces it whole. It drives the job package through its entry points, its ``runtime``
module (which hands local calls to ``environment``) and the modules named in
``project_module`` calls; nothing in it is specific to one project.
"""

__version__ = "1.0.0"
