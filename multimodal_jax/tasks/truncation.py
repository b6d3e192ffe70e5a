"""Truncation (psi) at sampling: trade variety for typical, better-drawn samples.

StyleGAN's truncation trick moves a style vector toward a mean style,
``w' = w_mean + psi * (w - w_mean)``: psi = 1 leaves G's samples as they are, psi = 0 draws the
mean alone. Toward which mean: for a conditional G the unconditional mean (over all captions)
pulls every caption toward one average image, so what the caption asks for fades as psi
falls; StyleGAN-XL and StyleGAN-T truncate toward the condition's own mean instead, and so
does this module. Our G maps noise and condition together (``w = mapping(z, c)``), so each
caption's mean style is estimated by mapping ``NUM_MEAN_SAMPLES`` noise vectors with it. The
noise comes from a fixed key, not from the caller: at psi = 0 every z gives the same image for
one caption, and a caption's mean does not depend on the other captions of its batch.
"""

import jax
import jax.numpy as jnp

NUM_MEAN_SAMPLES = 256  # noise vectors per condition for its mean style
MEAN_NOISE_SEED = 0  # the fixed key of those noise vectors


def check_psi(psi, field: str) -> float:
    """``psi`` as a float in [0, 1]; a clear error naming ``field`` otherwise."""
    if isinstance(psi, bool) or not isinstance(psi, (int, float)) or not 0.0 <= psi <= 1.0:
        raise ValueError(f"{field}={psi!r}: the truncation psi must be a number in [0, 1] (1 = no "
                         "truncation, the samples as trained; lower = closer to each caption's "
                         "mean style, less varied; 0.7 is a common choice).")
    return float(psi)


def truncate(w, w_mean, psi: float):
    """``w_mean + psi * (w - w_mean)``: style vectors moved toward their means."""
    return w_mean + psi * (w - w_mean)


def mean_noise(z_dim: int, num_samples: int = NUM_MEAN_SAMPLES):
    """The fixed noise ``[num_samples, z_dim]`` that every condition's mean style is taken over."""
    return jax.random.normal(jax.random.key(MEAN_NOISE_SEED), (num_samples, z_dim))


def conditional_mean_style(generator, variables: dict, cond, z_dim: int,
                           num_samples: int = NUM_MEAN_SAMPLES):
    """Each condition's mean style ``[B, style_dim]``: the mean of ``generator.style(z, c)``
    over the fixed noise of ``mean_noise``, for every row ``c`` of ``cond``."""
    def styles(z):  # one noise vector, every condition
        batch_z = jnp.broadcast_to(z, (cond.shape[0], z_dim))
        return generator.apply(variables, batch_z, cond, method="style")

    return jnp.mean(jax.vmap(styles)(mean_noise(z_dim, num_samples)), axis=0)
