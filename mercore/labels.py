"""Label sets of the standard MER tasks and the rules that map corpus emotions onto them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class LabelSet:
    """Class names of a task, in index order, and how each corpus's emotion words map onto them."""

    name: str
    classes: tuple[str, ...]
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def index(self, class_name: str) -> int:
        return self.classes.index(class_name)


MEGC3 = LabelSet("megc3", ("negative", "positive", "surprise"),
                 "MEGC2019 composite 3-class task (0 negative, 1 positive, 2 surprise)")
CASME2_SDE5 = LabelSet("sde5", ("happiness", "surprise", "disgust", "repression", "others"),
                       "CASME II 5-class SDE task")
SAMM_SDE5 = LabelSet("sde5", ("anger", "contempt", "happiness", "surprise", "others"),
                     "SAMM 5-class SDE task")

#: Emotion word -> 3-class name, per corpus, following the MEGC2019 rules. Words absent are dropped.
MEGC3_RULES: Mapping[str, Mapping[str, str]] = {
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
}

#: Emotion word -> 5-class SDE name, per corpus.
SDE5_RULES: Mapping[str, Mapping[str, str]] = {
    "casme2": {"happiness": "happiness", "surprise": "surprise", "disgust": "disgust",
               "repression": "repression", "others": "others"},
    "samm": {"anger": "anger", "contempt": "contempt", "happiness": "happiness", "surprise": "surprise",
             "other": "others", "others": "others"},
}

#: Clips the official MEGC2019 ground truth excludes although their emotion maps to a class.
MEGC2019_CASME2_EXCLUDED = frozenset({("sub04", "EP12_01f"), ("sub05", "EP09_05f"), ("sub24", "EP02_07")})


def map_emotion(dataset: str, emotion: str, rules: Mapping[str, Mapping[str, str]], labels: LabelSet) -> int | None:
    """Class index of ``emotion`` under ``rules`` for ``dataset``, or None if the clip is not in the task."""
    target = rules.get(dataset, {}).get(emotion.strip().lower())
    return None if target is None else labels.index(target)
