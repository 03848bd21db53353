"""Self-attention over a token sequence split evenly across the processes of a group.

Each process holds `chunk` consecutive tokens (q, k, v [B, chunk, H, D]); only the first `total` tokens of
the concatenation are real, the rest are padding in the last process(es) and are never used as keys.

- Ulysses (heads divisible by the processes): one all-to-all turns the sequence split into a head split,
  each process attends over the whole sequence for H/N heads, a second all-to-all turns it back.
- Ring (any head count): the k/v chunks travel round the ring (send to the next process, receive from the
  previous); each process merges its partial attentions by their log-sum-exp (online softmax), in float32.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from magicinfinite_core.models.attention import attention


def ulysses_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, total: int,
                      group: dist.ProcessGroup | None) -> torch.Tensor:
    """[B, chunk, H, D] held queries/keys/values -> held outputs [B, chunk, H, D]."""
    world = dist.get_world_size(group)
    batch, chunk, heads, head_dim = q.shape
    # [3, B, chunk, N, H/N, D] -> [N, 3, B, chunk, H/N, D]: slice j (heads j) goes to process j
    send = torch.stack([q, k, v]).unflatten(3, (world, heads // world)).permute(3, 0, 1, 2, 4, 5).contiguous()
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=group)
    # received[i] = process i's tokens for this process's heads
    q_all, k_all, v_all = received.permute(1, 2, 0, 3, 4, 5).reshape(3, batch, world * chunk, -1, head_dim)
    out = attention(q_all, k_all[:, :total], v_all[:, :total])
    send = out.unflatten(1, (world, chunk)).transpose(0, 1).contiguous()  # [N, B, chunk, H/N, D]
    received = torch.empty_like(send)
    dist.all_to_all_single(received, send, group=group)
    return received.permute(1, 2, 0, 3, 4).reshape(batch, chunk, heads, head_dim)


def _partial_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of q [B, Lq, H, D] to one block of keys: output [B, Lq, H, D] and its log-sum-exp
    [B, Lq, H, 1], both float32."""
    scores = torch.einsum("bqhd,bkhd->bhqk", q.float(), k.float()) * q.shape[-1] ** -0.5
    lse = torch.logsumexp(scores, dim=-1, keepdim=True)
    out = torch.einsum("bhqk,bkhd->bqhd", torch.exp(scores - lse), v.float())
    return out, lse.permute(0, 2, 1, 3)


def ring_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, total: int,
                   group: dist.ProcessGroup | None) -> torch.Tensor:
    """[B, chunk, H, D] held queries/keys/values -> held outputs [B, chunk, H, D]."""
    group = group or dist.group.WORLD
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    chunk = q.shape[1]
    following = dist.get_global_rank(group, (rank + 1) % world)
    previous = dist.get_global_rank(group, (rank - 1) % world)
    kv = torch.stack([k, v]).contiguous()
    out = lse = None
    for step in range(world):
        owner = (rank - step) % world  # the process whose keys this process holds now
        pending = []
        if step < world - 1:
            incoming = torch.empty_like(kv)
            pending = dist.batch_isend_irecv([
                dist.P2POp(dist.isend, kv, following, group),
                dist.P2POp(dist.irecv, incoming, previous, group),
            ])
        real = min(chunk, max(total - owner * chunk, 0))  # padding keys are left out
        if real:
            block_out, block_lse = _partial_attention(q, kv[0][:, :real], kv[1][:, :real])
            if out is None:
                out, lse = block_out, block_lse
            else:
                merged = torch.logaddexp(lse, block_lse)
                out = out * torch.exp(lse - merged) + block_out * torch.exp(block_lse - merged)
                lse = merged
        for request in pending:
            request.wait()
        if step < world - 1:
            kv = incoming
    return out.to(q.dtype)
