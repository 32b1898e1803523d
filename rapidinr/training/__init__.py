"""Layer 5, training: augmentation, the data pipelines (INR, tensor, JPEG, DALI, nvJPEG), ResNet-18,
the training loop under DDP and its epoch timing. Depends on the layers below."""
