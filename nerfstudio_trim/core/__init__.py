"""Plain-PyTorch core of nerfstudio-trim. Nothing here imports nerfstudio."""
