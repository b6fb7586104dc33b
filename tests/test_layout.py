"""The package's layout: imports point down its layers, with no cycle, not
even one hidden inside a function, and every module imports on its own. The
training configs (``configs/``) are a layer of their own: they use the
library's parts, and its top layer (the demo, the ahead-of-time programs) uses them."""

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
    ("vf_jax.errors", "vf_jax.backends", "vf_jax.compilation", "vf_jax.aot", "vf_jax.original"),
    ("vf_jax.audio",),
    ("vf_jax.models",),
    ("vf_jax.data",),
    ("vf_jax.restoration",),
    ("vf_jax.evaluation",),
    ("vf_jax.training",),
    ("configs",),
    ("vf_jax.commands", "vf_jax.cli", "vf_jax.programs", "vf_jax.__main__"),
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
    modules = [m for m in module_names() if not m.endswith("__main__")]
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "import_each.py"),
                           *modules], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr[-2000:]


def test_the_public_api_is_the_library_s_own_objects():
    import vf_jax
    from vf_jax.data import clip
    from vf_jax.restoration import restore
    assert vf_jax.Restorer is restore.Restorer and vf_jax.load_clip is clip.load_clip
    assert all(hasattr(vf_jax, name) for name in vf_jax.__all__)
