"""Layer 1, core: configuration, errors, the one PSNR, the SIREN, the one batched Adam, precision,
CPU timing, torchrun rank helpers and the one results writer. Depends on torch and numpy only."""
