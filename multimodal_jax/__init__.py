"""multimodal_jax: CLIP / SigLIP contrastive training, ViT classification, captioning and a
text-to-image GAN in JAX / Flax, from a laptop to a TPU pod.

Rooms, top to bottom (imports run one way): ``cli`` (the commands), ``runtime`` (the one
training loop and what surrounds it), ``tasks`` (the Task contract and the four tasks),
``evaluation``, ``pretrained`` (published weights, towers, frozen models), ``models`` (pure
Flax modules), ``data``, ``parallel`` (mesh, drivers, sharding, FLOPs); ``workdir`` and
``fields`` are shared by all. See docs/DESIGN.md.
"""
