"""Environment-disentangled speaker embeddings (Nam et al. 2024): the objectives of the auto-encoder disentangler.

A speaker network's embedding x is encoded into a speaker code s and an environment (residual) code e, and
decoded back. Each training example is a triplet of utterances of ONE speaker: an anchor, a second utterance
recorded in the same environment (same video) and a third from another environment. The objectives:

- reconstruction: the decoder rebuilds the (stop-gradient) embeddings, half of the steps with the speaker codes
  swapped between the three utterances (`disentangler_decoder_input`), which only works if s carries no more
  than the speaker;
- correlation (`mapc_loss`): the mean absolute Pearson correlation between each s and its e, to be minimised;
- environment (`environment_triplet_loss`): a discriminator on e must tell the same-environment utterance from
  the other one;
- adversarial: the same kind of discriminator on s is trained to tell them apart, and the encoder is trained,
  through a gradient reversal (`gradient_reversal`), to make it fail;

and a speaker classification loss on s, which is the caller's (the released configs use softmax-prototypical).
`disentangler_loss` adds the four terms as the released trainer does.

The paper's method section was not in our stored copies (they gave its abstract and introduction), so every
function here follows the authors' released code, kaistmm/voxceleb-disentangler, named in each docstring.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rl.losses import _checks
from rl.losses import _collectives
from rl.losses import _ops
from rl.losses.hypersphere import l2_normalize


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _reverse(x: jax.Array, scale: float) -> jax.Array:
  return x


def _reverse_fwd(x, scale):
  return x, None


def _reverse_bwd(scale, _, g):
  return (-scale * g,)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: jax.Array, *, scale: float = 1.0) -> jax.Array:
  r"""The gradient reversal layer: the identity forward, the gradient multiplied by -scale backward.

  .. math::
      R(x) = x, \qquad \frac{\partial R}{\partial x} = -\lambda I .

  Placed between an encoder's output and a discriminator, one minimisation step then trains the discriminator to
  solve its task and the encoder to defeat it. The disentangler applies it (as `pytorch_revgrad.RevGrad`,
  lambda = 1) to the speaker codes before the environment discriminator; `disentangler_loss` applies it for you.

  Args:
    x: a floating array.
    scale: lambda >= 0, the factor of the reversed gradient (a Python number).

  Returns:
    `x` unchanged (same shape and dtype), with the reversed gradient.

  Example:
    >>> float(jax.grad(lambda x: 3.0 * gradient_reversal(x, scale=0.5))(2.0))
    -1.5

  Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015,
  https://arxiv.org/abs/1409.7495; used by the disentangler of https://arxiv.org/abs/2406.14559.
  """
  if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale < 0:
    raise ValueError(f"scale must be a Python number >= 0; got {scale!r}.")
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f"x must be a floating array (it is differentiated); got dtype {x.dtype}.")
  return _reverse(x, float(scale))


def mapc_loss(speaker_code: jax.Array, env_code: jax.Array, *, axis_name: str | None = None) -> jax.Array:
  r"""MAPC, the mean absolute Pearson correlation between each speaker code and its environment code.

  For row i, the two codes are centred over their FEATURES (not over the batch) and correlated:

  .. math::
      \rho_i = \frac{\langle s_i - \bar s_i,\; e_i - \bar e_i \rangle}
                    {\lVert s_i - \bar s_i \rVert\, \lVert e_i - \bar e_i \rVert}, \qquad
      L = \frac{1}{N}\sum_{i=1}^{N} \lvert \rho_i \rvert ,

  the mean over the N rows of the GLOBAL batch (`psum` under `axis_name`). A row whose code is constant has no
  correlation (0 / 0); the released code has no epsilon either, so keep the codes non-degenerate.

  Source: after the authors' code, kaistmm/voxceleb-disentangler, loss/MAPC.py (`LossFunction.forward`).

  Args:
    speaker_code: [..., c] speaker codes (the disentangler's first c code units, before normalisation).
    env_code: [..., c] environment codes of the same rows (the code needs spk_dims == env_dims).
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss in [0, 1] (float32 for float32/bfloat16 input).

  Example:
    >>> s = jnp.array([[1.0, 2.0, 3.0], [1.0, 0.0, 1.0]])
    >>> round(float(mapc_loss(s, jnp.array([[3.0, 2.0, 1.0], [2.0, 2.0, 5.0]]))), 4)  # rho = -1, then 0.5
    0.75

  Nam, Heo, Jung & Chung, "Disentangled Representation Learning for Environment-agnostic Speaker Recognition",
  Interspeech 2024, https://arxiv.org/abs/2406.14559 (the MAPC loss); code
  github.com/kaistmm/voxceleb-disentangler.
  """
  _checks.check_array("speaker_code", speaker_code, shape_doc="[..., c]")
  _checks.check_array("env_code", env_code, shape_doc="[..., c]")
  if speaker_code.ndim < 2:
    raise ValueError(f"speaker_code must have shape [..., c] with at least one row axis; got shape "
                     f"{tuple(speaker_code.shape)}.")
  _checks.check_same_shape(speaker_code=speaker_code, env_code=env_code)
  s, e = _ops.to_float32(speaker_code, env_code)
  s = s - jnp.mean(s, axis=-1, keepdims=True)
  e = e - jnp.mean(e, axis=-1, keepdims=True)
  rho = jnp.sum(s * e, axis=-1) / (jnp.linalg.norm(s, axis=-1) * jnp.linalg.norm(e, axis=-1))
  return _collectives.global_mean(jnp.sum(jnp.abs(rho)), rho.size, axis_name)


def environment_triplet_loss(anchor: jax.Array, positive: jax.Array, negative: jax.Array, *, margin: float = 0.3,
                             axis_name: str | None = None) -> jax.Array:
  r"""The environment discriminator's triplet loss: the same-environment utterance must be the nearer one.

  The discriminator's outputs for the anchor, the utterance from the SAME environment (positive) and the one
  from another environment (negative) are L2-normalised to a, p, n, and

  .. math::
      L = \frac{1}{B}\sum_{i=1}^{B} \max\big(0,\; \lVert a_i - p_i\rVert^2 - \lVert a_i - n_i\rVert^2 + m\big),

  the mean over the GLOBAL batch (`psum` under `axis_name`). The disentangler uses it three times: on the
  environment codes (trains the encoder and that discriminator), on the stop-gradient speaker codes (trains the
  second discriminator, `disc_iteration` = 5 steps per encoder step) and, through `gradient_reversal`, on the
  speaker codes (the encoder's adversarial term; see `disentangler_loss`).

  Source: after the authors' code, kaistmm/voxceleb-disentangler, models/ENV_Discriminator.py
  (`EnvDiscriminator.forward`; default margin 0.3 of trainSpeakerNet.py). `F.pairwise_distance` there adds
  1e-6 to each difference; we do not.

  Args:
    anchor: [b, k] discriminator outputs for the anchor utterances (normalised here).
    positive: [b, k] outputs for the utterances from the anchor's environment (same video).
    negative: [b, k] outputs for the utterances from another environment.
    margin: m, the required gap between the two squared distances.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and the mean runs over every device.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input).

  Example:
    >>> a = jnp.array([[1.0, 0.0]]); n = jnp.array([[0.0, 1.0]])
    >>> round(float(environment_triplet_loss(a, a, n)), 4)  # 0 - 2 + 0.3 < 0: no loss
    0.0
    >>> round(float(environment_triplet_loss(a, n, a)), 4)  # 2 - 0 + 0.3
    2.3

  Nam, Heo, Jung & Chung, "Disentangled Representation Learning for Environment-agnostic Speaker Recognition",
  Interspeech 2024, https://arxiv.org/abs/2406.14559 (the environment discriminators); code
  github.com/kaistmm/voxceleb-disentangler.
  """
  _checks.check_embeddings(anchor=anchor, positive=positive, negative=negative)
  a, p, n = (l2_normalize(x) for x in _ops.to_float32(anchor, positive, negative))
  gap = jnp.sum(jnp.square(a - p), axis=-1) - jnp.sum(jnp.square(a - n), axis=-1) + margin
  return _collectives.global_mean(jnp.sum(jax.nn.relu(gap)), anchor.shape[0], axis_name)


def _check_triplets(name: str, x, shape_doc: str) -> None:
  _checks.check_array(name, x, ndim=3, shape_doc=shape_doc)
  if x.shape[1] != 3:
    raise ValueError(f"{name} must have shape {shape_doc} with 3 utterances per speaker (anchor, same "
                     f"environment, other environment); got shape {tuple(x.shape)}.")


def disentangler_decoder_input(key: jax.Array, speaker_code: jax.Array, env_code: jax.Array, *,
                               swap_probability: float = 0.5) -> jax.Array:
  r"""The decoder's input: the L2-normalised codes, the speaker codes rotated between a speaker's utterances.

  With probability `swap_probability` (one draw for the whole batch, as the released code), utterance j of
  every triplet is decoded from the speaker code of utterance (j - 1) mod 3 and its own environment code:

  .. math::
      d_{ij} = \big[\, \hat s_{i,\pi(j)} \,;\, \hat e_{ij} \,\big], \qquad \hat v = v / \lVert v \rVert, \qquad
      \pi = (2, 0, 1) \text{ or the identity.}

  The three utterances share a speaker, so a speaker code that holds only the speaker decodes them all.

  Source: after the authors' code, kaistmm/voxceleb-disentangler, models/Autoencoder.py (`AutoEncoder.forward`
  with `feat_swp=random.random() < 0.5` from SpeakerNet.py).

  Args:
    key: a PRNG key (the same on every device under data parallelism, so that all swap together).
    speaker_code: [b, 3, c_s] speaker codes of each triplet (anchor, same environment, other environment).
    env_code: [b, 3, c_e] environment codes.
    swap_probability: the probability of the rotation (0 never swaps).

  Returns:
    [b, 3, c_s + c_e], float32 for float32/bfloat16 input.

  Example:
    >>> s = jnp.eye(3)[None]; e = jnp.ones((1, 3, 1))
    >>> disentangler_decoder_input(jax.random.key(0), s, e, swap_probability=1.0)[0, :, :3].tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]

  Nam, Heo, Jung & Chung, "Disentangled Representation Learning for Environment-agnostic Speaker Recognition",
  Interspeech 2024, https://arxiv.org/abs/2406.14559; code github.com/kaistmm/voxceleb-disentangler.
  """
  _check_triplets("speaker_code", speaker_code, "[b, 3, c_s]")
  _check_triplets("env_code", env_code, "[b, 3, c_e]")
  if env_code.shape[0] != speaker_code.shape[0]:
    raise ValueError(f"env_code must have {speaker_code.shape[0]} rows (the b of speaker_code, "
                     f"{tuple(speaker_code.shape)}); got shape {tuple(env_code.shape)}.")
  _checks.check_in_range("swap_probability", swap_probability, 0.0, 1.0)
  s, e = (l2_normalize(x) for x in _ops.to_float32(speaker_code, env_code))
  swap = jax.random.uniform(key) < swap_probability
  s = jnp.where(swap, s[:, jnp.array([2, 0, 1])], s)
  return jnp.concatenate([s, e], axis=-1)


def disentangler_loss(embeddings: jax.Array, reconstruction: jax.Array, speaker_code: jax.Array,
                      env_code: jax.Array, env_scores: jax.Array, speaker_env_scores: jax.Array, *,
                      adversarial_weight: float = 0.5, margin: float = 0.3, axis_name: str | None = None,
                      return_terms: bool = False) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
  r"""The disentangler's objective for the encoder step: reconstruction, correlation, environment, adversarial.

  For B triplets of utterances of one speaker (anchor, same environment, other environment):

  .. math::
      L = \underbrace{\tfrac{1}{3BD}\textstyle\sum \lvert \hat x - \mathrm{sg}(x) \rvert}_{\text{reconstruction}}
        + \underbrace{\mathrm{MAPC}(s, e)}_{\text{correlation}}
        + \underbrace{T(D_e(e))}_{\text{environment}}
        + \alpha\, \underbrace{T(D_s(R(s)))}_{\text{adversarial}},

  T the `environment_triplet_loss` (margin 0.3) and R the `gradient_reversal`: the adversarial term adds
  alpha T to the value, and its gradient pushes the encoder to INCREASE T (defeat the speaker-code
  discriminator D_s). Its gradient also reaches `speaker_env_scores`' parameters reversed: as in the released
  trainer, do not update D_s from this loss (its parameters are in a separate optimiser, trained by
  `environment_triplet_loss` on `stop_gradient` speaker codes). Add the speaker classification loss on the
  speaker codes yourself (the released configs: softmax-prototypical, on the anchor and one positive).

  Source: after the authors' code, kaistmm/voxceleb-disentangler, SpeakerNet.py (`SpeakerNet.forward`,
  `ModelTrainer.train_network`: nloss = spk + env_e + adv_alpha env_s_adv + corr + recons; adv_alpha 0.5).

  Args:
    embeddings: [b, 3, d] the speaker network's embeddings x (the reconstruction target; stop-gradient inside).
    reconstruction: [b, 3, d] the decoder's output on `disentangler_decoder_input`.
    speaker_code: [b, 3, c] speaker codes (unnormalised).
    env_code: [b, 3, c] environment codes.
    env_scores: [b, 3, k] outputs of the environment-code discriminator D_e on `env_code`.
    speaker_env_scores: [b, 3, k'] outputs of the speaker-code discriminator D_s on `speaker_code`
      (reversed inside: pass them WITHOUT `gradient_reversal`).
    adversarial_weight: alpha (the code's `adv_alpha`).
    margin: the triplet margin of both discriminator terms.
    axis_name: None when the arrays are the whole batch; the mapped axis name inside `jax.shard_map` or
      `jax.pmap`, where they are this device's shard and every mean runs over every device.
    return_terms: also return the unweighted terms {"reconstruction", "correlation", "environment",
      "adversarial"}.

  Returns:
    The scalar loss (float32 for float32/bfloat16 input), or `(loss, terms)` with `return_terms`.

  Example:
    >>> x = jnp.ones((2, 3, 4)); s = jnp.tile(jnp.array([1.0, 2.0, 0.0]), (2, 3, 1))
    >>> e = jnp.tile(jnp.array([0.0, 2.0, 1.0]), (2, 3, 1))
    >>> d = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[None].repeat(2, 0)  # anchor = same environment
    >>> loss, terms = disentangler_loss(x, x, s, e, d, d, return_terms=True)
    >>> {k: round(float(v), 4) for k, v in terms.items()}
    {'reconstruction': 0.0, 'correlation': 0.5, 'environment': 0.0, 'adversarial': 0.0}

  Nam, Heo, Jung & Chung, "Disentangled Representation Learning for Environment-agnostic Speaker Recognition",
  Interspeech 2024, https://arxiv.org/abs/2406.14559; code github.com/kaistmm/voxceleb-disentangler.
  """
  _check_triplets("embeddings", embeddings, "[b, 3, d]")
  _checks.check_same_shape(embeddings=embeddings, reconstruction=reconstruction)
  _check_triplets("speaker_code", speaker_code, "[b, 3, c]")
  _checks.check_same_shape(speaker_code=speaker_code, env_code=env_code)
  _check_triplets("env_scores", env_scores, "[b, 3, k]")
  _check_triplets("speaker_env_scores", speaker_env_scores, "[b, 3, k']")
  b = embeddings.shape[0]
  for name, x in (("speaker_code", speaker_code), ("env_scores", env_scores),
                  ("speaker_env_scores", speaker_env_scores)):
    if x.shape[0] != b:
      raise ValueError(f"{name} must have {b} rows (the b of embeddings, {tuple(embeddings.shape)}); got shape "
                       f"{tuple(x.shape)}.")
  x, x_hat = _ops.to_float32(embeddings, reconstruction)
  recon = _collectives.global_mean(jnp.sum(jnp.abs(x_hat - jax.lax.stop_gradient(x))), x.size, axis_name)
  corr = mapc_loss(speaker_code, env_code, axis_name=axis_name)
  env = environment_triplet_loss(env_scores[:, 0], env_scores[:, 1], env_scores[:, 2], margin=margin,
                                 axis_name=axis_name)
  rev = gradient_reversal(_ops.to_float32(speaker_env_scores))
  adv = environment_triplet_loss(rev[:, 0], rev[:, 1], rev[:, 2], margin=margin, axis_name=axis_name)
  loss = recon + corr + env + adversarial_weight * adv
  if return_terms:
    return loss, {"reconstruction": recon, "correlation": corr, "environment": env, "adversarial": adv}
  return loss


__all__ = ["gradient_reversal", "mapc_loss", "environment_triplet_loss", "disentangler_decoder_input",
           "disentangler_loss"]
