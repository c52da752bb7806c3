"""haidef-wsi for Python: DICOM whole-slide images, regions and the HAI-DEF encoders with numpy.

A thin layer over the Rust library (https://github.com/haidef-wsi/haidef-wsi): the same reader,
the same models and preprocessing, the same error messages.

    >>> import haidef_wsi
    >>> slide = haidef_wsi.Slide("fixtures/slides/ihc-full")
    >>> patch = slide.read_region(784, 532, 224, 224, level=0)   # (224, 224, 3) uint8
    >>> enc = haidef_wsi.Encoder("path-foundation", weights="path_foundation.safetensors")
    >>> enc.embed(patch[None]).shape
    (1, 384)
"""
from ._native import (Encoder, HaidefError, Patches, Slide, __version__, embed_audio, embed_images, embed_slide,
                      models, tune_cpu_inference)

__all__ = ["Encoder", "HaidefError", "Patches", "Slide", "__version__", "embed_audio", "embed_images", "embed_slide",
           "models", "tune_cpu_inference"]
