"""The package's shape: a light core, no import cycles, lint-clean.

The core library (``import dropgraph_jax``, every regularizer, patterns,
models) must import none of the training application's dependencies, so
``pip install dropgraph_jax`` without ``[train]`` is enough to use it.
"""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dropgraph_jax"

# Top-level modules of the [train] extra that the core must never import.
HEAVY = ("tensorflow", "tensorflow_datasets", "grain", "clu", "orbax",
         "sklearn", "matplotlib", "ml_collections", "tqdm")

CORE = ("dropgraph_jax", "dropgraph_jax.layers",
        "dropgraph_jax.regularizers", "dropgraph_jax.regularizers.registry",
        "dropgraph_jax.patterns", "dropgraph_jax.models")


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    yield ".".join(parts), path


def _imports(path, name):
  """Modules of the package ``path`` imports at module level."""
  tree = ast.parse(path.read_text())
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in tree.body:  # module level only: function bodies run later
    if isinstance(node, ast.Import):
      found |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(package.split(".")[:len(package.split(".")) -
                                           node.level + 1] + [base]).strip(".")
      found.add(base)
      found |= {f"{base}.{a.name}" for a in node.names}
  return {m for m in found if m.startswith("dropgraph_jax")}


def test_core_imports_no_training_dependency():
  code = ("import sys\n"
          f"import {', '.join(CORE)}\n"
          "import dropgraph_jax as dg\n"
          "for name in dg.registry.names():\n"
          "  dg.registry.get(name)\n"
          f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]\n"
          "print(sorted(heavy))\n")
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                       capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]", out.stdout


def test_package_has_no_import_cycles():
  modules = dict(_modules())
  graph = {name: {m for m in _imports(path, name) if m in modules} - {name}
           for name, path in modules.items()}
  # An import of a package runs its __init__, so a module importing
  # `a.b.c` also depends on `a` and `a.b`: those edges are what cycles
  # through package __init__ files are made of.
  # A module's own ancestor packages are already initialising when it
  # runs, so those edges are not cycles.
  for name, deps in graph.items():
    for dep in list(deps):
      parts = dep.split(".")
      deps |= {".".join(parts[:i]) for i in range(1, len(parts))
               if ".".join(parts[:i]) in modules}
    deps -= {p for p in deps if name.startswith(p + ".")} | {name}
  state = {}

  def visit(node, stack):
    state[node] = "open"
    for dep in sorted(graph[node]):
      if state.get(dep) == "open":
        cycle = stack[stack.index(dep):] + [dep]
        pytest.fail("import cycle: " + " -> ".join(cycle))
      if dep not in state:
        visit(dep, stack + [dep])
    state[node] = "done"

  for name in sorted(graph):
    if name not in state:
      visit(name, [name])


@pytest.mark.slow
def test_every_module_imports_alone():
  """Each module imports in a fresh interpreter (catches order-dependent
  imports that a shared test process hides)."""
  names = [n for n, _ in _modules() if not n.endswith("__main__")]
  code = ("import importlib, sys\n"
          "for name in sys.argv[1:]:\n"
          "  for m in [k for k in sys.modules if k.startswith('dropgraph')]:\n"
          "    del sys.modules[m]\n"
          "  importlib.import_module(name)\n")
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, env=env,
                 check=True, capture_output=True)


def test_lint_clean():
  """`ruff check` (settings in pyproject.toml) passes on the repository."""
  out = subprocess.run([sys.executable, "-m", "ruff", "check", "."],
                       cwd=ROOT, capture_output=True, text=True)
  assert out.returncode == 0, out.stdout + out.stderr
