"""MagicInfiniteTextConditioning: the prompt (or a prompt schedule) and the negative prompt (MI_TEXT)."""

from magicinfinite_core.errors import InputError
from magicinfinite_core.sampling.text import build_text_conditioning


def _context(conditioning, name: str):
    """The text tokens [1, L, D] of a ComfyUI CONDITIONING ([[tensor, {extra}]]) holding one prompt.

    Several entries (Conditioning (Combine)) ask a sampler to average the predictions of several prompts
    at once; a Wan window takes one text context, so they are refused rather than all but one dropped."""
    if conditioning is None:
        return None
    if len(conditioning) != 1:
        raise InputError(
            f"{name}: this CONDITIONING holds {len(conditioning)} prompts (from Conditioning (Combine) or a "
            "similar node); MagicInfinite takes one. Connect a single CLIPTextEncode, or write the prompts "
            "into prompt_schedule with a CLIP connected, one 'seconds: prompt' line each, to change the "
            "prompt over time."
        )
    return conditioning[0][0]


def _encoder(clip, model):
    """What encodes the prompts here: the host's CLIP, else the model's own text encoder (the embedded
    MagicInfinite-Mini brings one), else nothing."""
    if clip is not None:
        return lambda text: clip.encode_from_tokens(clip.tokenize(text))
    if model is not None and model.text_encoder is not None:
        return lambda text: model.text_encoder.encode([text])
    return None


class MagicInfiniteTextConditioning:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt_schedule": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "Encoded by the CLIP input (or the embedded model's text encoder): one prompt, or one "
                    "'seconds: prompt' entry per line (e.g. '0: calm' then '12.5: laughing'). Each window "
                    "follows the prompt in force at its centre. Ignored when positive conditioning is "
                    "connected.")}),
                "negative_prompt": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "Encoded like prompt_schedule when negative conditioning is not connected; only matters "
                    "when the sampler's text_cfg is not 1.")}),
            },
            "optional": {
                "positive": ("CONDITIONING", {"tooltip": (
                    "A single prompt encoded by CLIPTextEncode with the umT5 text encoder (CLIPLoader, type "
                    "wan). Takes precedence over prompt_schedule.")}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt, encoded the same way."}),
                "clip": ("CLIP", {"tooltip": (
                    "The umT5 text encoder (CLIPLoader, type wan), to encode prompt_schedule and "
                    "negative_prompt here.")}),
                "model": ("MI_MODEL", {"tooltip": (
                    "The embedded MagicInfinite-Mini model from MagicInfinite Model Loader: its own text "
                    "encoder encodes prompt_schedule and negative_prompt when neither positive nor clip is "
                    "connected (Wan2.1 models need a CLIP).")}),
            },
        }

    RETURN_TYPES = ("MI_TEXT",)
    RETURN_NAMES = ("text",)
    OUTPUT_TOOLTIPS = ("Prompt(s) by time and the negative prompt, for the MagicInfinite sampler.",)
    FUNCTION = "condition"
    CATEGORY = "MagicInfinite/conditioning"
    DESCRIPTION = ("What the video shows, in words: one prompt from CONDITIONING, or a schedule of prompts "
                   "by time encoded with the connected text encoder (or the embedded model's own).")

    def condition(self, prompt_schedule: str, negative_prompt: str, positive=None, negative=None, clip=None,
                  model=None):
        encode = _encoder(clip, model)
        if encode is None and positive is None and model is not None:
            raise InputError("model: it brings no text encoder (only the embedded MagicInfinite-Mini does); "
                             "connect a CLIP (CLIPLoader with umT5, type wan) or positive conditioning.")
        return (build_text_conditioning(positive=_context(positive, "positive"),
                                        negative=_context(negative, "negative"),
                                        schedule=prompt_schedule, negative_prompt=negative_prompt,
                                        encode=encode),)


NODE_CLASS_MAPPINGS = {"MagicInfiniteTextConditioning": MagicInfiniteTextConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"MagicInfiniteTextConditioning": "MagicInfinite Text Conditioning"}
