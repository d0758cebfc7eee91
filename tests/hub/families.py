"""Tiny KerasHub models of many families, built from small configs (no download), with a
few rows of inputs each: the fixtures of the hub branch tests."""

import numpy as np

keras_hub = __import__("pytest").importorskip("keras_hub")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "quick", "brown", "fox", "a", "dog"]
SEQ = 8
ROWS = 3
TEXT = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)


def token_inputs(names=("token_ids", "padding_mask"), seed=0):
    """Padded token rows (right padding, lengths 8, 5, 2) under the given input names."""
    rng = np.random.default_rng(seed)
    lengths = np.array([SEQ, 5, 2])
    mask = (np.arange(SEQ)[None, :] < lengths[:, None]).astype("int32")
    ids = rng.integers(1, len(VOCAB), size=(ROWS, SEQ)).astype("int32") * mask
    data = {"token_ids": ids, "padding_mask": mask, "segment_ids": np.zeros_like(ids)}
    return {n: data[n.replace("decoder_", "")] for n in names}


def images(size=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, size=(ROWS, size, size, 3)).astype("float32")


def _bert():
    return keras_hub.models.BertBackbone(
        vocabulary_size=len(VOCAB), max_sequence_length=SEQ, **TEXT
    )


def _whisper():
    bb = keras_hub.models.WhisperBackbone(
        vocabulary_size=len(VOCAB), num_mels=8, max_encoder_sequence_length=16,
        max_decoder_sequence_length=SEQ, **TEXT,
    )  # fmt: skip
    feats = np.random.default_rng(0).normal(size=(ROWS, 16, 8)).astype("float32")
    return bb, {
        "encoder_features": feats,
        **token_inputs(("decoder_token_ids", "decoder_padding_mask")),
    }


def _clip():
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=4, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
        image_shape=(16, 16, 3),
    )  # fmt: skip
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(VOCAB), embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2,
        intermediate_dim=32, max_sequence_length=SEQ,
    )  # fmt: skip
    bb = keras_hub.models.CLIPBackbone(vision, text, projection_dim=8)
    return bb, {"images": images(), **token_inputs(("token_ids",))}


def backbone_families():
    """{family: builder() -> (backbone, inputs: a dict by input name, or one array)}."""
    m = keras_hub.models
    words = token_inputs
    return {
        "bert": lambda: (_bert(), words(("token_ids", "segment_ids", "padding_mask"))),
        "distil_bert": lambda: (
            m.DistilBertBackbone(len(VOCAB), max_sequence_length=SEQ, **TEXT),
            words(),
        ),
        "roberta": lambda: (
            m.RobertaBackbone(len(VOCAB), max_sequence_length=SEQ, **TEXT),
            words(),
        ),
        "deberta_v3": lambda: (
            m.DebertaV3Backbone(len(VOCAB), max_sequence_length=SEQ, bucket_size=4, **TEXT),
            words(),
        ),
        "albert": lambda: (
            m.AlbertBackbone(len(VOCAB), embedding_dim=8, max_sequence_length=SEQ, **TEXT),
            words(("token_ids", "segment_ids", "padding_mask")),
        ),
        "electra": lambda: (
            m.ElectraBackbone(
                vocab_size=len(VOCAB), embedding_dim=8, max_sequence_length=SEQ, **TEXT
            ),
            words(("token_ids", "segment_ids", "padding_mask")),
        ),
        "gpt2": lambda: (m.GPT2Backbone(len(VOCAB), max_sequence_length=SEQ, **TEXT), words()),
        "gemma": lambda: (
            m.GemmaBackbone(
                len(VOCAB),
                num_layers=1,
                num_query_heads=2,
                num_key_value_heads=1,
                hidden_dim=16,
                intermediate_dim=32,
                head_dim=8,
            ),
            words(),
        ),  # fmt: skip
        "llama": lambda: (
            m.LlamaBackbone(
                len(VOCAB),
                num_layers=1,
                num_query_heads=2,
                hidden_dim=16,
                intermediate_dim=32,
                num_key_value_heads=1,
            ),
            words(),
        ),  # fmt: skip
        "resnet": lambda: (
            m.ResNetBackbone(
                input_conv_filters=[64],
                input_conv_kernel_sizes=[3],
                stackwise_num_filters=[64, 16],
                stackwise_num_blocks=[1, 1],
                stackwise_num_strides=[1, 2],
                block_type="basic_block",
                image_shape=(16, 16, 3),
            ),
            images(),
        ),  # fmt: skip
        "vit": lambda: (
            m.ViTBackbone(
                image_shape=(16, 16, 3),
                patch_size=4,
                num_layers=1,
                num_heads=2,
                hidden_dim=16,
                mlp_dim=32,
            ),
            images(),
        ),  # fmt: skip
        "cspnet": lambda: (
            m.CSPNetBackbone(
                stem_filters=8,
                stem_kernel_size=3,
                stem_strides=2,
                stackwise_depth=[1, 1],
                stackwise_strides=[2, 2],
                stackwise_num_filters=[8, 16],
                block_type="dark_block",
                stage_type="dark",
                image_shape=(16, 16, 3),
            ),
            images(),
        ),  # fmt: skip
        "whisper": _whisper,
        "clip": _clip,
    }


def bert_classifier(num_classes=3):
    """A tiny BertTextClassifier with its preprocessor (a WordPiece vocabulary: an asset)."""
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=VOCAB)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=SEQ)
    return keras_hub.models.BertTextClassifier(
        _bert(), num_classes=num_classes, preprocessor=preprocessor
    )


STRINGS = ["the quick brown fox", "a dog", "the dog the fox"]


def task_families():
    """{task: builder() -> (task, inputs: token dict or image array)}: the task's model
    inputs (what its preprocessor would produce)."""
    m = keras_hub.models
    fams = backbone_families()

    def text():
        task = bert_classifier()
        return task, {k: np.asarray(v) for k, v in task.preprocessor(STRINGS).items()}

    return {
        "bert_text_classifier": text,
        "resnet_image_classifier": lambda: (
            m.ResNetImageClassifier(fams["resnet"]()[0], 3),
            images(),
        ),
        "vit_image_classifier": lambda: (m.ViTImageClassifier(fams["vit"]()[0], 3), images()),
        "gpt2_causal_lm": lambda: (m.GPT2CausalLM(fams["gpt2"]()[0]), token_inputs()),
    }
