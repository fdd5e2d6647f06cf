"""The differentiable rasterizer: projection, tiles, compositing, SH, and the backend choice (gsplat on CUDA,
our pure-PyTorch rasterizer elsewhere)."""
