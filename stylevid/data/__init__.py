"""Video data: synthetic face videos, the dataset format, the clip loader, real-video preparation."""
