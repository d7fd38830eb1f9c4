"""The course's real data sets; see each module for its source and layout."""
from .avdigits import (AVDigits, AVDigitsDataset, AVDigitsSplit, Corruption, describe_digit,
                       load_av_digits, modality_baselines, pooled_mfcc)
from .digits import HandwrittenDigits, SpokenDigits, load_handwritten_digits, load_spoken_digits
from .fashion import FASHION_CLASSES, FashionMNIST, load_fashion
from .splits import PROTOCOL_FOLDS, protocol_folds, protocol_stamps, split_stamps, stratified_split
from .spoken_captions import SpokenCaptions, load_spoken_captions
from .stamps import (Stamp, StampCollection, UnknownLanguageError, image_array, load_image,
                     load_stamps)

__all__ = [
    "AVDigits", "AVDigitsDataset", "AVDigitsSplit", "Corruption", "describe_digit", "load_av_digits",
    "modality_baselines", "pooled_mfcc", "HandwrittenDigits", "SpokenDigits",
    "load_handwritten_digits", "load_spoken_digits", "FASHION_CLASSES", "FashionMNIST",
    "load_fashion", "PROTOCOL_FOLDS", "protocol_folds", "protocol_stamps", "SpokenCaptions", "load_spoken_captions", "split_stamps", "stratified_split", "Stamp", "StampCollection",
    "UnknownLanguageError", "image_array", "load_image", "load_stamps",
]
