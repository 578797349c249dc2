"""algostack: an algorithmic trading desk on AWS that also runs on one machine."""

__version__ = "0.1.0"
