"""Textual Foresight's caption objective (rl.losses.foresight): float64 NumPy references of the released code's
losses (Hugging Face's T5 and OPT cross-entropy with ignore_index=-100), the prefix-LM split, gradients,
1 device == 8 devices, bad inputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rl.losses import foresight as F
from tests import multidevice
from tests.losses import numeric_grad

IGNORE = -100  # the code's label for positions without a loss (padding, prompt, query tokens)


# ------------------------------------------------------------------------------------------------------------
# References written from the released code (blip2_t5.py / blip2_opt.py forward), float64 NumPy, one token at a time.
# ------------------------------------------------------------------------------------------------------------

def loss_reference(logits, labels):
  """CrossEntropyLoss(ignore_index=-100) as T5ForConditionalGeneration applies it: mean over the kept tokens."""
  logits = np.asarray(logits, np.float64)
  total, count = 0.0, 0
  for b in range(labels.shape[0]):
    for t in range(labels.shape[1]):
      y = int(labels[b, t])
      if y == IGNORE:
        continue
      s = logits[b, t]
      m = s.max()
      total += m + math.log(np.sum(np.exp(s - m))) - s[y]
      count += 1
  return total / count


def causal_reference(logits, labels):
  """OPTForCausalLM: logits[:, :-1] predict labels[:, 1:], then the same mean."""
  return loss_reference(np.asarray(logits)[:, :-1], np.asarray(labels)[:, 1:])


def _batch(b=3, t=6, v=11, seed=0, min_length=1):
  rng = np.random.RandomState(seed)
  logits = (2.0 * rng.randn(b, t, v)).astype(np.float32)
  tokens = rng.randint(0, v, size=(b, t))
  lengths = rng.randint(min_length, t + 1, size=b)  # every caption has a token (2 for causal); then padding
  mask = np.arange(t)[None, :] < lengths[:, None]
  labels = np.where(mask, tokens, IGNORE)
  return logits, labels, mask


# ------------------------------------------------------------------------------------------------------------
# foresight_loss
# ------------------------------------------------------------------------------------------------------------

def test_loss_matches_reference_jit_and_ignores_values_at_masked_positions():
  logits, labels, mask = _batch()
  ref = loss_reference(logits, labels)
  np.testing.assert_allclose(F.foresight_loss(logits, labels, mask), ref, rtol=1e-6)
  np.testing.assert_allclose(jax.jit(F.foresight_loss)(logits, labels, mask.astype(np.int32)), ref, rtol=1e-6)
  other = np.where(mask, labels, 7)  # what padding holds does not matter
  np.testing.assert_allclose(F.foresight_loss(logits, other, mask), ref, rtol=1e-6)
  padded = F.foresight_loss(np.pad(logits, ((0, 0), (0, 3), (0, 0))), np.pad(labels, ((0, 0), (0, 3))),
                            np.pad(mask, ((0, 0), (0, 3))))  # more padding: the same loss
  np.testing.assert_allclose(padded, ref, rtol=1e-6)


def test_loss_is_a_token_mean_not_a_caption_mean():
  # Caption A: three tokens under uniform logits over 2 words (ln 2 each); caption B: one certain token (~0).
  logits = np.zeros((2, 3, 2), np.float32)
  logits[1, 0] = [0.0, 100.0]
  targets = np.array([[0, 1, 0], [1, 0, 0]])
  mask = np.array([[1, 1, 1], [1, 0, 0]])
  loss = float(F.foresight_loss(logits, targets, mask))
  np.testing.assert_allclose(loss, 3 * math.log(2) / 4, rtol=1e-6)
  assert abs(loss - math.log(2) / 2) > 0.1  # the mean of per-caption means would be ln 2 / 2


def test_uniform_logits_give_log_vocabulary():
  v = 13
  logits = np.zeros((2, 4, v), np.float32)
  targets = np.array([[1, 2, 3, 4], [5, 6, IGNORE, IGNORE]])
  np.testing.assert_allclose(F.foresight_loss(logits, targets, targets != IGNORE), math.log(v), rtol=1e-6)


def test_causal_is_the_decoder_only_shift():
  # The OPT layout: [query positions | BOS, question, caption, "\n" | padding]; query positions are never targets.
  logits, labels, mask = _batch(b=4, t=9, v=7, seed=1)
  mask[:, :3] = False  # three query positions
  labels = np.where(mask, np.abs(labels), IGNORE)
  ref = causal_reference(logits, labels)
  np.testing.assert_allclose(F.foresight_loss(logits, labels, mask, causal=True), ref, rtol=1e-6)
  np.testing.assert_allclose(F.foresight_loss(logits[:, :-1], labels[:, 1:], mask[:, 1:]), ref, rtol=1e-6)
  assert abs(float(F.foresight_loss(logits, labels, mask)) - ref) > 1e-3  # the two layouts differ


def test_loss_gradients_match_finite_differences_and_bfloat16():
  logits, labels, mask = _batch(b=2, t=4, v=5, seed=2)
  logits = logits.astype(np.float64)
  with jax.enable_x64(True):
    for causal, ref in ((False, loss_reference), (True, causal_reference)):
      g = jax.jit(jax.grad(lambda s, c=causal: F.foresight_loss(s, labels, mask, causal=c)))(logits)
      np.testing.assert_allclose(g, numeric_grad(lambda s, r=ref: r(s, labels), logits), rtol=1e-5, atol=1e-9)
  low = F.foresight_loss(jnp.asarray(logits, jnp.bfloat16), labels, mask)
  assert low.dtype == jnp.float32
  np.testing.assert_allclose(low, loss_reference(logits, labels), rtol=2e-2)


def test_no_target_gives_zero_and_finite_gradients():
  logits = np.ones((2, 3, 4), np.float32)
  loss, g = jax.value_and_grad(F.foresight_loss)(logits, np.zeros((2, 3), np.int32), np.zeros((2, 3), bool))
  assert float(loss) == 0.0 and np.all(np.asarray(g) == 0.0)


@pytest.mark.parametrize("causal", [False, True])
def test_loss_1_equals_8(mesh8, causal):
  logits, labels, mask = _batch(b=16, t=5, v=7, seed=3, min_length=2)  # lengths differ between devices
  fn = lambda s, y, m, axis_name=None: F.foresight_loss(s, y, m, causal=causal, axis_name=axis_name)
  value, _ = multidevice.assert_1_equals_8(fn, mesh8, sharded=(logits, labels, mask))
  ref = (causal_reference if causal else loss_reference)(logits, labels)
  np.testing.assert_allclose(value, ref, rtol=1e-5)
  per_device = np.mean([(causal_reference if causal else loss_reference)(logits[i:i + 2], labels[i:i + 2])
                        for i in range(0, 16, 2)])
  assert abs(per_device - ref) > 1e-4  # the global token mean, not the mean of the devices' token means


# ------------------------------------------------------------------------------------------------------------
# foresight_prefix_split and the prompt
# ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10])
def test_prefix_split_is_uniform_on_one_to_half_the_words(n):
  keys = jax.random.split(jax.random.PRNGKey(n), 3000)
  k = np.asarray(jax.jit(jax.vmap(lambda key: F.foresight_prefix_split(key, jnp.array([n]))[0]))(keys))
  assert k.dtype == np.int32
  if n <= 1:  # `if num_words > 1` in PretrainVQADataset: no split
    assert np.all(k == 0)
    return
  support = np.arange(1, n // 2 + 1)  # random.randint(1, n // 2), both ends included
  assert set(np.unique(k)) == set(support)
  freq = np.bincount(k, minlength=n // 2 + 1)[1:] / len(k)
  np.testing.assert_allclose(freq, 1 / len(support), atol=5 * math.sqrt(0.25 / len(k)))


def test_prefix_split_draws_per_example():
  k = np.asarray(F.foresight_prefix_split(jax.random.PRNGKey(3), jnp.full((200,), 40)))
  assert len(np.unique(k)) > 10 and k.min() >= 1 and k.max() <= 20


def test_prompt_is_the_released_question():
  prompt = F.FORESIGHT_PROMPT.format(F.FORESIGHT_QUESTION.format(10, 20, 30, 40)).lower()
  assert prompt == ("question: what does the screen show if the ui object found at [10, 20, 30, 40] is "
                    "interacted with? answer: ")


def test_foresight_bad_inputs():
  logits, labels, mask = _batch()
  with pytest.raises(ValueError, match=r"logits must have shape \[b, t, V\]; got shape \(3, 6\)"):
    F.foresight_loss(logits[..., 0], labels, mask)
  with pytest.raises(ValueError, match=r"targets must have shape \[3, 6\] .*got shape \(3, 5\)"):
    F.foresight_loss(logits, labels[:, :5], mask)
  with pytest.raises(ValueError, match=r"mask must have shape \[3, 6\].*got shape \(6,\)"):
    F.foresight_loss(logits, labels, mask[0])
  with pytest.raises(ValueError, match=r"targets must be an integer array \(token ids\); got dtype float32"):
    F.foresight_loss(logits, labels.astype(np.float32), mask)
  with pytest.raises(ValueError, match=r"mask must be a boolean or integer \(0/1\) array; got dtype float32"):
    F.foresight_loss(logits, labels, mask.astype(np.float32))
  with pytest.raises(ValueError, match=r"causal=True needs at least 2 positions"):
    F.foresight_loss(logits[:, :1], labels[:, :1], mask[:, :1], causal=True)
  with pytest.raises(ValueError, match=r"num_words must be an integer array"):
    F.foresight_prefix_split(jax.random.PRNGKey(0), jnp.ones(3))
  with pytest.raises(ValueError, match=r"num_words must have shape \[b\]; got shape \(3, 1\)"):
    F.foresight_prefix_split(jax.random.PRNGKey(0), jnp.ones((3, 1), jnp.int32))
