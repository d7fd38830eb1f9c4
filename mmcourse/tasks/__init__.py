"""The sequence tasks built from the networks: image captioning, multimodal translation,
speech recognition with CTC, their transcripts and their decoders."""
