"""multimodal_jax: CLIP / SigLIP contrastive training, ViT classification, captioning and a
text-to-image GAN in JAX / Flax, from a laptop to a TPU pod.

Rooms, top to bottom (imports run one way): ``cli`` (the commands), ``runtime`` (the one
training loop and what surrounds it), ``tasks`` (the Task contract and the four tasks),
``evaluation``, ``pretrained`` (published weights, towers, frozen models), ``models`` (pure
Flax modules), ``data``, ``parallel`` (mesh, drivers, sharding, FLOPs); ``workdir`` and
``fields`` are shared by all. See docs/DESIGN.md.
"""

import importlib.util as _importlib_util
import sys as _sys


def _load_triton_before_tensorflow() -> None:
    """Loads ``triton`` (pulled in by CUDA builds of torch >= 2.14) before this package imports
    TensorFlow, where it is installed. Both bundle their own LLVM and TensorFlow exports its
    copy's symbols to the whole process, so a libtriton loaded after it runs its static
    initialisers against TensorFlow's LLVM and crashes the process (SIGSEGV in
    ``llvm::DebugCounter``); loaded first, each keeps its own. Torch and transformers load
    triton lazily, e.g. when transformers' CLIP or ViT is imported beside our models."""
    if "tensorflow" not in _sys.modules and _importlib_util.find_spec("triton") is not None:
        import triton  # noqa: F401, PLC0415


_load_triton_before_tensorflow()
