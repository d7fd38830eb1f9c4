"""Preprocessing for text, audio and images: cleaning, augmentation and normalisation.

Each modality module says which of its functions belongs to which step; :mod:`.collate`
turns samples of different lengths into padded batches with lengths and masks.
"""
from .audio import (SAMPLE_RATE, AudioReadError, LogMel, add_noise, load_audio, log_mel, mfcc,
                    normalize_per_utterance, spec_augment, time_shift, trim_silence)
from .collate import collate_multimodal, pad_sequences
from .features import standardize
from .image import (HALF_MEAN_STD, IMAGENET_MEAN, IMAGENET_STD, crop_margin, denormalize,
                    eval_transform, letterbox, train_transform)
from .text import (BOS, BOS_TOKEN, EOS, EOS_TOKEN, PAD, PAD_TOKEN, UNK, UNK_TOKEN,
                   SequenceTokenizer, Tokenizer, Vocabulary, detokenize, normalize_text,
                   sentence_tokens, token_dropout, tokenize)

__all__ = [
    "SAMPLE_RATE", "AudioReadError", "LogMel", "add_noise", "load_audio", "log_mel", "mfcc",
    "normalize_per_utterance", "spec_augment", "time_shift", "trim_silence",
    "collate_multimodal", "pad_sequences", "standardize",
    "HALF_MEAN_STD", "IMAGENET_MEAN", "IMAGENET_STD", "crop_margin", "denormalize",
    "eval_transform", "letterbox", "train_transform",
    "PAD", "PAD_TOKEN", "UNK", "UNK_TOKEN", "Tokenizer", "Vocabulary", "normalize_text",
    "token_dropout", "tokenize",
    "BOS", "BOS_TOKEN", "EOS", "EOS_TOKEN", "SequenceTokenizer", "detokenize", "sentence_tokens",
]
