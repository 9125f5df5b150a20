"""ReaRec's RecBole model (methods/rearec.py documents the method). A module of its own, at
module level, because RecBole pickles the model class with every checkpoint (so its name must
not change); importing it imports RecBole."""
from ._recbole_compat import import_recbole

import_recbole()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from recbole.model.abstract_recommender import SequentialRecommender  # noqa: E402
from recbole.model.layers import TransformerEncoder  # noqa: E402
from torch import nn  # noqa: E402

VARIANTS = ("erl", "prl")
MASK = -10000.0            # RecBole's additive attention mask value


class ReaRec(SequentialRecommender):
    """SASRec encoder + K cached reasoning steps; `variant` picks the ERL or PRL head."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.variant = config["variant"]
        if self.variant not in VARIANTS:
            raise ValueError(f"rearec variant '{self.variant}': choose from {VARIANTS}")
        self.K = int(config["reason_steps"])
        self.tau = float(config["temperature"])
        H = self.hidden_size = config["hidden_size"]
        self.n_heads = config["n_heads"]
        self.item_embedding = nn.Embedding(self.n_items, H, padding_idx=0)
        self.position_embedding = nn.Embedding(self.max_seq_length, H)
        self.reason_embedding = nn.Embedding(max(self.K, 1), H)
        self.trm_encoder = TransformerEncoder(
            n_layers=config["n_layers"], n_heads=self.n_heads, hidden_size=H,
            inner_size=config["inner_size"],
            hidden_dropout_prob=config["hidden_dropout_prob"],
            attn_dropout_prob=config["attn_dropout_prob"],
            hidden_act=config["hidden_act"], layer_norm_eps=config["layer_norm_eps"])
        # every step's input (items and reasoning tokens) goes through one LayerNorm and
        # dropout, as in the reference implementation's reasoning wrapper
        self.LayerNorm = nn.LayerNorm(H, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["input_dropout_prob"])
        self.erl_kl_weight = float(config["erl_kl_weight"])
        self.pl_weight = float(config["prl_pl_weight"])
        self.temp_scale = float(config["prl_temp_scale"])
        self.noise = float(config["prl_noise"])
        self.cl_weight = float(config["prl_cl_weight"])
        self.warmup = int(config["prl_warmup_epochs"])
        self.epoch = 0                      # set by the trainer before every epoch
        self.initializer_range = config["initializer_range"]
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # --- encoder with a key/value cache --------------------------------------------
    def _item_inputs(self, item_seq):
        pos = torch.arange(item_seq.size(1), device=item_seq.device)
        x = self.item_embedding(item_seq) + self.position_embedding(pos)[None]
        return self.dropout(self.LayerNorm(x))

    def _reason_input(self, h, k):
        """Input of reasoning step k (0-based): h_k + step embedding k. h (R, H)."""
        return self.dropout(self.LayerNorm(h + self.reason_embedding.weight[k]))

    def _noisy_reason_input(self, h, k, noise):
        """The clean and the noised input of reasoning step k for the two branches, (2R, H):
        the noise N(0, noise^2) is added to h_k + step embedding k *before* the LayerNorm and
        the dropout, and the two halves get their own dropout masks (TangJiakai/ReaRec,
        src/utils/layers.py, ReaRecAutoRegressiveWrapper.forward: the noised inputs are
        concatenated to the clean ones, then LayerNorm and dropout run on the doubled batch)."""
        x = h + self.reason_embedding.weight[k]
        return self.dropout(self.LayerNorm(torch.cat([x, x + noise * torch.randn_like(x)])))

    def _split(self, att, x):
        B, T, _ = x.shape
        return x.view(B, T, att.num_attention_heads, att.attention_head_size).transpose(1, 2)

    def _attend(self, att, x, keys, values, mask):
        """RecBole's MultiHeadAttention on queries x (B, q, H) against (B, h, T, d) keys
        and values; mask additive (B, 1, q, T)."""
        q = self._split(att, att.query(x))
        scores = q @ keys.transpose(-1, -2) / att.sqrt_attention_head_size + mask
        probs = att.attn_dropout(att.softmax(scores))
        ctx = (probs @ values).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return att.LayerNorm(att.out_dropout(att.dense(ctx)) + x)

    def encode(self, item_seq):
        """History pass: -> (last-layer states (B, L, H), cache [(keys, values)] per
        layer, key mask (B, L) additive)."""
        x = self._item_inputs(item_seq)
        mask = self.get_attention_mask(item_seq)              # (B, 1, L, L)
        cache = []
        for layer in self.trm_encoder.layer:
            att = layer.multi_head_attention
            k, v = self._split(att, att.key(x)), self._split(att, att.value(x))
            cache.append((k, v))
            x = layer.feed_forward(self._attend(att, x, k, v, mask))
        key_mask = torch.where(item_seq != 0, 0.0, MASK)
        return x, cache, key_mask

    def step(self, x, cache, key_mask):
        """One reasoning token x (B, H) through every layer, attending to the cache and
        appending its keys/values. -> (output (B, H), cache, key_mask)."""
        h = x[:, None]
        key_mask = torch.cat([key_mask, key_mask.new_zeros((len(x), 1))], 1)
        new = []
        for layer, (k, v) in zip(self.trm_encoder.layer, cache):
            att = layer.multi_head_attention
            k = torch.cat([k, self._split(att, att.key(h))], 2)
            v = torch.cat([v, self._split(att, att.value(h))], 2)
            new.append((k, v))
            h = layer.feed_forward(self._attend(att, h, k, v, key_mask[:, None, None, :]))
        return h[:, 0], new, key_mask

    def states(self, item_seq, item_seq_len, noise=0.0):
        """h_0..h_K (B, K+1, H), and with noise > 0 also the noised branch's h_0..h_K
        (B, K+1, H). The noised branch is the reference's: the whole batch is run twice
        (TangJiakai/ReaRec, src/utils/layers.py, ReaRecAutoRegressiveWrapper.forward repeats
        the input batch twice when noise is on), so the second copy has its own dropout pass
        over the history and over every reasoning step, and its own cache; its step-k input is the
        *clean* branch's h_k + step embedding k + N(0, noise^2), as in the reference."""
        B = len(item_seq)
        if noise > 0:
            item_seq, item_seq_len = item_seq.repeat(2, 1), item_seq_len.repeat(2)
        out, cache, key_mask = self.encode(item_seq)
        h = self.gather_indexes(out, item_seq_len - 1)         # (B or 2B, H)
        hs, noisy = [h[:B]], [h[B:]]
        for k in range(self.K):
            x = (self._noisy_reason_input(hs[-1], k, noise) if noise > 0
                 else self._reason_input(hs[-1], k))
            y, cache, key_mask = self.step(x, cache, key_mask)
            hs.append(y[:B])
            noisy.append(y[B:])
        return torch.stack(hs, 1), (torch.stack(noisy, 1) if noise > 0 else None)

    # --- RecBole API ---------------------------------------------------------------
    def seq_output(self, S):
        return S.mean(1) if self.variant == "erl" else S[:, -1]

    def forward(self, item_seq, item_seq_len):
        S, _ = self.states(item_seq, item_seq_len)
        return self.seq_output(S)

    def losses(self, item_seq, item_seq_len, target, epoch=None):
        """Named loss terms of one batch; their sum is the training loss."""
        epoch = self.epoch if epoch is None else epoch
        E = self.item_embedding.weight
        noise = self.noise if (self.variant == "prl" and self.cl_weight > 0 and
                               self.training and epoch >= self.warmup) else 0.0
        S, noisy = self.states(item_seq, item_seq_len, noise)
        if self.variant == "erl":
            logits = S @ E.T / self.tau                              # (B, T, N)
            # mean_k(h_k) E^T = mean_k(h_k E^T): the ensemble's logits from the steps' logits
            ce = F.cross_entropy(logits.mean(1), target)
            logp = F.log_softmax(logits, -1)
            p = logp.exp()
            # KL(p_j || p_i) = sum_n p_j (log p_j - log p_i), log p_i detached
            neg_ent = (p * logp).sum(-1)                             # (B, T)
            cross = torch.bmm(logp.detach(), p.transpose(1, 2))     # (B, T_i, T_j)
            kl = neg_ent[:, None, :] - cross
            T = S.shape[1]
            off = ~torch.eye(T, dtype=torch.bool, device=S.device)
            div = kl[:, off].mean()
            return {"ce": ce, "kl_diversity": -self.erl_kl_weight * div}
        ce = F.cross_entropy(S[:, -1] @ E.T / self.tau, target)
        out = {"ce": ce}
        if self.K > 0 and self.pl_weight > 0:
            early = S[:, :-1]                                          # h_0..h_{K-1}
            T = early.shape[1]
            temps = self.tau * self.temp_scale ** torch.arange(T, 0, -1, device=S.device,
                                                                 dtype=S.dtype)
            logits = early @ E.T / temps[None, :, None]
            # The MEAN over the B x K rows, i.e. the mean over the K earlier steps of each
            # step's batch-mean CE, not their sum: the authors' code reduces the stacked
            # (B*K, N) logits with one `nn.CrossEntropyLoss` (default reduction "mean")
            # (TangJiakai/ReaRec, src/models/PRL.py, PRL.loss: pl_loss is that loss over the
            # (B*T, N) scaled logits and the repeated labels); at K = 2 a sum would double
            # this term. We follow the code (methods/README.md, ReaRec).
            out["progressive"] = self.pl_weight * F.cross_entropy(
                logits.reshape(-1, E.shape[0]), target.repeat_interleave(T))
        if noisy is not None:
            clean, noisy = S[:, 1:], noisy[:, 1:]                      # h_1..h_K
            sim = torch.einsum("btd,ktd->btk", noisy, clean) / self.tau  # (B, K, B)
            labels = torch.arange(len(S), device=S.device)[:, None].expand(-1, self.K)
            out["contrastive"] = self.cl_weight * F.cross_entropy(sim.permute(0, 2, 1),
                                                                  labels)
        return out

    def calculate_loss(self, interaction):
        terms = self.losses(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                            interaction[self.POS_ITEM_ID])
        return sum(terms.values())

    def predict(self, interaction):
        seq = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (seq * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        seq = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return seq @ self.item_embedding.weight.T
