"""How a pure train step runs over devices: the mesh and the state's place on it
(``mesh.py``), the pmap and mesh drivers (``drivers.py``), FSDP sharding rules, micro-batch
accumulation, and analytic FLOP counts with the MFU meter."""
