"""The error the trainer reports as one clear line on stderr and a non-zero exit, never a traceback."""


class TrainerError(Exception):
    """Something the person who launched the job can fix: a bad channel, path or hyperparameter."""
