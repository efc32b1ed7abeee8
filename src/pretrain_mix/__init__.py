"""pretrain-mix: sample, clean and deduplicate weighted LLM pretraining mixtures."""
