"""Check the generated job code's feature-engineering calls against a real client's signatures.

    python -m venv /tmp/fe && /tmp/fe/bin/pip install databricks-feature-engineering==0.12.1
    echo "$PWD/.venv/lib/python3.11/site-packages" > /tmp/fe/lib/python3.11/site-packages/zz.pth
    /tmp/fe/bin/python tools/check_fe_client.py BAKED_PROJECT

The client pins a protobuf (and, before 0.13, a Flask) below the template's environment, so it
lives in a throwaway environment that sees the template's packages after its own. Every call
``client.<method>(...)`` and ``fe.FeatureLookup(...)`` in the job modules that use
``runtime.feature_engineering()`` is bound, keyword by keyword, to the installed
``FeatureEngineeringClient`` (``inspect.signature(...).bind``). A keyword only a ``**kwargs``
would take is refused (``FeatureLookup`` raises on those, other calls ignore or pass them on),
except those ``log_model`` hands on to the flavor, which are bound to the flavor's
``save_model``. Prints one line per call and exits 1 when one does not bind.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import sys
import warnings
from pathlib import Path

CLIENT_NAMES = {"client"}  # FeatureEngineeringClient instances in the job code
MODULE_NAMES = {"fe"}  # the client's module (runtime.feature_engineering())


def calls(path: Path):
    """(line, receiver, method, keywords, has **kwargs) of each client or module call in ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        receiver = node.func.value
        if isinstance(receiver, ast.Name) and receiver.id in CLIENT_NAMES | MODULE_NAMES:
            keywords = [k.arg for k in node.keywords if k.arg is not None]
            expanded = [ast.unparse(k.value) for k in node.keywords if k.arg is None]
            yield node.lineno, receiver.id, node.func.attr, keywords, expanded


def main(argv: list[str]) -> int:
    project = Path(argv[0]).resolve()
    package = next(p for p in (project / "src").iterdir() if (p / "feature_store.py").exists())
    sys.path.insert(0, str(project / "src"))
    warnings.simplefilter("ignore")
    import databricks.feature_engineering as fe_module
    from databricks.feature_engineering import FeatureEngineeringClient
    from databricks.feature_engineering.version import VERSION

    model = importlib.import_module(f"{package.name}.model")
    print(f"databricks-feature-engineering {VERSION} ({fe_module.__file__})")
    failures = 0
    for path in sorted(package.glob("*.py")):
        if "feature_engineering()" not in path.read_text():  # elsewhere ``client`` is an MlflowClient
            continue
        for line, receiver, method, keywords, expanded in calls(path):
            owner = FeatureEngineeringClient if receiver in CLIENT_NAMES else fe_module
            target = getattr(owner, method, None)
            where = f"{path.name}:{line} {receiver}.{method}"
            if target is None:
                print(f"MISSING  {where}: {owner.__name__} has no {method}")
                failures += 1
                continue
            signature = inspect.signature(target)
            names = list(keywords)
            extra = {}
            if method == "log_model" and "model.FEATURE_STORE_LOG_OPTIONS" in " ".join(expanded):
                names += list(model.FEATURE_STORE_LOG_OPTIONS)
            if "kwargs" in " ".join(expanded):
                names.append("pip_requirements")  # relog passes it through **kwargs
            try:
                bound = signature.bind_partial(*([None] if receiver in CLIENT_NAMES else []), **dict.fromkeys(names))
                var_keyword = next(
                    (p.name for p in signature.parameters.values() if p.kind is inspect.Parameter.VAR_KEYWORD), None
                )
                extra = bound.arguments.get(var_keyword, {}) if var_keyword else {}
                if extra and method == "log_model":  # handed on to flavor.save_model
                    inspect.signature(model.FEATURE_STORE_FLAVOR.save_model).bind_partial(None, None, **extra)
                elif extra:
                    raise TypeError(f"only **{var_keyword} would take {', '.join(extra)}")
            except TypeError as error:
                print(f"REFUSED  {where}({', '.join(names)}): {error}")
                failures += 1
                continue
            via = f"; via **kwargs: {', '.join(extra)}" if extra else ""
            print(f"ok       {where}({', '.join(names)}){via}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
