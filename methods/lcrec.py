"""LC-Rec (Zheng et al., ICDE 2024): multi-task SFT on the shared template: sequential
recommendation, item text -> SID, SID -> item text, and history SIDs -> next item's text
("fusion"); no RL (PROTOCOL section 5; ../shared/REFERENCES.md)."""
from .lm.generative import GenerativeMethod


class LCRec(GenerativeMethod):
    """Everything is the generative core's; its YAML names the four SFT tasks."""
