"""Prompt sources and scorers: reasoning-gym generators and JSONL benchmark files."""

from envs.tasks.prompts import load_prompts

__all__ = ["load_prompts"]
