# scikit-learn ships no types; only sklearn.base is used (see typings/README.md).
