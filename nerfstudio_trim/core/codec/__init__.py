"""Files: the .nstrim scene format, Morton order, the 3DGS PLY."""
