"""A checkpoint restores onto another device count and layout (8 -> 4 and 4 -> 8 devices,
FSDP-split or replicated) with identical values, laid out as the template asks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from multimodal_jax.parallel import mesh as mesh_lib
from multimodal_jax.parallel import sharding
from multimodal_jax.runtime import checkpoint
from multimodal_jax.tasks import contrastive
from tests import tiny

FSDP = ((".*", "fsdp"),)


@functools.lru_cache
def _state(devices: int, rules):
    """The tiny contrastive state on the first ``devices`` devices, split over all of them by
    ``rules`` or replicated (the template a run would restore into)."""
    mesh = mesh_lib.make_mesh(devices if rules else 1, jax.devices()[:devices])
    config = tiny.tiny_contrastive_config()
    model = contrastive.build_model(config, tiny.FakeTokenizer)
    return mesh_lib.init_state(lambda rng: contrastive.create_state(config, model, rng),
                               jax.random.key(0), mesh, rules)


def _distinct(state):
    """Every float value made distinct (optimiser moments included), the layout kept, so a
    misplaced shard cannot go unnoticed; the step is set to 7."""
    def change(x):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        return x * 1.5 + jnp.arange(x.size, dtype=x.dtype).reshape(x.shape) * 1e-3
    layout = jax.tree.map(lambda x: x.sharding, state)
    return jax.device_put(jax.tree.map(change, state).replace(step=jnp.asarray(7)), layout)


def _save_and_restore(tmp_path, saved, template):
    ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(saved)
    ckpt.wait()
    restored = ckpt.restore(template)
    ckpt.close()
    return restored


@pytest.mark.parametrize("source, target", [
    ((8, FSDP), (4, FSDP)), ((8, FSDP), (4, ())), ((4, ()), (8, FSDP))])
def test_restore_onto_another_device_count(tmp_path, source, target):
    (n_from, rules_from), (n_to, rules_to) = source, target
    saved = _distinct(_state(n_from, rules_from))
    restored = _save_and_restore(tmp_path, saved, _state(n_to, rules_to))

    assert int(restored.step) == 7
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.params),
                 jax.device_get(saved.params))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.opt_state),
                 jax.device_get(saved.opt_state))
    kernel = restored.params["image_tower"]["encoder"]["block_0"]["mlp"]["fc1"]["kernel"]
    assert kernel.sharding.mesh.devices.size == n_to
    per_device = sharding.bytes_per_device(restored.params)
    assert len(per_device) == n_to
    total = sum(x.nbytes for x in jax.tree.leaves(restored.params))
    expected = total / n_to if rules_to else total
    assert all(abs(b - expected) / total < 0.02 for b in per_device.values())
