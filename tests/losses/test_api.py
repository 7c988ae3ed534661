"""The public surface of rl.losses: importable alone, documented (the examples run in tests/test_docs.py)."""
import inspect
import subprocess
import sys

import pytest

from rl import losses

MODULES = sorted({inspect.getmodule(getattr(losses, n)).__name__ for n in losses.__all__})


def test_importing_losses_pulls_in_no_other_part_of_rl():
  # The third use of rl: `from rl import losses` inside someone else's JAX project, with no TF, Flax or data code.
  code = ("import sys, rl.losses; bad = sorted(m for m in sys.modules if m.split('.')[0] in "
          "('tensorflow', 'flax', 'optax', 'orbax', 'tensorflow_datasets') or "
          "(m.startswith('rl.') and not m.startswith('rl.losses'))); print(bad)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]", out


@pytest.mark.parametrize("name", losses.__all__)
def test_every_public_function_is_documented(name):
  obj = getattr(losses, name)
  doc = inspect.getdoc(obj) or ""
  assert doc, f"{name} has no docstring"
  if inspect.isfunction(obj):
    assert "arxiv.org" in doc or "doi.org" in doc, f"{name}: docstring cites no paper link"
    assert ">>>" in doc, f"{name}: docstring has no example"
    params = inspect.signature(obj).parameters.values()
    hyper = [p for p in params if p.default is not inspect.Parameter.empty
             and p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    assert not hyper, f"{name}: hyper-parameters must be keyword-only: {[p.name for p in hyper]}"
