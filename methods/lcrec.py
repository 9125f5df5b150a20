"""LC-Rec (Zheng et al., ICDE 2024): multi-task SFT on the shared template: sequential
recommendation, item text -> SID, SID -> item text, and history SIDs -> next item's text
("fusion"); no RL (PROTOCOL section 5; ../shared/REFERENCES.md)."""
from . import register
from .lm.generative import GenerativeMethod


@register("lcrec")
class LCRec(GenerativeMethod):
    display_name = "LC-Rec"
    cost = 40
