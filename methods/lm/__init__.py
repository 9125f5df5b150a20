"""What the LLM-based generative methods share: tokenizer, backbone, SFT loop, GRPO core."""
