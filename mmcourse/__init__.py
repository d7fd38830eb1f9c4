"""mmcourse: the helper package of a course on multimodal deep learning.

Its layers, each a subpackage, import only the layers below them:

``runtime`` (settings, device, cache, installers, weights, launcher) → ``preprocessing`` →
``data`` → ``display`` and ``training`` → ``nn`` (the networks) → ``tasks`` (captioning,
translation, speech recognition) → ``experiments`` (the recipes). ``grading`` imports none of them. On top,
the applications: ``session`` (a chapter's first call), ``pack``, ``inference``,
``claims`` and the command line (``python -m mmcourse``).
"""
from mmcourse.runtime.config import fast, print_settings, seed_everything
from mmcourse.runtime.device import try_gpu

__all__ = ["fast", "print_settings", "seed_everything", "try_gpu"]
