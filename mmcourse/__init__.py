from .config import fast, print_settings, seed_everything
from .device import try_gpu
