"""The lens study: the logit and tuned lens, per prompt, alongside generation and over a dataset."""
