"""GPU encode benchmark (issue 15), the Python side.

`peer.py make WORK`: writes two random-weight BERT folders (MiniLM and BERT-base shapes, safetensors) and inputs.json
(a fixed 64 x 256 batch and a 256-prompt corpus of lengths 16-512, as token ids) for TokenEmbed.GpuBench.
`peer.py bench WORK OUT`: encodes the same ids with (a) a plain functional PyTorch BERT encoder (F.linear, SDPA,
layer_norm) and (b) transformers AutoModel with attn_implementation="sdpa", in float16 and bfloat16, and writes
results-python.json. Batches: the fixed batch whole; the corpus sorted by length in batches of 64 padded to the longest
of the batch, for both peers (what TokenEmbed's planner does with MaxBatchTokens = 64 x 512).
"""
import json, os, sys, time
import torch
import torch.nn.functional as F

SHAPES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def make(work):
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    for name, shape in SHAPES.items():
        config = BertConfig(vocab_size=30522, max_position_embeddings=512, **shape)
        config.architectures = ["BertModel"]
        BertModel(config, add_pooling_layer=False).save_pretrained(os.path.join(work, name), safe_serialization=True)
    g = torch.Generator().manual_seed(1)
    fixed = torch.randint(1996, 29612, (64, 256), generator=g).tolist()
    lengths = torch.randint(16, 513, (256,), generator=g).tolist()
    corpus = [torch.randint(1996, 29612, (n,), generator=g).tolist() for n in lengths]
    with open(os.path.join(work, "inputs.json"), "w") as f:
        json.dump({"models": list(SHAPES), "fixed": fixed, "corpus": corpus}, f)


def batches(prompts, size=64):
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    for s in range(0, len(order), size):
        rows = [prompts[i] for i in order[s:s + size]]
        t = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), t, dtype=torch.long)
        mask = torch.zeros(len(rows), t, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        yield ids.cuda(), mask.cuda()


def functional(sd, cfg, ids, mask, dtype):
    h = cfg["hidden_size"]; heads = cfg["num_attention_heads"]; hd = h // heads
    b, t = ids.shape
    x = sd["embeddings.word_embeddings.weight"][ids] + sd["embeddings.position_embeddings.weight"][:t] + sd["embeddings.token_type_embeddings.weight"][0]
    x = F.layer_norm(x, (h,), sd["embeddings.LayerNorm.weight"], sd["embeddings.LayerNorm.bias"], 1e-12)
    bias = torch.zeros(b, 1, 1, t, dtype=dtype, device=ids.device).masked_fill(mask[:, None, None, :] == 0, torch.finfo(dtype).min)
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv = [F.linear(x, sd[p + f"attention.self.{n}.weight"], sd[p + f"attention.self.{n}.bias"]).view(b, t, heads, hd).transpose(1, 2) for n in ("query", "key", "value")]
        a = F.scaled_dot_product_attention(*qkv, attn_mask=bias).transpose(1, 2).reshape(b, t, h)
        x = F.layer_norm(F.linear(a, sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"]) + x, (h,),
                         sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"], 1e-12)
        m = F.gelu(F.linear(x, sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"]))
        x = F.layer_norm(F.linear(m, sd[p + "output.dense.weight"], sd[p + "output.dense.bias"]) + x, (h,),
                         sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"], 1e-12)
    return F.normalize(x.float(), dim=-1)


def bench(work, out):
    from safetensors.torch import load_file
    from transformers import AutoModel
    inputs = json.load(open(os.path.join(work, "inputs.json")))
    results = []
    for name in inputs["models"]:
        folder = os.path.join(work, name)
        cfg = json.load(open(os.path.join(folder, "config.json")))
        for dtype in (torch.float16, torch.bfloat16):
            sd = {k: v.to("cuda", dtype) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
            hf = AutoModel.from_pretrained(folder, torch_dtype=dtype, attn_implementation="sdpa").cuda().eval()
            engines = {
                "pytorch-functional": lambda ids, mask: functional(sd, cfg, ids, mask, dtype),
                "transformers-sdpa": lambda ids, mask: F.normalize(hf(input_ids=ids, attention_mask=mask).last_hidden_state.float(), dim=-1),
            }
            for workload in ("fixed", "corpus"):
                prompts = inputs[workload]
                tokens = sum(len(p) for p in prompts)
                data = list(batches(prompts, 64))
                for engine, run in engines.items():
                    with torch.inference_mode():
                        for ids, mask in data: run(ids, mask).cpu()
                        times = []
                        for _ in range(5):
                            torch.cuda.synchronize(); t0 = time.perf_counter()
                            for ids, mask in data: run(ids, mask).cpu()   # host copy, as TokenEmbed returns host arrays
                            torch.cuda.synchronize(); times.append(time.perf_counter() - t0)
                    median = sorted(times)[len(times) // 2]
                    results.append(dict(engine=engine, model=name, dtype=str(dtype).split(".")[-1], workload=workload, tokens_per_s=tokens / median))
                    print(f"{engine} {name} {dtype} {workload}: {tokens / median:.0f} tokens/s", flush=True)
            del hf, sd
            torch.cuda.empty_cache()
    # MaxSim: 1 query x 10k documents on the device (one batched matmul + max), the peer figure for GPU scoring.
    q = F.normalize(torch.randn(32, 128, device="cuda", dtype=torch.float16), dim=-1)
    d = F.normalize(torch.randn(10000, 180, 128, device="cuda", dtype=torch.float16), dim=-1)
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(10): (d @ q.T).amax(1).sum(-1).cpu()
    torch.cuda.synchronize()
    results.append(dict(engine="pytorch", workload="maxsim-1x10k", docs_per_s=10 * 10000 / (time.perf_counter() - t0)))
    json.dump(results, open(os.path.join(out, "results-python.json"), "w"), indent=1)


if __name__ == "__main__":
    {"make": lambda: make(sys.argv[2]), "bench": lambda: bench(sys.argv[2], sys.argv[3])}[sys.argv[1]]()
