"""Models: the bundled generator's networks (tokenizer, CLIP, prior, autoencoder, UNet/DiT decoder),
their config dataclasses and safetensors weight I/O.
"""
