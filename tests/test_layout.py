"""The package's layout: imports point down its layers, with no cycle, not
even one hidden inside a function, every module imports on its own, and no
module uses another's underscore names. The training configs (``configs/``)
are files loaded by path or name (:mod:`vf_jax.config_files`), not a package:
they use the library's parts, and no library module imports them."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OURS = ("vf_jax", "configs")
PACKAGES = tuple(ROOT / name for name in OURS)

# Lowest first. A module may import from its own layer (without cycles) or
# from a lower one.
LAYERS = [
    ("vf_jax.errors", "vf_jax.backends", "vf_jax.compilation", "vf_jax.config_files",
     "vf_jax.original"),
    ("vf_jax.audio",),
    ("vf_jax.models",),
    ("vf_jax.data",),
    ("vf_jax.restoration",),
    ("vf_jax.evaluation",),
    ("vf_jax.training",),
    ("configs",),
    ("vf_jax.serving", "vf_jax.commands", "vf_jax.cli", "vf_jax.aot", "vf_jax.testing",
     "vf_jax.__main__"),
]


def module_names() -> list[str]:
    names = []
    for path in sorted(p for package in PACKAGES for p in package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def imports_of(module: str, known: set[str]) -> set[str]:
    """Every module of vf_jax or configs ``module`` imports, anywhere in its file."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OURS):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith(OURS))
    out.discard(module)
    return out


def layer_of(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in layer):
            return i
    raise AssertionError(f"{module} is in no layer of this test")


def graph() -> dict[str, set[str]]:
    names = module_names()
    known = set(names)
    return {m: {d for d in imports_of(m, known) if d not in OURS}
            for m in names}


def test_imports_point_down_the_layers():
    wrong = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
             for m, deps in graph().items() if m not in OURS for d in deps
             if layer_of(d) > layer_of(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_even_inside_functions():
    g = graph()
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(g):
        if m not in state:
            visit(m)


def test_every_module_imports_on_its_own():
    modules = [m for m in module_names()
               if not m.endswith("__main__") and not m.startswith("configs")]
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "import_each.py"),
                           *modules], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr[-2000:]


def test_the_public_api_is_the_library_s_own_objects():
    import vf_jax
    from vf_jax.data import clip
    from vf_jax.restoration import download, restorer, windows
    assert vf_jax.Restorer is restorer.Restorer and vf_jax.load_clip is clip.load_clip
    assert vf_jax.Restoration is windows.Restoration
    assert vf_jax.download_weights is download.download_weights
    assert all(hasattr(vf_jax, name) for name in vf_jax.__all__)


def test_every_config_loads_by_name_and_by_path_and_the_library_imports_none():
    from vf_jax import config_files
    names = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))
    assert {"base", "tiny", "resunet", "tfgan", "finetune"} <= set(names)
    assert config_files.configs_dir() == ROOT / "configs"
    for name in names:
        by_name = config_files.get_config(name)
        by_path = config_files.get_config(str(ROOT / "configs" / f"{name}.py"))
        assert by_name.to_dict() == by_path.to_dict() and "num_steps" in by_name
    assert not (ROOT / "configs" / "__init__.py").exists()
    importing = [m for m in module_names() if m.startswith("vf_jax.")
                 and any(d == "configs" or d.startswith("configs.")
                         for d in imports_of(m, set(module_names())) | plain_imports(m))]
    assert not importing, importing


def plain_imports(module: str) -> set[str]:
    """Every module name ``module``'s file imports, ours or not."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            out.add(node.module or "")
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


# Modules of this repository whose underscore names stay their own: the
# library's, the tests' helpers and the benchmarks' shared modules.
OWN_MODULES = ("vf_jax", "helpers", "conftest", "record", "cpu_regression", "train")


def underscore_uses(path: pathlib.Path) -> list[str]:
    """``from M import _x`` and ``alias._x`` (``alias`` bound to one of our
    modules) in ``path``; ``__dunder__`` names are not private."""
    tree = ast.parse(path.read_text())
    ours = lambda name: name.split(".")[0] in OWN_MODULES
    private = lambda name: name.startswith("_") and not name.endswith("__")
    modules, found = set(), []      # names (dotted or not) bound to our modules
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and ours(node.module or ""):
            for a in node.names:
                if private(a.name):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}")
                modules.add(a.asname or a.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if ours(a.name):
                    modules.add(a.asname or a.name)
                    parts = a.name.split(".")
                    modules.update(".".join(parts[:i + 1]) for i in range(len(parts)))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and private(node.attr)
                and ast.unparse(node.value) in modules):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} uses {ast.unparse(node)}")
    return found


def test_no_module_uses_another_module_s_underscore_names():
    files = [p for folder in ("vf_jax", "configs", "train", "benchmarks", "tests")
             for p in sorted((ROOT / folder).rglob("*.py")) if "fixtures" not in p.parts]
    found = [use for path in files for use in underscore_uses(path)]
    assert not found, "\n".join(found)


def test_the_underscore_check_finds_what_it_forbids(tmp_path):
    probe = ROOT / "tests" / "scripts" / "underscore_probe.py"
    try:
        probe.write_text("from vf_jax.restoration import networks\n"
                         "from vf_jax.errors import _hidden\n"
                         "networks._private(1)\nnetworks.__name__\n")
        found = underscore_uses(probe)
    finally:
        probe.unlink()
    assert len(found) == 2 and "imports _hidden" in found[0] and "networks._private" in found[1]


def test_pyproject_installs_every_package_and_ships_the_configs_inside_vf_jax():
    import tomllib
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.relative_to(ROOT).parts[:-1])
                for p in (ROOT / "vf_jax").rglob("__init__.py")}
    assert set(setup["packages"]) == packages | {"vf_jax.configs"}
    assert setup["package-dir"] == {"vf_jax.configs": "configs"}
    assert "configs" not in setup["packages"]


def test_every_vf_jax_name_the_tests_benchmarks_and_scripts_import_exists():
    """A name moved in the library cannot leave a stale import behind in a
    file the suite only runs in a subprocess (scripts, benchmarks, train/)."""
    import importlib
    missing = []
    files = [p for folder in ("tests", "benchmarks", "train")
             for p in sorted((ROOT / folder).rglob("*.py")) if "fixtures" not in p.parts]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0
                    and (node.module or "").startswith("vf_jax")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ModuleNotFoundError:
                        missing.append(f"{path.relative_to(ROOT)}:{node.lineno} "
                                       f"{node.module}.{alias.name}")
    assert not missing, "\n".join(missing)
