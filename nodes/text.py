"""MagicInfiniteTextConditioning: the prompt (or a prompt schedule) and the negative prompt (MI_TEXT)."""

from magicinfinite_core.sampling.text import build_text_conditioning


def _context(conditioning):
    """The text tokens [1, L, D] of a ComfyUI CONDITIONING ([[tensor, {extra}], ...]; the first entry)."""
    return None if conditioning is None else conditioning[0][0]


class MagicInfiniteTextConditioning:
    @classmethod
    def INPUT_TYPES(cls) -> dict:
        return {
            "required": {
                "prompt_schedule": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "Used with a CLIP (umT5) input: one prompt, or one 'seconds: prompt' entry per line "
                    "(e.g. '0: calm' then '12.5: laughing'). Each window follows the prompt in force at its "
                    "centre. Ignored when positive conditioning is connected.")}),
                "negative_prompt": ("STRING", {"default": "", "multiline": True, "tooltip": (
                    "Used with a CLIP input when negative conditioning is not connected; only matters when "
                    "the sampler's text_cfg is not 1.")}),
            },
            "optional": {
                "positive": ("CONDITIONING", {"tooltip": (
                    "A single prompt encoded by CLIPTextEncode with the umT5 text encoder (CLIPLoader, type "
                    "wan). Takes precedence over prompt_schedule.")}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt, encoded the same way."}),
                "clip": ("CLIP", {"tooltip": (
                    "The umT5 text encoder (CLIPLoader, type wan), to encode prompt_schedule and "
                    "negative_prompt here.")}),
            },
        }

    RETURN_TYPES = ("MI_TEXT",)
    RETURN_NAMES = ("text",)
    OUTPUT_TOOLTIPS = ("Prompt(s) by time and the negative prompt, for the MagicInfinite sampler.",)
    FUNCTION = "condition"
    CATEGORY = "MagicInfinite/conditioning"
    DESCRIPTION = ("What the video shows, in words: one prompt from CONDITIONING, or a schedule of prompts "
                   "by time encoded with the connected text encoder.")

    def condition(self, prompt_schedule: str, negative_prompt: str, positive=None, negative=None, clip=None):
        encode = None if clip is None else (lambda text: clip.encode_from_tokens(clip.tokenize(text)))
        return (build_text_conditioning(positive=_context(positive), negative=_context(negative),
                                        schedule=prompt_schedule, negative_prompt=negative_prompt,
                                        encode=encode),)


NODE_CLASS_MAPPINGS = {"MagicInfiniteTextConditioning": MagicInfiniteTextConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"MagicInfiniteTextConditioning": "MagicInfinite Text Conditioning"}
