"""The risk model: train (training.py), score_batch (scoring.py), SHAP reasons in words
(explain.py), skops + manifest (persist.py), temporal evaluation (evaluate.py), model card
(card.py), command-line verbs (cli.py). Imports stay in the submodules so the CLI starts fast."""
