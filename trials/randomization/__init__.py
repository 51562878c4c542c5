"""Concealed, stratified permuted-block randomization."""
