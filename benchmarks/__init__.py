"""Side-by-side measurements, run by hand (not in CI): ``python -m benchmarks.<script>``."""
