"""Layer 4, encoding: images → fitted SIRENs → compressed set: the batched fit, compression rounds,
the chunked encode with its checkpoints, learned inits and their fit settings, the sharded encode.
Depends on core, sources and codec."""
