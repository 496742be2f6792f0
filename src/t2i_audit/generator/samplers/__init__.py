"""Samplers: DDIM / DPM-Solver++ sampling loops over one denoiser contract, driven by diffusers
schedulers, with a torch.Generator per image.
"""
