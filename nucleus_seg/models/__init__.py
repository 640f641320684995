"""Model components registered into mmdet's registries (imported by :mod:`nucleus_seg.register`)."""
