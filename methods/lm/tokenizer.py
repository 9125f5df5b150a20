"""An offline tokenizer for the randomly initialised backbones of the smoke and cpu profiles
(PROTOCOL section 8): byte-level BPE trained with the `tokenizers` library on the prompt
template and the item texts (exact round trip, line breaks included), plus one token per SID
code (`<a_k>` ... `<d_k>`, PROTOCOL section 2) and the special tokens."""

PAD, EOS = "<pad>", "<eos>"
LEVEL_NAMES = "abcd"


def sid_tokens(levels=4, n_codes=256):
    return [f"<{LEVEL_NAMES[l]}_{c}>" for l in range(levels) for c in range(n_codes)]


def build_tokenizer(texts, vocab_size=4096, levels=4, n_codes=256, extra_special=()):
    """-> transformers.PreTrainedTokenizerFast (left padding, pad and eos set), with every SID
    code and each of `extra_special` as a single token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    # the template is repeated as often as there are item texts, so its words become single
    # tokens (they occur in every prompt; item-text words compete for merges otherwise)
    from methods.lm.tasks import template_texts
    corpus = template_texts() * max(20, len(texts)) + list(texts)
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS,
                                   padding_side="left")
    fast.add_special_tokens({"additional_special_tokens": sid_tokens(levels, n_codes)
                             + list(extra_special)})
    return fast


def sid_token_table(tok, levels=4, n_codes=256, device="cpu"):
    """(levels, n_codes) tensor: vocabulary id of code c at level l (beam search's input)."""
    import torch
    return torch.tensor(tok.convert_tokens_to_ids(sid_tokens(levels, n_codes)),
                        device=device).view(levels, n_codes)
