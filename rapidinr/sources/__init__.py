"""Layer 2, sources: images as uint8 tensors (N, C, H, W) from folders, the embedded default set,
scikit-image's photos and torchvision datasets. Depends on core."""
