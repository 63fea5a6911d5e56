"""Continued pretraining: packed data with replay and annealing (data.py, replay.py), the
transformers Trainer with optional DeepSpeed (trainer.py, deepspeed_env.py). See docs/training.md."""
