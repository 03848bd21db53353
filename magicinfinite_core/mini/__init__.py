"""The embedded stand-in: MagicInfinite-Mini's bundle (small VAE, byte-level text encoder), the demo command,
and the procedural talking-face world it was trained and is measured on. The real engine never needs it.
"""
