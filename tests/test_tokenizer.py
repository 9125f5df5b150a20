import torch

from protocol.prompt import rec_prompt
from methods.lm.tokenizer import build_tokenizer, sid_tokens


def test_tokenizer_round_trip_and_reload(tmp_path):
    from transformers import AutoTokenizer
    tok = build_tokenizer(["camping tent two person", "cycling gloves"], vocab_size=600,
                          n_codes=8)
    tok.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    hist = ["".join(["<a_1>", "<b_2>", "<c_3>", "<d_4>"]), "".join(["<a_0>", "<b_7>",
                                                                         "<c_0>", "<d_5>"])]
    text = rec_prompt(hist) + "<a_5><b_1><c_2><d_3>" + tok.eos_token
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text                                   # exact, line breaks too
    assert text.count("\n") == 6
    sid_ids = tok.convert_tokens_to_ids(sid_tokens(4, 8))
    assert len(set(sid_ids)) == 32 and tok.unk_token_id not in sid_ids
    assert tok("<a_5><b_1>")["input_ids"] == tok.convert_tokens_to_ids(["<a_5>", "<b_1>"])
    batch = tok(["short", "a much longer input"], padding=True, return_tensors="pt")
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1   # left
    assert torch.equal(batch["input_ids"][0, :1], torch.tensor([tok.pad_token_id]))
