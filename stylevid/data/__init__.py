"""Video data: the synthetic face-video dataset, the standard dataset format, the loader, real-video preparation."""
