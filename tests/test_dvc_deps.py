"""dvc.yaml lists, for every stage, exactly the project files its command imports, transitively:
none missing (`dvc status` would miss a change), none extra (needless reruns)."""

import ast
import re
from pathlib import Path

import yaml

from conftest import ROOT

PACKAGES = ("cxr", "stages")


def module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return None


def project_imports(module: str) -> set[str]:
    """Repo-relative paths of `module` and every project module it imports, however deep
    (imports inside functions included), with the package `__init__.py` files on the way."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            path = module_file(".".join(parts[:i]))
            if path is None or path.relative_to(ROOT).as_posix() in seen:
                continue
            seen.add(path.relative_to(ROOT).as_posix())
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    todo += [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    todo.append(node.module)
                    todo += [f"{node.module}.{a.name}" for a in node.names]
    return {p for p in seen if p.split("/")[0] in PACKAGES}


def stages() -> dict[str, dict]:
    """name -> stage of dvc.yaml, with `foreach` expanded to its first item."""
    out = {}
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        out[name] = stage["do"] if "foreach" in stage else stage
    return out


def test_every_stage_depends_on_all_the_code_it_runs():
    checked = 0
    for name, stage in stages().items():
        module = re.match(r"python -m (\S+)", stage["cmd"]).group(1)
        code = {d for d in stage["deps"] if d.split("/")[0] in PACKAGES}
        runs = project_imports(module)
        assert not runs - code, f"stage {name} runs {sorted(runs - code)}: list them in dvc.yaml"
        assert not code - runs, f"stage {name} lists {sorted(code - runs)}, which it never runs"
        checked += 1
    assert checked == 11  # 4 trainings, evaluate, and six data and report stages


def test_the_import_walk_sees_nested_and_package_imports():
    files = project_imports("stages.evaluate")
    assert {"cxr/__init__.py", "cxr/atomic.py", "cxr/prepared.py", "cxr/evaluate.py",
            "stages/__init__.py", "stages/evaluate.py"} <= files
    assert "cxr/predict.py" not in files
