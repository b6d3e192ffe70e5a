"""``--fit``'s search for the largest batch per chip, on synthetic memory curves (no compiler):
it ends on a size that fits next to one that does not, respects the granularity and the
limit, and needs few compiles where memory grows linearly with the batch."""

import pytest

from multimodal_jax.runtime import pod_compile


class Chip:
    """Memory ``fixed + per_example * batch`` (plus ``curve * batch ** 2``) against a capacity
    the compiler reports below the published one, counting the compiles asked for."""

    def __init__(self, fixed=2.0, per_example=0.1, curve=0.0, capacity=15.75):
        self.fixed, self.per_example, self.curve, self.capacity = fixed, per_example, curve, capacity
        self.sizes = []

    def __call__(self, size: int):
        self.sizes.append(size)
        needed = self.fixed + self.per_example * size + self.curve * size ** 2
        return needed <= self.capacity, needed, self.capacity

    def largest(self, granularity=1):
        """The true answer, by walking up the sizes."""
        size = 0
        while self(size + granularity)[0]:
            size += granularity
        return size


@pytest.mark.parametrize("start", [1, 64, 137, 1000])
@pytest.mark.parametrize("curve", [0.0, 2e-4])
def test_it_finds_the_boundary_from_any_start(start, curve):
    chip = Chip(curve=curve)
    found = pod_compile.largest_batch(chip, start, capacity=16.0)
    assert len(chip.sizes) <= 10, chip.sizes  # a handful of compiles, not a walk
    assert found == Chip(curve=curve).largest()
    assert chip(found)[0] and not chip(found + 1)[0]


def test_a_linear_curve_takes_a_few_compiles():
    chip = Chip()
    assert pod_compile.largest_batch(chip, 128, capacity=16.0) == 137
    assert len(chip.sizes) <= 5, chip.sizes


def test_granularity_and_limit_and_nothing_fits():
    chip = Chip()
    found = pod_compile.largest_batch(chip, 100, capacity=16.0, granularity=16)
    assert found == 128 and all(size % 16 == 0 for size in chip.sizes)
    assert pod_compile.largest_batch(Chip(), 8, capacity=16.0, limit=64) == 64
    assert pod_compile.largest_batch(Chip(fixed=20.0), 32, capacity=16.0) == 0


def test_unknown_remat_policies_are_refused_before_any_compile():
    with pytest.raises(pod_compile.config_checks.ConfigError, match="fit_policies"):
        pod_compile.fit(None, "v5e:2x2", policies=("sometimes",))


def test_a_gpu_fits_in_what_jax_preallocates_a_tpu_in_all_its_memory():
    from multimodal_jax.parallel import chips  # noqa: PLC0415 - beside the search tests
    h100, v5e = chips.chip_of("NVIDIA H100 80GB HBM3"), chips.chip_of("TPU v5 lite")
    assert h100.usable_gib({}) == pytest.approx(0.75 * 80e9 / 2 ** 30)
    assert h100.usable_gib({"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9"}) == pytest.approx(0.9 * 80e9 / 2 ** 30)
    assert v5e.usable_gib({"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.5"}) == 16.0
