"""Stand-in models: CLIP-shaped and multilingual-encoder-shaped, built offline with random weights.

They make the site run where no real weights can be downloaded. They do NOT understand images:
their vectors are deterministic but meaningless. ``full_size=True`` builds the real
architectures (CLIP ViT-B/32 and a DistilBERT-multilingual-sized encoder), so benchmarks pay the
same compute as the real models.
"""

from __future__ import annotations

from pathlib import Path

# A little of many scripts, so the locally trained tokenizers have a multilingual vocabulary.
_CORPUS = [
    "a photo of a cat sleeping on a sofa",
    "a red car parked on the street at night",
    "mountains with snow under a blue sky",
    "a dog running on the beach",
    "people at a market",
    "ein Foto einer Katze auf dem Sofa",
    "ein roter Hund am Strand",
    "Berge mit Schnee im Winter",
    "une photo d'un chat sur le canapé",
    "une voiture rouge dans la rue",
    "un perro en la playa",
    "一只猫在沙发上睡觉",
    "红色的汽车停在街上",
    "雪山和蓝天",
    "海滩上奔跑的狗",
    "ソファで寝ている猫",
    "赤い車",
    "고양이 사진",
    "صورة قطة نائمة على الأريكة",
    "سيارة حمراء في الشارع",
    "фотография кошки на диване",
    "красная машина на улице",
    "γάτα στον καναπέ",
    "बिल्ली की तस्वीर",
    "0123456789 .,;:!?()-'\"",
]
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _train_tokenizer(*, model_max_length: int):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, handle_chinese_chars=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(_CORPUS * 4, trainers.WordPieceTrainer(vocab_size=1000, special_tokens=_SPECIAL))
    return bert_tokenizer(tok, model_max_length=model_max_length)


def bert_tokenizer(tok, *, model_max_length: int):
    """A trained WordPiece ``tokenizers.Tokenizer`` wrapped as BERT's fast tokenizer ([CLS] text [SEP])."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        bos_token="[CLS]",
        eos_token="[SEP]",
        model_max_length=model_max_length,
    )


def build_clip(target: Path, *, dimensions: int = 512, full_size: bool = False, seed: int = 0) -> Path:
    """A CLIP image+text model (transformers CLIPModel) saved as a SentenceTransformer folder."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    tokenizer = _train_tokenizer(model_max_length=77)
    if full_size:  # openai/clip-vit-base-patch32
        text = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8)
        vision = dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
        )
        vocab_size = 49408
    else:
        text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        vision = dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
        vocab_size = tokenizer.vocab_size
    config = CLIPConfig(
        text_config=dict(
            text,
            vocab_size=vocab_size,
            max_position_embeddings=77,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.cls_token_id,
            eos_token_id=tokenizer.sep_token_id,
        ),
        vision_config=vision,
        projection_dim=dimensions,
    )
    image_size = vision["image_size"]
    processor = CLIPProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
        ),
        tokenizer=tokenizer,
    )
    raw = target.with_name(target.name + ".hf")
    CLIPModel(config).save_pretrained(raw)
    processor.save_pretrained(raw)
    SentenceTransformer(modules=[Transformer(str(raw))], device="cpu").save(str(target))
    _rmtree(raw)
    return target


def build_text_encoder(target: Path, *, dimensions: int = 512, full_size: bool = False, seed: int = 0) -> Path:
    """A multilingual-style text encoder: transformer + mean pooling + dense to ``dimensions``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense, Transformer
    from sentence_transformers.sentence_transformer.modules import Pooling
    from transformers import DistilBertConfig, DistilBertModel

    torch.manual_seed(seed)
    tokenizer = _train_tokenizer(model_max_length=128)
    if full_size:  # distilbert-base-multilingual-cased
        config = DistilBertConfig(
            vocab_size=119547, dim=768, hidden_dim=3072, n_layers=6, n_heads=12, pad_token_id=tokenizer.pad_token_id
        )
    else:
        config = DistilBertConfig(
            vocab_size=tokenizer.vocab_size,
            dim=32,
            hidden_dim=64,
            n_layers=2,
            n_heads=2,
            max_position_embeddings=128,
            pad_token_id=tokenizer.pad_token_id,
        )
    raw = target.with_name(target.name + ".hf")
    DistilBertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=128)
    modules = [
        transformer,
        Pooling(config.dim, "mean"),
        Dense(config.dim, dimensions, bias=False, activation_function=torch.nn.Identity()),
    ]
    SentenceTransformer(modules=modules, device="cpu").save(str(target))
    _rmtree(raw)
    return target


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def build_standins(directory: Path, *, dimensions: int = 512, full_size: bool = False) -> tuple[Path, Path]:
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return (
        build_clip(directory / "clip", dimensions=dimensions, full_size=full_size),
        build_text_encoder(directory / "text", dimensions=dimensions, full_size=full_size),
    )
