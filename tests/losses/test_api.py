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
    assert "Args:" in doc and "Returns:" in doc, f"{name}: docstring lacks an Args or a Returns section"
    assert inspect.signature(obj).return_annotation is not inspect.Signature.empty, f"{name}: no return annotation"


def test_every_return_terms_form_returns_the_loss_and_a_dict_of_named_terms():
  # One convention (`rl.losses` module docstring): (loss, {name: term}). Each form's values are tested in its
  # own file; here, that no form returns a flat tuple or an array of terms.
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  x, mu = jnp.ones((4, 3)), jnp.zeros((4, 2))
  two = jnp.stack([jnp.eye(4, 3), jnp.eye(4, 3)[::-1]], axis=1)
  forms = {
      "beta_vae": losses.beta_vae(x, 0.5 * x, mu, mu, return_terms=True),
      "esmm": losses.esmm(jnp.zeros(4), jnp.zeros(4), jnp.array([1, 0, 1, 0]), jnp.array([1, 0, 0, 0]),
                          return_terms=True),
      "decorrelated_prediction": losses.decorrelated_prediction(two, two[:, ::-1], return_terms=True),
      "matryoshka": losses.matryoshka(losses.nt_xent, (2, 3), return_terms=True)(x, x + mu[:, :1]),
      "fmrlrec_loss": losses.fmrlrec_loss(x, x, jnp.array([1, 2, 3, 0]), dims=(1, 3), return_terms=True),
      "slfm_loss": losses.slfm_loss(*([x[:, 0]] * 8), return_terms=True),
      "lens_loss": losses.lens_loss(x, x, x + 1.0, reconstruction_weight=0.5, return_terms=True),
      "scfs_loss": losses.scfs_loss(x, x, jnp.zeros(3), x, x, return_terms=True),
      "nft_loss": losses.nft_loss(x, x + 1.0, return_terms=True),
      "mirror_loss": losses.mirror_loss(x, x, 2.0, (x, x + 1.0, x), (x, x, x), (mu, mu), (mu, mu), x, x,
                                        return_terms=True),
      "fedsa_loss": losses.fedsa_loss(x, jnp.array([0, 1, 2, 0]), x[:3], jnp.eye(3), 1.0, return_terms=True),
      "volume_masked_embedding_loss": losses.volume_masked_embedding_loss(
          *([jnp.ones((2, 10, 3))] * 4), return_terms=True),
      "disentangler_loss": losses.disentangler_loss(*([jnp.ones((2, 3, 4)) + jnp.arange(4.0)] * 6),
                                                    return_terms=True),
      "legato_loss": losses.legato_loss([x], [x + 1.0], jnp.stack([x, x[::-1]], axis=1),
                                        jnp.ones((4, 2, 2)), jnp.eye(2)[None].repeat(4, 0), return_terms=True),
      "dwc_loss": losses.dwc_loss(jnp.concatenate([x, x]), x, jnp.zeros(3), return_terms=True),
      "scale_loss": losses.scale_loss(x, x + 1.0, two, two[::-1], jnp.ones((4, 2), bool), return_terms=True),
  }
  with_terms = sorted(n for n in losses.__all__ if inspect.isfunction(getattr(losses, n))
                      and "return_terms" in inspect.signature(getattr(losses, n)).parameters)
  assert with_terms == sorted(forms), f"a return_terms form is not covered here: {with_terms}"
  for name, out in forms.items():
    assert isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) and out[1], (name, out)
    assert jnp.ndim(out[0]) == 0, name
