"""Textual Foresight: caption the NEXT app screen from the current screen and the action taken on it.

Burns, Saenko & Plummer pretrain a BLIP-2 model on (screen s_t, action a_t, next screen s_{t+1}) triplets of app
action sequences: from the image of s_t and a question that names the acted-on element, the model generates a
caption of s_{t+1}. What is specific to the method, as functions of arrays:

- `foresight_loss`: the objective, teacher-forced token cross-entropy of the next-screen caption, averaged over
  every target token of the global batch (not per caption), padding and conditioning positions masked out;
- `foresight_prefix_split`: the prefix-language-modelling split of each caption used with the Flan-T5 decoder:
  a random number of its leading words moves into the encoder's prompt, the rest is the target.

The conditioning is strings and networks, and stays the caller's: the question is `FORESIGHT_QUESTION` with the
element's box, wrapped in `FORESIGHT_PROMPT` and lower-cased (the authors' `blip_question` processor, which also
lower-cases the caption and truncates both to 50 words); the frozen ViT encodes s_t; the Q-Former reads the
image AND that prompt (the configs' `text_condition_qformer: True`); its 32 projected query outputs, then the
prompt's tokens (plus the caption prefix), form the language model's input. The language model (Flan-T5-XL) is
frozen; the Q-Former and the projection train.

What is implemented, and what is not. The released Textual Foresight pretraining
(`run_scripts/blip2/train/pretrain_stage2_textual_foresight.sh`, `pretrain_stage2_fortune_flant5.yaml`) is BLIP-2
stage 2 only, started from BLIP-2's released stage-2 Flan-T5-XL checkpoint; its only loss is the language model's
caption cross-entropy, which `foresight_loss` is. BLIP-2's stage-1 terms (image-text contrastive, matching and
Q-Former captioning) are not part of that recipe: the repository has a `pretrain_stage1_fortune.yaml`, but no
released script or result uses it, and they are not implemented here. The paper's method section was not in our
stored copies, so everything here follows the authors' released code (github.com/aburns4/textualforesight:
`lavis/models/blip2_models/blip2_t5.py` and `blip2_opt.py` `forward`, `lavis/datasets/datasets/
app_pretrain_datasets.py` `PretrainVQADataset`, `pretrain_stuff/gpt_jsons/make_fortune_caption_files.py`); each
docstring names what it transcribes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops

FORESIGHT_QUESTION = "What does the screen show if the UI object found at [{}, {}, {}, {}] is interacted with?"
"""The action question, formatted with the acted-on element's box (make_fortune_caption_files.py `QUESTION`)."""

FORESIGHT_PROMPT = "Question: {} Answer: "
"""The prompt around the question (PretrainVQADataset); the whole prompt is then lower-cased."""


def foresight_loss(logits: jax.Array, targets: jax.Array, mask: jax.Array, *, causal: bool = False,
                   axis_name: str | None = None) -> jax.Array:
  r"""Textual Foresight's objective: teacher-forced cross-entropy of the next screen's caption, per target token.

  With :math:`s_{bt}` the language model's logits at position t of example b, :math:`y_{bt}` the target token and
  :math:`m_{bt} \in \{0, 1\}` the target mask,

  .. math::
      L = -\frac{1}{\sum_{b,t} m_{bt}} \sum_{b,t} m_{bt} \log \frac{\exp s_{bt y_{bt}}}{\sum_v \exp s_{btv}} ,

  the mean over every caption token of the global batch (a long caption weighs more than a short one), as the
  language models' `CrossEntropyLoss(ignore_index=-100)` of the authors' code reduces it. No label smoothing.

  Layouts. `causal=False` (encoder-decoder, the paper's Flan-T5 model; `Blip2T5.forward`): `logits[:, t]` already
  predicts `targets[:, t]` (the decoder reads the targets shifted right); the encoder reads the query outputs, the
  prompt and the caption prefix (`foresight_prefix_split`); `targets` are the tokens of the rest of the caption
  with T5's closing `</s>`, and `mask` is their attention mask (padding off). `causal=True` (decoder-only, the
  authors' OPT variant; `Blip2OPT.forward`): `logits` cover the whole input sequence, query positions, prompt and
  caption, and position t predicts `targets[:, t + 1]` (the first target and the last logit are dropped, the
  shift of `OPTForCausalLM`); `targets` are the input tokens themselves and `mask` is 0 on the query positions and
  the padding. The OPT configuration leaves `prompt` empty, so there the question tokens (and OPT's leading
  `</s>`) are targets too; mask them to train on the caption alone.

  With `axis_name` the mean runs over every device's target tokens (psum of the sums and of the counts), the
  single-device objective on the global batch. The authors' DDP run averaged per-GPU token means instead, which
  equals this only when every GPU holds as many target tokens. A batch without any target gives 0 (not NaN).
  The log-softmax runs in float32 for bfloat16 logits.

  Args:
    logits: [b, t, V] the language model's logits (float).
    targets: int [b, t] the caption tokens; entries where `mask` is 0 are ignored (any value, e.g. -100).
    mask: bool or int [b, t], 1 where `targets` is a caption token to predict.
    causal: whether `logits[:, t]` predicts `targets[:, t + 1]` (decoder-only) instead of `targets[:, t]`.
    axis_name: None for the whole batch; the mapped axis inside `jax.shard_map`/`jax.pmap`, where the arrays are
      this device's examples and the token mean runs over all devices.

  Returns:
    The scalar mean negative log-likelihood per target token (float32 for float32/bfloat16 logits).

  Example:
    >>> logits = jnp.zeros((2, 3, 8))  # uniform over a vocabulary of 8
    >>> targets = jnp.array([[1, 2, 0], [4, 0, 0]])
    >>> mask = jnp.array([[1, 1, 0], [1, 0, 0]])  # three caption tokens, the rest padding
    >>> round(float(foresight_loss(logits, targets, mask)), 4)  # log 8
    2.0794

  Burns, Saenko & Plummer, "Tell Me What's Next: Textual Foresight for Generic UI Representations", Findings of
  ACL 2024, https://arxiv.org/abs/2406.07822; code github.com/aburns4/textualforesight.
  """
  _checks.check_array("logits", logits, ndim=3, shape_doc="[b, t, V]")
  b, t, _ = logits.shape
  for name, x in (("targets", targets), ("mask", mask)):
    _checks.check_array(name, x, ndim=2, floating=False, shape_doc=f"[{b}, {t}]")
    if tuple(x.shape) != (b, t):
      raise ValueError(f"{name} must have shape [{b}, {t}] (one entry per position of logits, [b, t, V]); "
                       f"got shape {tuple(x.shape)}.")
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    raise ValueError(f"targets must be an integer array (token ids); got dtype {targets.dtype}.")
  if not (mask.dtype == jnp.bool_ or jnp.issubdtype(mask.dtype, jnp.integer)):
    raise ValueError(f"mask must be a boolean or integer (0/1) array; got dtype {mask.dtype}.")
  if causal:
    if t < 2:
      raise ValueError(f"causal=True needs at least 2 positions (position t predicts token t + 1); got t = {t}.")
    logits, targets, mask = logits[:, :-1], targets[:, 1:], mask[:, 1:]
  on = mask.astype(bool)
  logp = jax.nn.log_softmax(_ops.to_float32(logits), axis=-1)
  safe = jnp.where(on, targets, 0).astype(jnp.int32)  # ignored entries may hold -100
  nll = -jnp.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
  total = _collectives.psum(jnp.sum(jnp.where(on, nll, 0.0)), axis_name)
  count = _collectives.psum(jnp.sum(on, dtype=jnp.float32), axis_name)
  return total / jnp.maximum(count, 1.0)


def foresight_prefix_split(key: jax.Array, num_words: jax.Array) -> jax.Array:
  r"""How many leading caption words move into the prompt: Textual Foresight's prefix-LM split (Flan-T5 recipe).

  For a caption of n words,

  .. math::
      k \sim \mathcal{U}\{1, \dots, \lfloor n / 2 \rfloor\} \ \text{if } n > 1, \qquad k = 0 \ \text{otherwise},

  drawn afresh for every example at every step. The caller appends the first k words (and a space) to the prompt
  the encoder and the Q-Former read, and the remaining n - k words are the decoder's target (`foresight_loss`);
  with k = 0 the whole caption is the target. Words are the caption's space-separated words after the
  `blip_question` processing (lower-cased), not tokens.

  Source: after the authors' code, `PretrainVQADataset.__getitem__` with `use_prefix_lm` (textualforesight,
  lavis/datasets/datasets/app_pretrain_datasets.py: `prefix_split = random.randint(1, len(words) // 2)`,
  inclusive), on in `pretrain_stage2_fortune_flant5.yaml` and off for the OPT variant.

  Args:
    key: a `jax.random` key.
    num_words: int [b] the number of words of each caption (n >= 0).

  Returns:
    int32 [b] k, the number of leading words that go into the prompt.

  Example:
    >>> k = foresight_prefix_split(jax.random.PRNGKey(0), jnp.array([1, 3, 10, 0]))
    >>> k.shape, int(k[0]), int(k[1]), 1 <= int(k[2]) <= 5, int(k[3])
    ((4,), 0, 1, True, 0)

  Burns, Saenko & Plummer, "Tell Me What's Next: Textual Foresight for Generic UI Representations", Findings of
  ACL 2024, https://arxiv.org/abs/2406.07822; code github.com/aburns4/textualforesight.
  """
  _checks.check_array("num_words", num_words, ndim=1, floating=False, shape_doc="[b]")
  if not jnp.issubdtype(num_words.dtype, jnp.integer):
    raise ValueError(f"num_words must be an integer array (words per caption); got dtype {num_words.dtype}.")
  n = num_words.astype(jnp.int32)
  high = jnp.maximum(n // 2, 1)
  k = jax.random.randint(key, n.shape, 1, high + 1, dtype=jnp.int32)
  return jnp.where(n > 1, k, 0)


__all__ = ["foresight_loss", "foresight_prefix_split"]
