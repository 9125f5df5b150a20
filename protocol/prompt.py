"""The prompt every generative method shares (PROTOCOL section 3; paper Appendix E.2)."""

PREAMBLE = ("Below is an instruction that describes a task, paired with an input that provides "
            "further context. Write a response that appropriately completes the request.")
INSTRUCTION = "Can you predict the next possible item that the user may expect?"


def rec_prompt(history_sids):
    """The prompt up to and including the line break after '### Response:'; the answer (the
    target's SID tokens, then end-of-sequence) follows it directly."""
    items = ", ".join(history_sids)
    return (f"{PREAMBLE}\n### Instruction:\n{INSTRUCTION}\n### User Input:\n"
            f"The user has interacted with items {items} in chronological order. "
            f"{INSTRUCTION}\n### Response:\n")
