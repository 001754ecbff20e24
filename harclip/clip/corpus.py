"""The small built-in text corpus the local tokenizer is trained on (no downloads).

It holds every prompt of the default label set plus plain English, so zero-shot heads of the
default labels tokenise into whole words and other short labels still tokenise (byte fallback).
"""

from __future__ import annotations

from harclip.labels import HAR_CLASSES, PROMPT_TEMPLATES, phrase, prompts_for

_ENGLISH = """
The quick brown fox jumps over the lazy dog. A person is walking in the park with a dog.
Two people are talking on the street while a child plays with a ball. Someone is reading a book
at home, sitting on the sofa next to the window. A man is cooking dinner in the kitchen and a
woman is writing a letter at the table. People are waiting for the bus in the rain. The boy is
swimming in the lake and the girl is climbing a tree. A group of friends are playing football,
basketball and tennis. She is singing a song and he is playing the guitar. They are shopping,
driving a car, taking pictures, watching television, brushing teeth, washing dishes, cleaning the
house, painting a wall, jumping, standing, lying down, waving, smiling, crying, shouting, pointing.
An old woman is knitting. A young man is lifting weights in the gym. A photo, a picture, an image,
a video frame, a close-up, a blurry photo, a bright photo, a dark photo, a cropped photo of a
person, of people, of someone, of a man, of a woman, of a child, of a group.
"""


def corpus() -> list[str]:
    """Lines to train the tokenizer on: all default prompts, label names and generic English."""
    lines = [p for label in HAR_CLASSES for p in prompts_for(label)]
    lines += [phrase(label) for label in HAR_CLASSES] + [
        lab.replace("_", " ") for lab in HAR_CLASSES
    ]
    lines += [t.format("") for t in PROMPT_TEMPLATES]
    lines += [line.strip() for line in _ENGLISH.splitlines() if line.strip()]
    return lines
