"""The nerfstudio plugin layer: method config, model subclass, input checks."""
