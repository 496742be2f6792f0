"""A tiny random vision-language model in transformers' own format, built offline, for tests and
benches of the ``hf:`` judge: a LLaVA (CLIP vision tower, 2 layers, 32x32 images in 8x8 patches ->
16 image tokens; a Llama language model, 2 layers) with a word-level tokenizer that knows the
PictoWorld question words, a CLIP image processor and a chat template. Saved with
``save_pretrained`` (safetensors) so it loads as any hub VLM does. Its answers are random: it
checks the plumbing (batching, padding, P(yes) from the first token), not accuracy.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>", "<image>"]
WORDS = ("USER: ASSISTANT: yes Yes YES no No NO is are there a an the of in on at and or to does this figure "
         "show please answer with red blue green yellow purple orange black white gray circle circles square "
         "squares triangle triangles star stars object objects left right top bottom centre center above "
         "below one two three four five person doctor nurse teacher engineer man woman ? . , \" ' :").split()
CHAT_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}USER: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% else %}ASSISTANT: {{ m['content'] if m['content'] is string else m['content'][0]['text'] }} "
    "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")


def build_tiny_vlm(out: str | Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write the tiny random LLaVA to ``out`` (a folder) and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    out = Path(out)
    vocab = {w: i for i, w in enumerate(dict.fromkeys(SPECIALS + WORDS))}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tk.decoder = decoders.WordPiece()
    tk.add_special_tokens(SPECIALS)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                  unk_token="<unk>", padding_side="left")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    text = LlamaConfig(vocab_size=len(vocab), hidden_size=hidden, intermediate_size=2 * hidden,
                       num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=vocab["<image>"],
                      image_token_id=vocab["<image>"], vision_feature_layer=-1,
                      vision_feature_select_strategy="default", image_seq_length=16)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    with torch.no_grad():  # widen the random logits so P(yes) varies between inputs
        model.lm_head.weight.mul_(20.0)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    proc = LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          chat_template=CHAT_TEMPLATE, image_token="<image>", num_additional_image_tokens=1)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    proc.save_pretrained(out)
    return out
