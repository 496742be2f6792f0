"""Training: presets, resumable training state and one module per stage (CLIP, autoencoder, prior,
decoder, distillation), assembled by ``train_all_stages``.
"""
