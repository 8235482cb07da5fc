"""learnerprobe: proficiency probing and native-language identification on learner texts."""

__version__ = "0.1.0"
