"""MagicInfinite-Mini: the recipe that trains the embedded small model on the procedural talking-face world.

`python -m training.recipe` runs it all (docs/mini.md): VAE, audio encoder, stage 1 (image + text -> video),
stage 2 (audio adapter on the face regions, face-weighted loss), distillation into a 4-step CFG-free student,
and writes the bundle. `python -m training.continuation` is a measured trial beside it, not part of the
recipe: the student trained further on windows held on motion frames it produced. Training is not part of
the pack's runtime: nothing in magicinfinite_core imports it.
"""
