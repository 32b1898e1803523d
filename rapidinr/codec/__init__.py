"""Layer 3, codec: what a set of fitted SIRENs becomes on disk and on the device: pruning masks,
quantization, weight stores, the ``.rinr`` container and :class:`~rapidinr.codec.inrset.INRSet`.
Depends on core and sources."""
