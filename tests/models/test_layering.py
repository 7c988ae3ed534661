"""rl.models keeps to its layer: no private name of another module, and nothing of rl outside rl.models but the
public numerics of rl.losses, the bottom layer (`l2_normalize`, MAE's `random_masking`: one implementation each)."""
import ast
import pathlib

MODELS = pathlib.Path(__file__).resolve().parents[2] / "rl" / "models"

# (module, name) pairs rl.models may import from the rest of rl; each with the reason.
ALLOWED_OUTSIDE = {("rl.losses.masked", "random_masking"): "MAE's masking: one implementation, public in rl.losses",
                   ("rl", "losses"): "rl.losses' public numerics (l2_normalize): the bottom layer, imports no rl"}


def _rl_imports():
  for path in sorted(MODELS.glob("*.py")):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "rl":
        for alias in node.names:
          yield path.name, node.module, alias.name
      elif isinstance(node, ast.Import):
        for alias in node.names:
          if alias.name.split(".")[0] == "rl":
            yield path.name, alias.name, None


def test_no_private_name_crosses_modules():
  crossing = [f"{file}: from {module} import {name}" for file, module, name in _rl_imports()
              if name and name.startswith("_")]
  assert not crossing, "private names imported from another module:\n" + "\n".join(crossing)


def test_models_import_nothing_of_rl_but_models_and_the_public_numerics_of_losses():
  outside = [(file, module, name) for file, module, name in _rl_imports()
             if not module.startswith("rl.models") and (module, name) not in ALLOWED_OUTSIDE]
  assert not outside, f"rl.models imports from other layers: {outside}"
