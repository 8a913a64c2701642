"""Placeholder until this package registers its verbs."""


def register(subparsers):
    return None
