"""What the file stores: one quantizer per Gaussian attribute (format 2.x), their settings, and SH compaction.

Each quantizer maps float parameters to integer codes plus a few float32 side values, and back with one
fixed float32 expression; ``quantize_gaussians`` applies all of them as the file does, and
``fake_quantize_gaussians`` gives the decoded values with straight-through gradients, which is what
quantization-aware fine-tuning renders. So the model renders exactly what the file decodes to.
"""
