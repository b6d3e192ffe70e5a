"""Train-time image augmentation in tf.data for real datasets: inception crop, flip, resize.

Every random choice is stateless, seeded per example (see ``pipeline._example_seed``), so the
augmented stream is the same for any number of processes and resumes exactly. Images of any
size go in (decoded uint8 ``[H, W, 3]``); float32 ``[size, size, 3]`` in ``[0, 255]`` comes out.
"""

import tensorflow as tf

AUGMENTS = ("none", "inception_crop")


def resize(image: tf.Tensor, size: int) -> tf.Tensor:
    """Any ``[H, W, 3]`` image -> float32 ``[size, size, 3]`` (bilinear, antialiased; aspect not kept)."""
    image = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear",
                            antialias=True)
    return tf.ensure_shape(image, [size, size, 3])


def inception_crop(image: tf.Tensor, size: int, seed: tf.Tensor, area_min: float = 0.05,
                   area_max: float = 1.0, aspect_min: float = 3 / 4,
                   aspect_max: float = 4 / 3) -> tf.Tensor:
    """A random crop covering ``[area_min, area_max]`` of the image with aspect ratio in
    ``[aspect_min, aspect_max]`` (Szegedy et al. 2015), resized to ``size x size``."""
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image), bounding_boxes=tf.zeros([1, 0, 4], tf.float32), seed=seed,
        area_range=(area_min, area_max), aspect_ratio_range=(aspect_min, aspect_max),
        min_object_covered=0.0, max_attempts=10, use_image_if_no_bounding_boxes=True)
    return resize(tf.slice(image, begin, crop_size), size)


def check_augment(name) -> str:
    """The augmentation name, with a clear error for unknown ones (None or "" mean "none")."""
    name = name or "none"
    if name not in AUGMENTS:
        raise ValueError(f"Unknown data.augment={name!r}; choose one of {AUGMENTS}.")
    return name


def train_image(image: tf.Tensor, size: int, augment: str, seed: tf.Tensor,
                area_min: float = 0.05) -> tf.Tensor | None:
    """The augmented train image, or None when ``augment`` is "none" (the caller then uses its
    deterministic resize and centre crop)."""
    if check_augment(augment) == "inception_crop":
        return inception_crop(image, size, seed, area_min=area_min)
    return None
