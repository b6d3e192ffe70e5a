"""Descriptions of GPUs that XLA compiles for without the GPU being there: a
``GpuTargetConfigProto`` (text) per model, which the CUDA PJRT plugin takes in place of a
device it would otherwise query (``jax.experimental.topologies.get_topology_desc(platform=
"cuda", target_config=..., topology="1x1xN")``). Figures are NVIDIA's published ones for the
SXM part (132 SMs at 1.98 GHz, 228 KiB shared memory per SM, 50 MiB L2, 80 GB HBM3 at
3.35 TB/s; compute capability 9.0)."""

H100_SXM = """
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_block_optin: 232448
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84942979072
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
  cuda_compute_capability { major: 9 minor: 0 }
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 8 patch: 0 }
runtime_version { major: 12 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""

TARGETS = {"h100": H100_SXM}  # --topology h100:8 (8 GPUs in one host)
CUDA_PLUGINS = ("jax_plugins.xla_cuda13", "jax_plugins.xla_cuda12")
